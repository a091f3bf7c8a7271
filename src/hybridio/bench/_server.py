"""Scenario ``server``: hybridio's server under load against the servers users write instead (a
race, a retry storm, where the work runs, an overload); the method is in docs/benchmarks.md."""

from __future__ import annotations

import json
import math
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path

import numpy
import psutil

from .._workloads import calibrate
from . import _targets as targets
from ._harness import Plan, ensure_debian_packages, free_port, rows, running, tree_rss
from ._load import usable_cpus
from ._model import MIN_REPEATS, BenchContext, ScenarioResult, median_interval
from ._plots import bar_plot

__all__ = ["parse_wrk", "run"]

SCENARIO = "server"
TITLE = "Hybrid server under load, against the servers users write instead"
CPU = "/cpu?ms=20"
CONNECTIONS = (4, 16)
STORM, STORM_DEADLINE = 256, 1.0
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
LOADS = {
    f"{endpoint} {mode}": f"{path}&mode={mode}"
    for endpoint, path in (("/cpu", CPU), ("/hash", "/hash?mb=16"))
    for mode in ("inline", "thread", "process")
}
_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}
_UNITS = {"p50": "ms", "p99": "ms", "CPU": "s", "RSS": "MiB"}  # of a row, by its name


@dataclass
class _Server:
    label: str
    base: str
    process: psutil.Process

    def cpu(self) -> tuple[float, float]:
        """CPU seconds so far of the loop (main thread; all of multi-process) and of the rest."""
        total = 0.0
        for member in [self.process, *self.process.children(recursive=True)]:
            with suppress(psutil.NoSuchProcess):  # each with the children it waited for
                total += sum(member.cpu_times()[:4])
        loop = sum(next(t for t in self.process.threads() if t.id == self.process.pid)[1:])
        return (total, 0.0) if self.label == "multi-process" else (loop, total - loop)


def parse_wrk(text: str) -> dict[str, float]:
    """seconds, ok/s, 503/s (every non-2xx) and p50/p99 ms from ``wrk --latency`` output."""
    done = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    if done is None:
        raise RuntimeError(f"cannot read wrk's output: {text!r}")
    answered, seconds = int(done[1]), float(done[2]) * _MS[done[3]] / 1e3
    refused = sum(map(int, re.findall(r"Non-2xx or 3xx responses: (\d+)", text)))
    found = re.findall(r"^\s+(50|99)%\s+([\d.]+)(\w+)", text, re.MULTILINE)
    # Without an answer in time no latency is known (wrk prints zeros).
    q = {q: float(value) * _MS[unit] if answered else math.nan for q, value, unit in found}
    ok, p50, p99 = (answered - refused) / seconds, q.get("50", math.nan), q.get("99", math.nan)
    return {"seconds": seconds, "ok": ok, "503": refused / seconds, "p50": p50, "p99": p99}


