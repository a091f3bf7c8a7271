"""Scenario ``dispatch``: what an offload costs and buys, hybridio against the plain APIs.

On one asyncio loop, the strategies alternating within each repeat: closed-loop throughput of a
tiny call with 1, 32 and 256 callers ("x32") for hybridio, plain anyio, the executors and a
minimal batching sketch (``batching_sketch``); the speedup of 8 pure-Python tasks of ~25 ms over
inline; map_cpu of tiny items. docs/benchmarks.md ("dispatch") says what each row shows.
"""

from __future__ import annotations

import asyncio
import pickle
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import anyio.lowlevel
import anyio.to_process
import anyio.to_thread
from anyio.abc import ByteReceiveStream, ByteSendStream, Process
from anyio.streams.buffered import BufferedByteReceiveStream

import hybridio

from .._workloads import echo, loops_for, spin
from . import _targets as t
from ._harness import rows
from ._load import usable_cpus
from ._model import MIN_REPEATS, BenchContext, Rule, ScenarioResult, median_interval
from ._plots import bar_plot
from ._work import run_batch

__all__ = ["run", "throughput"]

SCENARIO = "dispatch"
_SKETCH = "batching sketch"
_ECHO = pickle.dumps(echo)

Call = Callable[[], Awaitable[Any]]


def _strategies(
    rt: hybridio.Runtime,
    loop: asyncio.AbstractEventLoop,
    pools: tuple[ProcessPoolExecutor, ThreadPoolExecutor],
    fn: Callable[[int], Any],
    x: int,
) -> dict[str, Call]:
    """One way to call ``fn(x)`` per strategy."""
    return {
        "hybridio.run_cpu": lambda: rt.run_cpu(fn, x),
        "anyio.to_process": lambda: anyio.to_process.run_sync(fn, x),
        "ProcessPoolExecutor": lambda: loop.run_in_executor(pools[0], fn, x),
        "hybridio.run_blocking": lambda: rt.run_blocking(fn, x),
        "anyio.to_thread": lambda: anyio.to_thread.run_sync(fn, x),
        "ThreadPoolExecutor": lambda: loop.run_in_executor(pools[1], fn, x),
    }


async def throughput(
    call: Call, callers: int, seconds: float, *, yield_every: int | None = None
) -> float:
    """Calls per second completed by ``callers`` tasks calling back to back for ``seconds``.

    ``yield_every``: let other tasks run every that many calls (calls that run inline on the
    loop never yield by themselves).
    """
    done = 0
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal done
        i = 0
        while True:  # at least one call each, however late the caller started
            await call()
            i += 1
            if yield_every is not None and i % yield_every == 0:
                await anyio.lowlevel.checkpoint()
            if time.perf_counter() >= deadline:
                break
        done += i

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(callers):
            tg.start_soon(caller)
    return done / (time.perf_counter() - start)


#: The CPU speedup's strategies, in the order they run.
CPU = ["hybridio.run_cpu", "anyio.to_process", "ProcessPoolExecutor"]
CPU += ["threads (hybridio.run_blocking)", "inline"]
#: (measured, baseline, rule) of each row: names are "<strategy> x<callers>", "cpu <strategy>".
ROWS: list[tuple[str, str | None, Rule | None]] = [
    ("hybridio.run_cpu x1", "anyio.to_process x1", t.LONE_CALL),
    ("hybridio.run_cpu x32", "anyio.to_process x32", None),
    ("hybridio.run_cpu x256", "anyio.to_process x256", None),
    (f"{_SKETCH} x32", "anyio.to_process x32", None),
    (f"{_SKETCH} x256", "anyio.to_process x256", None),
    ("hybridio.run_cpu x32", f"{_SKETCH} x32", t.AGAINST_SKETCH),
    ("hybridio.run_cpu x256", f"{_SKETCH} x256", t.AGAINST_SKETCH),
    ("ProcessPoolExecutor x1", "anyio.to_process x1", None),
    ("ProcessPoolExecutor x32", "anyio.to_process x32", None),
    ("hybridio.run_blocking x32", "ThreadPoolExecutor x32", t.THREADS_VS_EXECUTOR),
    ("hybridio.run_blocking x32", "anyio.to_thread x32", t.THREADS_VS_ANYIO),
    ("hybridio.run_blocking x1", "anyio.to_thread x1", None),
    ("ThreadPoolExecutor x1", "anyio.to_thread x1", None),
    ("ThreadPoolExecutor x32", "anyio.to_thread x32", None),
    *((f"anyio.to_process x{n}", None, None) for n in (1, 32, 256)),
    *((f"anyio.to_thread x{n}", None, None) for n in (1, 32)),
    ("cpu hybridio.run_cpu", "cpu inline", t.CPU_SPEEDUP),
    *((f"cpu {name}", "cpu inline", None) for name in CPU[1:-1]),
    ("cpu inline", None, None),
    ("map_cpu", "anyio.to_process x32", t.MAP_CPU),
]


_BARS = ["anyio.to_process", "ProcessPoolExecutor", "hybridio.run_cpu", _SKETCH]
_BARS += ["anyio.to_thread", "ThreadPoolExecutor", "hybridio.run_blocking"]


