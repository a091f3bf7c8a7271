"""Scenario ``server``: the hybrid server under load, against what users would write instead.

Every server runs in its own process on 127.0.0.1 and does the same work: ``/cpu?ms=20`` spins a
pure-Python loop whose count per millisecond is measured once here and given to every server;
``/io?ms=1`` only awaits. The load is ``wrk`` (installed with apt-get when missing; otherwise the
built-in generator, said in each row's note): one closed-loop ``wrk`` saturates ``/cpu`` while a
second one (1 connection) times ``/io``.

1. **Against the alternatives**, at 4 and 16 connections, in alternating order within each
   repeat: hybridio's demo server (``hybridio serve``, one worker per core, default limits);
   a plain aiohttp app with a ``ProcessPoolExecutor`` (one worker per core, no admission); the
   same with threads; a multi-process server (one aiohttp process per core on one port with
   ``reuse_port``, CPU work inline). Reported: ok req/s, 503/s, ``/io`` p50/p99 and the CPU split
   (the server's loop, its workers, the client), all access logs off.
2. **Retry storm**: 256 connections with a 1 s deadline (``X-Request-Timeout``, which the plain
   app ignores) that retry at once (wrk ignores ``Retry-After``): ok req/s against the same
   server at 16 connections (workers must not starve), 503/s, the loop's CPU.
3. **Where the work runs** (hybridio's demo alone): ``/cpu`` and ``/hash`` saturated inline, in
   a thread or in a process (4 connections), ``/io`` p50/p99 against idle.
4. **Overload**: an open-loop generator at 4x the measured capacity with a 0.5 s request deadline
   (``X-Request-Timeout``): 503 latency, ``/io`` p99, server memory before and after.
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
from typing import Any

import psutil

from ..web._work import calibrate
from . import _plots
from ._model import BenchContext, Row, ScenarioResult, paired_ratio, spread_of

__all__ = ["run"]

SCENARIO = "server"
_CPU_MS = 20
_HASH_MB = 16
_CONNECTIONS = (4, 16)
_STORM = 256
_STORM_DEADLINE = 1.0
_OVERLOAD = 4.0
_OVERLOAD_DEADLINE = 0.5
#: (label, command after ``python -m``, path of the CPU endpoint) of each server raced.
_SERVERS: dict[str, tuple[list[str], str]] = {
    "hybridio": (["hybridio.web", "--no-access-log"], f"/cpu?ms={_CPU_MS}&mode=process"),
    "plain+pool": (["hybridio.web._rivals", "pool"], f"/cpu?ms={_CPU_MS}"),
    "plain+threads": (["hybridio.web._rivals", "threads"], f"/cpu?ms={_CPU_MS}"),
    "multi-process": (["hybridio.web._rivals", "multiproc"], f"/cpu?ms={_CPU_MS}"),
}
_BASELINE = "plain+pool"
_PAUSE_NOTE = "0.5 s"
#: The loads the seconds-long test mode runs (shapes checked, numbers meaningless).
_TINY_LOADS = ("/cpu inline", "/cpu process")
_LOADS: tuple[tuple[str, str], ...] = tuple(
    (f"/{endpoint} {mode}", f"/{endpoint}?{query}&mode={mode}")
    for endpoint, query in (("cpu", f"ms={_CPU_MS}"), ("hash", f"mb={_HASH_MB}"))
    for mode in ("inline", "thread", "process")
)


@dataclass(frozen=True)
class _Durations:
    idle: float
    load: float
    overload: float


def _durations(ctx: BenchContext) -> _Durations:
    return ctx.pick(full=_Durations(5.0, 6.0, 8.0), quick=_Durations(3.0, 3.0, 4.0),
                    tiny=_Durations(0.4, 0.5, 0.6))  # fmt: skip


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _median(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


# -- servers ----------------------------------------------------------------------------------


@dataclass
class _Server:
    label: str
    base: str
    cpu_path: str
    process: psutil.Process
    #: CPU seconds last seen per child pid: a worker killed between two readings keeps its last
    #: reading (its later seconds are lost, so a run that kills workers under-counts them).
    seen: dict[int, float] = field(default_factory=dict)

    def cpu_seconds(self) -> tuple[float, float]:
        """(the loop's, everything else's) CPU seconds so far: main thread vs threads + children.

        The multi-process server has no loop of its own: its processes are both loop and
        workers, all counted as loop.
        """
        loop = other = 0.0
        try:
            for thread in self.process.threads():
                seconds = thread.user_time + thread.system_time
                if thread.id == self.process.pid:
                    loop += seconds
                else:
                    other += seconds
            children = self.process.children(recursive=True)
        except psutil.NoSuchProcess:
            return loop, other
        for child in children:
            try:
                times = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            self.seen[child.pid] = times.user + times.system
        other += sum(self.seen.values())
        if self.label == "multi-process":
            return loop + other, 0.0
        return loop, other


@contextmanager
def _server(label: str, workers: int, loops_per_ms: float) -> Iterator[_Server]:
    module, cpu_path = _SERVERS[label]
    command = [sys.executable, "-m", *module, "--port", "0", "--workers", str(workers)]
    command += ["--loops-per-ms", f"{loops_per_ms:.1f}"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if match is None:
            raise RuntimeError(f"the {label} server did not start: {line!r}")
        yield _Server(label, f"http://127.0.0.1:{match.group(1)}", cpu_path,
                      psutil.Process(process.pid))  # fmt: skip
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _rss(server: psutil.Process) -> float:
    total = 0
    for process in [server, *server.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


# -- load -------------------------------------------------------------------------------------


def wrk_available() -> bool:
    """True when ``wrk`` is on PATH, after trying to install it with apt-get (as root)."""
    if shutil.which("wrk"):
        return True
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], capture_output=True,
                       timeout=300, check=False)  # fmt: skip
    return shutil.which("wrk") is not None


@dataclass
class _Load:
    """One closed-loop load's outcome."""

    seconds: float
    ok: int
    refused: int
    other: int
    p50_ms: float
    p99_ms: float
    client_cpu: float
    latencies_503: list[float] = field(default_factory=list)

    @property
    def ok_rate(self) -> float:
        return self.ok / self.seconds if self.seconds else math.nan

    @property
    def refused_rate(self) -> float:
        return self.refused / self.seconds if self.seconds else math.nan


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def parse_wrk(text: str) -> tuple[int, int, float, float, float]:
    """(requests, non-2xx responses, seconds, p50 ms, p99 ms) from ``wrk --latency`` output."""
    done = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    if done is None:
        raise RuntimeError(f"cannot read wrk's output: {text!r}")
    seconds = float(done.group(2)) * _UNITS[done.group(3)] / 1e3
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    quantiles = {q: float(v) * _UNITS[u] for q, v, u in
                 re.findall(r"^\s+(50|99)%\s+([\d.]+)(\w+)", text, re.MULTILINE)}  # fmt: skip
    return (int(done.group(1)), int(bad.group(1)) if bad else 0, seconds,
            quantiles.get("50", math.nan), quantiles.get("99", math.nan))  # fmt: skip


