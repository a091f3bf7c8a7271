"""The dispatch scenario runs in tiny mode and produces well-formed rows with verdicts."""

from __future__ import annotations

import math
from pathlib import Path

from hybridio.bench._dispatch import run
from hybridio.bench._model import BenchContext


def test_dispatch_rows_and_plot(tmp_path: Path) -> None:
    result = run(BenchContext(out=tmp_path, tiny=True))
    names = {row.name for row in result.rows}
    for expected in (
        "hybridio.run_cpu x1",
        "hybridio.run_cpu x32",
        "hybridio.run_cpu x256",
        "anyio.to_process x32",
        "ProcessPoolExecutor x32",
        "hybridio.run_blocking x32",
        "ThreadPoolExecutor x32",
        "anyio.to_thread x32",
        "CPU speedup: hybridio.run_cpu",
        "map_cpu of 10,000 tiny items",
    ):
        assert expected in names
    for row in result.rows:
        assert row.value > 0
        assert math.isfinite(row.value)
        if row.baseline is not None:
            assert row.ratio == row.value / row.baseline_value  # type: ignore[operator]
        if row.target is not None:
            assert row.verdict == (
                "met"
                if row.ratio
                >= float(  # type: ignore[operator]
                    row.target.split()[1].rstrip("x")
                )
                else "not met"
            )
    assert (tmp_path / result.plots[0]).stat().st_size > 0
    assert result.extra["batches"] > 0
