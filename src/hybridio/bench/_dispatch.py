"""Scenario ``dispatch``: hybridio against the plain APIs and a batching sketch (benchmarks.md)."""

from __future__ import annotations

import asyncio
import pickle
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, cast

import anyio
import anyio.to_process
import anyio.to_thread
from anyio.abc import ByteReceiveStream, ByteSendStream
from anyio.streams.buffered import BufferedByteReceiveStream

import hybridio

from .._doctor import usable_cpus
from .._workloads import echo, loops_for, run_batch, spin
from . import _targets as t
from ._harness import map_rate, rows, throughput
from ._model import MIN_REPEATS, BenchContext, ScenarioResult, Series
from ._plots import bar_plot

SKETCH = "batching sketch"
_ECHO = pickle.dumps(echo)
#: The tiny-call strategies (1 and 32 callers, the first three also 256), in the plot's order.
TINY = ["anyio.to_process", "hybridio.run_cpu", SKETCH, "ProcessPoolExecutor"]
TINY += ["anyio.to_thread", "ThreadPoolExecutor", "hybridio.run_blocking"]
#: The CPU speedup's strategies against inline: 8 callers of ~25 ms of pure Python each.
CPU = ["hybridio.run_cpu", "anyio.to_process", "ProcessPoolExecutor", "hybridio.run_blocking"]
#: Every row, "<quantity> vs <baseline quantity>" (paired per repeat), and its rule.
ROWS = {
    "hybridio.run_cpu x1 vs anyio.to_process x1": t.LONE_CALL,
    **{f"hybridio.run_cpu x{n} vs anyio.to_process x{n}": None for n in (32, 256)},
    **{f"hybridio.run_cpu x{n} vs {SKETCH} x{n}": t.AGAINST_SKETCH for n in (32, 256)},
    **{f"ProcessPoolExecutor x{n} vs anyio.to_process x{n}": None for n in (1, 32)},
    "hybridio.run_blocking x32 vs ThreadPoolExecutor x32": t.THREADS_VS_EXECUTOR,
    "hybridio.run_blocking x32 vs anyio.to_thread x32": t.THREADS_VS_ANYIO,
    **{f"{name} x1 vs anyio.to_thread x1": None for name in TINY[-2:]},
    "cpu hybridio.run_cpu vs cpu inline": t.CPU_SPEEDUP,
    **{f"cpu {name} vs cpu inline": None for name in CPU[1:]},
    "map_cpu vs anyio.to_process x32": t.MAP_CPU,
}