class _Runner:
    """Starts loads in parallel processes (wrk, else the built-in generator) and reads them."""

    def __init__(self, use_wrk: bool) -> None:
        self.use_wrk = use_wrk

    def command(self, url: str, connections: int, seconds: float, start_at: float,
                headers: Sequence[str] = ()) -> list[str]:  # fmt: skip
        if self.use_wrk:
            # wrk takes whole seconds.
            duration = f"-d{max(1, round(seconds))}s"
            command = ["wrk", "-t1", f"-c{connections}", duration, "--latency", url]
            for header in headers:
                command[1:1] = ["-H", header]
            return command
        command = [sys.executable, "-m", "hybridio.web._loadgen", "closed", url, "--duration",
                   str(seconds), "--connections", str(connections), "--start-at", str(start_at)]  # fmt: skip
        for header in headers:
            command += ["--header", header]
        return command

    def run(self, loads: Sequence[tuple[str, int, Sequence[str]]], seconds: float) -> list[_Load]:
        """Run ``(url, connections, headers)`` loads together for ``seconds``."""
        start_at = time.time() + (0.0 if self.use_wrk else 0.8)  # the generators' start-up
        with ExitStack() as stack:
            outputs = [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in loads]
            processes = [
                subprocess.Popen(self.command(url, connections, seconds, start_at, headers),
                                 stdout=out, stderr=subprocess.DEVNULL, text=True)
                for (url, connections, headers), out in zip(loads, outputs, strict=True)
            ]  # fmt: skip
            results = []
            for process, out in zip(processes, outputs, strict=True):
                _, status, usage = os.wait4(process.pid, 0)
                process.returncode = os.waitstatus_to_exitcode(status)
                if process.returncode != 0:
                    raise RuntimeError(f"load generator failed (exit {process.returncode})")
                out.seek(0)
                results.append(self._read(out.read(), usage.ru_utime + usage.ru_stime))
        return results

    def _read(self, text: str, cpu: float) -> _Load:
        if self.use_wrk:
            requests, bad, seconds, p50, p99 = parse_wrk(text)
            # wrk counts every non-2xx together: under these loads they are the 503s.
            return _Load(seconds, requests - bad, bad, 0, p50, p99, cpu)
        data: dict[str, Any] = json.loads(text)
        statuses: dict[str, int] = data["statuses"]
        ok = list(data["latencies_ms"].get("200", []))
        return _Load(data["seconds"], statuses.get("200", 0), statuses.get("503", 0),
                     sum(statuses.values()) - statuses.get("200", 0) - statuses.get("503", 0),
                     _quantile(ok, 0.5), _quantile(ok, 0.99), cpu,
                     list(data["latencies_ms"].get("503", [])))  # fmt: skip


