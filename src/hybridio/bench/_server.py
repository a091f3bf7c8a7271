"""Scenario ``server``: the hybrid server under load, against what users would write instead.

Every server runs in its own process on 127.0.0.1 doing the same work; ``wrk`` saturates ``/cpu``
while a second ``wrk`` of one connection times ``/io``. What each part measures is in
docs/benchmarks.md ("server"); ``python -m hybridio.bench._server OUT DOC.md...`` writes the rows
of a run into the docs.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy
import psutil

from .._workloads import calibrate
from ._harness import ensure_debian_packages, free_port, rows, running, tree_rss
from ._load import usable_cpus
from ._model import MIN_REPEATS, BenchContext, Rule, ScenarioResult, median_interval
from ._plots import bar_plot
from ._targets import (
    AT_LEAST,
    AT_MOST,
    FLAT_MEMORY,
    MUCH_BETTER_P99,
    PROCESS_P99,
    PROCESS_THROUGHPUT,
    STORM_KEEPS,
)

__all__ = ["parse_wrk", "render_numbers", "replace_between_markers", "run"]

SCENARIO = "server"
CPU = "/cpu?ms=20"
CONNECTIONS = (4, 16)
STORM, STORM_DEADLINE = 256, 1.0
STORM_NAME = f"retry storm ({STORM} connections, {STORM_DEADLINE:g} s deadline)"
OVERLOAD, OVERLOAD_DEADLINE = 4.0, 0.5
#: label -> (command after ``python -m``, CPU endpoint) of each server raced.
SERVERS: dict[str, tuple[list[str], str]] = {
    "hybridio": (["hybridio.web", "--no-access-log"], f"{CPU}&mode=process"),
    "plain+pool": (["hybridio.web._rivals", "pool"], CPU),
    "plain+threads": (["hybridio.web._rivals", "threads"], CPU),
    "multi-process": (["hybridio.web._rivals", "multiproc"], CPU),
}
BASELINE = "plain+pool"
#: Where the work runs: the demo server's endpoints saturated inline, in a thread, in a process.
LOADS = {
    f"{endpoint} {mode}": f"{path}&mode={mode}"
    for endpoint, path in (("/cpu", CPU), ("/hash", "/hash?mb=16"))
    for mode in ("inline", "thread", "process")
}


@dataclass
class _Server:
    label: str
    base: str
    process: psutil.Process
    #: CPU seconds last seen per child (a worker that exits keeps its last reading).
    seen: dict[int, float] = field(default_factory=dict)

    def cpu(self) -> tuple[float, float]:
        """CPU seconds so far of (the loop, everything else): the main thread against the other
        threads and the children; the multi-process server's processes are all loop."""
        try:
            threads = {t.id: t.user_time + t.system_time for t in self.process.threads()}
            for child in self.process.children(recursive=True):
                self.seen[child.pid] = sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:  # it or a child exited meanwhile: the next reading counts
            threads = {}
        loop = threads.pop(self.process.pid, 0.0)
        other = sum(threads.values()) + sum(self.seen.values())
        return (loop + other, 0.0) if self.label == "multi-process" else (loop, other)


@contextmanager
def _server(label: str, workers: int, loops_per_ms: float) -> Iterator[_Server]:
    port = free_port()
    command = [sys.executable, "-m", *SERVERS[label][0], "--port", str(port)]
    command += ["--workers", str(workers), "--loops-per-ms", f"{loops_per_ms:.1f}"]
    with running(command, listen=port, stdout=subprocess.DEVNULL) as process:
        yield _Server(label, f"http://127.0.0.1:{port}", psutil.Process(process.pid))


def _percentile(values: Sequence[float], q: float) -> float:
    return float(numpy.percentile(values, q)) if len(values) else math.nan


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def parse_wrk(text: str) -> dict[str, float]:
    """seconds, ok/s, 503/s and p50/p99 ms from ``wrk --latency`` output (wrk counts every
    non-2xx together: under these loads, 503s)."""
    done = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    if done is None:
        raise RuntimeError(f"cannot read wrk's output: {text!r}")
    seconds = float(done[2]) * _UNITS[done[3]] / 1e3
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    refused = int(bad[1]) if bad else 0
    found = re.findall(r"^\s+(50|99)%\s+([\d.]+)(\w+)", text, re.MULTILINE)
    q = {q: float(value) * _UNITS[unit] for q, value, unit in found}
    if not int(done[1]):  # no answer in time: no latency known (wrk prints zeros)
        q = {}
    ok, p50, p99 = (int(done[1]) - refused) / seconds, q.get("50", math.nan), q.get("99", math.nan)
    return {"seconds": seconds, "ok": ok, "503": refused / seconds, "p50": p50, "p99": p99}


