"""Workloads of the dispatch scenario: module-level, so worker processes import them by name.

The CPU work is the claims scenario's ``spin``, so both scenarios measure the same loop.
"""

from __future__ import annotations

import time
from typing import Any

from ._claims_work import spin

__all__ = ["calibrate_spin", "echo", "spin"]


def echo(x: Any) -> Any:
    """A tiny call: returns its argument. Its cost is all dispatch."""
    return x


def calibrate_spin(seconds: float) -> int:
    """The ``n`` for which ``spin(n)`` takes about ``seconds`` here."""
    n = 10_000
    while True:
        start = time.perf_counter()
        spin(n)
        elapsed = time.perf_counter() - start
        if elapsed > 0.01:
            return max(1, int(n * seconds / elapsed))
        n *= 4
