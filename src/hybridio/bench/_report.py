"""The outputs of a bench run: ``results.json`` (with its schema), ``report.md`` and a terminal table.

Everything is rendered from the JSON document, so a report (or the docs page of the claims) can be
rebuilt later from a saved ``results.json`` without measuring again.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .._doctor import diagnose
from .._version import __version__
from ._model import ScenarioResult
from ._schema import SCHEMA, SCHEMA_VERSION

__all__ = [
    "combine_verdicts",
    "environment",
    "format_quantity",
    "render_markdown",
    "render_table",
    "results_document",
    "write_report",
]

_EXTRA_PACKAGES = ("hybridio", "matplotlib", "psutil", "jsonschema", "prometheus-client")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def environment() -> dict[str, Any]:
    """Facts about this machine and Python that the numbers depend on (CPU, build, versions)."""
    facts = diagnose()
    packages = dict(facts.packages)
    for name in _EXTRA_PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    physical: int | None = None
    memory: int | None = None
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
        memory = int(psutil.virtual_memory().total)
    except ImportError:  # psutil is in the bench extra; the report still works without it
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else facts.cpus
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {
        "cpu_model": _cpu_model(),
        "cpus": facts.cpus,
        "cpus_usable": usable,
        "physical_cores": physical,
        "memory_bytes": memory,
        "load_average": load,
        "python": facts.python,
        "implementation": facts.implementation,
        "build": sys.version.replace("\n", " "),
        "executable": facts.executable,
        "free_threaded_build": facts.free_threaded_build,
        "gil_enabled": facts.gil_enabled,
        "subinterpreters": facts.subinterpreters,
        "start_method": facts.start_method,
        "platform": facts.platform,
        "packages": packages,
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
    """The ``results.json`` document for ``results`` (validates against ``SCHEMA``)."""
    scenarios = []
    for result in results:
        data = asdict(result)
        data["rows"] = [row.to_dict() for row in result.rows]
        scenarios.append(data)
    document = {
        "schema_version": SCHEMA_VERSION,
        "hybridio_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "environment": environment() if env is None else env,
        "scenarios": scenarios,
    }
    # default=str: a scenario's free-form ``extra`` may hold paths or other plain objects.
    jsonable: dict[str, Any] = json.loads(json.dumps(_jsonable(document), default=str))
    return jsonable


def write_report(out: Path, document: dict[str, Any]) -> Path:
    """Write results.json, results.schema.json and report.md into ``out``; return report.md."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    (out / "results.schema.json").write_text(json.dumps(SCHEMA, indent=2) + "\n")
    report = out / "report.md"
    report.write_text(render_markdown(document))
    return report


# -- formatting ---------------------------------------------------------------------------------


def format_quantity(value: float | None, unit: str) -> str:
    """A number with its unit, scaled to be readable: 0.00042 s -> "420 µs", 3e7 bytes -> "30 MB"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if unit == "s":
        for scale, name in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")):
            if abs(value) >= scale or scale == 1e-9:
                return f"{value / scale:.3g} {name}"
    if unit == "bytes":
        for scale, name in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB"), (1.0, "B")):
            if abs(value) >= scale or scale == 1.0:
                return f"{value / scale:.3g} {name}"
    if unit == "x":
        return f"{value:.3g}x"
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return f"{text} {unit}".strip()


def _spread(spread: float | None) -> str:
    return "—" if spread is None else f"±{spread * 100:.0f}%"


def _ratio(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.3g}x"


def combine_verdicts(verdicts: Iterable[str | None]) -> str:
    """One verdict for a claim from its rows: all agree -> that one; they differ -> "qualified"."""
    seen = {verdict for verdict in verdicts if verdict not in (None, "n/a")}
    if not seen:
        return "n/a"
    return seen.pop() if len(seen) == 1 else "qualified"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _unique(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows once each: a measurement that backs several claims is listed under each claim."""
    seen: set[tuple[str, Any]] = set()
    unique = []
    for row in rows:
        key = (row["name"], row["value"])
        if key not in seen:
            seen.add(key)
            unique.append(row)
    return unique


def _rows_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| measurement | value | spread | repeats | baseline | ratio | target | verdict | note |",
        "|---|---:|---:|---:|---|---:|---|---|---|",
    ]
    for row in _unique(rows):
        baseline = row.get("baseline") or ""
        if row.get("baseline_value") is not None:
            baseline += f" ({format_quantity(row['baseline_value'], row['unit'])})"
        cells = [
            row["name"],
            format_quantity(row["value"], row["unit"]),
            _spread(row["spread"]),
            str(row["repeats"]),
            baseline or "—",
            _ratio(row.get("ratio")),
            row.get("target") or "—",
            f"**{row['verdict']}**" if row.get("verdict") else "—",
            row.get("note") or "",
        ]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return lines


