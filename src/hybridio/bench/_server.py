"""Scenario ``server``: hybridio's server under load against what users write (docs/web.md)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack, suppress
from importlib import resources

import numpy
import psutil

from .._doctor import usable_cpus
from .._workloads import calibrate
from . import _targets as targets
from ._harness import Plan, free_port, rows, running, tree_rss
from ._model import MIN_REPEATS, BenchContext, ScenarioResult, Series
from ._plots import bar_plot

SCENARIO = "server"
TITLE = "Hybrid server under load, against the servers users write instead"
CPU = "/cpu?ms=20"
CONNECTIONS = (4, 16)
STORM, STORM_DEADLINE = 256, 1.0  # loaded 2 s longer: a full queue takes ~1 s to answer at all
STORM_NAME = f"retry storm ({STORM} connections, {STORM_DEADLINE:g} s deadline)"
OVERLOAD, OVERLOAD_DEADLINE = 4.0, 0.5
#: label -> (command after ``python -m``, CPU endpoint) of each server raced.
SERVERS = {
    "hybridio": (["hybridio.web", "--no-access-log"], f"{CPU}&mode=process"),
    "plain+pool": (["hybridio.web._rivals", "pool"], CPU),
    "plain+threads": (["hybridio.web._rivals", "threads"], CPU),
    "multi-process": (["hybridio.web._rivals", "multiproc"], CPU),
}
BASELINE = "plain+pool"
#: Where the work runs: the demo server's endpoints saturated inline, in a thread, in a process.
ENDPOINTS, MODES = (("/cpu", CPU), ("/hash", "/hash?mb=16")), ("inline", "thread", "process")
LOADS = {f"{name} {mode}": f"{path}&mode={mode}" for name, path in ENDPOINTS for mode in MODES}
WRK_SUMMARY = str(resources.files(__package__) / "wrk.lua")  # wrk -s: a JSON line at the end
_UNITS = {"p50": "ms", "p99": "ms", "CPU": "s", "RSS": "MiB", "refused": "%"}  # by a row's name


def _cpu(label: str, process: psutil.Process) -> tuple[float, float]:
    """CPU seconds so far of a server's loop (main thread; all of multi-process) and the rest."""
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        with suppress(psutil.NoSuchProcess):  # each with the children it waited for
            total += sum(member.cpu_times()[:4])
    loop = sum(next(t for t in process.threads() if t.id == process.pid)[1:])
    return (total, 0.0) if label == "multi-process" else (loop, total - loop)


def parse_wrk(text: str) -> dict[str, float]:
    """seconds, ok/s, 503/s (every non-2xx) and p50/p99 ms from the JSON line wrk.lua ends with."""
    done = json.loads(text.splitlines()[-1])
    answered, seconds, refused = done["requests"], done["us"] / 1e6, done["non2xx"]
    got = {"seconds": seconds, "ok": (answered - refused) / seconds, "503": refused / seconds}
    for q in ("p50", "p99"):
        got[q] = done[f"{q}_us"] / 1e3 if answered else numpy.nan  # else wrk says 0
    return got


def _wrk(seconds: float, base: str, *loads: list[str]) -> tuple[list[dict[str, float]], float]:
    """wrk's numbers for ``base``/io?ms=1, then ``loads`` (options, URL) run meanwhile; its CPU."""
    wrk = ["wrk", "-t1", f"-d{max(1, round(seconds))}s", "-s", WRK_SUMMARY]
    before = sum(os.times()[2:4])  # CPU seconds of the children waited for
    loads = (["-c1", f"{base}/io?ms=1"], *loads)
    wrks = [subprocess.Popen([*wrk, *load], stdout=subprocess.PIPE, text=True) for load in loads]
    outs = [each.communicate()[0] for each in wrks]
    if any(each.returncode for each in wrks):
        raise RuntimeError(f"wrk failed: {outs}")
    return [parse_wrk(out) for out in outs], sum(os.times()[2:4]) - before


