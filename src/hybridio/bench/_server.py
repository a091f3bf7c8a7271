"""Scenario ``server``: the demo server under load, for each place CPU work can run.

The demo server (``python -m hybridio.web``) runs in its own process on 127.0.0.1 with one worker
process per core; a closed-loop load generator (4 connections) saturates ``/cpu?ms=20`` or
``/hash`` in one mode, while a probe in a third process times ``/io?ms=1``. Reported per mode:
``/io`` p50/p99 against the idle p99 measured in the same repeat, CPU endpoint throughput (against
inline), and 503s. Then an open-loop overload at 4x the measured process-mode capacity: 503
latency, ``/io`` p99 against idle, server memory (server + workers) before and after.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psutil

from . import _plots
from ._model import BenchContext, Row, ScenarioResult, spread_of

__all__ = ["run"]

SCENARIO = "server"
_CPU_MS = 20
_HASH_MB = 16
_CONNECTIONS = 4
_OVERLOAD = 4.0
_WORKER_NICE = 10
#: The loads the seconds-long test mode runs (shapes checked, numbers meaningless).
_TINY_LOADS = ("/cpu inline", "/cpu process")
#: (label, path) of each saturating load.
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
    if ctx.tiny:
        return _Durations(0.4, 0.5, 0.6)
    return _Durations(3.0, 3.0, 4.0) if ctx.quick else _Durations(5.0, 6.0, 8.0)


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@contextmanager
def _server(workers: int) -> Iterator[tuple[str, psutil.Process]]:
    command = [sys.executable, "-m", "hybridio.web", "--port", "0", "--workers", str(workers)]
    command += ["--worker-nice", str(_WORKER_NICE), "--grace", "5"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if match is None:
            raise RuntimeError(f"the demo server did not start: {line!r}")
        yield f"http://127.0.0.1:{match.group(1)}", psutil.Process(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _generate(runs: Sequence[tuple[str, str, Sequence[str]]], seconds: float) -> list[Any]:
    """Run load generators in parallel processes, starting together; return their results."""
    start_at = time.time() + 0.8  # interpreter start-up of the generators
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "hybridio.web._loadgen", mode, url, "--duration",
             str(seconds), "--start-at", str(start_at), *options],
            stdout=subprocess.PIPE,
            text=True,
        )
        for mode, url, options in runs
    ]  # fmt: skip
    results = []
    for process in processes:
        out, _ = process.communicate(timeout=seconds + 60)
        if process.returncode != 0:
            raise RuntimeError(f"load generator failed (exit {process.returncode})")
        results.append(json.loads(out))
    return results


def _rss(server: psutil.Process) -> float:
    processes = [server, *server.children(recursive=True)]
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def _ok(result: dict[str, Any]) -> list[float]:
    return list(result["latencies_ms"].get("200", []))


def run(ctx: BenchContext) -> ScenarioResult:
    """Measure the demo server: see the module docstring."""
    started = time.perf_counter()
    durations = _durations(ctx)
    repeats = ctx.repeats(full=3, quick=2, tiny=1)
    workers = os.cpu_count() or 2
    idle_p99: list[float] = []
    idle_p50: list[float] = []
    probe: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in _LOADS}
    throughput: dict[str, list[float]] = {label: [] for label, _ in _LOADS}
    refused: dict[str, int] = dict.fromkeys(throughput, 0)
    overload: list[dict[str, Any]] = []
    with _server(workers) as (base, server):
        io_url = f"{base}/io?ms=1"
        for repeat in range(repeats):
            ctx.progress(f"server: repeat {repeat + 1}/{repeats}: idle probe")
            (idle,) = _generate([("probe", io_url, ())], durations.idle)
            idle_p50.append(_quantile(_ok(idle), 0.5))
            idle_p99.append(_quantile(_ok(idle), 0.99))
            for label, path in _LOADS:
                if ctx.tiny and label not in _TINY_LOADS:
                    continue
                ctx.progress(f"server: repeat {repeat + 1}/{repeats}: load {label}")
                load, probed = _generate(
                    [("closed", base + path, ("--connections", str(_CONNECTIONS))),
                     ("probe", io_url, ())],
                    durations.load,
                )  # fmt: skip
                probe[label].append((_quantile(_ok(probed), 0.5), _quantile(_ok(probed), 0.99)))
                throughput[label].append(load["statuses"].get("200", 0) / load["seconds"])
                refused[label] += load["statuses"].get("503", 0)
            capacity = statistics.median(throughput["/cpu process"])
            ctx.progress(f"server: repeat {repeat + 1}/{repeats}: overload at {_OVERLOAD:g}x")
            rss_before = _rss(server)
            load, probed = _generate(
                [("open", f"{base}/cpu?ms={_CPU_MS}&mode=process",
                  ("--rate", f"{_OVERLOAD * capacity:.1f}")),
                 ("probe", io_url, ())],
                durations.overload,
            )  # fmt: skip
            overload.append(
                {"load": load, "probe": probed, "rss": (rss_before, _rss(server)),
                 "rate": _OVERLOAD * capacity}
            )  # fmt: skip
    rows = _rows(idle_p50, idle_p99, probe, throughput, refused, overload, repeats)
    plot = _plot(ctx, idle_p50, idle_p99, probe, overload)
    return ScenarioResult(
        name=SCENARIO,
        title="Hybrid server under load: inline vs thread vs process",
        description=__doc__ or "",
        rows=rows,
        plots=[plot],
        seconds=time.perf_counter() - started,
        extra={"workers": workers, "worker_nice": _WORKER_NICE, "connections": _CONNECTIONS,
               "cpu_ms": _CPU_MS, "hash_mb": _HASH_MB, "durations": durations.__dict__},
    )  # fmt: skip


def _median(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def _rows(
    idle_p50: list[float],
    idle_p99: list[float],
    probe: dict[str, list[tuple[float, float]]],
    throughput: dict[str, list[float]],
    refused: dict[str, int],
    overload: list[dict[str, Any]],
    repeats: int,
) -> list[Row]:
    idle = _median(idle_p99)
    rows = [
        Row(SCENARIO, "/io p50, idle", _median(idle_p50), "ms", repeats, spread_of(idle_p50)),
        Row(SCENARIO, "/io p99, idle", idle, "ms", repeats, spread_of(idle_p99)),
    ]
    inline = {
        "cpu": _median(throughput["/cpu inline"]),
        "hash": _median(throughput["/hash inline"]),
    }
    for label, _ in _LOADS:
        p50s = [p50 for p50, _ in probe[label]]
        p99s = [p99 for _, p99 in probe[label]]
        p99 = _median(p99s)
        ratio = p99 / idle if idle else math.nan
        target, verdict = None, "n/a"
        if label == "/cpu process":
            target, verdict = "S1: <= 1.5x idle p99", "met" if ratio <= 1.5 else "not met"
        rows.append(Row(SCENARIO, f"/io p50 under {label} load", _median(p50s), "ms", repeats,
                        spread_of(p50s), "/io p50, idle", _median(idle_p50),
                        _median(p50s) / _median(idle_p50)))  # fmt: skip
        rows.append(Row(SCENARIO, f"/io p99 under {label} load", p99, "ms", repeats,
                        spread_of(p99s), "/io p99, idle", idle, ratio, target, verdict))  # fmt: skip
        rps = _median(throughput[label])
        base_label = label.split()[0].strip("/")
        ratio = rps / inline[base_label] if inline[base_label] else math.nan
        target, verdict = None, "n/a"
        if label == "/cpu process":
            target, verdict = "S1: >= 1.6x inline", "met" if ratio >= 1.6 else "not met"
        rows.append(Row(SCENARIO, f"{label} throughput", rps, "req/s", repeats,
                        spread_of(throughput[label]), f"/{base_label} inline throughput",
                        inline[base_label], ratio, target, verdict,
                        note=f"{_CONNECTIONS} connections, closed loop; {refused[label]} x 503"))  # fmt: skip
    rows.extend(_overload_rows(overload, idle, repeats))
    return rows


def _overload_rows(overload: list[dict[str, Any]], idle: float, repeats: int) -> list[Row]:
    refused_p99 = [_quantile(o["load"]["latencies_ms"].get("503", []), 0.99) for o in overload]
    io_p99 = [_quantile(_ok(o["probe"]), 0.99) for o in overload]
    growth = [after / before for before, after in (o["rss"] for o in overload)]
    shares = [o["load"]["statuses"].get("503", 0) / max(1, sum(o["load"]["statuses"].values()))
              for o in overload]  # fmt: skip
    p99 = _median(refused_p99)
    io = _median(io_p99)
    memory = max(growth)
    rate = _median([o["rate"] for o in overload])
    note = f"open loop at {rate:.0f} req/s ({_OVERLOAD:g}x process capacity)"
    return [
        Row(SCENARIO, "overload: 503 latency p99", p99, "ms", repeats, spread_of(refused_p99),
            "/io p99, idle", idle, p99 / idle if idle else math.nan, "S2: < 10 ms",
            "met" if p99 < 10 else "not met",
            note=f"{note}; {_median(shares) * 100:.0f}% of requests refused with 503"),
        Row(SCENARIO, "overload: /io p99", io, "ms", repeats, spread_of(io_p99),
            "/io p99, idle", idle, io / idle if idle else math.nan, "S2: <= 1.5x idle p99",
            "met" if io / idle <= 1.5 else "not met", note=note),
        Row(SCENARIO, "overload: server memory after/before", memory, "x", repeats,
            spread_of(growth), "server + workers RSS before the overload",
            _median([o["rss"][0] for o in overload]), memory, "S2: flat (<= 1.10x)",
            "met" if memory <= 1.10 else "not met", note="worst repeat; RSS in MiB as baseline"),
    ]  # fmt: skip


def _plot(
    ctx: BenchContext,
    idle_p50: list[float],
    idle_p99: list[float],
    probe: dict[str, list[tuple[float, float]]],
    overload: list[dict[str, Any]],
) -> str:
    bars = {"idle": _median(idle_p99)}
    for label, _ in _LOADS:
        bars[label.lstrip("/")] = _median([p99 for _, p99 in probe[label]])
    bars["overload 4x"] = _median([_quantile(_ok(o["probe"]), 0.99) for o in overload])
    name = "server_io_p99.png"
    _plots.bar_plot(
        ctx.out / name,
        "/io?ms=1 p99 latency while each endpoint is saturated",
        "p99 latency (ms, log scale)",
        {k: (v if not math.isnan(v) else 0.0) for k, v in bars.items()},
        logy=True,
    )
    return name
