"""``hybridio bench``: run scenarios, print a table, write report.md, results.json and plots;
``hybridio bench compare A B``: compare two saved runs."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from . import _load
from ._model import BenchContext
from ._report import compare, render_table, results_document, write_report
from ._runner import SCENARIOS, run_scenarios

__all__ = ["bench"]


class _RunByDefault(click.Group):
    """``hybridio bench claims`` means ``hybridio bench run claims``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_RunByDefault)
def bench() -> None:
    """Measure offload choices on this machine (run, the default: hybridio bench claims --quick),
    or compare two saved runs (hybridio bench compare A B)."""


@bench.command("run")
@click.argument(
    "scenarios", nargs=-1, type=click.Choice(["all", *SCENARIOS]), metavar="[SCENARIO]..."
)
@click.option("--quick", is_flag=True, help="Fewer sizes and repeats: about a minute per scenario.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("bench-out"),
    show_default=True,
    help="Folder for report.md, results.json, pyperf.json and the PNG plots.",
)
@click.option("--tiny", is_flag=True, hidden=True, help="Seconds-long smoke mode (tests).")
def run(scenarios: tuple[str, ...], quick: bool, out: Path, tiny: bool) -> None:
    """Measure offload choices on this machine: SCENARIO is one of all (the default), claims
    (the seed notes' claims about processes, threads and the GIL, each with a verdict), dispatch,
    monitor, server, crawl, auto (kind="auto" against fixed kinds); all runs these. Named only:
    cluster (a local Dask cluster against the local pool; needs hybridio[cluster]).

    Every timing is compared with a baseline measured in the same run, repeat by repeat, and a
    verdict needs a 95% interval clear of its threshold; other load on the machine is measured
    and can only make a verdict inconclusive. Exits with status 1 when a scenario failed.
    """
    start = time.monotonic()
    tty = sys.stderr.isatty()

    def progress(message: str, always: bool = False) -> None:
        if always or tty:
            click.echo(f"[{time.monotonic() - start:6.1f}s] {message}", err=True)

    ctx = BenchContext(out=out, quick=quick, tiny=tiny, progress=progress)
    with _load.watch():
        results = run_scenarios(
            scenarios or ("all",), ctx, announce=lambda m: progress(m, always=True)
        )
    document = results_document(results, ctx.mode)
    report = write_report(out, document)
    click.echo(render_table(document))
    click.echo(f"\nReport: {report}  (data: results.json, pyperf.json; plots: {out}/*.png)")
    failed = [result.name for result in results if result.status == "error"]
    if failed:
        raise click.ClickException(f"scenario(s) failed: {', '.join(failed)}; see {report}")


def _load_results(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(
        (path / "results.json" if path.is_dir() else path).read_text()
    )
    return data


@bench.command("compare")
@click.argument("a", type=click.Path(exists=True, path_type=Path))
@click.argument("b", type=click.Path(exists=True, path_type=Path))
def compare_runs(a: Path, b: Path) -> None:
    """Compare two runs (their folders or results.json): each ratio (or value) in A and B and
    its change, marked "within noise" unless the 95% intervals are apart."""
    click.echo(compare(_load_results(a), _load_results(b)))
