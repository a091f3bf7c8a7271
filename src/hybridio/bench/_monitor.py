"""Scenario ``monitor``: LoopMonitor's overhead and detection per backend; docs/benchmarks.md."""

from __future__ import annotations

import hashlib
import importlib.util
import random
import time
from contextlib import nullcontext
from typing import Any

import anyio

from .. import BlockEvent, LoopMonitor
from ._harness import burst
from ._model import BenchContext, Row, ScenarioResult, Series
from ._plots import bar_plot
from ._targets import MONITOR_OVERHEAD

SCENARIO = "monitor"
TITLE = "Loop health: LoopMonitor overhead and detection"
#: The options of each backend for ``anyio.run`` (uvloop: asyncio with uvloop's event loop).
BACKENDS: dict[str, dict[str, Any]] = {"asyncio": {}, "uvloop": {"use_uvloop": True}, "trio": {}}
# An injected block lasts 50 ms. It is caught when it outlasts threshold + interval (+ one GIL
# switch interval, 5 ms, for code that holds the GIL): 25 ms + 5 ms + 5 ms leaves 15 ms of margin.
DETECT_THRESHOLD = 0.025


# The injected culprits: module-level, with names the report must give back.
def _blocking_io_on_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # like a synchronous HTTP call or database query


def _python_cpu_on_the_loop(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(i * i for i in range(200))


def _c_calls_on_the_loop(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        hashlib.sha256(b"x" * 1024).digest()  # hashlib keeps the GIL for inputs under 2 KiB


CULPRITS = (_blocking_io_on_the_loop, _python_cpu_on_the_loop, _c_calls_on_the_loop)


async def _task(steps: int, pause: float = 0.0) -> None:
    """One task of the workloads: ``steps`` awaits, each a checkpoint or a sleep of ``pause``."""
    for _ in range(steps):
        await anyio.sleep(pause)


async def _detect(count: int, seed: int) -> tuple[float, list[str], list[str]]:
    """Inject ``count`` blocks at random moments: % caught, the culprits missed, other blocks."""
    rng, name, caught, misses, others = random.Random(seed), "", False, [], []

    def on_block(event: BlockEvent) -> None:
        nonlocal caught
        if name and event.culprit is not None and event.culprit.function == name:
            caught = True
        else:
            others.append(f"{event} (injected: {name or None})")

    async with LoopMonitor(DETECT_THRESHOLD, on_block=on_block), anyio.create_task_group() as tg:
        tg.start_soon(burst, 50, _task, 10_000)  # a loop with work on it, not an idle one
        for _ in range(count):
            await anyio.sleep(rng.uniform(0.02, 0.08))
            culprit = rng.choice(CULPRITS)
            name, caught = culprit.__name__, False
            culprit(0.05)
            await anyio.sleep(0.02)  # the heartbeat reports the block as soon as the loop runs
            if not caught:
                misses.append(name)
            name = ""
        tg.cancel_scope.cancel()
    return 100 * (count - len(misses)) / count, misses, others


async def _measure(ctx: BenchContext, backend: str, result: ScenarioResult) -> Series:
    """Add the rows of ``backend`` to ``result``; return its overhead series."""
    tasks, steps = ctx.pick((500, 40), (500, 40), (100, 20))  # the loop-bound workload
    blocks, idle = ctx.pick((40, 2.0), (20, 1.0), (3, 0.2))  # blocks injected, idle seconds
    rows = result.rows
    name = f"loop-bound workload with a monitor, {backend}"
    overhead = Series(name, "s", "the same workload without a monitor")
    for _ in ctx.rounds((overhead, MONITOR_OVERHEAD)):
        await burst(tasks, _task, steps)  # warm-up
        times = {False: 0.0, True: 0.0}
        for monitored in (False, True, True, False):  # ABBA
            async with LoopMonitor() if monitored else nullcontext():
                times[monitored] += await burst(tasks, _task, steps)
        overhead.add(times[True], times[False])
    note = f"{tasks} tasks x {steps} checkpoints; default monitor (50 ms, heartbeat 10 ms)"
    rows.append(overhead.row(SCENARIO, rule=MONITOR_OVERHEAD, note=note))
    async with LoopMonitor() as monitor:  # tasks that only await (3 ms sleeps)
        await burst(5, _task, int(idle / 0.003), 0.003)
    stalls = monitor.report().blocks
    blamed = len([block for block in stalls if block.culprit is not None])
    name, verdict = f"false blocks on an idle loop, {backend}", "not met" if blamed else "met"
    note = f"{idle:g} s of awaits only; {len(stalls) - blamed} stalls blaming no code"
    rows.append(Row(SCENARIO, name, blamed, "blocks", target="0", verdict=verdict, note=note))
    share, misses, others = await _detect(blocks, len(rows))
    ctx.progress(f"detection on {backend}: {share:.0f}% of {blocks} blocks caught")
    result.extra |= {f"misses_{backend}": misses, f"other_blocks_{backend}": others}
    name = f"50 ms blocks caught with the right culprit, {backend}"
    verdict = "met" if share >= 95 else "not met"
    note = f"{len(others)} other blocks reported; threshold {DETECT_THRESHOLD * 1000:g} ms"
    row = Row(SCENARIO, name, share, "%", blocks, target=">= 95%", verdict=verdict, note=note)
    rows.append(row)
    return overhead


def run(ctx: BenchContext) -> ScenarioResult:
    """Measure LoopMonitor's overhead and detection rate on each installed anyio backend."""
    missing = [b for b in BACKENDS if b != "asyncio" and importlib.util.find_spec(b) is None]
    result = ScenarioResult(SCENARIO, TITLE, __doc__ or "", plots=["monitor-overhead.png"])
    result.extra = {f"skipped {b}": f"not installed: pip install {b}" for b in missing}
    overheads = {}
    for backend in [b for b in BACKENDS if b not in missing]:
        name, options = "trio" if backend == "trio" else "asyncio", BACKENDS[backend]
        series = anyio.run(_measure, ctx, backend, result, backend=name, backend_options=options)
        overheads[backend] = Series(backend, "%", values=[(r - 1) * 100 for r in series.ratios()])
        ctx.progress(f"overhead on {backend}: {overheads[backend].median:+.2f}%")
    title = "LoopMonitor overhead on a loop-bound workload (median, 95% interval)"
    xlabel, goal = "% slower than without a monitor", (1.0, "target: < 1%")
    bar_plot(ctx.out / result.plots[0], title, xlabel, overheads, target=goal)
    return result
