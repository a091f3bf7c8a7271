"""Claims about what processes cost: start-up, memory, communication, access to data."""

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
from ._claims_common import claim_rows, one_shot, rates
from ._model import MIN_REPEATS, BenchContext, ScenarioResult, Series, fact, judge, median_interval
from ._plots import Line, bar_plot, line_plot
from ._targets import FASTER, FASTER_ACCESS, MUCH


def _thread_start(count: int = 5) -> float:
    """Start and join a thread: the median of ``count`` (seconds)."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        thread = threading.Thread(target=_workloads.noop)
        thread.start()
        thread.join()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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


def startup(ctx: BenchContext, result: ScenarioResult) -> None:
    """Start and join a thread vs a process per start method; first call of a fresh pool."""
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
        result.rows += claim_rows(series, "slow_start heavyweight", MUCH)
        result.rows += claim_rows(series, "thread_fast_start", FASTER)

    async def fresh_pool() -> tuple[float, float]:
        start = time.perf_counter()
        async with hybridio.Runtime(cpu_workers=1) as rt:
            await rt.run_cpu(_workloads.noop)
            first = time.perf_counter() - start
            (rate,) = await rates(rt, 1, ["cpu"], _workloads.noop)
        return first, 1 / rate

    pool = bars["hybridio pool"] = Series("fresh hybridio pool: first run_cpu call", "s", base)
    warm = Series("warm call", "s")
    for _ in ctx.rounds((pool, MUCH), budget=ctx.pick(30.0, 10.0, 0.0)):
        first, again = anyio.run(fresh_pool)
        pool.add(first, _thread_start())
        warm.add(again)
    note = f"a warm call then takes {warm.median * 1e6:.0f} µs: pay start-up once per pool"
    result.rows += claim_rows(pool, "slow_start", MUCH, note=note)
    # Fork copies the parent, spawn starts a fresh interpreter: "independent" depends on it.
    inherits = {}
    for method in ("fork", "spawn"):
        if method in methods:
            work.STATE["mark"] = True
            inherits[method] = _start_process(method, work.exit_with_mark)[1] == 1
            work.STATE["mark"] = False
    name = "start methods whose children inherit the parent's state"
    count = fact(name, sum(inherits.values()), f"of {len(inherits)}")
    verdict = one_shot(holds=not any(inherits.values()), fails=all(inherits.values()))
    summary = ", ".join(f"{m}: {'inherits' if v else 'fresh'}" for m, v in inherits.items())
    result.rows += claim_rows(count, "independent", verdict=verdict, note=summary)
    thread = Series("thread", "s", values=[v for s in bars.values() for v in s.baseline_values])
    path = bar_plot(
        ctx.out / "claims-startup.png",
        "Start-up: start + join (median, 95% interval)",
        "milliseconds (log scale)",
        {"thread": thread, **bars},
        scale=1000,
        logy=True,
    )
    result.plots.append(path.name)


def memory(ctx: BenchContext, result: ScenarioResult) -> None:
    """Memory per worker process (RSS and USS) vs per extra thread (growth of our RSS).

    Memory is not a timing: it is judged on the smallest and largest worker, not on an interval.
    """
    workers, thread_count = ctx.pick(4, 2, 1), ctx.pick(64, 32, 8)

    async def processes() -> list[Any]:
        async with hybridio.Runtime(cpu_workers=workers) as rt:
            await rates(rt, workers, ["cpu"], _workloads.spin, 1000)
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
    for label, field in (("RSS", "rss"), ("USS (memory only it uses)", "uss")):
        series = Series(f"{label} per worker process", "bytes", base)
        for info in infos:
            series.add(float(getattr(info, field)), per_thread)
        verdict, _ = judge(MUCH, (min(series.ratios()), max(series.ratios())), MIN_REPEATS)
        result.rows += claim_rows(series, "more_memory thread_memory heavyweight", verdict=verdict)


def ipc(ctx: BenchContext, result: ScenarioResult) -> None:
    """Round trip of a payload to a worker process vs to a thread vs pickling it in place."""
    sizes = ctx.pick(
        [100, 10_000, 1_000_000, 10_000_000, 50_000_000],
        [100, 10_000, 1_000_000, 10_000_000],
        [100, 100_000],
    )
    lines = [Line(name) for name in ("process", "thread", "pickle only")]
    share = 0.0

    async def main() -> None:
        nonlocal share
        async with hybridio.Runtime(cpu_workers=1, threads=1) as rt:
            await rates(rt, 1, ["cpu", "blocking"], _workloads.noop)
            for size in sizes:
                payload = bytes(size)
                name = f"round trip of {size:,} bytes to a worker process"
                proc = Series(name, "s", "the same call to a worker thread")
                pickled = Series("pickle only", "s")
                for _ in ctx.rounds((proc, MUCH), budget=ctx.pick(20.0, 6.0, 0.0)):
                    cpu, blocking = await rates(rt, 1, ["cpu", "blocking"], len, payload)
                    start = time.perf_counter()
                    pickle.loads(pickle.dumps(payload, 5))
                    pickled.add(time.perf_counter() - start)
                    proc.add(1 / cpu, 1 / blocking)
                for line, values in zip(
                    lines, (proc.values, proc.baseline_values, pickled.values), strict=True
                ):
                    line.add(size, statistics.median(values), median_interval(values))
                share = pickled.median / proc.median
                ctx.progress(f"{size:,} B: {proc.median * 1000:.2f} ms")
                note = f"pickling alone {pickled.median * 1e6:.0f} µs"
                result.rows += claim_rows(proc, "ipc", MUCH, note=note)

    anyio.run(main)
    # In code, IPC through hybridio is one call: what remains is a cost, measured here.
    name = f"share of pickling in the {sizes[-1]:,}-byte round trip"
    shared = fact(name, 100 * share, "%")
    result.rows += claim_rows(shared, "ipc", verdict="qualified", note="one call to use")
    path = line_plot(
        ctx.out / "claims-ipc-vs-payload.png",
        "Round trip vs payload size (median, 95% interval)",
        "payload (bytes, log scale)",
        "seconds (log scale)",
        lines,
        logx=True,
        logy=True,
    )
    result.plots.append(path.name)


def faster_access(ctx: BenchContext, result: ScenarioResult) -> None:
    """Reading a large structure: in the parent vs a worker's own copy vs sent with each call."""
    size = ctx.pick(3_000_000, 1_000_000, 100_000)
    table = list(range(size))
    base = "the same sum in the parent process"
    own = Series(f"sum of a {size:,}-item list: the worker's own copy", "s", base)
    sent = Series(f"sum of a {size:,}-item list sent with each call", "s", base)

    async def main() -> None:
        async with hybridio.Runtime(
            cpu_workers=1, initializer=work.build_table, initargs=(size,)
        ) as rt:
            await rt.run_cpu(work.sum_table)
            judged = ((own, FASTER_ACCESS), (sent, FASTER_ACCESS))
            for _ in ctx.rounds(*judged, budget=ctx.pick(20.0, 8.0, 0.0)):
                for series, fn, args in ((own, work.sum_table, ()), (sent, sum, (table,))):
                    inline = (await rates(rt, 1, ["inline"], sum, table))[0]
                    series.add(1 / (await rates(rt, 1, ["cpu"], fn, *args))[0], 1 / inline)

    anyio.run(main)
    result.rows += claim_rows(own, "faster_access", FASTER_ACCESS)
    result.rows += claim_rows(sent, "faster_access", FASTER_ACCESS)
