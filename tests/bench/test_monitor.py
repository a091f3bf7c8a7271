"""The ``monitor`` scenario in tiny mode: the rows it promises, with sane values and verdicts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from hybridio.bench._model import BenchContext
from hybridio.bench._monitor import CULPRITS, run


def test_tiny_run_reports_overhead_detection_and_false_blocks(tmp_path: Path) -> None:
    progress: list[str] = []
    result = run(BenchContext(out=tmp_path, tiny=True, progress=progress.append))
    assert result.name == "monitor"
    rows = {row.name: row for row in result.rows}
    overhead = rows["loop-bound workload with a monitor, asyncio"]
    assert overhead.baseline_value is not None
    assert overhead.baseline_value > 0
    assert overhead.ratio is not None
    assert overhead.ratio > 0
    assert overhead.verdict == "inconclusive"  # tiny mode: too few repeats for a verdict
    assert overhead.target == "< 1.01x"
    detection = rows["50 ms blocks caught with the right culprit, asyncio"]
    assert 0 <= detection.value <= 100
    assert detection.verdict == ("met" if detection.value >= 95 else "not met")
    # Each injected block is either caught with its culprit or listed as a miss.
    misses = result.extra["misses_asyncio"]
    assert round(detection.value / 100 * detection.repeats) + len(misses) == detection.repeats
    assert set(misses) <= {fn.__name__ for fn in CULPRITS}
    idle = rows["false blocks on an idle loop, asyncio"]
    assert idle.verdict == ("met" if idle.value == 0 else "not met")
    assert idle.target == "0"
    assert [name.rsplit(", ", 1)[0] for name in rows if name.endswith(", asyncio")] == [
        "loop-bound workload with a monitor",
        "false blocks on an idle loop",
        "50 ms blocks caught with the right culprit",
    ]
    assert result.plots == ["monitor-overhead.png"]
    assert (tmp_path / "monitor-overhead.png").stat().st_size > 0
    assert any("detection" in line for line in progress)


def test_a_backend_that_is_not_installed_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "trio" else real(name, *a)
    )
    result = run(BenchContext(out=tmp_path, tiny=True))
    names = {row.name for row in result.rows}
    assert "50 ms blocks caught with the right culprit, asyncio" in names
    assert not any(name.endswith(", trio") for name in names)
    assert result.extra["skipped trio"] == "not installed: pip install trio"