def _wrk(seconds: float, *loads: list[str]) -> tuple[list[dict[str, float]], float]:
    """``wrk`` loads (options, URL) run at once: their numbers, and the CPU seconds of wrk."""
    wrk = ["wrk", "-t1", f"-d{max(1, round(seconds))}s", "--latency"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrks = [subprocess.Popen([*wrk, *load], stdout=subprocess.PIPE, text=True) for load in loads]
    outs = [each.communicate()[0] for each in wrks]
    if any(each.returncode for each in wrks):
        raise RuntimeError(f"wrk failed: {outs}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return [parse_wrk(out) for out in outs], client


def _repeat(
    ctx: BenchContext, servers: dict[str, _Server], loads: list[str], seconds: float, flip: bool
) -> dict[str, float]:
    """One repeat of every part: each quantity by name."""
    order = list(servers)[:: -1 if flip else 1]  # no server always goes first
    races = [(f"{label} at {c} connections", label, c) for c in CONNECTIONS for label in order]
    races += [(f"{STORM_NAME}, {label}", label, STORM) for label in ("hybridio", BASELINE)]
    got: dict[str, float] = {}
    for name, label, connections in races:  # saturate the CPU endpoint, time /io
        storm = ["-H", f"X-Request-Timeout: {STORM_DEADLINE:g}"] if connections == STORM else []
        length = seconds + 2 if storm else seconds  # a full queue takes ~1 s to answer at all
        ctx.progress(name)
        server, (loop, other) = servers[label], servers[label].cpu()
        saturate = [f"-c{connections}", *storm, server.base + SERVERS[label][1]]
        (cpu, probe), client = _wrk(length, saturate, ["-c1", f"{server.base}/io?ms=1"])
        loop_after, other_after = server.cpu()
        spent = {"loop": loop_after - loop, "workers": other_after - other, "client": client}
        got |= {f"{name}: {key}": value / cpu["seconds"] for key, value in spent.items()}
        got |= {f"{name}: ok req/s": cpu["ok"], f"{name}: 503/s": cpu["503"]}
        got[f"{name}: /io p99"] = probe["p99"]
        for _ in range(60 if storm else 0):  # 15 s at most for requests whose client left
            before = sum(server.cpu())
            time.sleep(0.25)
            if sum(server.cpu()) - before < 0.05:  # the server is idle: under 20% of a core
                break
    hybrid = servers["hybridio"]
    io = ["-c1", f"{hybrid.base}/io?ms=1"]
    (idle,), _ = _wrk(seconds, io)
    got |= {f"/io {q}, idle": idle[q] for q in ("p50", "p99")}
    for load in loads:
        ctx.progress(f"where the work runs: {load}")
        (cpu, probe), _ = _wrk(seconds, ["-c4", hybrid.base + LOADS[load]], io)
        got |= {f"/io {q} under {load} load": probe[q] for q in ("p50", "p99")}
        got[f"{load} throughput"] = cpu["ok"]
    ctx.progress(f"overload at {OVERLOAD:g}x capacity")
    got["RSS before"], (loop, _) = tree_rss(hybrid.process), hybrid.cpu()
    rate = OVERLOAD * got["hybridio at 16 connections: ok req/s"]
    url, deadline = hybrid.base + SERVERS["hybridio"][1], OVERLOAD_DEADLINE
    command = [sys.executable, "-m", "hybridio.web._loadgen", "open", url, "--rate", f"{rate:.1f}"]
    command += ["--duration", str(seconds + 1), "--header", f"X-Request-Timeout: {deadline:g}"]
    out = json.loads(subprocess.run(command, capture_output=True, check=True).stdout)
    answered, latencies = max(1, sum(out["statuses"].values())), out["latencies_ms"]
    got["overload: server + workers RSS after"] = tree_rss(hybrid.process)
    got["overload: loop CPU per request"] = (hybrid.cpu()[0] - loop) / answered
    p99 = {status: float(numpy.percentile(values, 99)) for status, values in latencies.items()}
    got["overload: 503 latency p99"] = p99.get("503", math.nan)
    got["ok p99"] = p99.get("200", math.nan)
    got["refused"] = out["statuses"].get("503", 0) / answered
    return got


def _plan(labels: list[str], loads: list[str]) -> Plan:
    """(row, baseline, rule) of every row, as ``_harness.rows`` takes them."""
    for c in CONNECTIONS:
        at = {label: f"{label} at {c} connections: " for label in SERVERS}
        for label in labels:
            rules = (targets.AT_LEAST, targets.AT_MOST) if label == "hybridio" else (None, None)
            for what, rule in zip(("ok req/s", "/io p99"), rules, strict=True):
                yield at[label] + what, None if label == BASELINE else at[BASELINE] + what, rule
        if "multi-process" in labels:
            mine, multi = at["hybridio"], at["multi-process"]
            yield multi + "/io p99 vs hybridio", mine + "/io p99", targets.MUCH_BETTER_P99
            yield mine + "ok req/s vs multi-process", multi + "ok req/s", targets.AT_LEAST
    for label in ("hybridio", BASELINE):
        rule = targets.STORM_KEEPS if label == "hybridio" else None
        yield f"{STORM_NAME}, {label}: ok req/s", f"{label} at 16 connections: ok req/s", rule
    yield from (("/io p50, idle", None, None), ("/io p99, idle", None, None))
    judged = {"/cpu process": (targets.PROCESS_P99, targets.PROCESS_THROUGHPUT)}
    for load in loads:
        p99, throughput = judged.get(load, (None, None))
        yield f"/io p50 under {load} load", "/io p50, idle", None
        yield f"/io p99 under {load} load", "/io p99, idle", p99
        inline = None if "inline" in load else f"{load.split()[0]} inline throughput"
        yield f"{load} throughput", inline, throughput
    yield "overload: 503 latency p99", None, None
    yield "overload: loop CPU per request", None, None
    yield "overload: server + workers RSS after", "RSS before", targets.FLAT_MEMORY


def _unit(name: str) -> str:
    return next((unit for key, unit in _UNITS.items() if key in name), "req/s")


def run(ctx: BenchContext) -> ScenarioResult:
    """Race the servers, then the retry storm, where the work runs, and an overload."""
    if not shutil.which("wrk") and ensure_debian_packages({"wrk": Path("/usr/bin/wrk")}):
        raise RuntimeError("the server scenario needs wrk: apt-get install wrk")
    workers, seconds = usable_cpus(), ctx.pick(full=4.0, quick=1.0, tiny=1.0)
    ctx.progress("calibrating the spin loop")
    loops = f"{calibrate() / 1000:.1f}"  # spin loops per ms, the same in every server
    labels = [BASELINE, "hybridio"] if ctx.tiny else list(SERVERS)
    loads = [load for load in LOADS if not (ctx.tiny and load.startswith("/hash"))]
    measured: dict[str, list[float]] = {}
    start = time.monotonic()
    with ExitStack() as stack:
        servers = {}
        for label in labels:
            port, options = free_port(), ["--workers", str(workers), "--loops-per-ms", loops]
            command = [sys.executable, "-m", *SERVERS[label][0], "--port", str(port), *options]
            process = stack.enter_context(running(command, listen=port, stdout=subprocess.DEVNULL))
            servers[label] = _Server(label, f"http://127.0.0.1:{port}", psutil.Process(process.pid))
        for repeat in range(ctx.repeats(MIN_REPEATS, quick=MIN_REPEATS)):
            ctx.progress(f"repeat {repeat + 1}")
            for key, value in _repeat(ctx, servers, loads, seconds, repeat % 2 == 1).items():
                measured.setdefault(key, []).append(value)
    made = rows(SCENARIO, measured, (start, time.monotonic()), _plan(labels, loads), _unit)
    median = {key: statistics.median(values) for key, values in measured.items()}
    for row in made:  # the 503s and CPU shares of the load a row comes from; what was refused
        load, note = row.name.split(":")[0], ""
        if f"{load}: loop" in median:
            cpu = (f"{p} {median[f'{load}: {p}']:.0%}" for p in ("loop", "workers", "client"))
            note = f"{median[f'{load}: 503/s']:.0f} x 503/s; CPU of one core: {', '.join(cpu)}"
        elif row.name == "overload: 503 latency p99":
            note = (
                f"open loop at {OVERLOAD:g}x capacity, {OVERLOAD_DEADLINE:g} s deadline: "
                f"{median['refused']:.0%} refused with 503, each held 0.5 s on purpose; ok p99 "
                f"{median['ok p99']:.0f} ms"
            )
        row.note = "; ".join(filter(None, (note, row.note)))
    p99 = {row.name: (row.value, median_interval(row.values)) for row in made}
    bars = {"idle": p99["/io p99, idle"]}
    bars |= {load.lstrip("/"): p99[f"/io p99 under {load} load"] for load in loads}
    title = "/io?ms=1 p99 while each endpoint is saturated (median, 95% interval)"
    bar_plot(ctx.out / "server_io_p99.png", title, "p99 latency (ms, log scale)", bars, logy=True)
    about = f"Servers on 127.0.0.1 ({workers} workers each) loaded by wrk, {seconds:g} s per load."
    extra = {"workers": workers, "loops_per_ms": float(loops), "measured": measured}
    return ScenarioResult(SCENARIO, TITLE, about, made, ["server_io_p99.png"], extra=extra)
