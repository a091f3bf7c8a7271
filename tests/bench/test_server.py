"""``hybridio bench server`` in its seconds-long mode: every row, the plot, bounded in time."""

from __future__ import annotations

import math
from pathlib import Path

from hybridio.bench._model import BenchContext
from hybridio.bench._server import run


def test_server_scenario_tiny(tmp_path: Path) -> None:
    result = run(BenchContext(out=tmp_path, tiny=True))
    rows = {row.name: row for row in result.rows}
    assert rows["/io p99, idle"].value > 0
    process = rows["/io p99 under /cpu process load"]
    assert process.baseline_value == rows["/io p99, idle"].value
    assert process.verdict in {"met", "not met"}
    assert rows["/cpu process throughput"].value > 0
    assert rows["/cpu process throughput"].verdict in {"met", "not met"}
    assert rows["/cpu inline throughput"].ratio == 1.0
    refused = rows["overload: 503 latency p99"]
    assert not math.isnan(refused.value)  # the overload did get 503s
    assert "refused with 503" in refused.note
    assert rows["overload: server memory after/before"].value > 0
    assert (tmp_path / result.plots[0]).stat().st_size > 1000