def _environment_lines(env: dict[str, Any]) -> list[str]:
    memory = env.get("memory_bytes")
    build = "free-threaded" if env["free_threaded_build"] else "standard (with GIL)"
    lines = [
        f"- CPU: {env['cpu_model']}, {env['cpus']} logical CPUs "
        f"({env.get('cpus_usable', env['cpus'])} usable, {env.get('physical_cores')} physical)"
        + (f", {format_quantity(memory, 'bytes')} RAM" if memory else ""),
        (
            f"- Python {env['python']} ({env['implementation']}), {build} build, GIL "
            f"{'enabled' if env['gil_enabled'] else 'disabled'}, "
            f"start method {env['start_method']}"
        ),
        f"- Platform: {env['platform']}",
    ]
    if env.get("load_average"):
        lines.append(
            "- Load average at start: " + ", ".join(f"{x:.2f}" for x in env["load_average"])
        )
    versions = ", ".join(
        f"{name} {version}" for name, version in env["packages"].items() if version
    )
    lines.append(f"- Packages: {versions}")
    return lines


def render_markdown(document: dict[str, Any]) -> str:
    """report.md: environment, then one section per scenario (what, numbers, verdicts, plots)."""
    lines = [
        "# hybridio bench report",
        "",
        f"hybridio {document['hybridio_version']}, {document['mode']} mode, {document['created']}.",
        (
            "Every timing is compared with a baseline measured in the same run (the ratio "
            "column); `value` is the median of `repeats` runs and `spread` is (max - min) / median."
        ),
        "",
        "## Environment",
        "",
        *_environment_lines(document["environment"]),
        "",
    ]
    for scenario in document["scenarios"]:
        lines += [f"## {scenario['name']}: {scenario['title']}", ""]
        if scenario["status"] != "ok":
            lines += [f"**{scenario['status']}**: {scenario['reason']}", ""]
            if scenario.get("extra", {}).get("traceback"):
                lines += ["```", scenario["extra"]["traceback"].rstrip(), "```", ""]
            continue
        if scenario["description"]:
            lines += [scenario["description"], ""]
        lines += [f"Took {scenario['seconds']:.1f} s.", ""]
        claims: dict[str, list[dict[str, Any]]] = {}
        for row in scenario["rows"]:
            if row.get("claim"):
                claims.setdefault(row["claim"], []).append(row)
        if claims:
            lines += ["| claim | verdict | from |", "|---|---|---|"]
            for claim, rows in claims.items():
                verdict = combine_verdicts(row.get("verdict") for row in rows)
                evidence = "; ".join(
                    f"{row['name']}: {row['verdict']}" for row in rows if row["verdict"] != "n/a"
                )
                lines.append(f"| {_cell(claim)} | **{verdict}** | {_cell(evidence)} |")
            lines.append("")
        lines += [*_rows_table(scenario["rows"]), ""]
        lines += [f"![{plot}]({plot})" for plot in scenario["plots"]]
        if scenario["plots"]:
            lines.append("")
    return "\n".join(lines)


def render_table(document: dict[str, Any], width: int = 100) -> str:
    """A plain-text table of every row, for the terminal."""
    header = ("scenario", "measurement", "value", "spread", "ratio", "verdict")
    table: list[tuple[str, ...]] = [header]
    for scenario in document["scenarios"]:
        if scenario["status"] != "ok":
            table.append((scenario["name"], f"{scenario['status']}: {scenario['reason']}"))
            continue
        table.extend(
            (
                scenario["name"],
                row["name"],
                format_quantity(row["value"], row["unit"]),
                _spread(row["spread"]),
                _ratio(row.get("ratio")),
                row.get("verdict") or "",
            )
            for row in _unique(scenario["rows"])
        )
    name_width = min(48, max(len(line[1]) for line in table if len(line) > 2))
    lines = []
    for line in table:
        if len(line) == 2:
            lines.append(f"{line[0]:<9} {line[1]}"[:width])
            continue
        name = line[1] if len(line[1]) <= name_width else line[1][: name_width - 1] + "…"
        lines.append(
            f"{line[0]:<9} {name:<{name_width}} {line[2]:>10} {line[3]:>6} {line[4]:>8}  {line[5]}"
        )
    return "\n".join(lines)
