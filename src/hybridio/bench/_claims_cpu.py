"""Claims about cores, the GIL and threads: who runs CPU work in parallel, and when it pays."""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Awaitable, Callable

import anyio

import hybridio

from .. import _workloads
from . import _load
from . import _work as work
from ._claims_common import SCENARIO, Part, fact, gather, verdict_crossover
from ._model import BenchContext, Row, Rule, Series
from ._plots import Line, line_plot
from ._targets import NO_GAIN, PARALLEL

__all__ = ["crossover", "crossover_point", "gil_release", "io_threads", "parallel"]

Thunk = Callable[[], Awaitable[None]]


async def _rate(count: int, call: Callable[[], Awaitable[object]]) -> float:
    """Run ``call`` and return ``count`` / its duration (tasks per second)."""
    start = time.perf_counter()
    await call()
    return count / (time.perf_counter() - start)


def _inline(rt: hybridio.Runtime, count: int, fn: Callable[..., object], *args: object) -> Thunk:
    async def run() -> None:
        for _ in range(count):
            await rt.run(fn, *args, kind="inline")

    return run


def _offload(
    count: int, run: Callable[..., Awaitable[object]], fn: Callable[..., object], *args: object
) -> Thunk:
    return lambda: gather([lambda: run(fn, *args) for _ in range(count)])


def _busy(rows: list[Row]) -> str:
    """A plot title's warning when other processes distorted the speedups it shows."""
    return (
        "\n(busy machine: other processes distorted these speedups)"
        if any(r.busy for r in rows)
        else ""
    )


def parallel(ctx: BenchContext) -> Part:
    """Pure-Python work: inline vs k worker processes vs k worker threads (speedup vs workers)."""
    cpus = _load.usable_cpus()
    workers = sorted({1, cpus, 2 * cpus} if not ctx.tiny else {1, 2})
    n = _workloads.loops_for(ctx.pick(0.08, 0.04, 0.004))
    tasks = max(4, 2 * max(workers))
    part = Part()
    lines = {kind: Line(kind) for kind in ("processes", "threads")}

    async def main() -> None:
        for k in workers:
            unit, base = "tasks/s", f"inline ({tasks} tasks one after the other)"
            plural = "es" if k > 1 else ""
            proc = Series(f"{tasks} pure-Python tasks on {k} worker process{plural}", unit, base)
            thr = Series(f"{tasks} pure-Python tasks on {k} worker thread{plural[1:]}", unit, base)
            judged = k == cpus
            async with hybridio.Runtime(cpu_workers=k, threads=k) as rt:
                await gather([lambda: rt.run_cpu(_workloads.spin, 1000) for _ in range(k)])
                inline = _inline(rt, tasks, _workloads.spin, n)
                # Interleaved repeats: a shared machine's load changes hit all three alike.
                for _ in ctx.rounds(
                    (proc, PARALLEL if judged else None),
                    (thr, NO_GAIN if judged else None),
                    budget=None if judged else ctx.pick(20.0, 6.0, 0.0),
                ):
                    base_rate = await _rate(tasks, inline)
                    proc.add(
                        await _rate(tasks, _offload(tasks, rt.run_cpu, _workloads.spin, n)),
                        base_rate,
                    )
                    thr.add(
                        await _rate(tasks, _offload(tasks, rt.run_blocking, _workloads.spin, n)),
                        base_rate,
                    )
            ctx.progress(f"{k} workers: processes {proc.ratio:.2f}x, threads {thr.ratio:.2f}x")
            for series, line in ((proc, lines["processes"]), (thr, lines["threads"])):
                line.add(k, series.ratio, series.interval())
            if not judged:  # context: the verdict is judged with as many workers as CPUs
                part.rows.append(proc.row(SCENARIO, claim="multicore", verdict="n/a"))
                part.rows.append(thr.row(SCENARIO, claim="thread_no_cpu", verdict="n/a"))
                continue
            part.rows += [
                proc.row(SCENARIO, rule=PARALLEL, claim=c)
                for c in ("multicore", "own_gil", "cpu_bound")
            ]
            part.rows += [
                thr.row(SCENARIO, rule=NO_GAIN, claim=c) for c in ("thread_no_cpu", "gil_single")
            ]

    anyio.run(main)
    ideal = Line("ideal (min(workers, CPUs))", style="--")
    for k in workers:
        ideal.add(k, float(min(k, cpus)))
    name = "claims-speedup-vs-workers.png"
    line_plot(
        ctx.out / name,
        f"Pure-Python CPU work: speedup over inline ({cpus} usable CPUs){_busy(part.rows)}",
        "worker processes or threads",
        "speedup over inline (x, median, 95% interval)",
        [*lines.values(), ideal],
        hline=(PARALLEL.confirm, f"'uses the cores' from {PARALLEL.confirm:.2g}x"),
        integer_x=True,
    )
    part.plots.append(name)
    return part


