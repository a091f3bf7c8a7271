"""What worker processes run for the claims and the batching sketch: module-level, so workers
import them by name, and free of heavy imports, as a spawned child re-imports this module."""

from __future__ import annotations

import contextlib
import pickle
import sys
import threading
import time
from collections.abc import MutableMapping
from typing import Any

import hybridio

#: A worker sets "value" (the parent must not see it); a child started with "mark" set shows
#: whether it inherited the parent's memory.
STATE: dict[str, Any] = {"value": 0, "mark": False}
_TABLE: list[int] = []  # each worker's own copy of a large structure (``build_table``)


def run_batch(calls: list[tuple[bytes, bytes]]) -> list[Any]:
    """Run pickled (function, arguments) pairs one after the other: the batching sketch's job."""
    return [pickle.loads(fn)(*pickle.loads(args)) for fn, args in calls]


def runaway(seconds: float, cooperative: bool, record: MutableMapping[str, float]) -> None:
    """Run in a thread for ``seconds`` (less if ``cooperative`` and cancelled); note when done."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline and not (cooperative and hybridio.cancel_requested()):
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
