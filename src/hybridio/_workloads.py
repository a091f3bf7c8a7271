"""The CPU workloads shared by ``hybridio bench`` and the demo server: one spin, one calibrator.

Module-level and free of heavy imports, because worker processes import these functions by name
when they unpickle a call, and a spawned child re-imports the module of its target.
"""

from __future__ import annotations

import time

__all__ = ["busy_for", "calibrate", "loops_for", "spin"]


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
