"""The outputs of a bench run: ``results.json``, ``pyperf.json``, ``report.md``, a terminal table,
the comparison of two runs and the docs page of the claims.

Everything is rendered from the JSON document, so a report (or docs/claims.md) can be rebuilt
from a saved ``results.json`` without measuring again. ``pyperf.json`` holds the repeats of every
timing, throughput and memory row in pyperf's format (``python -m pyperf compare_to A B``).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import io
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .._doctor import diagnose
from .._version import __version__
from ._model import INCONCLUSIVE, ScenarioResult, format_number

Document = dict[str, Any]


def environment() -> dict[str, Any]:
    """Facts about this machine and Python that the numbers depend on (CPU, build, versions)."""
    import psutil

    facts = asdict(diagnose())
    for name in ("hybridio", "matplotlib", "psutil", "pyperf", "rich", "prometheus-client"):
        try:
            facts["packages"][name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            facts["packages"][name] = None
    cpuinfo = Path("/proc/cpuinfo")
    models = re.findall(r"model name\s*: (.*)", cpuinfo.read_text() if cpuinfo.exists() else "")
    return {
        **facts,
        "cpu_model": models[0] if models else os.uname().machine,
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_bytes": int(psutil.virtual_memory().total),
        "build": sys.version.replace("\n", " "),
    }


def _jsonable(value: Any) -> Any:
    """Replace NaN/inf (not JSON) with None, recursively; other objects by their text."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value if value is None or isinstance(value, str | int | float) else str(value)


def results_document(
    results: Sequence[ScenarioResult], mode: str, env: dict[str, Any] | None = None
) -> Document:
    """The ``results.json`` document for ``results``: the dataclasses of ``_model`` as JSON."""
    document: Document = _jsonable(
        {
            "schema_version": 2,
            "hybridio_version": __version__,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "mode": mode,
            "environment": environment() if env is None else env,
            "scenarios": [asdict(result) for result in results],
        }
    )
    return document


def _all_rows(document: Document) -> Iterator[tuple[str, dict[str, Any]]]:
    for scenario in document["scenarios"]:
        for row in scenario["rows"]:
            yield scenario["name"], row


def _pyperf(document: Document, path: Path) -> None:
    """Write the repeats of timing, rate and memory rows as a pyperf benchmark suite."""
    import pyperf  # type: ignore[import-untyped]

    benchmarks = {}
    for scenario, row in _all_rows(document):
        unit, values = row["unit"], [v for v in row["values"] if v]
        name = f"{scenario}: {row['name']}"
        if unit.endswith("/s"):  # a rate: pyperf wants time, so seconds per item
            name += f" (seconds per {unit[:-2].removesuffix('s')})"
            values = [1 / v for v in values]
        elif unit not in ("s", "bytes"):
            continue
        meta = {"name": name, "unit": "byte" if unit == "bytes" else "second"}
        if values and name not in benchmarks:
            run = pyperf.Run(values, metadata=meta, collect_metadata=False)
            benchmarks[name] = pyperf.Benchmark([run])
    if benchmarks:
        pyperf.BenchmarkSuite(list(benchmarks.values())).dump(str(path), replace=True)


def write_report(out: Path, document: Document) -> Path:
    """Write results.json, pyperf.json and report.md into ``out``; return report.md."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    _pyperf(document, out / "pyperf.json")
    report = out / "report.md"
    report.write_text(render_markdown(document))
    return report


# -- formatting ---------------------------------------------------------------------------------

_SCALES = {
    "s": ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")),
    "bytes": ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"), (1.0, "B")),
}


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
    within = (
        f" ({format_number(interval[0])}x to {format_number(interval[1])}x)" if interval else ""
    )
    return f"{format_number(row['ratio'])}x{within}"


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


def _md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def _measured(row: dict[str, Any]) -> str:
    """The value with its unit; "not measured" for a row of no repeats (a missing tool)."""
    return "not measured" if row["repeats"] == 0 else format_quantity(row["value"], row["unit"])


def rows_table(rows: list[dict[str, Any]]) -> list[str]:
    """The Markdown table of ``rows`` (each once); values without a baseline get their 95%
    interval, baselines their unit."""
    lines = [
        (
            "| measurement | value | baseline (same run) | ratio (95% interval) | repeats | rule"
            " | verdict | note |"
        ),
        "|---|---:|---|---:|---:|---|---|---|",
    ]
    for row in unique(rows):
        value, interval, verdict = _measured(row), row.get("interval"), row.get("verdict") or "—"
        if interval and row.get("baseline_value") is None:
            low, high = (format_quantity(v, row["unit"]) for v in interval)
            value += f" ({low} to {high})"
        base = row.get("baseline")
        if base:
            unit = row.get("baseline_unit") or row["unit"]
            base += f": {format_quantity(row['baseline_value'], unit)}"
        cells = [row["name"], value, base or "—", format_ratio(row), str(row["repeats"])]
        cells += [
            row.get("target") or "—",
            verdict if verdict in ("—", "n/a") else f"**{verdict}**",
        ]
        cells.append("; ".join(text for text in (row.get("reason"), row.get("note")) if text))
        lines.append(_md_row(cells))
    return lines


def load_summary(document: Document) -> list[str]:
    """What the machine was doing during each scenario, measured while it ran."""
    lines = [
        f"- {s['name']}: {'**busy**' if s['load']['busy'] else 'quiet'}: other processes used "
        f"{s['load']['others']:.1f} of {s['load']['cpus']} CPUs, steal {s['load']['steal']:.0f}%, "
        f"load average {s['load']['load_average']:.1f}"
        for s in document["scenarios"]
        if s.get("load")
    ]
    if any("**busy**" in line for line in lines):
        lines.append(
            "- On a busy machine no claim is refuted, no target is reported not met and no "
            "speedup decides a verdict: such rows say inconclusive, and why."
        )
    return lines


def environment_lines(env: dict[str, Any]) -> list[str]:
    """The environment as a Markdown list."""
    build = "free-threaded" if env["free_threaded_build"] else "standard (with GIL)"
    gil = "enabled" if env["gil_enabled"] else "disabled"
    return [
        (
            f"- CPU: {env['cpu_model']}, {env['cpus']} logical CPUs ({env.get('cpus_usable')} "
            f"usable, {env.get('physical_cores')} physical), "
            f"{format_quantity(env.get('memory_bytes'), 'bytes')} RAM"
        ),
        (
            f"- Python {env['python']} ({env['implementation']}), {build} build, GIL {gil}, start "
            f"method {env['start_method']}"
        ),
        f"- Platform: {env['platform']}",
        f"- Packages: {', '.join(f'{name} {v}' for name, v in env['packages'].items() if v)}",
    ]


def claims_table(rows: list[dict[str, Any]]) -> tuple[list[str], dict[str, str]]:
    """The claim | verdict | evidence table, and each claim's combined verdict."""
    claims: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("claim"):
            claims.setdefault(row["claim"], []).append(row)
    verdicts = {c: combine_verdicts(r["verdict"] for r in rs) for c, rs in claims.items()}
    lines = ["| claim | verdict | from |", "|---|---|---|"] if claims else []
    for claim, claim_rows in claims.items():
        judged = [f"{r['name']}: {r['verdict']}" for r in claim_rows if r["verdict"] != "n/a"]
        lines.append(_md_row([claim, f"**{verdicts[claim]}**", "; ".join(judged)]))
    return lines, verdicts