def _open_loop(url: str, rate: float, seconds: float, headers: Sequence[str]) -> dict[str, Any]:
    command = [sys.executable, "-m", "hybridio.web._loadgen", "open", url, "--rate", f"{rate:.1f}",
               "--duration", str(seconds)]  # fmt: skip
    for header in headers:
        command += ["--header", header]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


# -- the run ----------------------------------------------------------------------------------


@dataclass
class _Race:
    """One server at one connection count, in one repeat."""

    load: _Load
    probe: _Load
    loop_cpu: float
    workers_cpu: float


def _settle(server: _Server, limit: float = 15.0) -> None:
    """Wait until ``server`` is idle: requests whose client left still run after a load."""
    deadline = time.monotonic() + limit
    before = sum(server.cpu_seconds())
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = sum(server.cpu_seconds())
        if now - before < 0.25 * 0.2:  # under 20% of a core
            return
        before = now


def _race(runner: _Runner, server: _Server, connections: int, seconds: float,
          headers: Sequence[str] = ()) -> _Race:  # fmt: skip
    loop0, other0 = server.cpu_seconds()
    load, probe = runner.run(
        [(server.base + server.cpu_path, connections, headers), (f"{server.base}/io?ms=1", 1, ())],
        seconds,
    )
    loop1, other1 = server.cpu_seconds()
    elapsed = load.seconds or seconds
    return _Race(load, probe, (loop1 - loop0) / elapsed, (other1 - other0) / elapsed)


