"""Claims about what processes cost: start-up, memory, communication, and when offloading pays."""

from __future__ import annotations

import functools
import itertools
import math
import multiprocessing
import os
import pickle
import threading
import time
import warnings
from typing import Any

import anyio
import psutil

import hybridio

from . import _claims_work as work
from ._claims_common import Part, Timing, measure_async, plot_path, row, usable_cpus
from ._claims_cpu import NO_GAIN, gather
from ._claims_verdicts import (
    parallel_target,
    verdict_at_least,
    verdict_crossover,
    verdict_independent,
)
from ._model import BenchContext, measure
from ._plots import bar_plot, line_plot

__all__ = ["crossover", "crossover_point", "ipc", "memory", "startup"]

# "Way slower" / "more memory" / "heavyweight": confirmed from 10x, refuted under 2x.
MUCH = 10.0
LITTLE = 2.0


def _start_thread() -> None:
    thread = threading.Thread(target=work.noop)
    thread.start()
    thread.join()


def _start_process(method: str) -> float:
    # The stubs type get_context() as BaseContext, which lacks Process.
    context: Any = multiprocessing.get_context(method)
    # A builtin target: the child imports nothing of ours, so this is the bare start-up cost.
    process = context.Process(target=os.getpid)
    start = time.perf_counter()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork in a process with threads; forking is what is measured.
        warnings.simplefilter("ignore", DeprecationWarning)
        process.start()
    process.join()
    elapsed = time.perf_counter() - start
    process.close()
    return elapsed


def _inherits_mark(method: str) -> bool:
    """Does a child started with ``method`` see state the parent set before starting it?"""
    context: Any = multiprocessing.get_context(method)
    work.MARK["set"] = True
    try:
        process = context.Process(target=work.exit_with_mark)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            process.start()
        process.join()
        code = process.exitcode
        process.close()
    finally:
        work.MARK["set"] = False
    return bool(code == 1)


def startup(ctx: BenchContext) -> Part:
    """Start and join a thread vs a process per start method; first call of a fresh pool."""
    part = Part()
    thread = Timing.of(measure(_start_thread, ctx.repeats(200, 50, 5))[2])
    times = {"thread": thread.median}
    base: dict[str, Any] = {"baseline": "start + join a thread", "baseline_value": thread.median}
    # Tiny mode (tests) skips forkserver: starting its server alone takes most of a second.
    wanted = ("fork", "spawn") if ctx.tiny else ("fork", "forkserver", "spawn")
    methods = [m for m in wanted if m in multiprocessing.get_all_start_methods()]
    for method in methods:
        if method == "forkserver":
            _start_process(method)  # the first start also starts the fork server: not counted
        timing = Timing.of([_start_process(method) for _ in range(ctx.repeats(20, 5, 1))])
        times[method] = timing.median
        ctx.progress(f"start-up: {method} {timing.median * 1000:.1f} ms")
        x = timing.median / thread.median
        add = functools.partial(
            row, f"start + join a process ({method})", timing.median, "s", timing=timing, **base
        )
        note = f"ratio = process / thread ({x:.0f}x)"
        much = verdict_at_least(x, MUCH, LITTLE)
        part.rows += [
            add(claim="slow_start", verdict=much, note=note + f"; 'way slower' from {MUCH:g}x"),
            add(claim="heavyweight", verdict=much, note=note + f"; 'heavy' from {MUCH:g}x"),
            add(
                claim="thread_fast_start",
                verdict=verdict_at_least(x, LITTLE, 1.0),
                note=note + f"; 'faster' from {LITTLE:g}x",
            ),
        ]

    async def fresh_pool() -> tuple[float, float]:
        start = time.perf_counter()
        async with hybridio.Runtime(cpu_workers=1) as rt:
            await rt.run_cpu(work.noop)
            first = time.perf_counter() - start
            start = time.perf_counter()
            await rt.run_cpu(work.noop)
            return first, time.perf_counter() - start

    pairs = [anyio.run(fresh_pool) for _ in range(ctx.repeats(5, 3, 1))]
    first = Timing.of([p[0] for p in pairs])
    warm = Timing.of([p[1] for p in pairs])
    times["hybridio pool, 1st call"] = first.median
    x = first.median / thread.median
    part.rows.append(
        row(
            "fresh hybridio pool: first run_cpu call",
            first.median,
            "s",
            claim="slow_start",
            verdict=verdict_at_least(x, MUCH, LITTLE),
            timing=first,
            note=f"ratio = first call / thread start ({x:.0f}x); the pool starts "
            f"`python -m anyio.to_process` workers; a warm call then takes "
            f"{warm.median * 1e6:.0f} µs: pay start-up once per pool, not per call",
            **base,
        )
    )
    # Fork copies the parent, spawn starts a fresh interpreter: "independent" depends on it.
    inherits = {m: _inherits_mark(m) for m in ("fork", "spawn") if m in methods}
    if inherits:
        summary = ", ".join(f"{m}: {'inherits' if v else 'fresh'}" for m, v in inherits.items())
        part.rows.append(
            row(
                "children that inherit the parent's state",
                float(sum(inherits.values())),
                "of " + str(len(inherits)),
                claim="independent",
                verdict=verdict_independent(list(inherits.values())),
                note=f"{summary}. A forked child starts as a copy of its parent (memory, "
                "module state, locks held by other threads); spawn and forkserver children "
                f"start fresh. Default here: {multiprocessing.get_start_method()}",
            )
        )
    path = plot_path(ctx.out, "startup")
    bar_plot(
        path,
        "Start-up: start + join (median)",
        "milliseconds",
        {k: v * 1000 for k, v in times.items()},
        logy=True,
    )
    part.plots.append(path.name)
    part.data["startup_seconds"] = times
    return part


