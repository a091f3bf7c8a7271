"""The dispatch scenario: what an offload costs and buys, hybridio against the plain APIs.

In one run, on one asyncio loop, with repeats interleaved so that drift hits every strategy alike:

* tiny-call throughput (a function that returns its argument) with 1, 32 and 256 concurrent
  callers, for ``hybridio.run_cpu``, plain ``anyio.to_process.run_sync``,
  ``run_in_executor(ProcessPoolExecutor)``, ``hybridio.run_blocking``, plain
  ``anyio.to_thread.run_sync`` and ``run_in_executor(ThreadPoolExecutor)``;
* CPU speedup: 8 tasks of ~25 ms of pure-Python work, against running them inline;
* ``map_cpu`` over 10,000 tiny items, against one ``anyio.to_process`` call per item;
* a minimal batching sketch (``_dispatch_sketch``) with 32 and 256 callers: the throughput this
  machine allows a batching dispatcher with none of hybridio's guarantees, so a target that is
  out of reach for the sketch too shows as such.

Each throughput is measured closed-loop: the callers call back to back for a fixed time.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import anyio
import anyio.to_process
import anyio.to_thread

import hybridio

from ._dispatch_sketch import BatchingSketch
from ._dispatch_work import calibrate_spin, echo, spin
from ._model import BenchContext, Row, ScenarioResult, paired_ratio, spread_of
from ._plots import bar_plot

__all__ = ["run"]

SCENARIO = "dispatch"
_SKETCH = "batching sketch"

Call = Callable[[Any], Coroutine[Any, Any, Any]]


def _strategies(
    rt: hybridio.Runtime,
    loop: asyncio.AbstractEventLoop,
    process_pool: ProcessPoolExecutor,
    thread_pool: ThreadPoolExecutor,
    fn: Callable[[Any], Any],
) -> dict[str, Call]:
    """One way to call ``fn(x)`` per strategy, all as coroutine functions of ``x``."""

    async def hybridio_cpu(x: Any) -> Any:
        return await rt.run_cpu(fn, x)

    async def anyio_process(x: Any) -> Any:
        return await anyio.to_process.run_sync(fn, x)

    async def executor_process(x: Any) -> Any:
        return await loop.run_in_executor(process_pool, fn, x)

    async def hybridio_thread(x: Any) -> Any:
        return await rt.run_blocking(fn, x)

    async def anyio_thread(x: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, x)

    async def executor_thread(x: Any) -> Any:
        return await loop.run_in_executor(thread_pool, fn, x)

    return {
        "hybridio.run_cpu": hybridio_cpu,
        "anyio.to_process": anyio_process,
        "ProcessPoolExecutor": executor_process,
        "hybridio.run_blocking": hybridio_thread,
        "anyio.to_thread": anyio_thread,
        "ThreadPoolExecutor": executor_thread,
    }


def _cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


async def _throughput(call: Call, callers: int, seconds: float) -> float:
    """Calls per second completed by ``callers`` tasks calling back to back for ``seconds``."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal done
        i = 0
        while True:  # at least one call each, however late the caller started
            await call(i)
            i += 1
            if time.perf_counter() >= deadline:
                break
        done += i

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(callers):
            tg.start_soon(caller)
    return done / (time.perf_counter() - start)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


