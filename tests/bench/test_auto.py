"""The auto and interpreters scenarios in their shortest modes: every row there, with the names
the docs use."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from hybridio.bench._auto import run
from hybridio.bench._interpreters import _plan
from hybridio.bench._interpreters import run as run_interpreters
from hybridio.bench._model import BenchContext


def test_auto_rows(tmp_path: Path) -> None:
    result = run(BenchContext(out=tmp_path, tiny=True))
    rows = {row.name: row for row in result.rows}
    for name in (
        "tiny x32: auto",
        "python 25 ms x8: auto",
        "sha256 8 MB x4: blocking",
        "mixed blocking 20 ms: auto vs best per function",
    ):
        assert rows[name].value > 0
    assert rows["tiny x32: auto"].baseline == "tiny x32: cpu"
    assert "tiny x32: cpu" not in rows  # its value is the baseline of "tiny x32: auto"
    assert rows["sha256 8 MB x4: blocking"].baseline == "sha256 8 MB x4: inline"  # threads
    assert rows["python 25 ms x8: auto, loop max lag"].target == "< 0.015 s"  # a value, not x
    (overall,) = [row for row in result.rows if "overall" in row.name]  # the best fixed kind
    assert overall.name in {
        f"mixed overall: auto vs {kind}" for kind in ("inline", "blocking", "cpu")
    }
    assert overall.target == ">= 1.3x"
    mixed = [
        row for row in result.rows if row.name.startswith("mixed") and "overall" not in row.name
    ]
    assert [row.name for row in mixed] == [
        f"mixed {work}: auto vs best per function"
        for work in ("tiny", "python 25 ms", "sha256 8 MB", "blocking 20 ms")
    ]
    assert all(row.target == ">= 0.9x" for row in mixed)
    assert "hybridio._workloads.spin" in result.extra["decisions"]


def test_interpreters_rows(tmp_path: Path) -> None:
    result = run_interpreters(BenchContext(out=tmp_path, tiny=True))
    rows = {row.name: row for row in result.rows}
    speedup = rows[
        "process: 4 tasks of ~50 ms on 2 workers vs inline: 4 tasks of ~50 ms on 2 workers"
    ]
    assert speedup.unit == "tasks/s"
    assert speedup.ratio is not None
    assert speedup.repeats == 1  # one repeat: the median ratio is the ratio of the medians
    assert math.isclose(speedup.ratio, speedup.value / (speedup.baseline_value or math.nan))
    for what in ("1000 no-op calls at once", "lone call round trip", "memory"):
        assert rows[f"process: {what}"].value > 0
    if sys.version_info < (3, 13):  # a kind this Python lacks is a row that says so
        missing = rows["interpreter: 4 tasks of ~50 ms on 2 workers"]
        assert (missing.repeats, missing.note) == (
            0,
            f"not measured: needs Python 3.13+ (this is Python {sys.version.split()[0]})",
        )
    else:
        interpreter = rows["interpreter: lone call round trip vs process: lone call round trip"]
        assert interpreter.ratio is not None


def test_interpreters_plan_compares_every_other_kind_with_processes() -> None:
    planned = {name: base for name, base, _ in _plan(["process", "thread-cpu"])}
    assert planned["process: memory"] is None  # the baseline of the others
    assert planned["thread-cpu: memory vs process: memory"] == "process: memory"
    assert len(planned) == 10  # per kind: the speedup over inline and four quantities