def run(ctx: BenchContext) -> ScenarioResult:
    """Measure the servers: see the module docstring."""
    started = time.perf_counter()
    durations = _durations(ctx)
    repeats = ctx.repeats(full=3, quick=2, tiny=1)
    workers = os.cpu_count() or 2
    use_wrk = wrk_available()
    runner = _Runner(use_wrk)
    generator = "wrk" if use_wrk else "built-in generator (wrk not installed)"
    ctx.progress("server: calibrating the spin loop")
    loops_per_ms = calibrate()
    races: dict[tuple[str, int], list[_Race]] = {}
    storms: dict[str, list[_Race]] = {}
    modes = _Modes()
    overload: list[dict[str, Any]] = []
    labels = list(_SERVERS) if not ctx.tiny else ["hybridio", _BASELINE]
    with ExitStack() as stack:
        servers = {label: stack.enter_context(_server(label, workers, loops_per_ms))
                   for label in labels}  # fmt: skip
        hybrid = servers["hybridio"]
        for repeat in range(repeats):
            step = f"server: repeat {repeat + 1}/{repeats}"
            for connections in _CONNECTIONS:
                # Alternate the order between repeats so that no server always goes first.
                order = labels if repeat % 2 == 0 else labels[::-1]
                for label in order:
                    ctx.progress(f"{step}: {label}, {connections} connections")
                    race = _race(runner, servers[label], connections, durations.load)
                    races.setdefault((label, connections), []).append(race)
            for label in ("hybridio", _BASELINE):
                ctx.progress(f"{step}: retry storm, {label}, {_STORM} connections")
                # Longer: a full queue takes a second or so to give its first answers.
                storm = _race(runner, servers[label], _STORM, durations.load + 2,
                              [f"X-Request-Timeout: {_STORM_DEADLINE:g}"])  # fmt: skip
                storms.setdefault(label, []).append(storm)
                _settle(servers[label])
            modes.measure(ctx, runner, hybrid.base, durations, step)
            capacity = _median([r.load.ok_rate for r in races[("hybridio", 16)]])
            ctx.progress(f"{step}: overload at {_OVERLOAD:g}x")
            rss_before = _rss(hybrid.process)
            loop_before = hybrid.cpu_seconds()[0]
            load = _open_loop(f"{hybrid.base}/cpu?ms={_CPU_MS}&mode=process",
                              _OVERLOAD * capacity, durations.overload,
                              [f"X-Request-Timeout: {_OVERLOAD_DEADLINE:g}"])  # fmt: skip
            overload.append({"load": load, "rss": (rss_before, _rss(hybrid.process)),
                             "rate": _OVERLOAD * capacity,
                             "loop": hybrid.cpu_seconds()[0] - loop_before})  # fmt: skip
    rows = _race_rows(races, labels, repeats, generator)
    rows += _storm_rows(storms, races, repeats, generator)
    rows += modes.rows(repeats)
    rows += _overload_rows(overload, modes.idle_p99, repeats)
    plot = modes.plot(ctx)
    return ScenarioResult(
        name=SCENARIO,
        title="Hybrid server under load, against the servers users write instead",
        description=__doc__ or "",
        rows=rows,
        plots=[plot],
        seconds=time.perf_counter() - started,
        extra={"workers": workers, "connections": list(_CONNECTIONS), "storm": _STORM,
               "cpu_ms": _CPU_MS, "hash_mb": _HASH_MB, "durations": durations.__dict__,
               "generator": generator, "loops_per_ms": loops_per_ms,
               "races": {f"{label} c{c}": [_race_dict(r) for r in rs]
                         for (label, c), rs in races.items()}},
    )  # fmt: skip


def _race_dict(race: _Race) -> dict[str, float]:
    return {"ok_per_s": race.load.ok_rate, "503_per_s": race.load.refused_rate,
            "io_p50_ms": race.probe.p50_ms, "io_p99_ms": race.probe.p99_ms,
            "loop_cpu": race.loop_cpu, "workers_cpu": race.workers_cpu,
            "client_cpu": (race.load.client_cpu + race.probe.client_cpu) / race.load.seconds}  # fmt: skip


def _cpu_note(races: Sequence[_Race]) -> str:
    loop = _median([r.loop_cpu for r in races]) * 100
    work = _median([r.workers_cpu for r in races]) * 100
    client = _median([(r.load.client_cpu + r.probe.client_cpu) / r.load.seconds
                      for r in races]) * 100  # fmt: skip
    return f"CPU (% of a core): loop {loop:.0f}, workers {work:.0f}, client {client:.0f}"


def _verdict(ratios: Sequence[float], met: bool, target_ok: Any) -> str:
    """ "met"/"not met", or "n/a" when the repeats disagree (a noisy machine: inconclusive)."""
    if len(ratios) > 1 and len({bool(target_ok(r)) for r in ratios}) > 1:
        return "n/a"
    return "met" if met else "not met"


