"""The workloads shared by ``hybridio bench`` and the demo server: one spin, one calibrator.

Module-level and free of heavy imports, because worker processes import these functions by name
when they unpickle a call, and a spawned child re-imports the module of its target.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

__all__ = [
    "busy_for",
    "calibrate",
    "echo",
    "loops_for",
    "noop",
    "sha256_hex",
    "sleep_for",
    "spin",
]


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
