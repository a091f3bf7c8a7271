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
    assert any(name.startswith("map_cpu throughput") for name in names)
    assert any(name.startswith("crossover") for name in names)
    assert not any(name.startswith("bridge") for name in names)  # inside "overhead per call"
    for row in result.rows:
        if not row.name.startswith("crossover"):
            assert row.value > 0
            assert row.baseline_value is not None
            assert row.baseline_value > 0
            assert row.ratio is not None
            assert not math.isnan(row.ratio)
