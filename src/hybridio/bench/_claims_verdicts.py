"""The seed notes' claims and the explicit thresholds that turn numbers into verdicts.

Each verdict function is pure (numbers in, verdict out) so a test can feed it numbers on each side
of its threshold. Thresholds are chosen for a shared, noisy machine: "confirmed" needs a clear
effect, "refuted" a clear absence of it, and the band between is "qualified".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ._model import Verdict

__all__ = [
    "CLAIMS",
    "parallel_target",
    "verdict_at_least",
    "verdict_at_most",
    "verdict_crossover",
    "verdict_independent",
    "verdict_isolated",
    "verdict_race",
]

#: Short quotes of the seed notes, keyed by an id used in the code.
CLAIMS: dict[str, str] = {
    "multicore": "Processes take advantage of multiple CPUs and cores",
    "separate_memory": "Processes utilize separate memory space (do not share memory)",
    "faster_access": "Separate memory prevents competition and permits faster access to data",
    "cpu_bound": "Processes are great for CPU-bound processing",
    "independent": "New processes are started independently of the other processes",
    "killable": "Processes are interruptable or killable",
    "own_gil": "Every process has its own GIL, which avoids the GIL limitation",
    "heavyweight": "A process is heavyweight",
    "more_memory": "A process requires more memory",
    "slow_start": "A process starts way slower than a thread",
    "ipc": "Inter-process communication is very complicated",
    "thread_memory": "Threads share the same memory, which makes them memory-efficient",
    "thread_fast_start": "Starting a thread is faster than starting a process",
    "thread_io": "A thread is great for I/O-bound tasks",
    "gil_single": "The GIL allows only one thread to execute at a time (no parallelism)",
    "thread_no_cpu": "A thread has no effect on CPU-bound tasks",
    "thread_unkillable": "A thread is not easily killable or interruptable (possible leaks)",
    "race": "Threads need care with race conditions",
    "gil_required": "The GIL is required in CPython because memory management is not thread safe",
    "c_libraries": "Use Python as a wrapper for third-party (C) libraries to avoid the GIL",
    "other_implementations": "Use a free-threaded implementation such as Jython or IronPython",
}


def parallel_target(cpus: int, efficiency: float = 0.6) -> float:
    """The speedup that counts as "uses several cores": 1 + efficiency x (cpus - 1).

    On 2 CPUs that is 1.6x: a shared machine rarely gives the ideal 2x, and 1.6x cannot be noise.
    """
    return 1.0 + efficiency * (max(1, cpus) - 1)


def verdict_at_least(value: float | None, confirm: float, refute: float) -> Verdict:
    """Claim "it is big": ``value >= confirm`` confirmed, ``value < refute`` refuted, else qualified."""
    if value is None or math.isnan(value):  # NaN: not measured
        return "n/a"
    if value >= confirm:
        return "confirmed"
    if value < refute:
        return "refuted"
    return "qualified"


def verdict_at_most(value: float | None, confirm: float, refute: float) -> Verdict:
    """Claim "it is small": ``value < confirm`` confirmed, ``value >= refute`` refuted, else qualified."""
    if value is None or math.isnan(value):
        return "n/a"
    if value < confirm:
        return "confirmed"
    if value >= refute:
        return "refuted"
    return "qualified"


def verdict_race(lost_unlocked: int, lost_locked: int) -> Verdict:
    """Races: confirmed when updates got lost without a lock and none with it.

    No loss without a lock is "qualified" (the race exists but did not fire in this run); losses
    even with the lock would refute that the lock is the fix.
    """
    if lost_locked > 0:
        return "refuted"
    return "confirmed" if lost_unlocked > 0 else "qualified"


def verdict_isolated(process_sees_change: bool, thread_sees_change: bool) -> Verdict:
    """Separate memory: confirmed when a worker's change is invisible to the parent while a
    thread's change is visible; refuted when the parent sees the worker's change."""
    if process_sees_change:
        return "refuted"
    return "confirmed" if thread_sees_change else "qualified"


def verdict_crossover(speedups: Sequence[tuple[float, float]], confirm: float) -> Verdict:
    """Offloading CPU work, from (task seconds, speedup) points.

    Confirmed when even the shortest task gains ``confirm``; qualified when only longer tasks gain
    (the report gives the crossover); refuted when no task duration gains at all.
    """
    if not speedups:
        return "n/a"
    ordered = sorted(speedups)
    if ordered[0][1] >= confirm:
        return "confirmed"
    return "qualified" if max(speedup for _, speedup in ordered) >= confirm else "refuted"


def verdict_independent(inherits: Sequence[bool]) -> Verdict:
    """Independent start: confirmed when no child inherits its parent's state, refuted when every
    start method tried inherits it, qualified when it depends on the start method."""
    if not inherits:
        return "n/a"
    if not any(inherits):
        return "confirmed"
    return "refuted" if all(inherits) else "qualified"
