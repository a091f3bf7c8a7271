"""``hybridio bench``: run scenarios, print a table, write report.md, results.json and plots."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from ._model import BenchContext
from ._registry import SCENARIOS
from ._report import render_table, results_document, write_report
from ._runner import run_scenarios

__all__ = ["bench"]


class _Progress:
    """Progress on stderr: every step on a terminal, only scenario starts and ends otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.start = time.monotonic()

    def _echo(self, message: str) -> None:
        click.echo(f"[{time.monotonic() - self.start:6.1f}s] {message}", err=True)

    def announce(self, message: str) -> None:
        self._echo(message)

    def step(self, message: str) -> None:
        if self.tty:
            self._echo(message)


@click.command()
@click.argument(
    "scenarios", nargs=-1, type=click.Choice(["all", *SCENARIOS]), metavar="[SCENARIO]..."
)
@click.option("--quick", is_flag=True, help="Fewer sizes and repeats: about a minute per scenario.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("bench-out"),
    show_default=True,
    help="Folder for report.md, results.json and the PNG plots.",
)
@click.option("--tiny", is_flag=True, hidden=True, help="Seconds-long smoke mode (tests).")
def bench(scenarios: tuple[str, ...], quick: bool, out: Path, tiny: bool) -> None:
    """Measure offload choices on this machine: SCENARIO is one of all (the default), claims
    (the seed notes' claims about processes, threads and the GIL, each with a verdict), dispatch,
    monitor, server, crawl.

    Every timing is a ratio against a baseline measured in the same run, with repeats and spread.
    Exits with status 1 when a scenario failed (the report still says what the others measured).
    """
    progress = _Progress()
    ctx = BenchContext(out=out, quick=quick, tiny=tiny, progress=progress.step)
    results = run_scenarios(scenarios or ("all",), ctx, announce=progress.announce)
    document = results_document(results, ctx.mode)
    report = write_report(out, document)
    click.echo(render_table(document))
    click.echo("")
    click.echo(f"Report: {report}  (data: {out / 'results.json'}, plots: {out}/*.png)")
    failed = [result.name for result in results if result.status == "error"]
    if failed:
        raise click.ClickException(f"scenario(s) failed: {', '.join(failed)}; see {report}")
