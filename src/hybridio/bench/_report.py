"""The outputs of a bench run: ``results.json``, ``pyperf.json``, ``report.md``, a terminal table.

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
import platform
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .._doctor import diagnose
from .._version import __version__
from ._model import INCONCLUSIVE, ScenarioResult, format_number

__all__ = [
    "combine_verdicts",
    "environment",
    "format_quantity",
    "render_markdown",
    "render_table",
    "results_document",
    "write_report",
]

_EXTRA_PACKAGES = ("hybridio", "matplotlib", "psutil", "pyperf", "rich", "prometheus-client")


def environment() -> dict[str, Any]:
    """Facts about this machine and Python that the numbers depend on (CPU, build, versions)."""
    import psutil

    facts = asdict(diagnose())
    for name in _EXTRA_PACKAGES:
        try:
            facts["packages"][name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            facts["packages"][name] = None
    cpuinfo = Path("/proc/cpuinfo")
    models = re.findall(r"model name\s*: (.*)", cpuinfo.read_text() if cpuinfo.exists() else "")
    return {
        **facts,
        "cpu_model": models[0] if models else platform.processor() or platform.machine(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_bytes": int(psutil.virtual_memory().total),
        "build": sys.version.replace("\n", " "),
    }


def _jsonable(value: Any) -> Any:
    """Replace NaN/inf (not JSON) with None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def results_document(
    results: Sequence[ScenarioResult], mode: str, env: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``results.json`` document for ``results`` (its shape: the dataclasses of _model)."""
    document = {
        "schema_version": 2,
        "hybridio_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "environment": environment() if env is None else env,
        "scenarios": [asdict(result) for result in results],
    }
    # default=str: a scenario's free-form ``extra`` may hold paths or other plain objects.
    jsonable: dict[str, Any] = json.loads(json.dumps(_jsonable(document), default=str))
    return jsonable


def _pyperf(document: dict[str, Any], path: Path) -> None:
    """Write the repeats of timing, rate and memory rows as a pyperf benchmark suite."""
    import pyperf  # type: ignore[import-untyped]

    benchmarks, seen = [], set()
    for scenario, row in _all_rows(document):
        unit, values = row["unit"], [v for v in row.get("values", []) if v]
        name = f"{scenario}: {row['name']}"
        if name in seen or not values or not (unit in ("s", "bytes") or unit.endswith("/s")):
            continue
        seen.add(name)
        if unit.endswith("/s"):  # a rate: pyperf wants time, so seconds per item
            name, values = (
                f"{name} (seconds per {unit[:-2].removesuffix('s')})",
                [1 / v for v in values],
            )
        meta = {"name": name, "unit": "byte" if unit == "bytes" else "second"}
        run = pyperf.Run(values, metadata=meta, collect_metadata=False)
        benchmarks.append(pyperf.Benchmark([run]))
    if benchmarks:
        pyperf.BenchmarkSuite(benchmarks).dump(str(path), replace=True)


def write_report(out: Path, document: dict[str, Any]) -> Path:
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
    """A number with its unit, scaled to be readable: 0.00042 s -> "420 µs", 3e7 bytes -> "28.6 MiB"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    unit = unit or ""
    for scale, name in _SCALES.get(unit, ()):
        if abs(value) >= scale or scale == _SCALES[unit][-1][0]:
            return f"{format_number(value / scale)} {name}"
    if unit == "x":
        return f"{format_number(value)}x"
    return f"{format_number(value)} {unit}".strip()


def format_ratio(row: dict[str, Any]) -> str:
    """ "1.83x (1.71x to 1.90x)": the paired ratio and its 95% interval."""
    if row.get("ratio") is None:
        return "—"
    text = f"{format_number(row['ratio'])}x"
    interval = row.get("interval")
    if interval and row.get("baseline_value") is not None:
        text += f" ({format_number(interval[0])}x to {format_number(interval[1])}x)"
    return text


def combine_verdicts(verdicts: Iterable[str | None]) -> str:
    """One verdict for a claim from its rows: the conclusive ones agree -> that one; they differ
    -> "qualified"; none conclusive -> "inconclusive" (or "n/a" when nothing was judged)."""
    seen = {verdict for verdict in verdicts if verdict not in (None, "n/a")}
    conclusive = seen - {INCONCLUSIVE}
    if not conclusive:
        return INCONCLUSIVE if seen else "n/a"
    return conclusive.pop() if len(conclusive) == 1 else "qualified"


def _all_rows(document: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    for scenario in document["scenarios"]:
        for row in scenario["rows"]:
            yield scenario["name"], row


def unique(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows once each: a measurement that backs several claims is listed under each claim."""
    seen: set[tuple[str, Any]] = set()
    kept = []
    for row in rows:
        if (row["name"], row["value"]) not in seen:
            seen.add((row["name"], row["value"]))
            kept.append(row)
    return kept


def _md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def _measured(row: dict[str, Any]) -> str:
    """The value with its unit; "not measured" for a row of no repeats (a missing tool)."""
    return "not measured" if row["repeats"] == 0 else format_quantity(row["value"], row["unit"])


def _value(row: dict[str, Any]) -> str:
    """The median value; without a baseline, its 95% interval too."""
    text = _measured(row)
    interval = row.get("interval")
    if interval and row.get("baseline_value") is None:
        low, high = (format_quantity(v, row["unit"]) for v in interval)
        text += f" ({low} to {high})"
    return text


def _baseline(row: dict[str, Any]) -> str:
    if not row.get("baseline"):
        return "—"
    value = format_quantity(row.get("baseline_value"), row.get("baseline_unit") or row["unit"])
    return f"{row['baseline']}: {value}"


def _verdict(row: dict[str, Any]) -> str:
    verdict = row.get("verdict") or ""
    return f"**{verdict}**" if verdict not in ("", "n/a") else verdict or "—"


def rows_table(rows: list[dict[str, Any]]) -> list[str]:
    """The Markdown table of ``rows`` (each once)."""
    lines = [
        "| measurement | value | baseline (same run) | ratio (95% interval) | repeats | rule"
        + " | verdict | note |",
        "|---|---:|---|---:|---:|---|---|---|",
    ]
    for row in unique(rows):
        note = "; ".join(text for text in (row.get("reason"), row.get("note")) if text)
        cells = [
            row["name"], _value(row), _baseline(row), format_ratio(row), str(row["repeats"]),
            row.get("target") or "—", _verdict(row), note,
        ]  # fmt: skip
        lines.append(_md_row(cells))
    return lines


def load_summary(document: dict[str, Any]) -> list[str]:
    """What the machine was doing during each scenario, measured while it ran."""
    lines = []
    for scenario in document["scenarios"]:
        load = scenario.get("load")
        if load:
            state = "**busy**" if load["busy"] else "quiet"
            lines.append(
                f"- {scenario['name']}: {state}: other processes used {load['others']:.1f} of "
                f"{load['cpus']} CPUs, steal {load['steal']:.0f}%, load average "
                f"{load['load_average']:.1f}"
            )
    if any("**busy**" in line for line in lines):
        lines.append(
            "- On a busy machine no claim is refuted, no target is reported not met and no "
            "speedup decides a verdict: such rows say inconclusive, and why."
        )
    return lines


def environment_lines(env: dict[str, Any]) -> list[str]:
    """The environment as a Markdown list."""
    build = "free-threaded" if env["free_threaded_build"] else "standard (with GIL)"
    versions = ", ".join(f"{name} {v}" for name, v in env["packages"].items() if v)
    return [
        (
            f"- CPU: {env['cpu_model']}, {env['cpus']} logical CPUs ({env.get('cpus_usable')} "
            f"usable, {env.get('physical_cores')} physical), "
            f"{format_quantity(env.get('memory_bytes'), 'bytes')} RAM"
        ),
        (
            f"- Python {env['python']} ({env['implementation']}), {build} build, GIL "
            f"{'enabled' if env['gil_enabled'] else 'disabled'}, start method "
            f"{env['start_method']}"
        ),
        f"- Platform: {env['platform']}",
        f"- Packages: {versions}",
    ]


def claims_table(rows: list[dict[str, Any]]) -> tuple[list[str], dict[str, str]]:
    """The claim | verdict | evidence table, and each claim's combined verdict."""
    claims: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("claim"):
            claims.setdefault(row["claim"], []).append(row)
    verdicts = {c: combine_verdicts(r.get("verdict") for r in rs) for c, rs in claims.items()}
    lines = ["| claim | verdict | from |", "|---|---|---|"] if claims else []
    for claim, claim_rows in claims.items():
        evidence = "; ".join(
            f"{r['name']}: {r['verdict']}" for r in claim_rows if r["verdict"] != "n/a"
        )
        lines.append(_md_row([claim, f"**{verdicts[claim]}**", evidence]))
    return lines, verdicts


def render_markdown(document: dict[str, Any]) -> str:
    """report.md: environment and load, then one section per scenario."""
    lines = [
        "# hybridio bench report",
        "",
        (
            f"hybridio {document['hybridio_version']}, {document['mode']} mode, "
            f"{document['created']}. Each value is the median of its repeats; each ratio is the "
            "median of the per-repeat ratios to a baseline measured in the same run, with its 95% "
            "confidence interval (of the value, without a baseline). A verdict needs 6 repeats "
            "and an interval clear of the rule's threshold."
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
        lines += [f"## {scenario['title']}", ""]
        if scenario["status"] != "ok":
            lines += [
                f"Scenario {scenario['name']}: **{scenario['status']}**: {scenario['reason']}",
                "",
            ]
            if scenario.get("extra", {}).get("traceback"):
                lines += ["```", scenario["extra"]["traceback"].rstrip(), "```", ""]
            continue
        lines += [
            # Docstrings use reStructuredText literals; Markdown wants single backticks.
            (
                f"{scenario['description'].replace('``', '`')} (scenario {scenario['name']}, "
                f"{scenario['seconds']:.0f} s)"
            ),
            "",
        ]
        table, _ = claims_table(scenario["rows"])
        lines += [*table, "", *rows_table(scenario["rows"]), ""]
        lines += [f"![{plot}]({plot})" for plot in scenario["plots"]]
        lines += [""] if scenario["plots"] else []
    return "\n".join(lines)


def render_table(document: dict[str, Any], width: int | None = None) -> str:
    """A terminal table of every row that fits the terminal (long cells wrap), then the load."""
    from rich.console import Console
    from rich.table import Table

    width = width or shutil.get_terminal_size((110, 24)).columns
    table = Table(show_lines=False, expand=False, pad_edge=False)
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
            verdict = row.get("verdict") or ""
            if verdict == INCONCLUSIVE and row.get("reason"):
                verdict += f" ({re.split(r'[:(;]', row['reason'])[0].strip()})"
            table.add_row(row["name"], _measured(row), format_ratio(row), verdict)
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, no_color=True, highlight=False)
    console.print(table)
    for line in load_summary(document):
        console.print(line.replace("**", ""), highlight=False)
    return buffer.getvalue().rstrip()


def compare(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Rows of two runs side by side: the change of each ratio (or value, without a baseline),
    and whether the 95% intervals of the two runs separate it from noise."""
    before = {(s, r["name"]): r for s, r in _all_rows(a)}
    lines, seen = [f"{'measurement':<58} {'A':>13} {'B':>13}  change"], set()
    for scenario, row in _all_rows(b):
        key = (scenario, row["name"])
        old = before.get(key)
        if old is None or key in seen:
            continue
        seen.add(key)
        field = (
            "ratio" if row.get("ratio") is not None and old.get("ratio") is not None else "value"
        )
        x, y = old.get(field), row.get(field)
        if x is None or y is None or not x:
            continue
        ia, ib = old.get("interval"), row.get("interval")
        clear = bool(ia and ib and (ia[1] < ib[0] or ib[1] < ia[0]))
        shown = [
            f"{format_number(v)}x" if field == "ratio" else format_quantity(v, row["unit"])
            for v in (x, y)
        ]
        change = f"{(y / x - 1) * 100:+.0f}%" + ("" if clear else " (within noise)")
        label = f"{scenario}: {row['name']}"
        lines.append(f"{label:<58.58} {shown[0]:>13} {shown[1]:>13}  {change}")
    return "\n".join(lines)
