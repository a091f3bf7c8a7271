"""The outputs of a bench run, all rendered from its JSON document (so they can be rebuilt from
a saved ``results.json``): ``results.json``, ``pyperf.json`` (the repeats of every timing, rate and
memory row: ``python -m pyperf compare_to A B``), ``report.md``, the terminal table, the comparison
of two runs and the tables the docs embed.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import math
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from .._doctor import _version, diagnose
from .._version import __version__
from ._load import Load
from ._model import INCONCLUSIVE, ScenarioResult

Document = dict[str, Any]
_PACKAGES = ("hybridio", "matplotlib", "psutil", "pyperf", "rich", "prometheus-client")


def environment() -> dict[str, Any]:
    """Facts about this machine and Python that the numbers depend on (``hybridio doctor``'s,
    physical cores, the build and the bench's packages)."""
    import psutil

    facts = asdict(diagnose())
    facts["packages"] |= {name: _version(name) for name in _PACKAGES}
    return {**facts, "physical_cores": psutil.cpu_count(logical=False), "build": sys.version}


def results_document(
    results: Sequence[ScenarioResult], mode: str, env: dict[str, Any] | None = None
) -> Document:
    """The ``results.json`` document: the dataclasses of ``_model`` as JSON (NaN as null)."""
    document = {
        "schema_version": 2,
        "hybridio_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "environment": environment() if env is None else env,
        "scenarios": [asdict(result) for result in results],
    }
    text = json.dumps(document, default=str)  # NaN and infinities become null below
    loaded: Document = json.loads(text, parse_constant=lambda constant: None)
    return loaded


def _pyperf(document: Document, path: Path) -> None:
    """The repeats of timing, rate (as seconds per item) and memory rows as a pyperf suite."""
    import pyperf  # type: ignore[import-untyped]

    benchmarks = {}
    for scenario in document["scenarios"]:
        for row in scenario["rows"]:
            name, unit = f"{scenario['name']}: {row['name']}", row["unit"]
            values = [v for v in row["values"] if v is not None and v > 0]
            if unit.endswith("/s"):
                name += f" (seconds per {unit[:-2].removesuffix('s')})"
                values = [1 / v for v in values]
            elif unit not in ("s", "bytes"):
                continue
            if values and name not in benchmarks:
                meta = {"name": name, "unit": "byte" if unit == "bytes" else "second"}
                run = pyperf.Run(values, metadata=meta, collect_metadata=False)
                benchmarks[name] = pyperf.Benchmark([run])
    if benchmarks:
        pyperf.BenchmarkSuite(list(benchmarks.values())).dump(str(path), replace=True)


def write_report(out: Path, document: Document) -> Path:
    """Write results.json, pyperf.json and report.md into ``out``; return report.md."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    _pyperf(document, out / "pyperf.json")
    (report := out / "report.md").write_text(render_markdown(document))
    return report


_SCALES = {
    "s": ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")),
    "bytes": ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"), (1.0, "B")),
}


def format_number(value: float) -> str:
    """3 significant digits without scientific notation: 12,820 / 512 / 1.83 / 0.00042."""
    magnitude = abs(value)
    if magnitude >= 100 or (value == int(value) and magnitude < 1e15):
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.01 or magnitude == 0:
        return f"{value:.3g}"
    return f"{value:.{2 - math.floor(math.log10(magnitude))}f}"


def format_quantity(value: float | None, unit: str | None) -> str:
    """A number with its unit, scaled to be readable: 0.00042 s -> "420 µs", 3 MiB of bytes."""
    if value is None or math.isnan(value):
        return "—"
    unit = unit or ""
    for scale, name in _SCALES.get(unit, ()):
        if abs(value) >= scale or scale == _SCALES[unit][-1][0]:
            return f"{format_number(value / scale)} {name}"
    return f"{format_number(value)}x" if unit == "x" else f"{format_number(value)} {unit}".strip()


def format_ratio(row: dict[str, Any]) -> str:
    """ "1.83x (1.71x to 1.90x)": the paired ratio and its 95% interval."""
    if row.get("ratio") is None:
        return "—"
    interval = row.get("interval") if row.get("baseline_value") is not None else None
    low_high = " ({}x to {}x)".format(*map(format_number, interval)) if interval else ""
    return f"{format_number(row['ratio'])}x{low_high}"


def combine_verdicts(verdicts: Iterable[str | None]) -> str:
    """One verdict for a claim from its rows: the conclusive ones agree -> that one; they differ
    -> "qualified"; none conclusive -> "inconclusive" (or "n/a" when nothing was judged)."""
    seen = {verdict for verdict in verdicts if verdict not in (None, "n/a")}
    conclusive = seen - {INCONCLUSIVE}
    if not conclusive:
        return INCONCLUSIVE if seen else "n/a"
    return conclusive.pop() if len(conclusive) == 1 else "qualified"


def unique(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows once each: a measurement that backs several claims is listed under each claim."""
    kept: dict[tuple[str, Any], dict[str, Any]] = {}
    for row in rows:
        kept.setdefault((row["name"], row["value"]), row)
    return list(kept.values())


def _measured(row: dict[str, Any]) -> str:
    """The value with its unit; "not measured" for a row of no repeats (a missing tool)."""
    return "not measured" if row["repeats"] == 0 else format_quantity(row["value"], row["unit"])


def _cells(row: dict[str, Any]) -> str:
    """A row as a Markdown table line; a value without a baseline gets its 95% interval."""
    value, interval, verdict = _measured(row), row.get("interval"), row.get("verdict") or "—"
    if interval and row.get("baseline_value") is None:
        value += " ({} to {})".format(*(format_quantity(v, row["unit"]) for v in interval))
    base = row.get("baseline") or "—"
    if row.get("baseline"):
        base += f": {format_quantity(row['baseline_value'], row['baseline_unit'])}"
    verdict = verdict if verdict in ("—", "n/a") else f"**{verdict}**"
    note = "; ".join(filter(None, (row["reason"], row["note"])))
    cells = [row["name"], value, base, format_ratio(row), str(row["repeats"])]
    cells += [row.get("target") or "—", verdict, note]
    return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def _claims(rows: list[dict[str, Any]]) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """claim -> (its combined verdict, its rows), in the order the claims first appear."""
    claims: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("claim"):
            claims.setdefault(row["claim"], []).append(row)
    return {c: (combine_verdicts(r["verdict"] for r in rows), rows) for c, rows in claims.items()}


def load_summary(scenarios: list[dict[str, Any]]) -> list[str]:
    """What the machine was doing during each scenario, measured while it ran."""
    lines = []
    for s in (s for s in scenarios if s.get("load")):
        load = Load(**{k: v for k, v in s["load"].items() if k != "busy"})
        lines.append(f"- {s['name']}: {'**busy**' if load.busy else 'quiet'}: {load.text()}")
    if any(s["load"]["busy"] for s in scenarios if s.get("load")):
        lines.append(
            "- On a busy machine no claim is refuted, no target is reported not met and no "
            "speedup decides a verdict: such rows say inconclusive, and why."
        )
    return lines


@functools.cache
def _template() -> jinja2.Template:
    """report.md.j2, read and compiled once per process (``bench docs`` renders it per section)."""
    environment = jinja2.Environment(autoescape=False, keep_trailing_newline=True)
    environment.filters |= {"cells": _cells, "claims": _claims, "unique": unique}
    environment.filters |= {"quantity": format_quantity, "load_summary": load_summary}
    return environment.from_string((resources.files(__package__) / "report.md.j2").read_text())


def render_markdown(
    document: Document, scenarios: list[dict[str, Any]] | None = None, image_dir: str = ""
) -> str:
    """report.md (every scenario), or the section of ``scenarios`` for a docs page (plots in
    ``image_dir``), from ``report.md.j2``: environment, load, then each scenario's claims and
    rows."""
    full, chosen = scenarios is None, document["scenarios"] if scenarios is None else scenarios
    context = {"document": document, "scenarios": chosen, "image_dir": image_dir, "full": full}
    return _template().render(context)


def render_table(document: Document, width: int) -> str:
    """A terminal table of every row that fits ``width`` (long cells wrap), then the load."""
    from rich.console import Console
    from rich.table import Table

    table = Table(pad_edge=False)
    table.add_column("measurement", ratio=3, overflow="fold")
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("ratio to baseline (95% interval)", justify="right", ratio=2)
    table.add_column("verdict", ratio=2, overflow="fold")
    for scenario in document["scenarios"]:
        table.add_section()
        if scenario["status"] != "ok":
            table.add_row(f"[b]{scenario['name']}[/b]: {scenario['status']}: {scenario['reason']}")
            continue
        table.add_row(f"[b]{scenario['title']}[/b]")
        for row in unique(scenario["rows"]):
            verdict = row["verdict"] or ""
            if verdict == INCONCLUSIVE and row["reason"]:  # its first words: "busy machine"...
                verdict += f" ({re.split(r'[:(;]', row['reason'])[0].strip()})"
            table.add_row(row["name"], _measured(row), format_ratio(row), verdict)
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, no_color=True, highlight=False)
    console.print(table)
    for line in load_summary(document["scenarios"]):
        console.print(line.replace("**", ""))
    return buffer.getvalue().rstrip()


def embed(text: str, document: Document) -> tuple[str, list[str]]:
    """``text`` (a docs page) with each ``<!-- bench:NAME:start -->`` ... ``<!-- bench:NAME:end
    -->`` section replaced by scenario NAME of ``document`` (plots in ``img/``), and the names
    replaced; a section whose scenario did not run successfully is left as it is."""
    runs = {s["name"]: s for s in document["scenarios"] if s["status"] == "ok"}
    done: list[str] = []

    def section(match: re.Match[str]) -> str:
        if (scenario := runs.get(match[1])) is None:
            return match[0]
        done.append(scenario["name"])
        text = render_markdown(document, [scenario], "img/")
        generated = "<!-- Generated by `hybridio bench docs`; do not edit. -->"
        return f"<!-- bench:{match[1]}:start -->\n{generated}\n\n{text}{match[2]}"

    pattern = r"<!-- bench:(\w+):start -->.*?(<!-- bench:\1:end -->)"
    return re.sub(pattern, section, text, flags=re.DOTALL), done