def _wrk(loads: Sequence[tuple[str, int, list[str]]], seconds: float) -> list[dict[str, float]]:
    """Closed-loop loads ``(url, connections, header)`` run at once for ``seconds`` (whole
    seconds): each one's numbers, with the CPU seconds of its ``wrk``."""
    results, duration = [], f"-d{max(1, round(seconds))}s"
    with ExitStack() as stack:
        outs = [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in loads]
        processes = [
            subprocess.Popen(
                ["wrk", "-t1", f"-c{connections}", duration, "--latency", *header, url], stdout=out
            )
            for (url, connections, header), out in zip(loads, outs, strict=True)
        ]
        for process, out in zip(processes, outs, strict=True):
            _, status, usage = os.wait4(process.pid, 0)  # its CPU time too
            process.returncode = os.waitstatus_to_exitcode(status)
            if process.returncode:
                raise RuntimeError(f"wrk failed (exit {process.returncode})")
            out.seek(0)
            results.append({**parse_wrk(out.read()), "client": usage.ru_utime + usage.ru_stime})
    return results


def _race(server: _Server, connections: int, seconds: float, header: str = "") -> dict[str, float]:
    """Saturate ``server``'s CPU endpoint while timing ``/io``: ok/s, 503/s, ``/io`` p50/p99 and
    the CPU (share of one core) of its loop, of its workers and of the clients."""
    loop, other = server.cpu()
    cpu = (server.base + SERVERS[server.label][1], connections, ["-H", header] if header else [])
    load, probe = _wrk([cpu, (f"{server.base}/io?ms=1", 1, [])], seconds)
    loop_after, other_after = server.cpu()
    return {
        "ok req/s": load["ok"],
        "503/s": load["503"],
        "/io p50": probe["p50"],
        "/io p99": probe["p99"],
        "loop": (loop_after - loop) / load["seconds"],
        "workers": (other_after - other) / load["seconds"],
        "client": (load["client"] + probe["client"]) / load["seconds"],
    }


def _settle(server: _Server) -> None:
    """Wait (15 s at most) until ``server`` uses under 20% of a core: requests whose client left
    still run after a load."""
    before, deadline = sum(server.cpu()), time.monotonic() + 15
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = sum(server.cpu())
        if now - before < 0.05:
            return
        before = now


def _repeat(
    ctx: BenchContext, servers: dict[str, _Server], loads: Sequence[str], seconds: float, flip: bool
) -> dict[str, float]:
    """One repeat of every part: each quantity by name."""
    got: dict[str, float] = {}
    for c in CONNECTIONS:
        for label in list(servers)[:: -1 if flip else 1]:  # no server always goes first
            ctx.progress(f"{label}, {c} connections")
            race = _race(servers[label], c, seconds)
            got |= {f"{label} at {c} connections: {key}": value for key, value in race.items()}
    for label in ("hybridio", BASELINE):
        ctx.progress(f"retry storm, {label}")
        # Longer: a full queue takes a second or so to give its first answers.
        race = _race(servers[label], STORM, seconds + 2, f"X-Request-Timeout: {STORM_DEADLINE:g}")
        got |= {f"{STORM_NAME}, {label}: {key}": value for key, value in race.items()}
        _settle(servers[label])
    hybrid = servers["hybridio"]
    io: tuple[str, int, list[str]] = (f"{hybrid.base}/io?ms=1", 1, [])
    (idle,) = _wrk([io], seconds)
    got["/io p50, idle"], got["/io p99, idle"] = idle["p50"], idle["p99"]
    for load in loads:
        path = LOADS[load]
        ctx.progress(f"where the work runs: {load}")
        cpu, probe = _wrk([(hybrid.base + path, 4, []), io], seconds)
        got[f"/io p50 under {load} load"] = probe["p50"]
        got[f"/io p99 under {load} load"] = probe["p99"]
        got[f"{load} throughput"] = cpu["ok"]
    ctx.progress(f"overload at {OVERLOAD:g}x capacity")
    got["RSS before"], (loop, _) = tree_rss(hybrid.process), hybrid.cpu()
    rate = OVERLOAD * got["hybridio at 16 connections: ok req/s"]
    command = [
        sys.executable,
        "-m",
        "hybridio.web._loadgen",
        "open",
        hybrid.base + SERVERS["hybridio"][1],
    ]
    command += ["--rate", f"{rate:.1f}", "--duration", str(seconds + 1)]
    command += ["--header", f"X-Request-Timeout: {OVERLOAD_DEADLINE:g}"]
    out = json.loads(subprocess.run(command, capture_output=True, check=True).stdout)
    answered, latencies = max(1, sum(out["statuses"].values())), out["latencies_ms"]
    got["overload: server + workers RSS after"] = tree_rss(hybrid.process)
    got["overload: loop CPU per request"] = (hybrid.cpu()[0] - loop) / answered
    got["overload: 503 latency p99"] = _percentile(latencies.get("503", []), 99)
    got["refused"] = out["statuses"].get("503", 0) / answered
    got["ok p99"] = _percentile(latencies.get("200", []), 99)
    return got


