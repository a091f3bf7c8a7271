"""PNG plots for the report, drawn with matplotlib's Agg canvas (no display, no global state).

Each function takes plain numbers and a path, so scenarios stay free of plotting code and a plot
can be redrawn from ``results.json``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure

__all__ = ["bar_plot", "line_plot"]

Series = Mapping[str, Sequence[tuple[float, float]]]


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    # Figure.savefig on a bare Figure uses the Agg canvas: safe in threads and headless CI.
    figure.savefig(path, dpi=110)
    return path


def line_plot(
    path: Path,
    title: str,
    xlabel: str,
    ylabel: str,
    series: Series,
    *,
    logx: bool = False,
    logy: bool = False,
    hline: float | None = None,
    hline_label: str | None = None,
    vline: float | None = None,
    vline_label: str | None = None,
) -> Path:
    """One line per named series of (x, y) points; optional reference lines (ideal, break-even).

    Example: speedup vs workers, IPC cost vs payload size, speedup vs task duration.
    """
    figure = Figure(figsize=(6.4, 4.2))
    axes = figure.add_subplot()
    for label, points in series.items():
        if points:
            xs, ys = zip(*sorted(points), strict=True)
            axes.plot(xs, ys, marker="o", label=label)
    if hline is not None:
        axes.axhline(hline, color="grey", linestyle="--", linewidth=1, label=hline_label)
    if vline is not None:
        axes.axvline(vline, color="tab:red", linestyle=":", linewidth=1.2, label=vline_label)
    if logx:
        axes.set_xscale("log")
    if logy:
        axes.set_yscale("log")
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    return _save(figure, path)


def bar_plot(
    path: Path,
    title: str,
    ylabel: str,
    bars: Mapping[str, float],
    *,
    logy: bool = False,
    errors: Mapping[str, float] | None = None,
) -> Path:
    """One bar per label (e.g. start-up time of a thread, fork, forkserver, spawn)."""
    figure = Figure(figsize=(6.4, 4.2))
    axes = figure.add_subplot()
    labels = list(bars)
    values = [bars[label] for label in labels]
    yerr = [errors.get(label, 0.0) for label in labels] if errors else None
    axes.bar(labels, values, yerr=yerr, color="tab:blue", capsize=4)
    for index, value in enumerate(values):
        axes.annotate(f"{value:.3g}", (index, value), ha="center", va="bottom", fontsize=8)
    if logy:
        axes.set_yscale("log")
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.grid(True, axis="y", alpha=0.3)
    return _save(figure, path)
