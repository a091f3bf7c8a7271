"""Claims about what processes cost: start-up, memory and communication."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import statistics
import threading
import time
import warnings
from typing import Any

import anyio
import psutil

import hybridio

from .. import _workloads
from . import _work as work
from ._claims_common import SCENARIO, Part, fact, gather, verdict_independent
from ._model import MIN_REPEATS, BenchContext, Series, judge
from ._plots import Line, bar_plot, line_plot
from ._targets import FASTER, MUCH

__all__ = ["ipc", "memory", "startup"]


def _start_thread() -> float:
    start = time.perf_counter()
    thread = threading.Thread(target=work.noop)
    thread.start()
    thread.join()
    return time.perf_counter() - start


def _thread_start(count: int = 5) -> float:
    return statistics.median(_start_thread() for _ in range(count))


def _start_process(method: str, target: Any = os.getpid) -> tuple[float, int | None]:
    """Start and join a process: (seconds, exit code). The default target imports nothing."""
    context: Any = multiprocessing.get_context(method)  # typed as BaseContext, lacks Process
    process = context.Process(target=target)
    start = time.perf_counter()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork in a process with threads; forking is what is measured.
        warnings.simplefilter("ignore", DeprecationWarning)
        process.start()
    process.join()
    elapsed, code = time.perf_counter() - start, process.exitcode
    process.close()
    return elapsed, code


def _inherits_mark(method: str) -> bool:
    """Does a child started with ``method`` see state the parent set before starting it?"""
    work.MARK["set"] = True
    try:
        return _start_process(method, work.exit_with_mark)[1] == 1
    finally:
        work.MARK["set"] = False


def startup(ctx: BenchContext) -> Part:
    """Start and join a thread vs a process per start method; first call of a fresh pool."""
    part = Part()
    base = "start + join a thread"
    wanted = ("fork", "spawn") if ctx.tiny else ("fork", "forkserver", "spawn")
    methods = [m for m in wanted if m in multiprocessing.get_all_start_methods()]
    bars: dict[str, Series] = {}
    for method in methods:
        if method == "forkserver":
            _start_process(method)  # the first start also starts the fork server: not counted
        series = bars[method] = Series(f"start + join a process ({method})", "s", base)
        for _ in ctx.rounds((series, MUCH), (series, FASTER)):
            series.add(_start_process(method)[0], _thread_start())
        ctx.progress(f"{method} {series.median * 1000:.1f} ms")
        part.rows += [
            series.row(SCENARIO, rule=MUCH, claim="slow_start"),
            series.row(SCENARIO, rule=MUCH, claim="heavyweight"),
            series.row(SCENARIO, rule=FASTER, claim="thread_fast_start"),
        ]

    async def fresh_pool() -> tuple[float, float]:
        start = time.perf_counter()
        async with hybridio.Runtime(cpu_workers=1) as rt:
            await rt.run_cpu(work.noop)
            first = time.perf_counter() - start
            start = time.perf_counter()
            await rt.run_cpu(work.noop)
            return first, time.perf_counter() - start

    pool = bars["hybridio pool"] = Series("fresh hybridio pool: first run_cpu call", "s", base)
    warm = Series("warm call", "s")
    for _ in ctx.rounds((pool, MUCH), budget=ctx.pick(30.0, 10.0, 0.0)):
        first, again = anyio.run(fresh_pool)
        pool.add(first, _thread_start())
        warm.add(again)
    note = f"a warm call then takes {warm.median * 1e6:.0f} µs: pay start-up once per pool"
    part.rows.append(pool.row(SCENARIO, rule=MUCH, claim="slow_start", note=note))
    # Fork copies the parent, spawn starts a fresh interpreter: "independent" depends on it.
    inherits = {m: _inherits_mark(m) for m in ("fork", "spawn") if m in methods}
    summary = ", ".join(f"{m}: {'inherits' if v else 'fresh'}" for m, v in inherits.items())
    verdict = verdict_independent(list(inherits.values()))
    name = "start methods whose children inherit the parent's state"
    inherited = sum(inherits.values())
    part.rows.append(
        fact(name, inherited, f"of {len(inherits)}", "independent", verdict, note=summary)
    )
    thread = Series("thread", "s")
    for s in bars.values():
        thread.values += s.baseline_values
    name = "claims-startup.png"
    bar_plot(
        ctx.out / name,
        "Start-up: start + join (median, 95% interval)",
        "milliseconds (log scale)",
        {"thread": thread, **bars},
        scale=1000,
        logy=True,
    )
    part.plots.append(name)
    return part


def memory(ctx: BenchContext) -> Part:
    """Memory per worker process (RSS and USS) vs per extra thread (growth of our RSS).

    Memory is not a timing: it is judged on the smallest and largest worker, not on an interval.
    """
    workers = ctx.pick(4, 2, 1)
    thread_count = ctx.pick(64, 32, 8)

    async def processes() -> list[Any]:
        async with hybridio.Runtime(cpu_workers=workers) as rt:
            await gather([lambda: rt.run_cpu(_workloads.spin, 1000) for _ in range(workers)])
            return [psutil.Process(pid).memory_full_info() for pid in rt.worker_pids()]

    infos = anyio.run(processes)
    stop = threading.Event()
    before = psutil.Process().memory_info().rss
    threads = [threading.Thread(target=stop.wait) for _ in range(thread_count)]
    for thread in threads:
        thread.start()
    after = psutil.Process().memory_info().rss
    stop.set()
    for thread in threads:
        thread.join()
    # RSS moves by whole pages and other threads allocate too: floor at one page per thread.
    per_thread = max(4096.0, (after - before) / thread_count)
    base = f"RSS growth per thread ({thread_count} idle threads)"
    part = Part()
    for label, field in (("RSS", "rss"), ("USS (memory only it uses)", "uss")):
        series = Series(f"{label} per worker process", "bytes", base)
        for info in infos:
            series.add(float(getattr(info, field)), per_thread)
        ratios = series.ratios()
        verdict, _ = judge(MUCH, (min(ratios), max(ratios)), MIN_REPEATS)
        part.rows += [
            series.row(SCENARIO, claim=c, verdict=verdict)
            for c in ("more_memory", "thread_memory", "heavyweight")
        ]
    return part


def ipc(ctx: BenchContext) -> Part:
    """Round trip of a payload to a worker process vs to a thread vs pickling it in place."""
    sizes = ctx.pick(
        [100, 10_000, 1_000_000, 10_000_000, 50_000_000],
        [100, 10_000, 1_000_000, 10_000_000],
        [100, 100_000],
    )
    part = Part()
    lines = {name: Line(name) for name in ("process", "thread", "pickle only")}
    share = 0.0

    async def main() -> None:
        nonlocal share
        async with hybridio.Runtime(cpu_workers=1, threads=1) as rt:
            await rt.run_cpu(work.noop)
            await rt.run_blocking(work.noop)
            for size in sizes:
                payload = bytes(size)
                name = f"round trip of {size:,} bytes to a worker process"
                proc = Series(name, "s", "the same call to a worker thread")
                pickled = Series("pickle only", "s")
                for _ in ctx.rounds((proc, MUCH), budget=ctx.pick(20.0, 6.0, 0.0)):
                    start = time.perf_counter()
                    await rt.run_cpu(work.payload_len, payload)
                    middle = time.perf_counter()
                    await rt.run_blocking(work.payload_len, payload)
                    end = time.perf_counter()
                    pickle.loads(pickle.dumps(payload, 5))
                    pickled.add(time.perf_counter() - end)
                    proc.add(middle - start, end - middle)
                thread = Series("thread", "s", values=proc.baseline_values)
                for line, s in zip(lines.values(), (proc, thread, pickled), strict=True):
                    line.add(size, s.median, s.value_interval())
                share = pickled.median / proc.median
                ctx.progress(f"{size:,} B: {proc.median * 1000:.2f} ms")
                note = f"pickling alone {pickled.median * 1e6:.0f} µs"
                part.rows.append(proc.row(SCENARIO, rule=MUCH, claim="ipc", note=note))

    anyio.run(main)
    # In code, IPC through hybridio is one call; what remains is a cost, measured here.
    name = f"share of pickling in the {sizes[-1]:,}-byte round trip"
    part.rows.append(fact(name, 100 * share, "%", "ipc", "qualified", note="one call to use"))
    name = "claims-ipc-vs-payload.png"
    line_plot(
        ctx.out / name,
        "Round trip vs payload size (median, 95% interval)",
        "payload (bytes, log scale)",
        "seconds (log scale)",
        list(lines.values()),
        logx=True,
        logy=True,
    )
    part.plots.append(name)
    return part
