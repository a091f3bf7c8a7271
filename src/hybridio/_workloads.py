"""The workloads of ``hybridio bench`` and the demo server: one spin, one calibrator, and what
the claims and the batching sketch run in workers.

Module-level and free of heavy imports, because worker processes import these functions by name
when they unpickle a call, and a spawned child re-imports the module of its target.
"""

from __future__ import annotations

import contextlib
import hashlib
import pickle
import sys
import threading
import time
from collections.abc import MutableMapping
from typing import Any


def spin(loops: int) -> int:
    """Pure-Python CPU work that holds the GIL all along: ``loops`` steps of integer arithmetic."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def calibrate(sample_seconds: float = 0.05) -> float:
    """How many ``spin`` loops run per second here, measured now over about ``sample_seconds``."""
    loops = 10_000
    while True:
        start = time.perf_counter()
        spin(loops)
        elapsed = time.perf_counter() - start
        if elapsed >= sample_seconds:
            return loops / elapsed
        # Aim past the target so the last measurement is long enough to be stable.
        loops = int(loops * min(10.0, 1.5 * sample_seconds / max(elapsed, 1e-6)))


def loops_for(seconds: float, rate: float | None = None) -> int:
    """The ``spin`` argument that takes about ``seconds`` here (``rate`` from ``calibrate``)."""
    return max(1, round(seconds * (calibrate() if rate is None else rate)))


def busy_for(seconds: float) -> int:
    """Pure-Python work for ``seconds`` of wall time (holds the GIL; never checks for cancel)."""
    deadline = time.perf_counter() + seconds
    loops = 0
    while time.perf_counter() < deadline:
        loops += 1
    return loops


def noop() -> None:
    """Do nothing: what a start-up or a round trip costs on its own."""


def echo(x: Any) -> Any:
    """A tiny call: returns its argument. Its cost is all dispatch."""
    return x


def sha256_hex(data: bytes) -> str:
    """C code that releases the GIL on large buffers (hashlib does for more than 2 kB)."""
    return hashlib.sha256(data).hexdigest()


def sleep_for(seconds: float) -> None:
    """A blocking I/O stand-in: the GIL is released while it waits."""
    time.sleep(seconds)


#: A worker sets "value" (the parent must not see it); a child started with "mark" set shows
#: whether it inherited the parent's memory.
STATE: dict[str, Any] = {"value": 0, "mark": False}
_TABLE: list[int] = []  # each worker's own copy of a large structure (``build_table``)


def run_batch(calls: list[tuple[bytes, bytes]]) -> list[Any]:
    """Run pickled (function, arguments) pairs one after the other: the batching sketch's job."""
    return [pickle.loads(fn)(*pickle.loads(args)) for fn, args in calls]


def _cancel_requested() -> bool:
    from hybridio import cancel_requested  # here, so that workers importing this stay light

    return cancel_requested()


def runaway(seconds: float, cooperative: bool, record: MutableMapping[str, float]) -> None:
    """Run in a thread for ``seconds`` (less if ``cooperative`` and cancelled); note when done."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline and not (cooperative and _cancel_requested()):
        time.sleep(0.001)
    record["done"] = time.perf_counter()


def racy_add(box: MutableMapping[str, int], times: int, lock: threading.Lock | None) -> None:
    """Read-modify-write ``box["n"]``; ``sleep(0)`` releases the GIL mid-way, as I/O would."""
    for _ in range(times):
        with lock or contextlib.nullcontext():
            value = box["n"]
            time.sleep(0)
            box["n"] = value + 1


def mutate(value: int, items: list[int]) -> None:
    """Change ``STATE`` and the list received: the caller sees both only if memory is shared."""
    STATE["value"] = value
    items.append(-1)


def exit_with_mark() -> None:
    """Exit 1 when this child inherited the parent's mark (fork copies memory), else 0."""
    sys.exit(1 if STATE["mark"] else 0)


def build_table(n: int) -> None:
    """Pool initializer: give this worker its own copy of a large structure."""
    _TABLE[:] = range(n)


def sum_table() -> int:
    """Read the whole per-worker structure (built by ``build_table``)."""
    return sum(_TABLE)