def _repeat(
    ctx: BenchContext, servers: dict[str, tuple[str, psutil.Process]], seconds: float, n: int
) -> dict[str, float]:
    """Repeat ``n`` of every part: each quantity by name."""
    base, hybrid = servers["hybridio"]
    order = list(SERVERS)[:: -1 if n % 2 else 1]
    cpu = {label: url + SERVERS[label][1] for label, (url, _) in servers.items()}
    storm = [f"-c{STORM}", "-H", f"X-Request-Timeout: {STORM_DEADLINE:g}"]
    parts = [(f"{s} at {c} connections", s, [f"-c{c}", cpu[s]]) for c in CONNECTIONS for s in order]
    parts += [(f"{STORM_NAME}, {s}", s, [*storm, cpu[s]]) for s in ("hybridio", BASELINE)]
    parts += [(load, "hybridio", ["-c4", base + LOADS[load]]) for load in LOADS]
    got: dict[str, float] = {}
    for name, label, saturate in parts:  # saturate an endpoint, time /io; none always first
        ctx.progress(f"{name} (repeat {n + 1})")
        (url, process), stormy = servers[label], STORM_NAME in name
        before = _cpu(label, process)
        (probe, done), client = _wrk(seconds + (2 if stormy else 0), url, saturate)
        loop, workers = numpy.subtract(_cpu(label, process), before)
        spent = {"loop": loop, "workers": workers, "client": client}
        got |= {f"{name}: {key}": value / done["seconds"] for key, value in spent.items()}
        got |= {f"{name}: ok req/s": done["ok"], f"{name}: 503/s": done["503"]}
        got |= {f"{name}: /io {q}": probe[q] for q in ("p50", "p99")}
        for _ in range(60 if stormy else 0):  # 15 s at most for requests whose client left
            so_far = sum(_cpu(label, process))
            time.sleep(0.25)
            if sum(_cpu(label, process)) - so_far < 0.05:  # the server is idle: under 20% of a core
                break
    (idle,), _ = _wrk(seconds, base)
    got |= {f"idle: /io {q}": idle[q] for q in ("p50", "p99")}
    ctx.progress(f"overload at {OVERLOAD:g}x capacity (repeat {n + 1})")
    got["RSS before"], (loop, _) = tree_rss(hybrid), _cpu("hybridio", hybrid)
    rate = OVERLOAD * got["hybridio at 16 connections: ok req/s"]
    command = [sys.executable, "-m", "hybridio.web._loadgen", "open", cpu["hybridio"]]
    command += ["--rate", f"{rate:.1f}", "--duration", str(seconds + 1)]
    command += ["--header", f"X-Request-Timeout: {OVERLOAD_DEADLINE:g}"]
    out = json.loads(subprocess.run(command, capture_output=True, check=True).stdout)
    answered, latencies = max(1, sum(out["statuses"].values())), out["latencies_ms"]
    got["overload: server + workers RSS after"] = tree_rss(hybrid)
    got["overload: loop CPU per request"] = (_cpu("hybridio", hybrid)[0] - loop) / answered
    got["overload: refused"] = 100 * out["statuses"].get("503", 0) / answered
    for status, what in (("503", "503 latency p99"), ("200", "ok p99")):
        got[f"overload: {what}"] = numpy.percentile(latencies.get(status, numpy.nan), 99)
    return got