def _rss(pid: int) -> tuple[int, int]:
    """Resident and unique (USS: freed if the process exits) memory of a process, in bytes."""
    info = psutil.Process(pid).memory_full_info()
    return int(info.rss), int(info.uss)


def memory(ctx: BenchContext) -> Part:
    """Memory per worker process (RSS and USS) vs per extra thread (growth of our RSS)."""
    workers = ctx.pick(4, 2, 1)
    thread_count = ctx.pick(64, 32, 8)

    async def processes() -> list[tuple[int, int]]:
        async with hybridio.Runtime(cpu_workers=workers) as rt:
            await gather([lambda: rt.run_cpu(work.spin, 1000) for _ in range(workers)])
            return [_rss(pid) for pid in rt.worker_pids()]

    per_process = anyio.run(processes)
    rss = Timing.of([float(r) for r, _ in per_process])
    uss = Timing.of([float(u) for _, u in per_process])

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
    page = 4096
    per_thread = max(float(page), (after - before) / thread_count)
    floor_note = " (at the one-page floor: below what RSS resolves)" if per_thread == page else ""
    part = Part(
        data={
            "rss_per_process": rss.median,
            "uss_per_process": uss.median,
            "rss_per_thread": per_thread,
        }
    )
    base: dict[str, Any] = {
        "baseline": f"RSS growth per thread ({thread_count} idle threads){floor_note}",
        "baseline_value": per_thread,
    }
    for label, timing in (("RSS", rss), ("USS (memory only it uses)", uss)):
        x = timing.median / per_thread
        verdict = verdict_at_least(x, MUCH, LITTLE)
        add = functools.partial(
            row, f"{label} per worker process", timing.median, "bytes", timing=timing, **base
        )
        note = (
            f"ratio = process / thread ({x:.0f}x); each worker is a whole interpreter with its "
            "own imports, while a thread adds a stack and a thread state"
        )
        part.rows += [
            add(claim=c, verdict=verdict, note=note)
            for c in ("more_memory", "thread_memory", "heavyweight")
        ]
    return part


async def _round_trips(
    rt: hybridio.Runtime, payload: bytes, repeats: int
) -> tuple[Timing, Timing, Timing]:
    """Median round trips of ``payload``: to a process, to a thread, and pickling it in place."""
    proc = await measure_async(lambda: rt.run_cpu(work.payload_len, payload), repeats)
    thread = await measure_async(lambda: rt.run_blocking(work.payload_len, payload), repeats)
    pickled = Timing.of(measure(lambda: pickle.loads(pickle.dumps(payload, 5)), repeats)[2])
    return proc, thread, pickled


def ipc(ctx: BenchContext) -> Part:
    """Round trip of a payload to a worker process vs to a thread vs pickling it in place."""
    sizes = ctx.pick(
        [100, 10_000, 1_000_000, 10_000_000, 50_000_000],
        [100, 10_000, 1_000_000, 10_000_000],
        [100, 100_000],
    )
    part = Part()
    series: dict[str, list[tuple[float, float]]] = {"process": [], "thread": [], "pickle only": []}

    async def main() -> None:
        async with hybridio.Runtime(cpu_workers=1, threads=1) as rt:
            await rt.run_cpu(work.noop)
            await rt.run_blocking(work.noop)
            for size in sizes:
                payload = bytes(size)
                repeats = ctx.repeats(
                    20 if size < 5_000_000 else 5, 5 if size < 5_000_000 else 3, 2
                )
                proc, thread, pickled = await _round_trips(rt, payload, repeats)
                series["process"].append((size, proc.median))
                series["thread"].append((size, thread.median))
                series["pickle only"].append((size, pickled.median))
                ctx.progress(f"ipc: {size} B: {proc.median * 1000:.2f} ms")
                x = proc.median / thread.median
                part.rows.append(
                    row(
                        f"round trip of {size:,} bytes to a worker process",
                        proc.median,
                        "s",
                        claim="ipc",
                        verdict=verdict_at_least(x, MUCH, LITTLE),
                        timing=proc,
                        baseline="same call to a worker thread",
                        baseline_value=thread.median,
                        note=f"ratio = process / thread ({x:.0f}x): the cost of IPC; "
                        f"pickling alone takes {pickled.median * 1e6:.0f} µs; "
                        f"{size / proc.median / 1e6:.0f} MB/s",
                    )
                )
        largest = sizes[-1]
        share = series["pickle only"][-1][1] / series["process"][-1][1]
        part.rows.append(
            row(
                f"share of serialization in the {largest:,}-byte round trip",
                share,
                "fraction",
                claim="ipc",
                # In code, IPC through hybridio is one call; what remains is a cost, measured here.
                verdict="qualified",
                baseline="process round trip",
                baseline_value=series["process"][-1][1],
                ratio_value=share,
                note="not complicated to use (one function call: arguments and result are "
                "pickled and copied through a pipe); its cost grows with the payload: keep "
                "payloads small, or load data in the worker (Runtime(initializer=...))",
            )
        )

    anyio.run(main)
    path = plot_path(ctx.out, "ipc-vs-payload")
    line_plot(
        path,
        "Round trip vs payload size",
        "payload (bytes)",
        "seconds (median)",
        series,
        logx=True,
        logy=True,
    )
    part.plots.append(path.name)
    part.data["ipc_seconds"] = series
    return part