def _race_rows(races: dict[tuple[str, int], list[_Race]], labels: Sequence[str], repeats: int,
               generator: str) -> list[Row]:  # fmt: skip
    rows: list[Row] = []
    for connections in _CONNECTIONS:
        base = races[(_BASELINE, connections)]
        base_ok = [r.load.ok_rate for r in base]
        base_p99 = [r.probe.p99_ms for r in base]
        for label in labels:
            mine = races[(label, connections)]
            ok = [r.load.ok_rate for r in mine]
            p50 = [r.probe.p50_ms for r in mine]
            p99 = [r.probe.p99_ms for r in mine]
            refused = _median([r.load.refused_rate for r in mine])
            note = (f"{connections} connections, {generator}; {refused:.0f} x 503/s; "
                    f"/io p50 {_median(p50):.2f} ms; {_cpu_note(mine)}")  # fmt: skip
            ok_ratio = paired_ratio(ok, base_ok) or math.nan
            p99_ratio = paired_ratio(p99, base_p99) or math.nan
            target = verdict = p99_target = p99_verdict = None
            if label == "hybridio":
                per_repeat = [a / b for a, b in zip(ok, base_ok, strict=True) if b]
                target = "S1: >= 1.0x plain+pool"
                verdict = _verdict(per_repeat, ok_ratio >= 1.0, lambda r: r >= 1.0)
                per_repeat = [a / b for a, b in zip(p99, base_p99, strict=True) if b]
                p99_target = "S1: <= 1.0x plain+pool"
                p99_verdict = _verdict(per_repeat, p99_ratio <= 1.0, lambda r: r <= 1.0)
            name = f"{label} at {connections} connections"
            rows.append(Row(SCENARIO, f"{name}: ok req/s", _median(ok), "req/s", repeats,
                            spread_of(ok), f"{_BASELINE} ok req/s", _median(base_ok), ok_ratio,
                            target, verdict, note=note))  # fmt: skip
            rows.append(Row(SCENARIO, f"{name}: /io p99", _median(p99), "ms", repeats,
                            spread_of(p99), f"{_BASELINE} /io p99", _median(base_p99),
                            p99_ratio, p99_target, p99_verdict, note=note))  # fmt: skip
        if "multi-process" in labels:
            rows.append(_versus_multiprocess(races, connections, repeats))
    return rows


def _versus_multiprocess(races: dict[tuple[str, int], list[_Race]], connections: int,
                         repeats: int) -> Row:  # fmt: skip
    mine, theirs = races[("hybridio", connections)], races[("multi-process", connections)]
    better = [t.probe.p99_ms / m.probe.p99_ms for m, t in zip(mine, theirs, strict=True)]
    throughput = paired_ratio([m.load.ok_rate for m in mine], [t.load.ok_rate for t in theirs])
    ratio = _median(better)
    met = ratio >= 10 and (throughput or 0) >= 1.0
    return Row(SCENARIO, f"/io p99 of multi-process / hybridio at {connections} connections",
               ratio, "x", repeats, spread_of(better), "hybridio /io p99",
               _median([m.probe.p99_ms for m in mine]), ratio,
               "hybrid design: >= 10x better /io p99 at >= 1.0x the ok req/s",
               _verdict(better, met, lambda r: r >= 10),
               note=f"hybridio ok req/s = {throughput or math.nan:.2f}x multi-process")  # fmt: skip


def _storm_rows(storms: dict[str, list[_Race]], races: dict[tuple[str, int], list[_Race]],
                repeats: int, generator: str) -> list[Row]:  # fmt: skip
    rows = []
    for label, runs in storms.items():
        ok = [r.load.ok_rate for r in runs]
        calm = [r.load.ok_rate for r in races[(label, 16)]]
        ratio = paired_ratio(ok, calm) or math.nan
        refused = _median([r.load.refused_rate for r in runs])
        target = verdict = None
        if label == "hybridio":
            target = "S2: >= 0.9x own ok req/s at 16 connections"
            per_repeat = [a / b for a, b in zip(ok, calm, strict=True) if b]
            verdict = _verdict(per_repeat, ratio >= 0.9, lambda r: r >= 0.9)
        rows.append(Row(SCENARIO, f"retry storm ({_STORM} connections, {_STORM_DEADLINE:g} s deadline), {label}: ok req/s",
                        _median(ok), "req/s", repeats, spread_of(ok),
                        f"{label} ok req/s at 16 connections", _median(calm), ratio, target,
                        verdict, note=f"{generator}; {refused:.0f} x 503/s; /io p99 "
                        f"{_median([r.probe.p99_ms for r in runs]):.1f} ms; {_cpu_note(runs)}"))  # fmt: skip
    return rows


