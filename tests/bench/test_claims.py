"""Each claims sub-scenario runs in tiny mode and produces well-formed rows; the CLI end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

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
