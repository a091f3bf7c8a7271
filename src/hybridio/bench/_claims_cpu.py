"""Claims about cores, the GIL and threads: who runs CPU work in parallel, and when threads help."""

from __future__ import annotations

import functools
import os
import random
import time
from collections.abc import Awaitable, Callable

import anyio

import hybridio

from . import _claims_work as work
from ._claims_common import Part, Timing, measure_async, plot_path, row, usable_cpus
from ._claims_verdicts import parallel_target, verdict_at_least, verdict_at_most
from ._model import BenchContext
from ._plots import line_plot

__all__ = ["calibrate_spin", "gather", "gil_release", "io_threads", "parallel"]

# A speedup below this is "no benefit": timing noise on a shared machine stays well under it.
NO_GAIN = 1.15


def calibrate_spin(seconds: float) -> int:
    """The ``spin`` argument that takes about ``seconds`` here."""
    n = 20_000
    while True:
        start = time.perf_counter()
        work.spin(n)
        elapsed = time.perf_counter() - start
        if elapsed > 0.02 or n > 50_000_000:
            return max(1000, int(n * seconds / elapsed))
        n *= 4


def busy_note(cpus: int) -> str:
    """A warning for the note when other work competes for the CPUs (parallel gains shrink)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load <= cpus * 0.75:
        return ""
    return f"; machine busy (load {load:.1f} on {cpus} CPUs): parallel speedups understated"


async def gather(calls: list[Callable[[], Awaitable[object]]]) -> None:
    """Run the calls concurrently and wait for all of them."""

    async def one(call: Callable[[], Awaitable[object]]) -> None:
        await call()

    async with anyio.create_task_group() as tg:
        for call in calls:
            tg.start_soon(one, call)


def parallel(ctx: BenchContext) -> Part:
    """Pure-Python work: inline vs N worker processes vs N worker threads (speedup vs workers)."""
    cpus = usable_cpus()
    workers = sorted(set(ctx.pick([1, 2, cpus, 2 * cpus], [1, 2, cpus, 2 * cpus], [1, 2])))
    n = calibrate_spin(ctx.pick(0.08, 0.04, 0.004))
    tasks = max(4, 2 * max(workers))
    repeats = ctx.repeats(5, 3, 1)
    speedups: dict[str, list[tuple[float, float]]] = {"processes": [], "threads": []}
    part = Part()

    async def main() -> None:
        for k in workers:
            async with hybridio.Runtime(cpu_workers=k, threads=k) as rt:
                await gather([lambda: rt.run_cpu(work.spin, 1000) for _ in range(k)])  # start all

                async def inline_all() -> None:
                    for _ in range(tasks):
                        await rt.run(work.spin, n, kind="inline")

                # Interleaved repeats: a shared machine's load changes hit all three alike.
                runs: dict[str, list[float]] = {"inline": [], "processes": [], "threads": []}
                for _ in range(repeats):
                    for kind, call in (
                        ("inline", inline_all),
                        ("processes", lambda: gather([lambda: rt.run_cpu(work.spin, n)] * tasks)),
                        (
                            "threads",
                            lambda: gather([lambda: rt.run_blocking(work.spin, n)] * tasks),
                        ),
                    ):
                        runs[kind].append((await measure_async(call, 1)).median)
            inline = Timing.of(runs["inline"])
            ctx.progress(f"parallel: {k} workers: inline {inline.median:.2f} s")
            for kind in ("processes", "threads"):
                timing = Timing.of(runs[kind])
                speedup = inline.median / timing.median
                speedups[kind].append((k, speedup))
                _parallel_rows(part, kind, k, cpus, tasks, timing, inline, speedup)

    anyio.run(main)
    path = plot_path(ctx.out, "speedup-vs-workers")
    line_plot(
        path,
        f"Pure-Python CPU work: speedup over inline ({cpus} usable CPUs)",
        "workers",
        "speedup (x)",
        {**speedups, "ideal": [(k, float(min(k, cpus))) for k in workers]},
    )
    part.plots.append(path.name)
    part.data["speedup_vs_workers"] = speedups
    return part


def _parallel_rows(
    part: Part, kind: str, k: int, cpus: int, tasks: int, timing: Timing, inline: Timing, x: float
) -> None:
    add = functools.partial(
        row,
        f"pure Python, {tasks} tasks on {k} worker {kind}",
        timing.median,
        "s",
        timing=timing,
        baseline=f"inline, {tasks} tasks",
        baseline_value=inline.median,
        ratio_value=x,
    )
    note = f"ratio = speedup over inline ({x:.2f}x with {k} {kind}; {cpus} usable CPUs)"
    note += busy_note(cpus)
    target = parallel_target(cpus)
    if k != cpus:  # context: the verdict is judged with as many workers as CPUs
        claim = "multicore" if kind == "processes" else "thread_no_cpu"
        part.rows.append(add(claim=claim, verdict="n/a", note=note + "; context"))
    elif kind == "processes":
        verdict = verdict_at_least(x, target, NO_GAIN)
        note += f"; confirmed at >= {target:.2f}x, refuted below {NO_GAIN}x"
        part.rows += [add(claim=c, verdict=verdict, note=note) for c in _PROCESS_CLAIMS]
    else:
        verdict = verdict_at_most(x, NO_GAIN, target)
        note += f"; no benefit means < {NO_GAIN}x, refuted at >= {target:.2f}x"
        part.rows += [add(claim=c, verdict=verdict, note=note) for c in _THREAD_CLAIMS]


_PROCESS_CLAIMS = ("multicore", "own_gil", "cpu_bound")
_THREAD_CLAIMS = ("thread_no_cpu", "gil_single")


def _buffer(size: int) -> bytes:
    # Half random, half zeros: zlib has real work to do, and it is reproducible.
    return random.Random(8).randbytes(size // 2) + bytes(size - size // 2)


def gil_release(ctx: BenchContext) -> Part:
    """C code that releases the GIL (hashlib, zlib) on large buffers: inline vs threads."""
    cpus = usable_cpus()
    tasks = max(4, 2 * cpus)
    repeats = ctx.repeats(5, 3, 1)
    target = parallel_target(cpus)
    cases = [
        ("hashlib.sha256", work.sha256_hex, ctx.pick(16_000_000, 8_000_000, 1_000_000)),
        ("zlib.compress", work.compress_len, ctx.pick(4_000_000, 2_000_000, 200_000)),
    ]
    part = Part()

    async def main() -> None:
        async with hybridio.Runtime(threads=cpus) as rt:
            for label, fn, size in cases:
                data = _buffer(size)

                async def inline_all(
                    fn: Callable[[bytes], object] = fn, data: bytes = data
                ) -> None:
                    for _ in range(tasks):
                        await rt.run(fn, data, kind="inline")

                def threaded(
                    fn: Callable[[bytes], object] = fn, data: bytes = data
                ) -> Awaitable[None]:
                    return gather([lambda: rt.run_blocking(fn, data) for _ in range(tasks)])

                await threaded()  # warm the threads
                inline = await measure_async(inline_all, repeats)
                threads = await measure_async(threaded, repeats)
                x = inline.median / threads.median
                ctx.progress(f"gil-release: {label} {x:.2f}x")
                add = functools.partial(
                    row,
                    f"{label} of {size / 1e6:g} MB x {tasks} on {cpus} threads",
                    threads.median,
                    "s",
                    timing=threads,
                    baseline=f"inline, {tasks} calls",
                    baseline_value=inline.median,
                    ratio_value=x,
                )
                note = f"ratio = speedup over inline ({x:.2f}x); the C code releases the GIL"
                note += busy_note(cpus)
                no_gain = verdict_at_most(x, NO_GAIN, target)
                part.rows += [
                    add(claim="thread_no_cpu", verdict=no_gain, note=note),
                    add(claim="gil_single", verdict=no_gain, note=note),
                    add(
                        claim="c_libraries",
                        verdict=verdict_at_least(x, target, NO_GAIN),
                        note=note + f"; confirmed at >= {target:.2f}x",
                    ),
                ]

    anyio.run(main)
    return part


def io_threads(ctx: BenchContext) -> Part:
    """Blocking I/O (sleep stands in for a socket or disk wait): inline vs one thread per call."""
    calls = ctx.pick(16, 8, 4)
    wait = ctx.pick(0.05, 0.02, 0.01)
    repeats = ctx.repeats(5, 3, 1)
    part = Part()

    async def main() -> None:
        async with hybridio.Runtime(threads=calls) as rt:

            async def inline_all() -> None:
                for _ in range(calls):
                    await rt.run(work.sleep_for, wait, kind="inline")

            def threaded() -> Awaitable[None]:
                return gather([lambda: rt.run_blocking(work.sleep_for, wait) for _ in range(calls)])

            await threaded()
            inline = await measure_async(inline_all, repeats)
            threads = await measure_async(threaded, repeats)
        x = inline.median / threads.median
        confirm = max(NO_GAIN, 0.5 * calls)
        part.rows.append(
            row(
                f"{calls} blocking waits of {wait * 1000:g} ms on {calls} threads",
                threads.median,
                "s",
                claim="thread_io",
                verdict=verdict_at_least(x, confirm, NO_GAIN),
                timing=threads,
                baseline=f"inline, one after the other ({calls} waits)",
                baseline_value=inline.median,
                ratio_value=x,
                note=f"ratio = speedup ({x:.1f}x, ideal {calls}x; confirmed at >= {confirm:g}x); "
                "async I/O on the event loop needs no thread at all",
            )
        )

    anyio.run(main)
    return part
