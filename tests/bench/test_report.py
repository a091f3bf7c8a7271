"""Series and rows, the runner, and what a reader sees: report.md, the table, pyperf.json, compare."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyperf  # type: ignore[import-untyped]
import pytest
from click.testing import CliRunner

from hybridio.bench._cli import bench
from hybridio.bench._load import Load
from hybridio.bench._model import INCONCLUSIVE, BenchContext, Row, Rule, ScenarioResult, Series
from hybridio.bench._report import (
    format_quantity,
    render_markdown,
    render_table,
    results_document,
    write_report,
)
from hybridio.bench._runner import _guard_busy, expand_names, run_scenarios

RULE = Rule(1.5, 1.1)


def _speed() -> Series:
    series = Series("speed", "tasks/s", "inline")
    for value, baseline in [
        (20.0, 10.0),
        (21.0, 10.0),
        (19.0, 10.0),
        (40.0, 20.0),
        (22.0, 10.0),
        (18.0, 10.0),
    ]:
        series.add(value, baseline)
    return series


def _ok(ctx: BenchContext) -> ScenarioResult:
    rows = [
        _speed().row("fake", rule=RULE, claim="A"),
        Row("fake", "not here", math.nan, "s", verdict="n/a", claim="B", note="n/a: no 3.13t"),
        Row("fake", "scrapy pages/s", 0.0, "pages/s", 0, verdict="n/a", note="not installed"),
    ]
    return ScenarioResult("fake", "A fake scenario", "measures nothing", rows=rows)


def _broken(ctx: BenchContext) -> ScenarioResult:
    raise RuntimeError("boom")


REGISTRY = {
    "fake": f"{__name__}:_ok",
    "broken": f"{__name__}:_broken",
    "missing": "hybridio.bench._does_not_exist:run",
}


def test_series_pairs_each_value_with_its_baseline() -> None:
    series = _speed()
    # The fourth repeat ran in a slow... here fast spell that hit both sides: pairing cancels it.
    assert series.ratio == 2.0
    assert series.interval() == (1.8, 2.2)
    row = series.row("fake", rule=RULE)
    assert (row.verdict, row.value, row.baseline_value, row.baseline_unit) == (
        "confirmed",
        20.5,
        10.0,
        "tasks/s",
    )
    assert row.target == "confirmed >= 1.5x, refuted < 1.1x"


def test_rounds_stop_when_settled_and_keep_going_while_inconclusive(tmp_path: Path) -> None:
    ctx = BenchContext(out=tmp_path, quick=True)
    settled = Series("x", "s", "y")
    for _ in ctx.rounds((settled, RULE)):
        settled.add(2.0, 1.0)
    assert settled.n == 6
    noisy = Series("x", "s", "y")
    for i in ctx.rounds((noisy, RULE), budget=60):
        noisy.add(2.0 if i % 2 else 1.0, 1.0)  # a ratio of 1 or 2: never settles
    assert noisy.n == 15
    assert noisy.row("s", rule=RULE).verdict == INCONCLUSIVE


def test_runner_keeps_going_and_report_reads_well(tmp_path: Path) -> None:
    ctx = BenchContext(out=tmp_path, tiny=True)
    results = run_scenarios(["all"], ctx, registry=REGISTRY)
    assert [r.status for r in results] == ["ok", "error", "skipped"]
    assert "boom" in results[1].reason
    assert "not available" in results[2].reason
    document = results_document(results, ctx.mode)
    report = write_report(tmp_path, document).read_text()
    assert "## A fake scenario" in report
    assert "**error**: RuntimeError: boom" in report
    assert "| A | **confirmed** |" in report
    assert "2x (1.8x to 2.2x)" in report
    assert "inline: 10 tasks/s" in report
    assert "``" not in report.replace("```", "")  # no RST literals
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["scenarios"][0]["rows"][1]["value"] is None  # NaN is not JSON
    suite = pyperf.BenchmarkSuite.load(str(tmp_path / "pyperf.json"))
    assert suite.get_benchmark_names() == ["fake: speed (seconds per task)"]
    table = render_table(document, width=80)
    assert max(len(line) for line in table.splitlines()) <= 80
    assert "speed" in table
    assert "0 pages/s" not in table + report  # a tool that is missing measured nothing
    assert "not measured" in table


def test_a_busy_run_says_what_that_changes_in_the_table_and_the_report(tmp_path: Path) -> None:
    result = _ok(BenchContext(out=tmp_path))
    result.load = {"others": 1.5, "steal": 0.0, "load_average": 3.0, "cpus": 2, "samples": 4}
    result.load["busy"] = True
    document = results_document([result], "quick", env=_ENV)
    for text in (render_table(document, width=100), render_markdown(document)):
        assert "other processes used 1.5 of 2 CPUs" in text
        assert "On a busy machine no claim is refuted" in text


def test_busy_machine_turns_one_shot_failures_inconclusive() -> None:
    result = _ok(BenchContext(out=Path()))
    result.rows.append(Row("fake", "server p99", 9.0, "ms", verdict="not met"))
    _guard_busy(result, Load(others=1.5, steal=0, load_average=3, cpus=2, samples=4))
    assert result.rows[-1].verdict == INCONCLUSIVE
    assert "busy machine" in result.rows[-1].reason
    assert result.rows[0].verdict == "confirmed"


def test_unknown_scenario_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        expand_names(["nope"], REGISTRY)
    assert expand_names(["fake", "all"], REGISTRY) == ["fake", "broken", "missing"]


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.00042, "s", "420 µs"),
        (3 * 2**20, "bytes", "3 MiB"),
        (12_820.4, "calls/s", "12,820 calls/s"),
        (1850.0, "x", "1,850x"),
        (0.000123, "%", "0.000123 %"),
        (None, "s", "—"),
    ],
)
def test_format_quantity_is_human(value: float | None, unit: str, text: str) -> None:
    assert format_quantity(value, unit) == text


def test_compare_two_runs_with_pyperf(tmp_path: Path) -> None:
    for name in ("a", "b"):
        document = results_document([_ok(BenchContext(out=tmp_path))], "quick", env=_ENV)
        write_report(tmp_path / name, document)
    result = CliRunner().invoke(bench, ["compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    not_a_run = CliRunner().invoke(bench, ["compare", str(tmp_path), str(tmp_path / "b")])
    assert not_a_run.exit_code == 1
    assert "has no pyperf.json: give the --out folder of a bench run" in not_a_run.output


def test_docs_sections_are_generated_from_results(tmp_path: Path) -> None:
    from hybridio.bench._claims import CLAIMS, NOTES

    assert len(CLAIMS) == 21, "every seed claim has its section in claims_notes.md"
    assert all(NOTES[quote] for quote in CLAIMS.values()), "and its explanation"
    result = _ok(BenchContext(out=tmp_path))
    result.name, result.title, result.extra["notes"] = "claims", "Claims", NOTES
    result.rows[0].claim = CLAIMS["multicore"]
    result.plots = ["claims-x.png"]
    document = results_document([result, _ok(BenchContext(out=tmp_path))], "quick", env=_ENV)
    write_report(tmp_path / "out", document)
    (tmp_path / "out" / "claims-x.png").write_bytes(b"\x89PNG")
    docs = tmp_path / "docs"
    docs.mkdir()
    page = docs / "claims.md"
    markers = "<!-- bench:{0}:start -->\nOLD TABLE\n<!-- bench:{0}:end -->"
    page.write_text(f"# Claims\n\n{markers.format('claims')}\n\nkept\n{markers.format('gone')}\n")
    done = CliRunner().invoke(bench, ["docs", str(tmp_path / "out"), str(page)])
    assert done.exit_code == 0, done.output
    text = page.read_text()
    assert text.startswith("# Claims\n\n<!-- bench:claims:start -->\n<!-- Generated by")
    assert f"| {CLAIMS['multicore']} | **confirmed** |" in text
    assert f"### {CLAIMS['multicore']}" in text
    assert "Pure-Python tasks on as many worker processes" in text
    assert "![claims-x.png](img/claims-x.png)" in text
    assert "A fake scenario" not in text  # only the claims
    assert "claims: quiet" not in text
    assert "- CPU: test" in text
    assert "kept\n" + markers.format("gone") in text  # a scenario not in the run: untouched
    assert "OLD TABLE" not in text.split("kept")[0]
    assert (docs / "img" / "claims-x.png").is_file()
    again = CliRunner().invoke(bench, ["docs", str(tmp_path / "out"), str(page)])
    assert again.exit_code == 0
    other = docs / "other.md"
    other.write_text("no generated section here\n")
    nothing = CliRunner().invoke(bench, ["docs", str(tmp_path / "out"), str(other)])
    assert nothing.exit_code == 1
    assert "no <!-- bench:NAME:start --> section for a scenario of" in nothing.output
    assert page.read_text() == text


def test_docs_show_the_numbers_of_the_committed_runs() -> None:
    """Every generated section in docs/ is exactly what its committed run renders."""
    from hybridio.bench._report import embed

    root, embedded = Path(__file__).parents[2], set()
    for results in (root / "docs" / "data").glob("*-results.json"):
        document = json.loads(results.read_text())
        for page in (root / "docs").glob("*.md"):
            text, names = embed(page.read_text(), document)
            assert text == page.read_text(), f"{page.name} differs from {results.name}"
            embedded |= {f"{page.name}: {name}" for name in names}
    assert {"claims.md: claims", "web.md: server", "benchmarks.md: server"} <= embedded
    assert {
        "benchmarks.md: interpreters",
        "benchmarks.md: dispatch",
        "benchmarks.md: monitor",
        "benchmarks.md: auto",
        "benchmarks.md: cluster",
        "crawl.md: crawl",
    } <= embedded


_ENV = {
    "cpu_model": "test", "cpus": 2, "cpus_usable": 2, "physical_cores": 2, "memory_bytes": 2**30,
    "python": "3.11", "implementation": "CPython", "free_threaded_build": False,
    "gil_enabled": True, "start_method": "fork", "platform": "test", "packages": {"x": "1"},
}  # fmt: skip