class _Modes:
    """Part 3: the demo server's endpoints saturated inline, in a thread, in a process."""

    def __init__(self) -> None:
        self.idle_p50: list[float] = []
        self.idle_p99_values: list[float] = []
        self.probe: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in _LOADS}
        self.throughput: dict[str, list[float]] = {label: [] for label, _ in _LOADS}
        self.refused: dict[str, int] = dict.fromkeys(self.throughput, 0)

    @property
    def idle_p99(self) -> float:
        return _median(self.idle_p99_values)

    def measure(self, ctx: BenchContext, runner: _Runner, base: str, durations: _Durations,
                step: str) -> None:  # fmt: skip
        io_url = f"{base}/io?ms=1"
        ctx.progress(f"{step}: idle probe")
        (idle,) = runner.run([(io_url, 1, ())], durations.idle)
        self.idle_p50.append(idle.p50_ms)
        self.idle_p99_values.append(idle.p99_ms)
        for label, path in _LOADS:
            if ctx.tiny and label not in _TINY_LOADS:
                continue
            ctx.progress(f"{step}: load {label}")
            load, probed = runner.run([(base + path, 4, ()), (io_url, 1, ())], durations.load)
            self.probe[label].append((probed.p50_ms, probed.p99_ms))
            self.throughput[label].append(load.ok_rate)
            self.refused[label] += load.refused

    def rows(self, repeats: int) -> list[Row]:
        idle = self.idle_p99
        rows = [
            Row(SCENARIO, "/io p50, idle", _median(self.idle_p50), "ms", repeats,
                spread_of(self.idle_p50)),
            Row(SCENARIO, "/io p99, idle", idle, "ms", repeats, spread_of(self.idle_p99_values)),
        ]  # fmt: skip
        inline = {"cpu": _median(self.throughput["/cpu inline"]),
                  "hash": _median(self.throughput["/hash inline"])}  # fmt: skip
        for label, _ in _LOADS:
            p50s = [p50 for p50, _ in self.probe[label]]
            p99s = [p99 for _, p99 in self.probe[label]]
            p99 = _median(p99s)
            rows.append(Row(SCENARIO, f"/io p50 under {label} load", _median(p50s), "ms",
                            repeats, spread_of(p50s), "/io p50, idle", _median(self.idle_p50),
                            _median(p50s) / _median(self.idle_p50)))  # fmt: skip
            target, verdict = None, "n/a"
            if label == "/cpu process":
                target = "moonshot: <= 1.5x idle p99"
                verdict = "met" if p99 / idle <= 1.5 else "not met"
            rows.append(Row(SCENARIO, f"/io p99 under {label} load", p99, "ms", repeats,
                            spread_of(p99s), "/io p99, idle", idle, p99 / idle if idle else math.nan,
                            target, verdict))  # fmt: skip
            rps = _median(self.throughput[label])
            endpoint = label.split()[0].strip("/")
            ratio = rps / inline[endpoint] if inline[endpoint] else math.nan
            target, verdict = None, "n/a"
            if label == "/cpu process":
                target = ">= 1.6x inline"
                verdict = "met" if ratio >= 1.6 else "not met"
            rows.append(Row(SCENARIO, f"{label} throughput", rps, "req/s", repeats,
                            spread_of(self.throughput[label]), f"/{endpoint} inline throughput",
                            inline[endpoint], ratio, target, verdict,
                            note=f"4 connections, closed loop; {self.refused[label]} x 503"))  # fmt: skip
        return rows

    def plot(self, ctx: BenchContext) -> str:
        bars = {"idle": self.idle_p99}
        for label, _ in _LOADS:
            bars[label.lstrip("/")] = _median([p99 for _, p99 in self.probe[label]])
        name = "server_io_p99.png"
        _plots.bar_plot(
            ctx.out / name,
            "/io?ms=1 p99 latency while each endpoint is saturated",
            "p99 latency (ms, log scale)",
            {k: (v if not math.isnan(v) else 0.0) for k, v in bars.items()},
            logy=True,
        )
        return name