def _buffer(size: int) -> bytes:
    # Half random, half zeros: zlib has real work to do, and it is reproducible.
    return random.Random(8).randbytes(size // 2) + bytes(size - size // 2)


def gil_release(ctx: BenchContext) -> Part:
    """C code that releases the GIL (hashlib, zlib) on large buffers: inline vs threads."""
    cpus = _load.usable_cpus()
    tasks = max(4, 2 * cpus)
    cases = [
        ("hashlib.sha256", work.sha256_hex, ctx.pick(16_000_000, 8_000_000, 1_000_000)),
        ("zlib.compress", work.compress_len, ctx.pick(4_000_000, 2_000_000, 200_000)),
    ]
    part = Part()

    async def main() -> None:
        async with hybridio.Runtime(threads=cpus) as rt:
            for label, fn, size in cases:
                data = _buffer(size)
                name = f"{label} of {size / 1e6:g} MB, {tasks} calls on {cpus} threads"
                series = Series(name, "calls/s", f"inline ({tasks} calls one after the other)")
                threaded = _offload(tasks, rt.run_blocking, fn, data)
                await threaded()  # warm the threads
                for _ in ctx.rounds((series, NO_GAIN), (series, PARALLEL)):
                    base = await _rate(tasks, _inline(rt, tasks, fn, data))
                    series.add(await _rate(tasks, threaded), base)
                ctx.progress(f"{label}: {series.ratio:.2f}x")
                part.rows += [
                    series.row(SCENARIO, rule=NO_GAIN, claim="thread_no_cpu"),
                    series.row(SCENARIO, rule=NO_GAIN, claim="gil_single"),
                    series.row(SCENARIO, rule=PARALLEL, claim="c_libraries"),
                ]

    anyio.run(main)
    return part


def io_threads(ctx: BenchContext) -> Part:
    """Blocking I/O (sleep stands in for a socket or disk wait): inline vs one thread per call."""
    calls = ctx.pick(16, 8, 4)
    wait = ctx.pick(0.05, 0.02, 0.01)
    rule = Rule(max(NO_GAIN.confirm, 0.5 * calls), NO_GAIN.confirm)
    name = f"{calls} blocking waits of {wait * 1000:g} ms on {calls} threads"
    series = Series(name, "waits/s", f"inline ({calls} waits one after the other)")

    async def main() -> None:
        async with hybridio.Runtime(threads=calls) as rt:
            threaded = _offload(calls, rt.run_blocking, work.sleep_for, wait)
            await threaded()
            for _ in ctx.rounds((series, rule)):
                base = await _rate(calls, _inline(rt, calls, work.sleep_for, wait))
                series.add(await _rate(calls, threaded), base)

    anyio.run(main)
    return Part(rows=[series.row(SCENARIO, rule=rule, claim="thread_io", note=f"ideal {calls}x")])


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


def crossover(ctx: BenchContext) -> Part:
    """Tasks of a given duration: inline one after the other vs offloaded to all cores."""
    cpus = _load.usable_cpus()
    durations = ctx.pick([1e-5, 1e-4, 1e-3, 1e-2, 5e-2], [1e-4, 1e-3, 1e-2, 3e-2], [1e-4, 5e-3])
    tasks = max(4, 4 * cpus)
    part = Part()
    line = Line("hybridio.run_cpu")
    measured: list[Series] = []

    async def main() -> None:
        async with hybridio.Runtime(cpu_workers=cpus) as rt:
            await gather([lambda: rt.run_cpu(_workloads.spin, 1000) for _ in range(cpus)])
            for duration in durations:
                name = f"{tasks} tasks of {duration * 1000:g} ms offloaded to {cpus} processes"
                series = Series(name, "tasks/s", "inline, one after the other")
                offload = _offload(tasks, rt.run_cpu, _workloads.busy_for, duration)
                for _ in ctx.rounds((series, NO_GAIN), budget=ctx.pick(20.0, 8.0, 0.0)):
                    base = await _rate(tasks, _inline(rt, tasks, _workloads.busy_for, duration))
                    series.add(await _rate(tasks, offload), base)
                ctx.progress(f"{duration * 1000:g} ms tasks: {series.ratio:.2f}x")
                line.add(duration, series.ratio, series.interval())
                measured.append(series)

    anyio.run(main)
    points = [(d, s.ratio or 0.0) for d, s in zip(durations, measured, strict=True)]
    point = crossover_point(points)
    loads = [s.load() for s in measured]
    verdict, reason = verdict_crossover(
        [(d, s.interval()) for d, s in zip(durations, measured, strict=True)],
        NO_GAIN.confirm,
        any(load is not None and load.busy for load in loads),
    )
    part.rows += [s.row(SCENARIO, claim="cpu_bound", verdict="n/a") for s in measured]
    note = "no measured duration paid off" if point is None else "interpolated"
    name = "task duration from which offloading pays (speedup >= 1)"
    value = math.nan if point is None else point
    part.rows.append(fact(name, value, "s", "cpu_bound", verdict, reason=reason, note=note))
    name = "claims-offload-crossover.png"
    line_plot(
        ctx.out / name,
        f"Offloading {tasks} tasks to {cpus} processes: speedup vs task length{_busy(part.rows)}",
        "task duration (s, log scale)",
        "speedup over inline (x, median, 95% interval)",
        [line],
        logx=True,
        hline=(1.0, "break-even"),
        vline=None if point is None else (point, f"crossover ~{point * 1000:.2g} ms"),
    )
    part.plots.append(name)
    return part
