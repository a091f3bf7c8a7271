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
        "hybridio.run_cpu x1 vs anyio.to_process x1",
        "hybridio.run_cpu x32 vs batching sketch x32",
        "hybridio.run_blocking x32 vs ThreadPoolExecutor x32",
        "cpu hybridio.run_cpu vs cpu inline",
        "map_cpu vs anyio.to_process x32",
    ):
        assert expected in names
    for row in result.rows:
        assert row.value > 0
        assert math.isfinite(row.value)
        if row.baseline is not None:
            assert row.ratio == row.value / row.baseline_value  # type: ignore[operator]
        if row.target is not None:
            assert row.verdict == "inconclusive"  # one repeat decides nothing
            assert "too few repeats" in row.reason
    assert (tmp_path / result.plots[0]).stat().st_size > 0
    assert result.extra["batches"] > 0