def _overload_rows(overload: list[dict[str, Any]], idle: float, repeats: int) -> list[Row]:
    refused_p99 = [_quantile(o["load"]["latencies_ms"].get("503", []), 0.99) for o in overload]
    growth = [after / before for before, after in (o["rss"] for o in overload)]
    shares = [o["load"]["statuses"].get("503", 0) / max(1, sum(o["load"]["statuses"].values()))
              for o in overload]  # fmt: skip
    ok_p99 = [_quantile(o["load"]["latencies_ms"].get("200", []), 0.99) for o in overload]
    p99 = _median(refused_p99)
    memory = max(growth)
    rate = _median([o["rate"] for o in overload])
    note = (f"open loop at {rate:.0f} req/s ({_OVERLOAD:g}x capacity), deadline "
            f"{_OVERLOAD_DEADLINE:g} s; {_median(shares) * 100:.0f}% refused with 503; ok p99 "
            f"{_median(ok_p99):.0f} ms")  # fmt: skip
    per_request = [o["loop"] / max(1, sum(o["load"]["statuses"].values())) * 1e6
                   for o in overload]  # fmt: skip
    return [
        Row(SCENARIO, "overload: 503 latency p99", p99, "ms", repeats, spread_of(refused_p99),
            note=f"{note}; refusals are held {_PAUSE_NOTE} by design (Limit.pause)"),
        Row(SCENARIO, "overload: loop CPU per request", _median(per_request), "us", repeats,
            spread_of(per_request), target="S2: 503 costs the loop almost nothing", note=note),
        Row(SCENARIO, "overload: server memory after/before", memory, "x", repeats,
            spread_of(growth), "server + workers RSS before the overload",
            _median([o["rss"][0] for o in overload]), memory, "S2: flat (<= 1.10x)",
            "met" if memory <= 1.10 else "not met", note="worst repeat; RSS in MiB as baseline"),
    ]  # fmt: skip


# -- the numbers in the docs ------------------------------------------------------------------

#: docs files and the marker pair whose lines ``python -m hybridio.bench._server`` replaces.
_MARKERS = ("<!-- server-numbers:start -->", "<!-- server-numbers:end -->")


def _race_medians(extra: dict[str, Any], key: str) -> dict[str, float]:
    runs: list[dict[str, float]] = extra["races"][key]
    return {field: _median([r[field] for r in runs if r[field] is not None]) for field in runs[0]}


