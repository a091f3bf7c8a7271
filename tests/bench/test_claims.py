"""Each claims sub-scenario runs in tiny mode and produces well-formed rows; the CLI end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from hybridio.bench import _claims, _load
from hybridio.bench._claims import CLAIMS, SUB_SCENARIOS
from hybridio.bench._cli import bench
from hybridio.bench._model import VERDICTS, BenchContext, ScenarioResult


def _part(name: str, tmp_path: Path) -> ScenarioResult:
    part = ScenarioResult("claims", "", "")
    anyio.run(SUB_SCENARIOS[name], BenchContext(out=tmp_path, tiny=True), part)
    return part


@pytest.mark.parametrize("name", list(SUB_SCENARIOS))
def test_sub_scenario_rows_are_well_formed(name: str, tmp_path: Path) -> None:
    part = _part(name, tmp_path)
    assert part.rows, f"{name} produced no rows"
    for row in part.rows:
        assert row.scenario == "claims"
        assert row.verdict in VERDICTS
        assert row.claim in CLAIMS.values()
        if row.verdict == "inconclusive":
            assert row.reason  # it says why, and what would settle it
        if math.isnan(row.value):
            # Only what cannot be measured here may lack a number, and it must say why.
            assert row.note or row.reason or row.verdict == "qualified"
            continue
        assert row.value >= 0
        assert row.repeats >= 1
        if row.ratio is not None:
            assert row.baseline
            assert row.baseline_unit
    for plot in part.plots:
        assert (tmp_path / plot).read_bytes().startswith(b"\x89PNG")


def test_races_show_lost_updates_and_the_fix(tmp_path: Path) -> None:
    unlocked, locked = _part("races", tmp_path).rows
    assert unlocked.value > 0
    assert locked.value == 0
    assert unlocked.verdict == locked.verdict == "confirmed"


def test_isolation_shows_the_copy(tmp_path: Path) -> None:
    (result,) = _part("isolation", tmp_path).rows
    assert result.value == 0  # the parent did not see the worker's change
    assert result.baseline_value == 1  # it did see the thread's
    assert result.verdict == "confirmed"


def test_crossover_judges_each_length_and_says_where_auto_sent_it(tmp_path: Path) -> None:
    rows = _part("crossover", tmp_path).rows
    offloaded = [row for row in rows if "offloaded to" in row.name]
    auto = [row for row in rows if 'kind="auto"' in row.name]
    assert offloaded
    assert len(auto) == len(offloaded)
    assert all(row.target and row.ratio is not None for row in offloaded)  # judged, vs inline
    assert all(row.verdict == "n/a" and row.note.startswith("auto chose ") for row in auto)
    assert {row.note.split()[-1] for row in auto} <= {"inline", "blocking", "cpu", "probing"}
    (crossing,) = [row for row in rows if row.name.startswith("task duration")]
    assert crossing.verdict == "n/a"


def test_alternatives_point_to_the_interpreters_benchmark(tmp_path: Path) -> None:
    rows = _part("alternatives", tmp_path).rows
    pointers = [row for row in rows if row.verdict == "n/a"]
    assert len(pointers) == 2  # subinterpreters, threads without the GIL
    for row in pointers:
        assert row.claim == CLAIMS["other_implementations"]
        assert "hybridio bench interpreters" in row.note
        assert 'docs/benchmarks.md, "interpreters"' in row.note  # where its numbers are
    assert all(math.isnan(row.value) and row.ratio is None for row in rows)  # nothing measured
    judged = {row.claim for row in rows if row.verdict == "qualified"}
    assert judged == {CLAIMS["other_implementations"], CLAIMS["gil_required"]}
    assert len(rows) == 4


def test_a_failing_measurement_is_an_na_row_naming_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(ctx: BenchContext, result: ScenarioResult) -> None:
        raise ValueError("no such device")

    monkeypatch.setattr(_claims, "SUB_SCENARIOS", {"broken": broken, "races": _claims.races})
    result = _claims.run(BenchContext(out=tmp_path, tiny=True))
    failed, *others = result.rows
    assert failed.name == "broken: measurement failed"
    assert failed.verdict == "n/a"
    assert failed.note == "ValueError('no such device')"
    assert "no such device" in result.extra["errors"]["broken"]  # the traceback
    assert others  # the rest still ran
    assert all(row.claim == CLAIMS["race"] for row in others)


@pytest.mark.parametrize("name", ["startup", "killability", "races", "isolation"])
def test_a_busy_machine_never_refutes(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a check finds, measured while the machine is busy it is inconclusive."""
    busy = _load.Load(others=1.6, steal=0.0, load_average=4.0, cpus=2, samples=10)
    monkeypatch.setattr(_load, "during", lambda start, end: busy)
    monkeypatch.setattr(_claims, "one_shot", lambda holds, fails: "refuted")
    rows = _part(name, tmp_path).rows
    assert rows
    assert "refuted" not in {row.verdict for row in rows}
    assert any(row.verdict == "inconclusive" and "busy" in row.reason for row in rows)


def test_cli_runs_claims_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(bench, ["claims", "--tiny", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Report:" in result.output
    document = json.loads((out / "results.json").read_text())
    (scenario,) = document["scenarios"]
    assert scenario["status"] == "ok"
    assert "errors" not in scenario["extra"]
    assert scenario["load"]["samples"] >= 1  # the machine's load was measured during the run
    claimed = {row["claim"] for row in scenario["rows"]}
    assert set(CLAIMS.values()) <= claimed, "every seed claim has at least one row"
    report = (out / "report.md").read_text()
    assert "## Machine load during the run" in report
    for plot in scenario["plots"]:
        assert (out / plot).is_file()
        assert f"]({plot})" in report


def test_cli_rejects_an_unknown_scenario(tmp_path: Path) -> None:
    result = CliRunner().invoke(bench, ["nope", "--tiny", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "nope" in result.output