def _plan(labels: Sequence[str], loads: Sequence[str]) -> list[tuple[str, str | None, Rule | None]]:
    """(row, baseline, rule) of every row; a row measures the quantity its name starts with
    (before " vs "), against the baseline quantity, in each repeat."""
    plan: list[tuple[str, str | None, Rule | None]] = []
    for c in CONNECTIONS:
        at = {label: f"{label} at {c} connections: " for label in SERVERS}
        for label in labels:
            base, rules = at[BASELINE], (AT_LEAST, AT_MOST) if label == "hybridio" else (None, None)
            for what, rule in zip(("ok req/s", "/io p99"), rules, strict=True):
                plan.append((at[label] + what, None if label == BASELINE else base + what, rule))
        if "multi-process" in labels:
            mine, multi = at["hybridio"], at["multi-process"]
            plan.append((multi + "/io p99 vs hybridio", mine + "/io p99", MUCH_BETTER_P99))
            plan.append((mine + "ok req/s vs multi-process", multi + "ok req/s", AT_LEAST))
    for label in ("hybridio", BASELINE):
        rule = STORM_KEEPS if label == "hybridio" else None
        plan.append(
            (f"{STORM_NAME}, {label}: ok req/s", f"{label} at 16 connections: ok req/s", rule)
        )
    plan += [("/io p50, idle", None, None), ("/io p99, idle", None, None)]
    for load in loads:
        process = load == "/cpu process"
        plan.append((f"/io p50 under {load} load", "/io p50, idle", None))
        plan.append(
            (f"/io p99 under {load} load", "/io p99, idle", PROCESS_P99 if process else None)
        )
        inline = None if "inline" in load else f"{load.split()[0]} inline throughput"
        plan.append((f"{load} throughput", inline, PROCESS_THROUGHPUT if process else None))
    plan += [
        ("overload: 503 latency p99", None, None),
        ("overload: loop CPU per request", None, None),
    ]
    return [*plan, ("overload: server + workers RSS after", "RSS before", FLAT_MEMORY)]


def _unit(name: str) -> str:
    if "p99" in name or "p50" in name:
        return "ms"
    return "s" if "CPU" in name else "MiB" if "RSS" in name else "req/s"


def _note(name: str, measured: dict[str, list[float]]) -> str:
    """503s and CPU shares of the load a row comes from."""
    load = name.split(":")[0]
    if f"{load}: loop" not in measured:
        return ""
    cpu = ", ".join(
        f"{part} {statistics.median(measured[f'{load}: {part}']):.0%}"
        for part in ("loop", "workers", "client")
    )
    return f"{statistics.median(measured[f'{load}: 503/s']):.0f} x 503/s; CPU of one core: {cpu}"


