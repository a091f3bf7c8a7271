"""Scenario ``monitor``: what LoopMonitor costs, and whether it names the code that blocks.

* Overhead: a loop-bound workload (many tiny tasks that only yield) timed with and without a
  monitor, alternating in one event loop (ABBA order, so drift cancels); target < 1%.
* CPU: the process CPU time an otherwise idle loop burns per second, with and without a monitor.
* Detection: 50 ms blocks injected at random moments in three known functions (blocking I/O,
  pure-Python CPU, short C calls); a block counts as caught when its culprit is that function;
  target >= 95%.
* False blocks: an idle loop (only awaits) must blame no code; target 0.
"""

from __future__ import annotations

import hashlib
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

from .._monitor._loop_monitor import LoopMonitor
from .._monitor._report import BlockEvent
from . import _plots
from ._model import BenchContext, Row, ScenarioResult, spread_of

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


# -- the injected culprits: module-level, with names the report must give back -------------------


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


# -- measurements ---------------------------------------------------------------------------


def _on(backend: str, fn: Callable[[], Awaitable[T]]) -> T:
    name, options = BACKENDS[backend]
    return anyio.run(fn, backend=name, backend_options=options)


async def _workload(tasks: int, steps: int) -> None:
    async def tiny() -> None:
        for _ in range(steps):
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        for _ in range(tasks):
            tg.start_soon(tiny)


async def _overhead(repeats: int, tasks: int, steps: int) -> tuple[list[float], list[float]]:
    async def timed(monitored: bool) -> float:
        start = time.perf_counter()
        if monitored:
            async with LoopMonitor():
                await _workload(tasks, steps)
        else:
            await _workload(tasks, steps)
        return time.perf_counter() - start

    await _workload(tasks, steps)  # warm-up
    plain: list[float] = []
    monitored: list[float] = []
    for i in range(repeats):
        order = (False, True) if i % 2 == 0 else (True, False)
        for flag in order:
            (monitored if flag else plain).append(await timed(flag))
    return plain, monitored


async def _idle_cpu(seconds: float, monitored: bool) -> tuple[float, list[BlockEvent]]:
    """CPU seconds per second burnt by a loop that only sleeps, and the blocks seen."""
    monitor = LoopMonitor()
    start_cpu, start = time.process_time(), time.perf_counter()
    if monitored:
        async with monitor:
            await anyio.sleep(seconds)
    else:
        await anyio.sleep(seconds)
    used = (time.process_time() - start_cpu) / (time.perf_counter() - start)
    return used, list(monitor.report().blocks)


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


# -- the scenario ---------------------------------------------------------------------------


def run(ctx: BenchContext) -> ScenarioResult:
    """Measure LoopMonitor's overhead and detection rate on each anyio backend."""
    started = time.perf_counter()
    backends = ["asyncio"] if ctx.tiny else list(BACKENDS)
    repeats = ctx.repeats(15, quick=7, tiny=2)
    tasks, steps = (100, 20) if ctx.tiny else (500, 40)
    injections = 3 if ctx.tiny else 20 if ctx.quick else 40
    idle_seconds = 0.2 if ctx.tiny else 1.0 if ctx.quick else 2.0
    rows: list[Row] = []
    overheads: dict[str, float] = {}
    extra: dict[str, Any] = {"detect_threshold": DETECT_THRESHOLD, "block_seconds": BLOCK}

    for backend in backends:
        plain, monitored = _on(backend, partial(_overhead, repeats, tasks, steps))
        pairs = [m / p for m, p in zip(monitored, plain, strict=True)]
        ratio = statistics.median(pairs)
        overheads[backend] = (ratio - 1) * 100
        ctx.progress(f"monitor: overhead on {backend}: {overheads[backend]:+.2f}%")
        rows.append(
            Row(
                SCENARIO,
                f"overhead, loop-bound workload, {backend}",
                statistics.median(monitored),
                "s",
                repeats=repeats,
                spread=spread_of(monitored),
                baseline="same workload without a monitor",
                baseline_value=statistics.median(plain),
                ratio=ratio,
                target="M1: < 1% overhead (ratio < 1.01)",
                verdict="met" if ratio < 1.01 else "not met",
                note=(
                    f"{tasks} tasks x {steps} checkpoints; default monitor (threshold 50 ms, "
                    f"heartbeat 10 ms); ratio = median of {repeats} paired runs "
                    f"(pair spread {_fmt(spread_of(pairs))})"
                ),
            )
        )

        cpu_plain, _ = _on(backend, partial(_idle_cpu, idle_seconds, False))
        cpu_monitored, _ = _on(backend, partial(_idle_cpu, idle_seconds, True))
        rows.append(
            Row(
                SCENARIO,
                f"CPU used by an idle loop, {backend}",
                cpu_monitored * 100,
                "% of a core",
                baseline="idle loop without a monitor",
                baseline_value=cpu_plain * 100,
                ratio=None,
                verdict="n/a",
                note=f"the monitor's own cost: {(cpu_monitored - cpu_plain) * 100:.3f}% of a core",
            )
        )

        idle = _on(backend, partial(_idle_blocks, idle_seconds))
        blamed = [b for b in idle if b.culprit is not None]
        rows.append(
            Row(
                SCENARIO,
                f"false blocks on an idle loop, {backend}",
                len(blamed),
                "blocks",
                target="0 blocks blaming code",
                verdict="met" if not blamed else "not met",
                note=f"{idle_seconds:g} s of awaits only; {len(idle) - len(blamed)} stalls "
                "(loop late with no code on it: CPU starvation by other processes)",
            )
        )

        hits, others, misses = _on(backend, partial(_detect, injections, seed=len(rows)))
        rate = hits / injections * 100
        ctx.progress(f"monitor: detection on {backend}: {hits}/{injections}")
        extra[f"misses_{backend}"] = misses
        extra[f"other_blocks_{backend}"] = others
        rows.append(
            Row(
                SCENARIO,
                f"50 ms blocks caught with the right culprit, {backend}",
                rate,
                "%",
                repeats=injections,
                target="M1: >= 95%",
                verdict="met" if rate >= 95 else "not met",
                note=(
                    f"{hits}/{injections} blocks in 3 functions (sleep, Python CPU, C calls), "
                    f"threshold {DETECT_THRESHOLD * 1000:g} ms (a block must outlast threshold "
                    f"+ heartbeat interval); {len(others)} other blocks reported"
                ),
            )
        )

    plot = "monitor-overhead.png"
    _plots.bar_plot(
        ctx.out / plot, "LoopMonitor overhead on a loop-bound workload", "% slower", overheads
    )
    return ScenarioResult(
        name=SCENARIO,
        title="Loop health: LoopMonitor overhead and detection",
        description=__doc__ or "",
        rows=rows,
        plots=[plot],
        seconds=time.perf_counter() - started,
        extra=extra,
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
