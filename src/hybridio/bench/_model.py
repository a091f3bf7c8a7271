"""What every benchmark scenario returns: rows of numbers with their baseline, spread and verdict.

Every timing is a ratio against a baseline measured in the same run, with repeats and spread,
because the machines are shared and noisy: absolute numbers are reported, ratios are judged.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = [
    "VERDICTS",
    "BenchContext",
    "Row",
    "ScenarioResult",
    "Verdict",
    "measure",
    "paired_ratio",
    "spread_of",
]

#: Verdicts: seed claims are "confirmed", "refuted" or "qualified" (holds only under a condition
#: said in ``note``); targets are "met" or "not met"; "n/a" when it could not be measured here.
Verdict = str
VERDICTS: tuple[Verdict, ...] = ("confirmed", "refuted", "qualified", "met", "not met", "n/a")


def spread_of(values: Sequence[float]) -> float | None:
    """Relative spread of repeated measurements: (max - min) / median, None for one value."""
    if len(values) < 2:
        return None
    median = statistics.median(values)
    return (max(values) - min(values)) / median if median else None


def paired_ratio(values: Sequence[float], baselines: Sequence[float]) -> float | None:
    """The median of per-repeat ratios ``values[i] / baselines[i]``.

    Each repeat measures the value and its baseline back to back, so a slow spell of a shared
    machine hits both: pairing them cancels it, where the ratio of two medians taken from
    different repeats does not. Falls back to the ratio of medians when the counts differ.
    """
    if len(values) == len(baselines) and all(baselines):
        return statistics.median(v / b for v, b in zip(values, baselines, strict=True))
    baseline = statistics.median(baselines) if baselines else 0.0
    return statistics.median(values) / baseline if baseline and values else None


@dataclass
class Row:
    """One measured number.

    ``value`` is the median over ``repeats``; ``spread`` its relative spread; ``ratio`` is
    ``value / baseline_value`` or, where value and baseline were measured in pairs, the median of
    the per-repeat ratios (``paired_ratio``); inverted where smaller is better, said in ``note``.
    """

    scenario: str
    name: str
    value: float
    unit: str
    repeats: int = 1
    spread: float | None = None
    baseline: str | None = None
    baseline_value: float | None = None
    ratio: float | None = None
    target: str | None = None
    verdict: Verdict | None = None
    claim: str | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON-ready data (NaN, used for "not measured here", becomes None)."""
        data = dict(self.__dict__)
        for key, value in data.items():
            if isinstance(value, float) and math.isnan(value):
                data[key] = None
        return data


@dataclass
class ScenarioResult:
    """A scenario's rows, plots (file names in the output folder) and prose for the report."""

    name: str
    title: str
    description: str
    rows: list[Row] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    #: "ok", "skipped" (not available here: ``reason`` says why) or "error" (it raised: ``reason``
    #: holds the error). Set by the runner; a scenario returns "ok".
    status: str = "ok"
    reason: str = ""


@dataclass
class BenchContext:
    """What a scenario is told: how long it may take and where to write.

    ``quick`` is the ~1 minute mode of ``--quick``; ``tiny`` is the seconds-long mode the test
    suite uses (numbers meaningless, shapes checked). ``progress`` reports a line of progress.
    """

    out: Path
    quick: bool = False
    tiny: bool = False
    progress: Callable[[str], None] = lambda message: None

    def repeats(self, full: int, quick: int = 3, tiny: int = 1) -> int:
        """How many repeats for this mode."""
        return tiny if self.tiny else quick if self.quick else full

    @property
    def mode(self) -> str:
        """ "tiny", "quick" or "full"."""
        return "tiny" if self.tiny else "quick" if self.quick else "full"

    def pick(self, full: T, quick: T, tiny: T) -> T:
        """The value for this mode (sizes, durations, lists of sizes)."""
        return tiny if self.tiny else quick if self.quick else full


def measure(fn: Callable[[], object], repeats: int) -> tuple[float, float | None, list[float]]:
    """Time ``fn()`` ``repeats`` times: (median seconds, relative spread, every time)."""
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), spread_of(times), times


#: A scenario is a function of its context returning its result.
Scenario = Callable[[BenchContext], ScenarioResult]
