"""Scenario ``cluster`` (named only; needs ``hybridio[cluster]``): the local process pool against
a Dask cluster of the same size on 127.0.0.1, started with the ``dask`` command as a user would.

The same workloads on both, paired in each repeat: one call's overhead, ``map_cpu`` throughput,
bursts of concurrent calls of growing sizes (and the crossover, where the cluster costs at most
10% more than the pool), and the bridge to Dask's client thread. docs/scaling-out.md discusses it.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from typing import Any

import anyio
import anyio.lowlevel

import hybridio

from .._workloads import busy_for, echo, noop
from ._harness import free_port, running
from ._load import usable_cpus
from ._model import BenchContext, Row, ScenarioResult, Series

__all__ = ["local_cluster", "run"]

SCENARIO = "cluster"
#: The cluster "pays" from the task size where it costs at most this much more than the pool.
CROSSOVER_RATIO = 1.10


@contextmanager
def local_cluster(workers: int) -> Iterator[str]:
    """Start ``dask scheduler`` and ``workers`` one-thread Dask workers on 127.0.0.1."""
    from distributed import Client

    dask = shutil.which("dask", path=os.path.dirname(sys.executable)) or shutil.which("dask")
    if dask is None:
        raise RuntimeError("the `dask` command is missing: pip install 'hybridio[cluster]'")
    port, quiet = free_port(), {"stdout": subprocess.DEVNULL}
    address, local = f"tcp://127.0.0.1:{port}", ["--host", "127.0.0.1", "--no-dashboard"]
    with ExitStack() as stack:
        stack.enter_context(running([dask, "scheduler", *local, "--port", str(port)], **quiet))
        command = [dask, "worker", address, "--nworkers", str(workers), "--nthreads", "1", *local]
        stack.enter_context(running(command, **quiet))
        with Client(address, timeout=60, set_as_default=False) as client:  # type: ignore[no-untyped-call]
            client.wait_for_workers(workers, timeout=60)
        yield address


async def _per_call(call: Callable[[], Awaitable[object]], calls: int) -> float:
    """Seconds per call, one call after the other."""
    start = time.perf_counter()
    for _ in range(calls):
        await call()
    return (time.perf_counter() - start) / calls


async def _serial(rt: hybridio.Runtime, *, calls: int) -> float:
    return await _per_call(lambda: rt.run_cpu(noop), calls)


async def _map(rt: hybridio.Runtime, *, fn: Callable[[float], Any], n: int) -> float:
    """Items per second of ``map_cpu`` over ``n`` items of ``fn(0.001)``."""
    start = time.perf_counter()
    async with rt.map_cpu(fn, [0.001] * n) as results:
        async for _ in results:
            pass
    return n / (time.perf_counter() - start)


async def _burst(rt: hybridio.Runtime, *, seconds: float, calls: int) -> float:
    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(calls):
            tg.start_soon(rt.run_cpu, busy_for, seconds)
    return time.perf_counter() - start


Probe = Callable[[hybridio.Runtime], Awaitable[float]]


async def _pairs(
    address: str, workers: int, probes: dict[str, Probe]
) -> dict[str, tuple[float, float]]:
    """Each probe on the local pool, then on the cluster: ``{name: (cluster, pool)}``."""
    measured = {}
    async with (
        hybridio.Runtime(cpu_workers=workers) as local,
        hybridio.Runtime(cluster=address) as remote,  # its default slots: Dask queues the rest
    ):
        for rt in (local, remote):  # warm up
            await _burst(rt, seconds=0.001, calls=2 * workers)
            await _serial(rt, calls=3)
        for name, probe in probes.items():
            pool = await probe(local)
            measured[name] = (await probe(remote), pool)
    return measured


async def _nothing() -> None:
    """A coroutine for Dask's client loop (asyncio, whatever the caller's loop)."""


async def _bridge(calls: int) -> tuple[float, float]:
    """Seconds per round trip to Dask's client thread, and to an anyio worker thread."""
    from .._backends._cluster import _Connection
    from .._core._signal import loop_callback, signal_factory

    connection = _Connection("bench", None, loop_callback(), signal_factory())
    try:
        await _per_call(lambda: connection.call(_nothing()), 10)
        bridge = await _per_call(lambda: connection.call(_nothing()), calls)
    finally:
        await connection.close()
    return bridge, await _per_call(lambda: anyio.to_thread.run_sync(noop), calls)


def run(ctx: BenchContext) -> ScenarioResult:
    """Measure the local pool and a same-size Dask cluster on the same workloads."""
    workers, repeats = usable_cpus(), ctx.repeats(6, quick=3, tiny=1)
    serial, tiny, ms = ctx.pick(300, 100, 10), ctx.pick(20_000, 5_000, 200), ctx.pick(400, 200, 8)
    sizes = ctx.pick([0.0002, 0.001, 0.005, 0.02, 0.1], [0.0002, 0.001, 0.005, 0.02, 0.05], [0.001])
    bursts = {size: f"{8 * workers} concurrent calls of {size * 1000:g} ms" for size in sizes}
    probes: dict[str, tuple[str, Probe]] = {
        "overhead per call (serial no-op calls)": ("s", partial(_serial, calls=serial)),
        f"map_cpu throughput, {tiny} tiny items": ("items/s", partial(_map, fn=echo, n=tiny)),
        f"map_cpu throughput, {ms} x 1 ms": ("items/s", partial(_map, fn=busy_for, n=ms)),
    }
    probes |= {
        name: ("s", partial(_burst, seconds=size, calls=8 * workers))
        for size, name in bursts.items()
    }
    pool = f"local process pool, {workers} processes"
    made = {name: Series(name, unit, pool) for name, (unit, _) in probes.items()}
    ctx.progress(f"starting a scheduler and {workers} one-thread workers on 127.0.0.1")
    with local_cluster(workers) as address:
        for repeat in range(repeats):
            ctx.progress(f"repeat {repeat + 1}/{repeats}")
            measured = anyio.run(_pairs, address, workers, {n: p for n, (_, p) in probes.items()})
            for name, (cluster, local) in measured.items():
                made[name].add(cluster, local)
    note = f"on the cluster of {workers} one-thread Dask workers, against {pool}"
    rows = [series.row(SCENARIO, note=note) for series in made.values()]
    ratios = {size: made[name].ratio or math.inf for size, name in bursts.items()}
    paying = min(
        (size for size, ratio in ratios.items() if ratio <= CROSSOVER_RATIO), default=math.nan
    )
    name = f"crossover: task size where the cluster costs <= {CROSSOVER_RATIO:g}x the pool"
    why = "not reached at the sizes measured" if math.isnan(paying) else ""
    rows.append(Row(SCENARIO, name, paying, "s", repeats, verdict="n/a", note=why))
    for backend in ("asyncio", "trio"):
        bridge = Series(
            f"bridge to the Dask client's thread, {backend}", "s", "anyio.to_thread round trip"
        )
        bridge.add(*anyio.run(_bridge, ctx.pick(2000, 1000, 50), backend=backend))
        rows.append(bridge.row(SCENARIO, note="once per batch (one Dask task), besides Dask's own"))
    title = "Local process pool vs a Dask cluster of the same size"
    return ScenarioResult(SCENARIO, title, __doc__ or "", rows, extra={"workers": workers})
