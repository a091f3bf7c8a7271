"""The workloads of the bench scenarios (the CPU loop itself is ``hybridio._workloads.spin``).

Module-level, apart from the measuring code, because worker processes import them by name, and
free of heavy imports, because a spawned child re-imports the module of its target.
"""

from __future__ import annotations

import hashlib
import pickle
import sys
import threading
import time
import zlib
from collections.abc import MutableMapping
from typing import Any

import hybridio

#: State that a worker process changes to show that the parent does not see it.
SHARED: dict[str, Any] = {"value": 0}
#: Set by the parent before starting a child, to see whether the child inherits it.
MARK: dict[str, bool] = {"set": False}
#: A large structure each worker builds once (``build_table`` as the pool initializer).
_TABLE: list[int] = []


def noop() -> None:
    """Do nothing: what a start-up or a round trip costs on its own."""


def echo(x: Any) -> Any:
    """A tiny call: returns its argument. Its cost is all dispatch."""
    return x


def run_batch(calls: list[tuple[bytes, bytes]]) -> list[Any]:
    """Run pickled (function, arguments) pairs one after the other: the batching sketch's job."""
    return [pickle.loads(fn)(*pickle.loads(args)) for fn, args in calls]


def sha256_hex(data: bytes) -> str:
    """C code that releases the GIL on large buffers (hashlib does for more than 2 kB)."""
    return hashlib.sha256(data).hexdigest()


def compress_len(data: bytes) -> int:
    """zlib compression: C code that releases the GIL while it works."""
    return len(zlib.compress(data, 6))


def payload_len(data: bytes) -> int:
    """Receive a payload and return something tiny: the cost is the payload's trip."""
    return len(data)


def sleep_for(seconds: float) -> None:
    """A blocking I/O stand-in: the GIL is released while it waits."""
    time.sleep(seconds)


def runaway(seconds: float, cooperative: bool, record: MutableMapping[str, float]) -> None:
    """Run for ``seconds`` in a thread, noting in ``record`` (shared with the caller) when it is
    ``done``; stop early when cancelled if ``cooperative``."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        if cooperative and hybridio.cancel_requested():
            break
        time.sleep(0.001)
    record["done"] = time.perf_counter()


def racy_add(box: MutableMapping[str, int], times: int, lock: threading.Lock | None) -> None:
    """Increment ``box["n"]`` with a read-modify-write; with ``lock`` None, updates get lost.

    ``time.sleep(0)`` between the read and the write releases the GIL there, as any I/O would.
    """
    for _ in range(times):
        if lock is not None:
            lock.acquire()
        value = box["n"]
        time.sleep(0)
        box["n"] = value + 1
        if lock is not None:
            lock.release()


def set_shared(value: int) -> int:
    """Change this process's ``SHARED`` and return what it now holds."""
    SHARED["value"] = value
    return int(SHARED["value"])


def append_and_len(items: list[int]) -> int:
    """Mutate the list received; the caller's list changes only if memory is shared."""
    items.append(-1)
    return len(items)


def exit_with_mark() -> None:
    """Exit 1 when this child inherited the parent's ``MARK`` (fork copies memory), else 0."""
    sys.exit(1 if MARK["set"] else 0)


def build_table(n: int) -> None:
    """Pool initializer: give this worker its own copy of a large structure."""
    _TABLE[:] = range(n)


def sum_table() -> int:
    """Read the whole per-worker structure (built by ``build_table``)."""
    return sum(_TABLE)


def sum_list(items: list[int]) -> int:
    """Read a structure that was sent along with the call."""
    return sum(items)
