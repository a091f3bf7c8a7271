"""The report renders and results.json matches its schema, for ok, skipped and failed scenarios."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jsonschema
import pytest

from hybridio.bench._model import BenchContext, Row, ScenarioResult
from hybridio.bench._report import (
    format_quantity,
    render_table,
    results_document,
    write_report,
)
from hybridio.bench._runner import expand_names, run_scenarios
from hybridio.bench._schema import validate_results


def _ok(ctx: BenchContext) -> ScenarioResult:
    rows = [
        Row("fake", "speed", 0.002, "s", 3, 0.1, "inline", 0.004, 2.0, None, "confirmed", "A"),
        Row("fake", "not here", math.nan, "s", verdict="n/a", claim="B", note="n/a: no 3.13t"),
    ]
    return ScenarioResult("fake", "a fake", "measures nothing", rows=rows)


def _broken(ctx: BenchContext) -> ScenarioResult:
    raise RuntimeError("boom")


REGISTRY = {
    "fake": f"{__name__}:_ok",
    "broken": f"{__name__}:_broken",
    "missing": "hybridio.bench._does_not_exist:run",
}


def test_runner_keeps_going_and_report_validates(tmp_path: Path) -> None:
    ctx = BenchContext(out=tmp_path, tiny=True)
    results = run_scenarios(["all"], ctx, registry=REGISTRY)
    assert [r.status for r in results] == ["ok", "error", "skipped"]
    assert "boom" in results[1].reason
    assert "not available" in results[2].reason
    document = results_document(results, ctx.mode)
    validate_results(document)
    report = write_report(tmp_path, document)
    text = report.read_text()
    assert "## fake: a fake" in text
    assert "**error**: RuntimeError: boom" in text
    assert "**skipped**" in text
    assert "| A | **confirmed** |" in text
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["scenarios"][0]["rows"][1]["value"] is None  # NaN is not JSON
    validate_results(saved)
    assert "speed" in render_table(document)


def test_schema_rejects_a_bad_document(tmp_path: Path) -> None:
    document = results_document(
        run_scenarios(["fake"], BenchContext(out=tmp_path), registry=REGISTRY), "tiny"
    )
    document["scenarios"][0]["rows"][0]["verdict"] = "probably"
    with pytest.raises(jsonschema.ValidationError):
        validate_results(document)
    del document["environment"]
    with pytest.raises(jsonschema.ValidationError):
        validate_results(document)


def test_unknown_scenario_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        expand_names(["nope"], REGISTRY)
    assert expand_names(["fake", "all"], REGISTRY) == ["fake", "broken", "missing"]


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [(0.00042, "s", "420 µs"), (3e7, "bytes", "30 MB"), (2.5, "x", "2.5x"), (None, "s", "—")],
)
def test_format_quantity(value: float | None, unit: str, text: str) -> None:
    assert format_quantity(value, unit) == text


def test_claims_page_is_generated_from_results(tmp_path: Path) -> None:
    from hybridio.bench._docs import main, render_claims_page

    result = _ok(BenchContext(out=tmp_path))
    result.name = "claims"
    result.plots = ["claims-x.png"]
    document = results_document([result], "quick")
    page = render_claims_page(document, "img")
    assert "| A | **confirmed** |" in page
    assert "![claims-x.png](img/claims-x.png)" in page
    assert "ratio 2" in page
    with pytest.raises(ValueError, match="no successful `claims` scenario"):
        render_claims_page(results_document([], "quick"), "img")
    write_report(tmp_path / "out", document)
    (tmp_path / "out" / "claims-x.png").write_bytes(b"\x89PNG")
    main([str(tmp_path / "out"), str(tmp_path / "docs")])
    assert (tmp_path / "docs" / "claims.md").read_text() == page
    assert (tmp_path / "docs" / "img" / "claims-x.png").is_file()