def _scenario(scenario: dict[str, Any], image_dir: str) -> list[str]:
    """A scenario's section: its claims' verdicts, then its rows (under each claim, with what the
    measurement means, when the scenario explains its claims in ``extra["notes"]``), its plots."""
    lines = [f"## {scenario['title']}", ""]
    if scenario["status"] != "ok":
        lines.append(f"Scenario {scenario['name']}: **{scenario['status']}**: {scenario['reason']}")
        trace = scenario["extra"].get("traceback")
        return [*lines, "", "```", trace.rstrip(), "```", ""] if trace else [*lines, ""]
    # Docstrings use reStructuredText literals; Markdown wants single backticks.
    about = scenario["description"].replace("``", "`")
    lines += [f"{about} (scenario {scenario['name']}, {scenario['seconds']:.0f} s)", ""]
    summary, verdicts = claims_table(rows := scenario["rows"])
    notes = scenario["extra"].get("notes")
    lines += [*summary, ""] + ([] if notes else [*rows_table(rows), ""])
    if notes:
        for claim, verdict in verdicts.items():
            lines += [f"### {claim}", "", f"Verdict: **{verdict}**. {notes.get(claim, '')}", ""]
            lines += [*rows_table([r for r in rows if r["claim"] == claim]), ""]
    lines += [f"![{plot}]({image_dir}{plot})" for plot in scenario["plots"]]
    return lines + ([""] if scenario["plots"] else [])


def render_markdown(
    document: Document, image_dir: str = "", title: str = "hybridio bench report"
) -> str:
    """report.md: environment and load, then one section per scenario (plots in ``image_dir``)."""
    names = " ".join(scenario["name"] for scenario in document["scenarios"])
    flag = "" if document["mode"] == "full" else f" --{document['mode']}"
    lines = [
        f"# {title}",
        "",
        (
            f"`hybridio bench {names}{flag}` (hybridio {document['hybridio_version']}) on "
            f"{document['created']}. Each value is the median of its repeats; each ratio is the "
            "median of the per-repeat ratios to a baseline measured in the same run, with its 95% "
            "confidence interval (of the value, without a baseline). A verdict needs 6 repeats "
            "and an interval clear of the rule's threshold. The verdicts depend on the cores, the "
            "load and the Python build: rerun it on your machine."
        ),
        "",
        "## Environment",
        "",
        *environment_lines(document["environment"]),
        "",
        "## Machine load during the run",
        "",
        *load_summary(document),
        "",
    ]
    for scenario in document["scenarios"]:
        lines += _scenario(scenario, image_dir)
    return "\n".join(lines)


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
    for line in load_summary(document):
        console.print(line.replace("**", ""))
    return buffer.getvalue().rstrip()


def compare(a: Document, b: Document) -> str:
    """Rows of two runs side by side: the change of each ratio (or value, without a baseline),
    and whether the 95% intervals of the two runs separate it from noise."""
    before = {(s, r["name"]): r for s, r in _all_rows(a)}
    lines, seen = [f"{'measurement':<58} {'A':>13} {'B':>13}  change"], set()
    for scenario, row in _all_rows(b):
        old = before.get((scenario, row["name"]))
        if old is None or (scenario, row["name"]) in seen:
            continue
        seen.add((scenario, row["name"]))
        ratio = row["ratio"] is not None and old["ratio"] is not None
        x, y = (old["ratio"], row["ratio"]) if ratio else (old["value"], row["value"])
        if x and y is not None:
            ia, ib = old["interval"], row["interval"]
            clear = bool(ia and ib and (ia[1] < ib[0] or ib[1] < ia[0]))
            shown = [
                f"{format_number(v)}x" if ratio else format_quantity(v, row["unit"]) for v in (x, y)
            ]
            change = f"{(y / x - 1) * 100:+.0f}%" + ("" if clear else " (within noise)")
            label = f"{scenario}: {row['name']}"
            lines.append(f"{label:<58.58} {shown[0]:>13} {shown[1]:>13}  {change}")
    return "\n".join(lines)
