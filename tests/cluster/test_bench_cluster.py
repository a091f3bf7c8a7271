"""``hybridio bench cluster`` in the test suite's tiny mode: the shape of its report."""

from __future__ import annotations

import math
from pathlib import Path

from hybridio.bench._cluster import run
from hybridio.bench._model import BenchContext
from hybridio.bench._runner import SCENARIOS, load_scenario


def test_the_cluster_scenario_measures_both_sides(tmp_path: Path) -> None:
    assert load_scenario("cluster", SCENARIOS) is run
    result = run(BenchContext(out=tmp_path, tiny=True))
    names = [row.name for row in result.rows]
    assert names[0] == "overhead per call (serial no-op calls)"
    assert [name for name in names if name.startswith("map_cpu")] == [
        "map_cpu throughput, 200 tiny items"
    ]
    assert names[-1].startswith("crossover")
    assert result.rows[-1].verdict is None  # context, like the other rows
    assert not any(name.startswith("bridge") for name in names)  # inside "overhead per call"
    for row in result.rows:
        if not row.name.startswith("crossover"):
            assert row.value > 0
            assert row.baseline_value is not None
            assert row.baseline_value > 0
            assert row.ratio is not None
            assert not math.isnan(row.ratio)
