"""``hybridio bench``: run scenarios (table, report.md, results.json, pyperf.json, plots);
``compare A B``: two saved runs, by pyperf; ``docs OUT PAGE...``: a run's tables into the docs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from . import _load
from ._model import BenchContext
from ._report import embed, render_table, results_document, write_report
from ._runner import SCENARIOS, run_scenarios


class _RunByDefault(click.Group):
    """``hybridio bench claims`` means ``hybridio bench run claims``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_RunByDefault)
def bench() -> None:
    """Measure offload choices on this machine (run, the default: hybridio bench claims --quick),
    compare two saved runs (compare A B) or put a run's numbers into the docs (docs OUT PAGE...)."""


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
    """Measure offload choices on this machine. SCENARIO: all (the default: claims, dispatch,
    monitor, server, crawl, auto), one of those, cluster (needs hybridio[cluster]) or
    interpreters (run it with the Python to measure); docs/benchmarks.md says what each measures.

    Each timing is paired with a baseline measured in the same run; a verdict needs a 95% interval
    clear of its threshold, and other load on the machine can only make it inconclusive. Exits
    with status 1 when a scenario failed.
    """
    start, tty = time.monotonic(), sys.stderr.isatty()

    def progress(message: str, always: bool = False) -> None:
        if always or tty:
            click.echo(f"[{time.monotonic() - start:6.1f}s] {message}", err=True)

    ctx = BenchContext(out=out, quick=quick, tiny=tiny, progress=progress)
    with _load.watch():
        announce = lambda m: progress(m, always=True)
        results = run_scenarios(scenarios or ("all",), ctx, announce=announce)
    document = results_document(results, ctx.mode)
    report = write_report(out, document)
    click.echo(render_table(document, shutil.get_terminal_size((110, 24)).columns))
    click.echo(f"\nReport: {report}  (data: results.json, pyperf.json; plots: {out}/*.png)")
    failed = [result.name for result in results if result.status == "error"]
    if failed:
        raise click.ClickException(f"scenario(s) failed: {', '.join(failed)}; see {report}")


def _folder(path: Path, name: str) -> Path:
    if not (path / name).is_file():
        raise click.ClickException(f"{path} has no {name}: give the --out folder of a bench run")
    return path / name


@bench.command("compare")
@click.argument("a", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("b", type=click.Path(exists=True, file_okay=False, path_type=Path))
def compare(a: Path, b: Path) -> None:
    """Compare the timings of two runs (their --out folders) with pyperf: each benchmark in A
    and B, the change, and whether it is significant."""
    command = [sys.executable, "-m", "pyperf", "compare_to", "--table", "--group-by-speed"]
    files = [_folder(a, "pyperf.json"), _folder(b, "pyperf.json")]
    done = subprocess.run([*command, *files], check=False)
    if done.returncode:
        raise click.ClickException(f"pyperf compare_to failed (exit {done.returncode})")


@bench.command("docs")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("pages", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def docs(out: Path, pages: tuple[Path, ...]) -> None:
    """Replace each <!-- bench:NAME:start --> ... <!-- bench:NAME:end --> section of the PAGES
    (Markdown) with scenario NAME of the run in OUT, and copy its plots to PAGE's img/ folder:
    the numbers in the docs are never written by hand."""
    document: dict[str, Any] = json.loads(_folder(out, "results.json").read_text())
    plots = {s["name"]: s["plots"] for s in document["scenarios"]}
    done = []
    for page in pages:
        text, names = embed(page.read_text(), document)
        page.write_text(text)
        for plot in (plot for name in names for plot in plots[name]):
            if not (out / plot).is_file():
                raise click.ClickException(f"{out / plot} is missing: the run's plots go with it")
            (page.parent / "img").mkdir(exist_ok=True)
            shutil.copy2(out / plot, page.parent / "img" / plot)
        click.echo(f"{page}: {', '.join(names) or 'no section of a scenario of this run'}")
        done += names
    if not done:
        ran = ", ".join(plots) or "none"
        raise click.ClickException(
            f"no <!-- bench:NAME:start --> section for a scenario of {out} ({ran})"
        )