def _plan() -> Plan:
    """(row, baseline, rule) of every row, as ``_harness.rows`` takes them."""
    for c in CONNECTIONS:
        at = {label: f"{label} at {c} connections: " for label in SERVERS}
        for label in ("hybridio", BASELINE, "plain+threads"):  # multi-process: against hybridio
            rules = (targets.AT_LEAST, targets.AT_MOST) if label == "hybridio" else (None, None)
            for what, rule in zip(("ok req/s", "/io p99"), rules, strict=True):
                yield at[label] + what, None if label == BASELINE else at[BASELINE] + what, rule
        mine, multi = at["hybridio"], at["multi-process"]
        yield multi + "/io p99 vs hybridio", mine + "/io p99", targets.MUCH_BETTER_P99
        yield mine + "ok req/s vs multi-process", multi + "ok req/s", targets.AT_LEAST
    for label, rule in (("hybridio", targets.STORM_KEEPS), (BASELINE, None)):
        yield f"{STORM_NAME}, {label}: ok req/s", f"{label} at 16 connections: ok req/s", rule
    for load in LOADS:
        judged = load == "/cpu process"
        yield f"{load}: /io p50", "idle: /io p50", None
        yield f"{load}: /io p99", "idle: /io p99", targets.PROCESS_P99 if judged else None
        inline = None if "inline" in load else f"{load.split()[0]} inline: ok req/s"
        yield f"{load}: ok req/s", inline, targets.PROCESS_THROUGHPUT if judged else None
    for what in ("refused", "ok p99", "503 latency p99", "loop CPU per request"):
        yield f"overload: {what}", None, None
    yield "overload: server + workers RSS after", "RSS before", targets.FLAT_MEMORY


def _unit(name: str) -> str:
    return next((unit for key, unit in _UNITS.items() if key in name), "req/s")


def run(ctx: BenchContext) -> ScenarioResult:
    """Race the servers, then the retry storm, where the work runs, and an overload."""
    if not shutil.which("wrk"):
        raise RuntimeError("the server scenario needs wrk: apt-get install wrk")
    workers, seconds = usable_cpus(), ctx.pick(full=4.0, quick=1.0, tiny=1.0)
    loops = f"{calibrate() / 1000:.1f}"  # spin loops per ms, the same in every server
    measured: dict[str, list[float]] = {}
    start = time.monotonic()
    with ExitStack() as stack:
        servers = {}
        for label in SERVERS:
            port, options = free_port(), ["--workers", str(workers), "--loops-per-ms", loops]
            command = [sys.executable, "-m", *SERVERS[label][0], "--port", str(port), *options]
            process = stack.enter_context(running(command, listen=port, stdout=subprocess.DEVNULL))
            servers[label] = (f"http://127.0.0.1:{port}", psutil.Process(process.pid))
        for repeat in range(ctx.pick(MIN_REPEATS, MIN_REPEATS, 1)):
            for key, value in _repeat(ctx, servers, seconds, repeat).items():
                measured.setdefault(key, []).append(value)
    made = rows(SCENARIO, measured, (start, time.monotonic()), _plan(), _unit)
    median = {key: numpy.median(values) for key, values in measured.items()}
    for row in made:  # the 503s and CPU shares (of one core) of the race a row comes from
        race = row.name.split(":")[0]
        if f"{race}: loop" in median:
            cpu = (f"{p} {median[f'{race}: {p}']:.0%}" for p in ("loop", "workers", "client"))
            note = f"{median[f'{race}: 503/s']:.0f} x 503/s; CPU of one core: {', '.join(cpu)}"
            row.note = "; ".join(filter(None, (note, row.note)))
    p99 = {load.lstrip("/"): measured[f"{load}: /io p99"] for load in ["idle", *LOADS]}
    # A repeat in which nothing was answered has no p99 (NaN): it has no bar either.
    bars = {k: Series(k, "ms", values=[v for v in p if not math.isnan(v)]) for k, p in p99.items()}
    title = "/io?ms=1 p99 while each endpoint is saturated (median, 95% interval)"
    bar_plot(ctx.out / "server_io_p99.png", title, "p99 latency (ms, log scale)", bars, logy=True)
    about = f"Servers on 127.0.0.1 ({workers} workers each) loaded by wrk, {seconds:g} s per load."
    extra = {"workers": workers, "loops_per_ms": float(loops), "measured": measured}
    return ScenarioResult(SCENARIO, TITLE, about, made, ["server_io_p99.png"], extra=extra)
