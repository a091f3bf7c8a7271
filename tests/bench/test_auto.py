"""The auto scenario and the interpreters measurement in their shortest modes: every row there,
with the names the docs and the claims scenario use."""

from __future__ import annotations

import math
from pathlib import Path

from hybridio.bench._auto import run
from hybridio.bench._interpreters import measure
from hybridio.bench._model import BenchContext


def test_auto_rows(tmp_path: Path) -> None:
    result = run(BenchContext(out=tmp_path, tiny=True))
    rows = {row.name: row for row in result.rows}
    for name in (
        "tiny x32: auto",
        "python 25 ms x8: auto",
        "sha256 8 MB x4: blocking",
        "mixed blocking 20 ms: auto vs best per function",
        "mixed overall: auto vs best per function",
    ):
        assert rows[name].value > 0
    assert rows["tiny x32: auto"].baseline == "tiny x32: cpu"
    assert rows["python 25 ms x8: auto, loop max lag"].target == "< 15 ms"
    assert sum(row.target is not None for row in result.rows if "overall" in row.name) == 1
    crossover = [row for row in result.rows if row.name.startswith("crossover")]
    assert [row.name.rsplit(": ", 1)[1] for row in crossover] == ["inline", "cpu", "auto"]
    assert crossover[-1].note.startswith("auto chose ")
    assert "hybridio._workloads.spin" in result.extra["decisions"]


def test_interpreters_rows() -> None:
    rows = {row["name"]: row for row in measure(quick=True)}
    assert {"machine/cpus", "parallel/inline", "memory/process"} <= set(rows)
    for name in ("parallel/process", "tiny/process", "round_trip/process", "start_up/process"):
        assert rows[name]["value"] > 0
    speedup = rows["parallel/process/speed-up"]["value"]
    inline, process = rows["parallel/inline"]["value"], rows["parallel/process"]["value"]
    assert math.isclose(speedup, inline / process, rel_tol=1e-3)