def render_numbers(document: dict[str, Any]) -> str:
    """The Markdown tables of a ``hybridio bench server`` run's ``results.json`` document.

    Raises:
        ValueError: the document has no successful ``server`` scenario.
    """
    scenario = next((s for s in document["scenarios"]
                     if s["name"] == SCENARIO and s["status"] == "ok"), None)  # fmt: skip
    if scenario is None:
        raise ValueError("results.json has no successful `server` scenario: run it first")
    extra = scenario["extra"]
    rows = {row["name"]: row for row in scenario["rows"]}
    env = document["environment"]
    load = ", ".join(f"{x:.1f}" for x in env.get("load_average") or [])
    lines = [
        (
            f"<!-- Generated by `python -m hybridio.bench._server` from `hybridio bench server "
            f"--{document['mode']}` ({document['created']}); do not edit by hand. -->"
        ),
        "",
        (
            f"Run: `hybridio bench server --{document['mode']}`, {document['created']}, "
            f"{env['cpus']} CPUs, load average at start {load or 'unknown'} (a shared machine), "
            f"load from {extra['generator']}, {extra['workers']} worker(s) per server, "
            f"{extra['durations']['load']:g} s per load, medians of the repeats."
        ),
        "",
        (
            "| server | connections | ok req/s | vs plain+pool | 503/s | `/io` p50 | `/io` p99 "
            "| vs plain+pool | CPU loop / workers / client |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    labels = [label for label in _SERVERS if f"{label} c{_CONNECTIONS[0]}" in extra["races"]]
    for connections in extra["connections"]:
        for label in labels:
            m = _race_medians(extra, f"{label} c{connections}")
            ok = rows[f"{label} at {connections} connections: ok req/s"]
            p99 = rows[f"{label} at {connections} connections: /io p99"]
            lines.append(
                f"| {label} | {connections} | {m['ok_per_s']:.1f} | {ok['ratio']:.2f}x | "
                f"{m['503_per_s']:.0f} | {m['io_p50_ms']:.1f} ms | {m['io_p99_ms']:.1f} ms | "
                f"{p99['ratio']:.2f}x | {m['loop_cpu'] * 100:.0f}% / {m['workers_cpu'] * 100:.0f}% "
                f"/ {m['client_cpu'] * 100:.0f}% |"
            )
    lines += ["", ("Targets, judged per repeat (*n/a* = the repeats disagree: inconclusive "
              "on this machine):"), ""]  # fmt: skip
    for connections in extra["connections"]:
        ok = rows[f"hybridio at {connections} connections: ok req/s"]
        p99 = rows[f"hybridio at {connections} connections: /io p99"]
        lines.append(
            f"- {connections} connections: ok req/s **{ok['ratio']:.2f}x** plain+pool "
            f"({ok['target']}): *{ok['verdict']}*; `/io` p99 **{p99['ratio']:.2f}x** "
            f"({p99['target']}): *{p99['verdict']}*"
        )
        versus = rows.get(f"/io p99 of multi-process / hybridio at {connections} connections")
        if versus is not None:
            lines.append(
                f"- {connections} connections, against the multi-process server: `/io` p99 "
                f"**{versus['value']:.1f}x** better, {versus['note']} ({versus['target']}): "
                f"*{versus['verdict']}*"
            )
    lines += [
        "",
        "| retry storm | ok req/s | vs own at 16 connections | note |",
        "|---|---|---|---|",
    ]
    for name, row in rows.items():
        if name.startswith("retry storm"):
            verdict = f" ({row['target']}: *{row['verdict']}*)" if row.get("target") else ""
            lines.append(f"| {name.rsplit(', ', 1)[1].split(':')[0]} | {row['value']:.1f} | "
                         f"{row['ratio']:.2f}x{verdict} | {row['note']} |")  # fmt: skip
    idle = rows["/io p99, idle"]["value"]
    lines += ["", (f"Where the work runs (hybridio's demo server, 4 connections; idle `/io` p99 "
              f"{idle:.1f} ms):"), "",
              "| load | `/io` p50 | `/io` p99 | p99 vs idle | throughput | vs inline |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for label, _ in _LOADS:
        p50 = rows[f"/io p50 under {label} load"]
        p99 = rows[f"/io p99 under {label} load"]
        rps = rows[f"{label} throughput"]
        lines.append(f"| `{label}` | {p50['value']:.1f} ms | {p99['value']:.1f} ms | "
                     f"{p99['ratio']:.1f}x | {rps['value']:.1f} req/s | {rps['ratio']:.2f}x |")  # fmt: skip
    refused = rows["overload: 503 latency p99"]
    cost = rows["overload: loop CPU per request"]
    memory = rows["overload: server memory after/before"]
    lines += ["", (f"Overload ({refused['note']}): the loop spent **{cost['value']:.0f} µs** of CPU "
              f"per request answered; server memory after/before **{memory['value']:.2f}x** "
              f"(*{memory['verdict']}*); 503 p99 {refused['value']:.0f} ms (held on purpose).")]  # fmt: skip
    return "\n".join(lines) + "\n"


def replace_between_markers(text: str, numbers: str) -> str:
    """``text`` with the lines between the two ``_MARKERS`` replaced by ``numbers``.

    Raises:
        ValueError: ``text`` lacks the markers.
    """
    start, end = text.find(_MARKERS[0]), text.find(_MARKERS[1])
    if start < 0 or end < start:
        raise ValueError(f"no {_MARKERS[0]} ... {_MARKERS[1]} section")
    return text[: start + len(_MARKERS[0])] + "\n" + numbers + text[end:]


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m hybridio.bench._server BENCH_OUT DOC.md...``: refresh the docs' numbers."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2:
        raise SystemExit("usage: python -m hybridio.bench._server BENCH_OUT DOC.md [DOC.md...]")
    from pathlib import Path

    document = json.loads((Path(args[0]) / "results.json").read_text())
    numbers = render_numbers(document)
    for doc in map(Path, args[1:]):
        doc.write_text(replace_between_markers(doc.read_text(), numbers))
        print(f"updated {doc}")


if __name__ == "__main__":
    main()