@asynccontextmanager
async def batching_sketch(workers: int) -> AsyncIterator[Callable[[Any], Awaitable[Any]]]:
    """A minimal batching dispatcher, the ceiling hybridio's run_cpu is measured against: what
    this machine allows batching, with none of hybridio's guarantees (no queue bound, timeouts,
    cancellation, crash handling or metrics). anyio.to_process's own workers, a driver task per
    worker sending every queued call in one round trip, a bare future per caller; asyncio only.
    Yields ``call(x)``, which runs ``echo(x)`` in a worker."""
    pending: list[tuple[bytes, asyncio.Future[Any]]] = []
    wake = asyncio.Event()

    async def call(x: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        pending.append((pickle.dumps((x,)), future))
        wake.set()
        return await future

    async def drive(process: Process) -> None:
        stdin, stdout = (
            process.stdin,
            BufferedByteReceiveStream(cast(ByteReceiveStream, process.stdout)),
        )
        await stdout.receive_exactly(6)  # READY
        batch: list[tuple[bytes, asyncio.Future[Any]]] = []
        try:
            while True:
                if not pending:
                    wake.clear()
                    await wake.wait()
                    continue
                batch, pending[:64] = pending[:64], []
                command = ("run", run_batch, ([(_ECHO, args) for args, _ in batch],))
                await cast(ByteSendStream, stdin).send(pickle.dumps(command))
                header = await stdout.receive_until(b"\n", 64)
                results = pickle.loads(await stdout.receive_exactly(int(header.split(b" ")[1])))
                for (_, future), result in zip(batch, results, strict=True):
                    future.set_result(result)
        except Exception as exc:  # a benchmark must fail, never hang: fail every waiting caller
            for _, future in batch + pending:
                if not future.done():
                    future.set_exception(RuntimeError(f"the batching sketch failed: {exc!r}"))
            raise

    command = [sys.executable, "-u", "-m", "anyio.to_process"]
    processes: list[Process] = []
    try:
        async with anyio.create_task_group() as tg:
            for _ in range(workers):
                processes.append(await anyio.open_process(command, stderr=subprocess.DEVNULL))
                tg.start_soon(drive, processes[-1])
            yield call
            tg.cancel_scope.cancel()
    finally:
        for process in processes:
            process.kill()  # a worker of the sketch holds nothing worth a graceful exit
            await process.aclose()


def _unit(name: str) -> str:
    return (
        "items/s" if name.startswith("map") else "tasks/s" if name.startswith("cpu") else "calls/s"
    )


async def _measure(ctx: BenchContext, measured: dict[str, list[float]]) -> dict[str, Any]:
    """Every repeat's quantities into ``measured``; facts of the run."""
    cpus, loop = usable_cpus(), asyncio.get_running_loop()
    seconds = ctx.pick(full=1.0, quick=0.3, tiny=0.02)
    spin_n = loops_for(ctx.pick(full=0.025, quick=0.025, tiny=0.002))
    map_items = ctx.pick(full=10_000, quick=10_000, tiny=500)
    pools = (ProcessPoolExecutor(cpus), ThreadPoolExecutor())
    try:
        async with hybridio.Runtime(cpu_workers=cpus) as rt, batching_sketch(cpus) as sketch:
            strategies = _strategies(rt, loop, pools, echo, 1)
            strategies[_SKETCH] = lambda: sketch(1)
            ctx.progress("starting every pool's workers")
            for call in strategies.values():  # warm up: every worker started and used
                await throughput(call, 2 * cpus, 0.05)
            plan = [(name, callers) for name in strategies for callers in (1, 32)]
            plan += [(name, 256) for name in ("hybridio.run_cpu", "anyio.to_process", _SKETCH)]
            cpu = _strategies(rt, loop, pools, spin, spin_n)
            cpu["threads (hybridio.run_blocking)"] = cpu.pop("hybridio.run_blocking")

            async def inline() -> Any:
                return spin(spin_n)

            cpu["inline"] = inline
            for repeat in range(ctx.repeats(10, quick=MIN_REPEATS)):
                ctx.progress(f"repeat {repeat + 1}")
                got = {}
                for name, callers in plan:  # strategies alternate within each repeat
                    got[f"{name} x{callers}"] = await throughput(strategies[name], callers, seconds)
                for name in CPU:  # 8 callers; the ratio to inline is the speedup
                    got[f"cpu {name}"] = await throughput(cpu[name], 8, 4 * seconds, yield_every=1)
                start = time.perf_counter()
                async with rt.map_cpu(echo, range(map_items)) as results:
                    async for _ in results:
                        pass
                got["map_cpu"] = map_items / (time.perf_counter() - start)
                for key, value in got.items():
                    measured.setdefault(key, []).append(value)
            batches = rt.stats()["cpu"].batches
    finally:
        pools[0].shutdown(cancel_futures=True)
        pools[1].shutdown()
    return {"cpus": cpus, "spin_n": spin_n, "batches": batches}


def run(ctx: BenchContext) -> ScenarioResult:
    """Measure dispatch throughput, CPU speedup and map_cpu against the plain APIs."""
    measured: dict[str, list[float]] = {}
    start = time.monotonic()
    info = anyio.run(_measure, ctx, measured, backend="asyncio")
    plan = [(f"{name} vs {base}" if base else name, base, rule) for name, base, rule in ROWS]
    made = rows(SCENARIO, measured, (start, time.monotonic()), plan, _unit)
    made[-1].baseline_unit = "calls/s"  # map_cpu's items/s against calls/s
    bars = {
        name: (statistics.median(v), median_interval(v))
        for name in _BARS
        if (v := measured[f"{name} x32"])
    }
    plot, title = (
        "dispatch-throughput.png",
        "Tiny calls, 32 concurrent callers (asyncio, median, 95% interval)",
    )
    bar_plot(ctx.out / plot, title, "calls/s (log scale)", bars, logy=True)
    description = (
        f"{info['cpus']} worker processes, strategies alternating; see docs/benchmarks.md."
    )
    title = "Dispatch: tiny calls, CPU speedup and map_cpu against the plain APIs"
    return ScenarioResult(SCENARIO, title, description, made, [plot], extra=info)