def crossover_point(points: list[tuple[float, float]], at: float = 1.0) -> float | None:
    """The task duration where the speedup reaches ``at``, interpolated on a log scale.

    None when no measured duration reaches it; the shortest duration when all do.
    """
    ordered = sorted(points)
    if not ordered or max(s for _, s in ordered) < at:
        return None
    if ordered[0][1] >= at:
        return ordered[0][0]
    for (d0, s0), (d1, s1) in itertools.pairwise(ordered):
        if s0 < at <= s1:
            fraction = (at - s0) / (s1 - s0)
            return math.exp(math.log(d0) + fraction * (math.log(d1) - math.log(d0)))
    return None


async def _inline_vs_offload(
    rt: hybridio.Runtime, duration: float, tasks: int, repeats: int
) -> tuple[Timing, Timing]:
    """``tasks`` busy loops of ``duration``: one after the other inline, and all offloaded."""

    async def inline_all() -> None:
        for _ in range(tasks):
            await rt.run(work.busy_for, duration, kind="inline")

    inline = await measure_async(inline_all, repeats)
    offload = await measure_async(
        lambda: gather([lambda: rt.run_cpu(work.busy_for, duration) for _ in range(tasks)]),
        repeats,
    )
    return inline, offload


def crossover(ctx: BenchContext) -> Part:
    """Tasks of a given duration: inline one after the other vs offloaded to all cores."""
    cpus = usable_cpus()
    durations = ctx.pick([1e-5, 1e-4, 1e-3, 1e-2, 5e-2], [1e-4, 1e-3, 1e-2, 3e-2], [1e-4, 5e-3])
    tasks = max(4, 4 * cpus)
    repeats = ctx.repeats(5, 3, 1)
    points: list[tuple[float, float]] = []
    part = Part()

    async def main() -> None:
        async with hybridio.Runtime(cpu_workers=cpus) as rt:
            await gather([lambda: rt.run_cpu(work.spin, 1000) for _ in range(cpus)])
            for duration in durations:
                inline, offload = await _inline_vs_offload(rt, duration, tasks, repeats)
                x = inline.median / offload.median
                points.append((duration, x))
                ctx.progress(f"crossover: {duration * 1000:g} ms tasks: {x:.2f}x")
                part.rows.append(
                    row(
                        f"{tasks} tasks of {duration * 1000:g} ms offloaded to {cpus} processes",
                        offload.median,
                        "s",
                        claim="cpu_bound",
                        verdict="n/a",
                        timing=offload,
                        baseline="inline, one after the other",
                        baseline_value=inline.median,
                        ratio_value=x,
                        note=f"ratio = speedup ({x:.2f}x); context for the crossover",
                    )
                )

    anyio.run(main)
    point = crossover_point(points)
    target = parallel_target(cpus)
    part.rows.append(
        row(
            "task duration from which offloading pays (speedup >= 1)",
            math.nan if point is None else point,
            "s",
            claim="cpu_bound",
            verdict=verdict_crossover(points, NO_GAIN),
            note=(
                "no measured duration paid off"
                if point is None
                else f"offloading CPU work pays for tasks longer than about "
                f"{point * 1000:.2g} ms (with batching of queued calls); shorter tasks: "
                f"run them inline; {target:.2f}x is the multi-core target"
            ),
        )
    )
    path = plot_path(ctx.out, "offload-crossover")
    line_plot(
        path,
        f"Offloading {tasks} tasks to {cpus} processes: speedup vs task length",
        "task duration (s)",
        "speedup over inline (x)",
        {"run_cpu": points},
        logx=True,
        hline=1.0,
        hline_label="break-even",
        vline=point,
        vline_label=None if point is None else f"crossover ~{point * 1000:.2g} ms",
    )
    part.plots.append(path.name)
    part.data["crossover"] = {"points": points, "seconds": point}
    return part
