"""Small shared pieces of the claims sub-scenarios: timing async code, building rows."""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from ._claims_verdicts import CLAIMS
from ._model import Row, Verdict, spread_of

__all__ = ["Part", "Timing", "measure_async", "plot_path", "ratio", "row", "usable_cpus"]

SCENARIO = "claims"


@dataclass
class Timing:
    """A median over repeats and its relative spread."""

    median: float
    spread: float | None
    repeats: int

    @classmethod
    def of(cls, values: list[float]) -> Timing:
        return cls(statistics.median(values), spread_of(values), len(values))


@dataclass
class Part:
    """What one sub-scenario produced: rows, plot file names, and data for the report's extra."""

    rows: list[Row] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    data: dict[str, object] = field(default_factory=dict)


def usable_cpus() -> int:
    """CPUs this process may run on (affinity), which is what parallel speedup can reach."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


async def measure_async(fn: Callable[[], Awaitable[object]], repeats: int) -> Timing:
    """Await ``fn()`` ``repeats`` times and time each."""
    values = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        await fn()
        values.append(time.perf_counter() - start)
    return Timing.of(values)


def ratio(value: float | None, baseline: float | None) -> float | None:
    """value / baseline, None when either is missing or the baseline is zero."""
    if value is None or baseline is None or baseline == 0 or math.isnan(value):
        return None
    return value / baseline


def row(
    name: str,
    value: float,
    unit: str,
    *,
    claim: str | None,
    verdict: Verdict,
    timing: Timing | None = None,
    baseline: str | None = None,
    baseline_value: float | None = None,
    ratio_value: float | None = None,
    note: str = "",
) -> Row:
    """A claims row; ``claim`` is a key of ``CLAIMS`` (None: no claim); the ratio defaults to
    value / baseline."""
    return Row(
        scenario=SCENARIO,
        name=name,
        value=value,
        unit=unit,
        repeats=timing.repeats if timing else 1,
        spread=timing.spread if timing else None,
        baseline=baseline,
        baseline_value=baseline_value,
        ratio=ratio(value, baseline_value) if ratio_value is None else ratio_value,
        verdict=verdict,
        claim=None if claim is None else CLAIMS[claim],
        note=note,
    )


def plot_path(out: Path, name: str) -> Path:
    """Where a claims plot goes (file names are prefixed so scenarios never collide)."""
    return out / f"claims-{name}.png"
