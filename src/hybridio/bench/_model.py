"""What every scenario measures and returns: a ``Series`` of paired repeats becomes a ``Row``,
with a verdict only when its 95% interval clears the ``Rule`` (``judge``, ``guard_busy``)."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from . import _load

T = TypeVar("T")

#: Claims are "confirmed", "refuted" or "qualified" (holds only under the condition in the
#: note); targets "met" or "not met"; "n/a" for context rows.
Verdict = str
INCONCLUSIVE = "inconclusive"
VERDICTS = ("confirmed", "refuted", "qualified", "met", "not met", INCONCLUSIVE, "n/a")
#: A 95% interval (low, high); None when there are too few values for one.
Interval = tuple[float, float] | None
#: A 95% interval of a median needs 6 values (the sign test: 2 x 0.5**6 < 0.05).
MIN_REPEATS = 6


def median_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """A distribution-free interval of the median (order statistics of the sign test): [x(k),
    x(n-k+1)] for the largest k leaving <= (1 - confidence) / 2 outside on each side, or None."""
    ordered = sorted(v for v in values if not math.isnan(v))
    n, k, cdf = len(ordered), 0, 0.0
    for j in range(n):
        cdf += math.comb(n, j) / 2**n
        if cdf > (1 - confidence) / 2:
            break
        k = j + 1
    return None if k == 0 else (ordered[k - 1], ordered[n - k])


@dataclass(frozen=True)
class Rule:
    """How a ratio becomes a verdict: the claim says it is high (``higher``: >= ``confirm``) or
    low (< ``confirm``); ``refute`` is where it is clearly false, "qualified" in between; a
    ``target`` is met or not met. ``load_sensitive``: other work on the CPUs distorts this ratio
    either way (a speedup), so a busy machine decides nothing."""

    confirm: float
    refute: float | None = None
    higher: bool = True
    load_sensitive: bool = False
    target: bool = False

    def text(self, unit: str = "x") -> str:
        """The thresholds in words, e.g. "confirmed >= 1.6x, refuted < 1.15x" (``unit``: "x" for
        a ratio, " s" for a value in seconds)."""
        sign, other = (">=", "<") if self.higher else ("<", ">=")
        if self.target:
            return f"{sign} {self.confirm:.3g}{unit}"
        text = f"confirmed {sign} {self.confirm:.3g}{unit}"
        return text + ("" if self.refute is None else f", refuted {other} {self.refute:.3g}{unit}")


def guard_busy(
    verdict: Verdict, reason: str, load: _load.Load | None, *, sensitive: bool = False
) -> tuple[Verdict, str]:
    """The one rule for a busy machine: measured while other processes kept the CPUs busy, a
    "refuted" or "not met" (or any verdict of a ``sensitive`` quantity, which the load distorts
    either way: a speedup) becomes inconclusive, saying why."""
    if load is None or not load.busy or not (sensitive or verdict in ("refuted", "not met")):
        return verdict, reason
    why = ", which distorts every speedup" if sensitive else ""
    return INCONCLUSIVE, f"busy machine ({load.text()}){why}: rerun when it is quiet"


def judge(
    rule: Rule, interval: Interval, n: int, load: _load.Load | None = None, unit: str = "x"
) -> tuple[Verdict, str]:
    """The verdict for a ratio (or a value in ``unit``) known to lie in ``interval`` (95%), and
    why when inconclusive."""
    if interval is None or n < MIN_REPEATS:
        return INCONCLUSIVE, f"too few repeats ({n}; a verdict needs {MIN_REPEATS})"
    lo, hi = interval
    refute = rule.confirm if rule.refute is None else rule.refute
    if rule.higher:
        holds, fails, between = lo >= rule.confirm, hi < refute, lo >= refute and hi < rule.confirm
    else:
        holds, fails, between = hi < rule.confirm, lo >= refute, lo >= rule.confirm and hi < refute
    yes, no = ("met", "not met") if rule.target else ("confirmed", "refuted")
    verdict = yes if holds else no if fails else "qualified" if between else INCONCLUSIVE
    verdict, reason = guard_busy(verdict, "", load, sensitive=rule.load_sensitive)
    if verdict == INCONCLUSIVE and not reason:
        return verdict, (
            f"spread: the 95% interval {lo:.3g}{unit} to {hi:.3g}{unit} straddles a threshold "
            f"({rule.text(unit)}); rerun without --quick for more repeats"
        )
    return verdict, reason


@dataclass
class Row:
    """One reported number: the median ``value`` of its ``values``, its baseline, the median
    per-repeat ``ratio`` with its 95% ``interval`` (of the value without a baseline), the
    ``verdict`` of its ``target`` and the ``reason`` when inconclusive."""

    scenario: str
    name: str
    value: float
    unit: str
    repeats: int = 1
    baseline: str | None = None
    baseline_value: float | None = None
    ratio: float | None = None
    target: str | None = None
    verdict: Verdict | None = None
    claim: str | None = None
    note: str = ""
    baseline_unit: str | None = None
    interval: Interval = None
    reason: str = ""
    values: list[float] = field(default_factory=list)
    baseline_values: list[float] = field(default_factory=list)
    busy: bool = False


@dataclass
class Series:
    """Repeated measurements of one quantity, each paired with its baseline when there is one.

    ``window`` spans the repeats (``time.monotonic``): the load during it can make a verdict
    inconclusive. ``paired=False``: the baseline is context, not a ratio to judge.
    """

    name: str
    unit: str
    baseline: str | None = None
    baseline_unit: str | None = None
    values: list[float] = field(default_factory=list)
    baseline_values: list[float] = field(default_factory=list)
    window: tuple[float, float] | None = None
    paired: bool = True

    def add(self, value: float, baseline: float | None = None) -> None:
        """One repeat."""
        now = time.monotonic()
        self.window = (now if self.window is None else self.window[0], now)
        self.values.append(value)
        if baseline is not None:
            self.baseline_values.append(baseline)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else math.nan

    def ratios(self) -> list[float]:
        """value / baseline per repeat (empty without a paired baseline)."""
        pairs = zip(self.values, self.baseline_values, strict=False)
        return [v / b for v, b in pairs if b] if self.paired else []

    @property
    def ratio(self) -> float | None:
        ratios = self.ratios()
        return statistics.median(ratios) if ratios else None

    def interval(self) -> Interval:
        """95% interval of the median ratio (of the median value without a baseline)."""
        return median_interval(self.ratios() if self._unit == "x" else self.values)

    @property
    def _unit(self) -> str:
        """What ``interval`` is in: "x" for a ratio, else " " + the unit of the values."""
        return "x" if self.paired and self.baseline else f" {self.unit}"

    def load(self) -> _load.Load | None:
        return None if self.window is None else _load.during(*self.window)

    def settled(self, rule: Rule | None, tight: float = 0.1) -> bool:
        """Enough repeats: a verdict or a busy machine (more repeats cannot make it quiet), or
        without a rule an interval within +-``tight``."""
        if self.n < MIN_REPEATS:
            return False
        if rule is not None:
            verdict, reason = judge(rule, self.interval(), self.n, self.load(), self._unit)
            return verdict != INCONCLUSIVE or reason.startswith("busy")
        interval, middle = self.interval(), self.ratio or self.median
        return interval is not None and (interval[1] - interval[0]) <= 2 * tight * abs(middle)

    def row(
        self,
        scenario: str,
        *,
        rule: Rule | None = None,
        claim: str | None = None,
        verdict: Verdict | None = None,
        note: str = "",
        reason: str = "",
    ) -> Row:
        """The row of this series; ``verdict`` from ``rule`` unless given ("n/a": context). A
        given "refuted" or "not met" measured on a busy machine becomes inconclusive."""
        load, base = self.load(), self.baseline_values
        if rule is not None and verdict is None:
            verdict, reason = judge(rule, self.interval(), self.n, load, self._unit)
        elif verdict is not None:
            verdict, reason = guard_busy(verdict, reason, load)
        return Row(
            scenario,
            self.name,
            self.median,
            self.unit,
            repeats=self.n,
            baseline=self.baseline,
            baseline_value=statistics.median(base) if base else None,
            ratio=self.ratio,
            target=None if rule is None else rule.text(self._unit),
            verdict=verdict,
            claim=claim,
            note=note,
            baseline_unit=self.baseline_unit or (self.unit if self.baseline else None),
            interval=self.interval(),
            reason=reason,
            values=list(self.values),
            baseline_values=list(base),
            busy=bool(load and load.busy),
        )


def fact(
    name: str,
    value: float,
    unit: str,
    baseline: str | None = None,
    baseline_value: float | None = None,
    since: float | None = None,
) -> Series:
    """A one-shot measurement (its baseline is context); the load counts from ``since``
    (``time.monotonic``) when given."""
    series = Series(name, unit, baseline, paired=False)
    series.add(value, baseline_value)
    if since is not None and series.window is not None:
        series.window = (since, series.window[1])
    return series


@dataclass
class ScenarioResult:
    """A scenario's rows, plots (file names in the output folder) and prose for the report;
    the runner sets ``status`` ("ok", "skipped" or "error", ``reason`` says why), ``seconds``
    and ``load``."""

    name: str
    title: str
    description: str
    rows: list[Row] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    reason: str = ""
    load: dict[str, Any] | None = None


@dataclass
class BenchContext:
    """What a scenario is told: where to write, how long it may take (``quick``: about a minute;
    ``tiny``: seconds, for the tests, numbers meaningless) and where progress goes."""

    out: Path
    quick: bool = False
    tiny: bool = False
    progress: Callable[[str], None] = lambda message: None

    @property
    def mode(self) -> str:
        return "tiny" if self.tiny else "quick" if self.quick else "full"

    def under(self, name: str) -> BenchContext:
        """This context for part ``name``: "name: " before each progress message (once)."""
        prefix, progress = f"{name}: ", self.progress
        return replace(self, progress=lambda m: progress(m if m.startswith(prefix) else prefix + m))

    def pick(self, full: T, quick: T, tiny: T) -> T:
        """The value for this mode (sizes, durations, lists of sizes)."""
        return tiny if self.tiny else quick if self.quick else full

    def rounds(
        self, *judged: tuple[Series, Rule | None], budget: float | None = None
    ) -> Iterator[int]:
        """Repeat numbers until every series is ``settled``: at least ``MIN_REPEATS`` (1 tiny),
        at most 15 (quick) or 30 (full), none after ``budget`` seconds (20 quick, 60 full)."""
        least, most = self.pick((MIN_REPEATS, 30), (MIN_REPEATS, 15), (1, 1))
        budget = budget if budget is not None else self.pick(60.0, 20.0, 0.0)
        start = time.monotonic()
        for i in range(most):
            if i >= least and (
                all(s.settled(rule) for s, rule in judged) or time.monotonic() - start > budget
            ):
                return
            yield i


#: A scenario is a function of its context returning its result.
Scenario = Callable[[BenchContext], ScenarioResult]