@asynccontextmanager
async def batching_sketch(workers: int) -> AsyncIterator[Callable[[Any], Awaitable[Any]]]:
    """Yield ``call(x)``, running ``echo(x)``: one asyncio task per anyio.to_process worker
    sends it all queued calls at once (a minimal batching dispatcher)."""
    pending: list[tuple[bytes, asyncio.Future[Any]]] = []
    wake = asyncio.Event()

    async def call(x: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        pending.append((pickle.dumps((x,)), future))
        wake.set()
        return await future

    async def drive() -> None:
        async with await anyio.open_process(command, stderr=subprocess.DEVNULL) as process:
            stdin = cast(ByteSendStream, process.stdin)
            stdout = BufferedByteReceiveStream(cast(ByteReceiveStream, process.stdout))
            await stdout.receive_exactly(6)  # READY
            while True:  # a failure cancels the task group, and every waiting caller with it
                while not pending:
                    wake.clear()
                    await wake.wait()
                batch, pending[:64] = pending[:64], []
                calls = [(_ECHO, args) for args, _ in batch]
                await stdin.send(pickle.dumps(("run", run_batch, (calls,))))
                header = await stdout.receive_until(b"\n", 64)
                results = pickle.loads(await stdout.receive_exactly(int(header.split(b" ")[1])))
                if header.startswith(b"EXCEPTION"):
                    raise RuntimeError("a worker of the batching sketch failed") from results
                for (_, future), result in zip(batch, results, strict=True):
                    future.set_result(result)

    command = [sys.executable, "-u", "-m", "anyio.to_process"]
    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(drive)  # cancelled, its worker is killed on the way out
        yield call
        tg.cancel_scope.cancel()


async def _measure(ctx: BenchContext) -> ScenarioResult:
    """Every repeat's quantities, the strategies alternating; the rows and the plot."""
    cpus, seconds = usable_cpus(), ctx.pick(full=1.0, quick=0.3, tiny=0.02)
    loops = loops_for(ctx.pick(0.025, 0.025, 0.002))  # ~25 ms of pure Python per task
    items = range(ctx.pick(10_000, 10_000, 500))  # tiny map_cpu items
    measured: dict[str, list[float]] = defaultdict(list)
    start = time.monotonic()
    with ProcessPoolExecutor(cpus) as processes, ThreadPoolExecutor() as threads:
        async with hybridio.Runtime(cpu_workers=cpus) as rt, batching_sketch(cpus) as sketch:
            executor = asyncio.get_running_loop().run_in_executor
            via: dict[str, Callable[..., Awaitable[Any]]] = {  # each strategy, as via(fn, x)
                "hybridio.run_cpu": rt.run_cpu,
                "anyio.to_process": anyio.to_process.run_sync,
                "ProcessPoolExecutor": partial(executor, processes),
                "hybridio.run_blocking": rt.run_blocking,
                "anyio.to_thread": anyio.to_thread.run_sync,
                "ThreadPoolExecutor": partial(executor, threads),
                "inline": partial(rt.run, kind="inline"),
                SKETCH: lambda fn, x: sketch(x),  # fn is always echo
            }
            tiny = {name: partial(via[name], echo, 1) for name in TINY}
            cpu = {name: partial(via[name], spin, loops) for name in [*CPU, "inline"]}
            ctx.progress("starting every pool's workers")
            for call in tiny.values():  # warm up: every worker started and used
                await throughput(call, 2 * cpus, 0.05)
            plan = [(f"{name} x{n}", tiny[name], n, seconds, 0) for name in TINY for n in (1, 32)]
            plan += [(f"{name} x256", tiny[name], 256, seconds, 0) for name in TINY[:3]]
            plan += [(f"cpu {name}", call, 8, 4 * seconds, 1) for name, call in cpu.items()]
            for repeat in range(ctx.pick(10, MIN_REPEATS, 1)):
                ctx.progress(f"repeat {repeat + 1}")
                for key, call, n, duration, every in plan:
                    measured[key].append(await throughput(call, n, duration, yield_every=every))
                measured["map_cpu"].append(await map_rate(rt, echo, items))
            info = {"cpus": cpus, "spin_n": loops, "batches": rt.stats()["cpu"].batches}
    paired = [(name, name.split(" vs ")[1], rule) for name, rule in ROWS.items()]
    made = rows("dispatch", measured, (start, time.monotonic()), paired, _unit)
    made[-1].baseline_unit = "calls/s"  # map_cpu's items/s against one call per item
    bars = {name: Series(name, "calls/s", values=measured[f"{name} x32"]) for name in TINY}
    title = "Tiny calls, 32 concurrent callers (asyncio, median, 95% interval)"
    bar_plot(ctx.out / "dispatch-throughput.png", title, "calls/s (log scale)", bars, logy=True)
    title = "Dispatch: tiny calls, CPU speedup and map_cpu against the plain APIs"
    about = f"{cpus} worker processes, strategies alternating; see docs/benchmarks.md."
    return ScenarioResult("dispatch", title, about, made, ["dispatch-throughput.png"], extra=info)


def _unit(name: str) -> str:
    return {"cpu": "tasks/s", "map_cpu": "items/s"}.get(name.split()[0], "calls/s")


def run(ctx: BenchContext) -> ScenarioResult:
    """Measure dispatch throughput, CPU speedup and map_cpu against the plain APIs."""
    return anyio.run(_measure, ctx, backend="asyncio")
