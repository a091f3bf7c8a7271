"""PNG plots drawn with matplotlib's Agg canvas (no display, no global state): every point and
bar has its 95% interval as an error bar, reference lines are labelled, bars are horizontal so
that long labels never overlap."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ._model import Interval, Series, median_interval
from ._report import format_number


@dataclass
class Line:
    """A named line of (x, y, 95% interval of y) points."""

    name: str
    style: str = "-"
    points: list[tuple[float, float, Interval]] = field(default_factory=list)

    def add(self, x: float, y: float | None, interval: Interval = None) -> None:
        if y is not None and not math.isnan(y):
            self.points.append((x, y, interval))


def _errors(values: Sequence[float], intervals: Sequence[Interval]) -> list[list[float]]:
    """Matplotlib's asymmetric error bars: [below, above] distances from each value."""
    return [
        [max(0.0, v - i[0]) if i else 0.0 for v, i in zip(values, intervals, strict=True)],
        [max(0.0, i[1] - v) if i else 0.0 for v, i in zip(values, intervals, strict=True)],
    ]


def _save(figure: Figure, axes: Axes, path: Path, title: str, xlabel: str) -> Path:
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Figure.savefig on a bare Figure uses the Agg canvas: safe in threads and headless CI.
    figure.savefig(path, dpi=110)
    return path


def line_plot(
    path: Path,
    title: str,
    xlabel: str,
    ylabel: str,
    lines: Sequence[Line],
    *,
    logx: bool = False,
    logy: bool = False,
    hline: tuple[float, str] | None = None,
    vline: tuple[float, str] | None = None,
) -> Path:
    """One line per ``Line`` with error bars; optional labelled reference lines."""
    figure = Figure(figsize=(7.0, 4.4), layout="constrained")
    axes = figure.add_subplot()
    for line in (line for line in lines if line.points):
        xs, ys, intervals = zip(*sorted(line.points, key=lambda p: p[0]), strict=True)
        errors = _errors(ys, intervals)
        axes.errorbar(xs, ys, errors, marker="o", ls=line.style, capsize=4, label=line.name)
    if hline is not None:
        axes.axhline(hline[0], color="tab:red", linestyle=":", linewidth=1.2, label=hline[1])
    if vline is not None:
        axes.axvline(vline[0], color="tab:purple", linestyle=":", linewidth=1.2, label=vline[1])
    axes.set_xscale("log" if logx else "linear")
    axes.set_yscale("log" if logy else "linear")
    if not logx and all(float(x).is_integer() for line in lines for x, _, _ in line.points):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # no tick at 1.5 workers
    axes.set_ylabel(ylabel)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    return _save(figure, axes, path, title, xlabel)


def bar_plot(
    path: Path,
    title: str,
    xlabel: str,
    bars: Mapping[str, Series | tuple[float, Interval]],
    *,
    scale: float = 1.0,
    logy: bool = False,
    target: tuple[float, str] | None = None,
) -> Path:
    """One horizontal bar per label: a ``Series``' median value (x ``scale``) with its 95%
    interval, or an explicit (value, interval); an optional labelled target line."""
    values, intervals = [], []
    for bar in bars.values():
        value, interval = (
            (bar.median, median_interval(bar.values)) if isinstance(bar, Series) else bar
        )
        values.append(0.0 if math.isnan(value) else value * scale)
        intervals.append(None if interval is None else (interval[0] * scale, interval[1] * scale))
    figure = Figure(figsize=(7.0, 1.4 + 0.42 * len(bars)), layout="constrained")
    axes = figure.add_subplot()
    positions = list(range(len(bars)))[::-1]  # the first label on top
    axes.barh(positions, values, xerr=_errors(values, intervals), color="tab:blue", capsize=4)
    axes.set_yticks(positions, list(bars))
    for y, value, interval in zip(positions, values, intervals, strict=True):
        if value > 0 or not logy:  # nothing measured: no bar (and no label) on a log scale
            end = interval[1] if interval else value
            axes.annotate(f" {format_number(value)}", (end, y), va="center", fontsize=8)
    if target is not None:
        axes.axvline(target[0], color="tab:red", linestyle=":", linewidth=1.2, label=target[1])
        axes.legend(fontsize=8, loc="lower right")
    if logy:
        axes.set_xscale("log")
        ends = [(i or (v, v)) for v, i in zip(values, intervals, strict=True) if v > 0]
        axes.set_xlim(min(lo for lo, _ in ends) / 3, max(hi for _, hi in ends) * 4)
    axes.margins(x=0.15)
    axes.grid(True, axis="x", which="both", alpha=0.3)
    return _save(figure, axes, path, title, xlabel)