class _Measurements:
    """Repeated measurements by name, and rows built from them."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {}

    def add(self, name: str, value: float) -> None:
        self.values.setdefault(name, []).append(value)

    def median(self, name: str) -> float:
        return _median(self.values[name])

    def row(
        self,
        name: str,
        unit: str,
        *,
        baseline: str | None = None,
        target: float | None = None,
        target_text: str | None = None,
        note: str = "",
        label: str | None = None,
    ) -> Row:
        value = self.median(name)
        baseline_value = self.median(baseline) if baseline else None
        ratio = paired_ratio(self.values[name], self.values[baseline]) if baseline else None
        verdict = None
        if target is not None and ratio is not None:
            verdict = "met" if ratio >= target else "not met"
        return Row(
            scenario=SCENARIO,
            name=label or name,
            value=value,
            unit=unit,
            repeats=len(self.values[name]),
            spread=spread_of(self.values[name]),
            baseline=baseline,
            baseline_value=baseline_value,
            ratio=ratio,
            target=target_text or (f">= {target:g}x" if target is not None else None),
            verdict=verdict,
            note=note,
        )


async def _measure(ctx: BenchContext) -> tuple[_Measurements, dict[str, Any]]:
    cpus = _cpus()
    repeats = ctx.repeats(full=5, quick=3, tiny=1)
    seconds = ctx.pick(full=1.0, quick=0.3, tiny=0.02)
    task_seconds = ctx.pick(full=0.025, quick=0.025, tiny=0.002)
    map_items = ctx.pick(full=10_000, quick=10_000, tiny=500)
    m = _Measurements()
    loop = asyncio.get_running_loop()
    spin_n = calibrate_spin(task_seconds)
    process_pool = ProcessPoolExecutor(cpus)
    thread_pool = ThreadPoolExecutor()
    try:
        async with hybridio.Runtime(cpu_workers=cpus) as rt:
            strategies = _strategies(rt, loop, process_pool, thread_pool, echo)
            ctx.progress("dispatch: starting every pool's workers")
            for call in strategies.values():  # warm up: every worker started and used
                await _throughput(call, 2 * cpus, 0.05)
            plan = [(name, callers) for name in strategies for callers in (1, 32)]
            plan += [(name, 256) for name in ("hybridio.run_cpu", "anyio.to_process")]
            plan += [(_SKETCH, 32), (_SKETCH, 256)]
            async with BatchingSketch(cpus) as sketch:

                async def sketch_call(x: Any) -> Any:
                    return await sketch.call(echo, x)

                strategies[_SKETCH] = sketch_call
                await _throughput(sketch_call, 2 * cpus, 0.05)
                for repeat in range(repeats):
                    ctx.progress(f"dispatch: tiny calls, repeat {repeat + 1}/{repeats}")
                    for name, callers in plan:
                        throughput = await _throughput(strategies[name], callers, seconds)
                        m.add(f"{name} x{callers}", throughput)

            async def run_tasks(call: Call) -> float:
                start = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    for _ in range(8):
                        tg.start_soon(call, spin_n)
                return time.perf_counter() - start

            async def cpu_inline(n: int) -> Any:
                return spin(n)

            offloaded = _strategies(rt, loop, process_pool, thread_pool, spin)
            cpu_strategies: dict[str, Call] = {
                "inline": cpu_inline,
                "hybridio.run_cpu": offloaded["hybridio.run_cpu"],
                "anyio.to_process": offloaded["anyio.to_process"],
                "ProcessPoolExecutor": offloaded["ProcessPoolExecutor"],
                "hybridio.run_blocking (threads)": offloaded["hybridio.run_blocking"],
            }
            for repeat in range(repeats):
                ctx.progress(f"dispatch: CPU speedup, repeat {repeat + 1}/{repeats}")
                for name, call in cpu_strategies.items():
                    # Speed = tasks per second; the ratio to inline is the speedup.
                    m.add(f"cpu {name}", 8 / await run_tasks(call))

            for repeat in range(repeats):
                ctx.progress(f"dispatch: map_cpu, repeat {repeat + 1}/{repeats}")
                start = time.perf_counter()
                async with rt.map_cpu(echo, range(map_items)) as results:
                    async for _ in results:
                        pass
                m.add("map_cpu", map_items / (time.perf_counter() - start))
            batches = rt.stats()["cpu"].batches
    finally:
        process_pool.shutdown(cancel_futures=True)
        thread_pool.shutdown()
    return m, {"cpus": cpus, "spin_n": spin_n, "task_seconds": task_seconds, "batches": batches}


def run(ctx: BenchContext) -> ScenarioResult:
    """Measure dispatch throughput, CPU speedup and map_cpu against the plain APIs."""
    started = time.perf_counter()
    m, info = anyio.run(_measure, ctx, backend="asyncio")
    cpus = info["cpus"]
    calls = "calls/s"
    rows = [
        m.row(
            "hybridio.run_cpu x1",
            calls,
            baseline="anyio.to_process x1",
            target=1.0,
            note="D2: a lone caller must not pay for batching",
        ),
        m.row(
            "hybridio.run_cpu x32",
            calls,
            baseline="anyio.to_process x32",
            target=15.0,
            note="D1: queued tiny calls share a round trip",
        ),
        m.row("hybridio.run_cpu x256", calls, baseline="anyio.to_process x256", target=20.0),
        m.row(
            f"{_SKETCH} x32",
            calls,
            baseline="anyio.to_process x32",
            note="the ceiling here: batching with no limits, cancellation or metrics",
        ),
        m.row(f"{_SKETCH} x256", calls, baseline="anyio.to_process x256"),
        m.row(
            "hybridio.run_cpu x32",
            calls,
            baseline=f"{_SKETCH} x32",
            label="hybridio.run_cpu x32 (vs the sketch)",
            note="share of the sketch's throughput hybridio keeps with all its guarantees",
        ),
        m.row(
            "hybridio.run_cpu x256",
            calls,
            baseline=f"{_SKETCH} x256",
            label="hybridio.run_cpu x256 (vs the sketch)",
        ),
        m.row("ProcessPoolExecutor x1", calls, baseline="anyio.to_process x1"),
        m.row("ProcessPoolExecutor x32", calls, baseline="anyio.to_process x32"),
        m.row("anyio.to_process x1", calls),
        m.row("anyio.to_process x32", calls),
        m.row("anyio.to_process x256", calls),
        m.row(
            "hybridio.run_blocking x32",
            calls,
            baseline="ThreadPoolExecutor x32",
            target=1.0,
            note="D4: at least run_in_executor(ThreadPoolExecutor)",
        ),
        m.row(
            "hybridio.run_blocking x32",
            calls,
            baseline="anyio.to_thread x32",
            target=2.0,
            label="hybridio.run_blocking x32 (vs anyio)",
            note="D4: at least twice plain anyio.to_thread",
        ),
        m.row("hybridio.run_blocking x1", calls, baseline="anyio.to_thread x1"),
        m.row("ThreadPoolExecutor x1", calls, baseline="anyio.to_thread x1"),
        m.row("ThreadPoolExecutor x32", calls, baseline="anyio.to_thread x32"),
        m.row("anyio.to_thread x1", calls),
        m.row("anyio.to_thread x32", calls),
        m.row(
            "cpu hybridio.run_cpu",
            "tasks/s",
            baseline="cpu inline",
            target=0.95 * cpus,
            target_text=f">= {0.95 * cpus:.2g}x (0.95 x {cpus} cores)",
            label="CPU speedup: hybridio.run_cpu",
            note="D3: 8 tasks of ~25 ms pure-Python work; the ratio is the speedup",
        ),
        m.row("cpu anyio.to_process", "tasks/s", baseline="cpu inline", label="CPU: anyio"),
        m.row(
            "cpu ProcessPoolExecutor",
            "tasks/s",
            baseline="cpu inline",
            label="CPU: ProcessPoolExecutor",
        ),
        m.row(
            "cpu hybridio.run_blocking (threads)",
            "tasks/s",
            baseline="cpu inline",
            label="CPU: threads",
            note="the GIL: no speedup for pure-Python work in threads",
        ),
        m.row("cpu inline", "tasks/s", label="CPU: inline"),
        m.row(
            "map_cpu",
            "items/s",
            baseline="anyio.to_process x32",
            target=20.0,
            label="map_cpu of 10,000 tiny items",
            note="baseline: one anyio.to_process call per item, 32 concurrent callers",
        ),
    ]
    plot = "dispatch-throughput.png"
    bars = {
        name.replace(" x32", ""): m.median(name)
        for name in (
            "anyio.to_process x32",
            "ProcessPoolExecutor x32",
            "hybridio.run_cpu x32",
            "anyio.to_thread x32",
            "ThreadPoolExecutor x32",
            "hybridio.run_blocking x32",
        )
    }
    ctx.out.mkdir(parents=True, exist_ok=True)
    bar_plot(
        ctx.out / plot,
        "Tiny calls, 32 concurrent callers (asyncio)",
        "calls/s (log scale)",
        bars,
        logy=True,
    )
    return ScenarioResult(
        name=SCENARIO,
        title="Dispatch: tiny calls, CPU speedup and map_cpu against the plain APIs",
        description=(
            f"Closed-loop throughput of a function that returns its argument, with 1, 32 and "
            f"256 concurrent callers, on one asyncio loop, {cpus} worker processes; CPU speedup "
            "of 8 pure-Python tasks of ~25 ms against running them inline; map_cpu of "
            "10,000 tiny items. Strategies alternate within each repeat; values are medians."
        ),
        rows=rows,
        plots=[plot],
        seconds=time.perf_counter() - started,
        extra=info,
    )
