"""What the claims sub-scenarios share: the claims, their rules, and small helpers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _load
from ._model import INCONCLUSIVE, Row, Verdict, gather

__all__ = [
    "CLAIMS",
    "SCENARIO",
    "Part",
    "fact",
    "gather",
    "guard",
    "verdict_crossover",
    "verdict_independent",
    "verdict_isolated",
    "verdict_race",
]

SCENARIO = "claims"

#: Short quotes of the seed notes, keyed by an id used in the code and in docs/claims.md.
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


@dataclass
class Part:
    """What one sub-scenario produced: rows and plot file names."""

    rows: list[Row] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)


def fact(name: str, value: float, unit: str, claim: str, verdict: Verdict, **more: Any) -> Row:
    """A one-shot fact (its baseline, when given, is context, not a ratio to judge)."""
    return Row(SCENARIO, name, value, unit, claim=claim, verdict=verdict, **more)


def guard(verdict: Verdict, load: _load.Load | None) -> tuple[Verdict, str]:
    """A one-shot verdict on a busy machine: never "refuted" (the load may have caused it)."""
    if verdict == "refuted" and load is not None and load.busy:
        return INCONCLUSIVE, f"busy machine ({load.text()}): rerun when it is quiet"
    return verdict, ""


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


def verdict_independent(inherits: Sequence[bool]) -> Verdict:
    """Independent start: confirmed when no child inherits its parent's state, refuted when every
    start method tried inherits it, qualified when it depends on the start method."""
    if not inherits:
        return "n/a"
    if not any(inherits):
        return "confirmed"
    return "refuted" if all(inherits) else "qualified"


def verdict_crossover(
    intervals: Sequence[tuple[float, tuple[float, float] | None]], gain: float, busy: bool
) -> tuple[Verdict, str]:
    """Offloading CPU work, from (task seconds, 95% interval of the speedup) per task length.

    Confirmed when even the shortest task clearly gains ``gain``; qualified when only longer
    tasks clearly do (the report gives the crossover); refuted when every task length clearly
    gains nothing; inconclusive on a busy machine (it distorts speedups) or when unclear.
    """
    if busy:
        return INCONCLUSIVE, "busy machine: other processes distort every speedup; rerun when quiet"
    known = sorted((d, i) for d, i in intervals if i is not None)
    if not known:
        return INCONCLUSIVE, "too few repeats for an interval"
    if known[0][1][0] >= gain:
        return "confirmed", ""
    if known[0][1][1] < gain and any(lo >= gain for _, (lo, _) in known):
        return "qualified", ""
    if all(hi < gain for _, (_, hi) in known):
        return "refuted", ""
    return INCONCLUSIVE, "the speedup intervals straddle the threshold; rerun without --quick"
