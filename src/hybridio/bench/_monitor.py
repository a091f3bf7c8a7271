"""Scenario ``monitor``: what LoopMonitor costs, and whether it names the code that blocks.

On each installed anyio backend: its overhead on a loop-bound workload (ABBA order in one loop),
the CPU an idle loop burns with it, the share of injected 50 ms blocks it blames on the right
function, and blocks it blames on code in an idle loop. docs/loop-health.md discusses them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

from .. import BlockEvent, LoopMonitor
from ._model import BenchContext, Row, ScenarioResult, Series
from ._plots import bar_plot
from ._targets import MONITOR_OVERHEAD

__all__ = ["run"]

T = TypeVar("T")

SCENARIO = "monitor"
BACKENDS: dict[str, tuple[str, dict[str, Any]]] = {
    "asyncio": ("asyncio", {}),
    "uvloop": ("asyncio", {"use_uvloop": True}),
    "trio": ("trio", {}),
}
BLOCK = 0.05
# A block is caught when it outlasts threshold + interval (+ one GIL switch interval, 5 ms, for
# code that holds the GIL): 25 ms + 5 ms + 5 ms leaves 15 ms of margin on a 50 ms block.
DETECT_THRESHOLD = 0.025


# The injected culprits: module-level, with names the report must give back.
def _blocking_io_on_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # like a synchronous HTTP call or database query


def _python_cpu_on_the_loop(seconds: float) -> None:
    end = time.perf_counter() + seconds
    total = 0
    while time.perf_counter() < end:
        total += sum(i * i for i in range(200))


def _c_calls_on_the_loop(seconds: float) -> None:
    data = b"x" * 1024  # small: hashlib keeps the GIL for inputs under 2 KiB
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        hashlib.sha256(data).digest()


CULPRITS: tuple[Callable[[float], None], ...] = (
    _blocking_io_on_the_loop,
    _python_cpu_on_the_loop,
    _c_calls_on_the_loop,
)


def _on(backend: str, fn: Callable[[], Awaitable[T]]) -> T:
    return anyio.run(fn, backend=BACKENDS[backend][0], backend_options=BACKENDS[backend][1])


async def _workload(tasks: int, steps: int) -> None:
    async def tiny() -> None:
        for _ in range(steps):
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        for _ in range(tasks):
            tg.start_soon(tiny)


def _monitored(on: bool) -> AbstractAsyncContextManager[Any]:
    return LoopMonitor() if on else nullcontext()


async def _overhead(tasks: int, steps: int) -> tuple[float, float]:
    """One ABBA-ordered pair of times of the workload: (plain, monitored)."""
    await _workload(tasks, steps)  # warm-up
    times: dict[bool, float] = {False: 0.0, True: 0.0}
    for flag in (False, True, True, False):
        start = time.perf_counter()
        async with _monitored(flag):
            await _workload(tasks, steps)
        times[flag] += time.perf_counter() - start
    return times[False], times[True]


async def _idle_cpu(seconds: float, monitored: bool) -> float:
    """CPU seconds per second burnt by a loop that only sleeps."""
    start_cpu, start = time.process_time(), time.perf_counter()
    async with _monitored(monitored):
        await anyio.sleep(seconds)
    return (time.process_time() - start_cpu) / (time.perf_counter() - start)


async def _idle_blocks(seconds: float) -> list[BlockEvent]:
    async def chatty() -> None:
        for _ in range(int(seconds / 0.003)):
            await anyio.sleep(0.003)

    async with LoopMonitor() as monitor, anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(chatty)
        await anyio.sleep(seconds)
        tg.cancel_scope.cancel()
    return list(monitor.report().blocks)


async def _detect(count: int, seed: int) -> tuple[int, list[str], list[str]]:
    """Inject ``count`` blocks; return (caught with the right culprit, other blocks, misses)."""
    rng = random.Random(seed)
    injected: list[str | None] = [None]
    caught: set[int] = set()
    others: list[str] = []

    def on_block(event: BlockEvent) -> None:
        name = injected[0]
        if name is not None and event.culprit is not None and event.culprit.function == name:
            caught.add(len(names) - 1)
        else:
            others.append(f"{event} (injected: {name})")

    names: list[str] = []
    async with LoopMonitor(DETECT_THRESHOLD, on_block=on_block), anyio.create_task_group() as tg:
        tg.start_soon(_workload, 50, 10_000)  # a loop with work on it, not an idle one
        for _ in range(count):
            await anyio.sleep(rng.uniform(0.02, 0.08))  # a random moment
            culprit = rng.choice(CULPRITS)
            names.append(culprit.__name__)
            injected[0] = culprit.__name__
            culprit(BLOCK)
            await anyio.sleep(0.02)  # the heartbeat reports the block as soon as the loop runs
            injected[0] = None
        tg.cancel_scope.cancel()
    misses = [name for i, name in enumerate(names) if i not in caught]
    return len(caught), others, misses


def _backends(wanted: list[str]) -> tuple[list[str], list[str]]:
    """The wanted backends that are installed here, and those that are not (skipped)."""
    have = [b for b in wanted if b == "asyncio" or importlib.util.find_spec(b) is not None]
    return have, [b for b in wanted if b not in have]


def run(ctx: BenchContext) -> ScenarioResult:
    """Measure LoopMonitor's overhead and detection rate on each anyio backend."""
    backends, missing = _backends(["asyncio"] if ctx.tiny else list(BACKENDS))
    tasks, steps = ctx.pick((500, 40), (500, 40), (100, 20))
    injections, idle_seconds = ctx.pick(40, 20, 3), ctx.pick(2.0, 1.0, 0.2)
    rows: list[Row] = []
    overheads: dict[str, tuple[float, tuple[float, float] | None]] = {}
    extra: dict[str, Any] = {f"skipped {b}": f"not installed: pip install {b}" for b in missing}
    for backend in backends:
        name = f"loop-bound workload with a monitor, {backend}"
        overhead = Series(name, "s", "the same workload without a monitor")
        for _ in ctx.rounds((overhead, MONITOR_OVERHEAD)):
            plain, monitored = _on(backend, partial(_overhead, tasks, steps))
            overhead.add(monitored, plain)
        low, high = overhead.interval() or (math.nan, math.nan)
        overheads[backend] = ((overhead.ratio or 1) - 1) * 100, ((low - 1) * 100, (high - 1) * 100)
        ctx.progress(f"overhead on {backend}: {overheads[backend][0]:+.2f}%")
        note = f"{tasks} tasks x {steps} checkpoints; default monitor (50 ms, heartbeat 10 ms)"
        rows.append(overhead.row(SCENARIO, rule=MONITOR_OVERHEAD, note=note))

        name = f"CPU used by an idle loop with a monitor, {backend}"
        cpu = Series(name, "% of a core", "the idle loop without a monitor")
        with_monitor = _on(backend, partial(_idle_cpu, idle_seconds, True))
        cpu.add(with_monitor * 100, _on(backend, partial(_idle_cpu, idle_seconds, False)) * 100)
        rows.append(cpu.row(SCENARIO, verdict="n/a", note="the monitor's own cost"))

        idle = _on(backend, partial(_idle_blocks, idle_seconds))
        blamed = len([b for b in idle if b.culprit is not None])
        note = (
            f"{idle_seconds:g} s of awaits only; {len(idle) - blamed} stalls with no code to blame"
        )
        name, verdict = f"false blocks on an idle loop, {backend}", "not met" if blamed else "met"
        rows.append(Row(SCENARIO, name, blamed, "blocks", target="0", verdict=verdict, note=note))

        hits, others, misses = _on(backend, partial(_detect, injections, seed=len(rows)))
        ctx.progress(f"detection on {backend}: {hits}/{injections}")
        extra[f"misses_{backend}"], extra[f"other_blocks_{backend}"] = misses, others
        note = f"{len(others)} other blocks reported; threshold {DETECT_THRESHOLD * 1000:g} ms"
        name = f"50 ms blocks caught with the right culprit, {backend}"
        verdict = "met" if hits >= 0.95 * injections else "not met"
        share = hits / injections * 100
        rows.append(
            Row(SCENARIO, name, share, "%", injections, target=">= 95%", verdict=verdict, note=note)
        )
    plot = "monitor-overhead.png"
    title = "LoopMonitor overhead on a loop-bound workload (median, 95% interval)"
    bar_plot(
        ctx.out / plot,
        title,
        "% slower than without a monitor",
        overheads,
        target=(1.0, "target: < 1%"),
    )
    title = "Loop health: LoopMonitor overhead and detection"
    return ScenarioResult(SCENARIO, title, __doc__ or "", rows, [plot], extra=extra)