def run(ctx: BenchContext) -> ScenarioResult:
    """Race the servers, then the retry storm, where the work runs, and an overload."""
    if not shutil.which("wrk") and ensure_debian_packages({"wrk": Path("/usr/bin/wrk")}):
        raise RuntimeError("the server scenario needs wrk: apt-get install wrk")
    workers, seconds = usable_cpus(), ctx.pick(full=4.0, quick=1.0, tiny=1.0)
    ctx.progress("calibrating the spin loop")
    loops_per_ms = calibrate() / 1000
    labels = [BASELINE, "hybridio"] if ctx.tiny else list(SERVERS)
    loads = [load for load in LOADS if not (ctx.tiny and load.startswith("/hash"))]
    measured: dict[str, list[float]] = {}
    start = time.monotonic()
    with ExitStack() as stack:
        servers = {
            label: stack.enter_context(_server(label, workers, loops_per_ms)) for label in labels
        }
        for repeat in range(ctx.repeats(MIN_REPEATS, quick=MIN_REPEATS)):
            ctx.progress(f"repeat {repeat + 1}")
            for key, value in _repeat(ctx, servers, loads, seconds, repeat % 2 == 1).items():
                measured.setdefault(key, []).append(value)
    made = rows(SCENARIO, measured, (start, time.monotonic()), _plan(labels, loads), _unit)
    for row in made:
        row.note = "; ".join(filter(None, (_note(row.name, measured), row.note)))
    made[-3].note = (
        f"open loop at {OVERLOAD:g}x capacity, {OVERLOAD_DEADLINE:g} s deadline: "
        f"{statistics.median(measured['refused']):.0%} refused with 503, each held 0.5 s on "
        f"purpose; ok p99 {statistics.median(measured['ok p99']):.0f} ms"
    )
    probes = {row.name.removeprefix("/io p99 under ").removesuffix(" load"): row for row in made}
    bars = {
        name.lstrip("/").replace("io p99, idle", "idle"): (row.value, median_interval(row.values))
        for name, row in probes.items()
        if name in ("/io p99, idle", *LOADS)
    }
    plot = "server_io_p99.png"
    title = "/io?ms=1 p99 while each endpoint is saturated (median, 95% interval)"
    bar_plot(ctx.out / plot, title, "p99 latency (ms, log scale)", bars, logy=True)
    return ScenarioResult(
        SCENARIO,
        "Hybrid server under load, against the servers users write instead",
        f"Servers on 127.0.0.1 ({workers} workers each), load from wrk, {seconds:g} s per load, "
        "the servers' order alternating between repeats; see docs/benchmarks.md.",
        made,
        [plot],
        extra={"workers": workers, "loops_per_ms": loops_per_ms, "measured": measured},
    )


# -- the numbers in the docs ------------------------------------------------------------------

_MARKERS = ("<!-- server-numbers:start -->", "<!-- server-numbers:end -->")


def render_numbers(document: dict[str, Any]) -> str:
    """The Markdown of a ``hybridio bench server`` run (its ``results.json`` document).

    Raises:
        ValueError: the document has no successful ``server`` scenario.
    """
    from ._report import rows_table

    ok = [s for s in document["scenarios"] if s["name"] == SCENARIO and s["status"] == "ok"]
    if not ok:
        raise ValueError("results.json has no successful `server` scenario: run it first")
    run = f"`hybridio bench server --{document['mode']}` ({document['created']})"
    lines = [f"<!-- Generated by `python -m hybridio.bench._server` from {run}; do not edit. -->"]
    lines += ["", f"Run: {run}, {document['environment']['cpus']} CPUs, a shared machine.", ""]
    return "\n".join([*lines, *rows_table(ok[0]["rows"])]) + "\n"


def replace_between_markers(text: str, numbers: str) -> str:
    """``text`` with the lines between the two ``_MARKERS`` replaced by ``numbers``.

    Raises:
        ValueError: ``text`` lacks the markers.
    """
    start, end = text.find(_MARKERS[0]), text.find(_MARKERS[1])
    if start < 0 or end < start:
        raise ValueError(f"no {_MARKERS[0]} ... {_MARKERS[1]} section")
    return text[: start + len(_MARKERS[0])] + "\n" + numbers + text[end:]


if __name__ == "__main__":  # python -m hybridio.bench._server BENCH_OUT DOC.md [DOC.md...]
    if len(sys.argv) < 3:
        raise SystemExit("usage: python -m hybridio.bench._server BENCH_OUT DOC.md [DOC.md...]")
    numbers = render_numbers(json.loads((Path(sys.argv[1]) / "results.json").read_text()))
    for doc in map(Path, sys.argv[2:]):
        doc.write_text(replace_between_markers(doc.read_text(), numbers))
