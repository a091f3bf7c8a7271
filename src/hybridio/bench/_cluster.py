"""Scenario ``cluster`` (named only; needs ``hybridio[cluster]``): the local process pool against
a same-size Dask cluster on 127.0.0.1. Method: docs/benchmarks.md; findings: docs/scaling-out.md."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial

import anyio
from distributed import Client

import hybridio

from .._doctor import usable_cpus
from .._workloads import busy_for, echo, noop
from ._harness import burst, free_port, map_rate, running, throughput
from ._model import BenchContext, Row, ScenarioResult, Series

SCENARIO = "cluster"
#: The cluster "pays" from the task size where it costs at most this much more than the pool.
CROSSOVER_RATIO = 1.10


@contextmanager
def _local_cluster(workers: int) -> Iterator[str]:
    """Start ``dask scheduler`` and ``workers`` one-thread Dask workers on 127.0.0.1."""
    port, dask = free_port(), [sys.executable, "-m", "dask"]  # the `dask` command of this Python
    address, local = f"tcp://127.0.0.1:{port}", ["--host", "127.0.0.1", "--no-dashboard"]
    scheduler = [*dask, "scheduler", *local, "--port", str(port)]
    worker = [*dask, "worker", address, "--nworkers", str(workers), "--nthreads", "1", *local]
    with running(scheduler, stdout=subprocess.DEVNULL), running(worker, stdout=subprocess.DEVNULL):
        with Client(address, timeout=60, set_as_default=False) as client:  # type: ignore[no-untyped-call]
            client.wait_for_workers(workers, timeout=60)
        yield address


async def _serial(rt: hybridio.Runtime, seconds: float) -> float:
    """Seconds per call of no-op calls one after the other for ``seconds``."""
    return 1 / await throughput(lambda: rt.run_cpu(noop), 1, seconds)


async def _burst(rt: hybridio.Runtime, size: float, calls: int) -> float:
    """Seconds for ``calls`` concurrent calls of ``size`` seconds of work each."""
    return await burst(calls, rt.run_cpu, busy_for, size)


def run(ctx: BenchContext) -> ScenarioResult:
    """Measure the local pool and a same-size Dask cluster on the same workloads."""
    workers, repeats = usable_cpus(), ctx.pick(6, 3, 1)
    tiny = [0.001] * ctx.pick(20_000, 5_000, 200)
    sizes = ctx.pick([0.0002, 0.001, 0.005, 0.02, 0.1], [0.0002, 0.001, 0.005, 0.02, 0.05], [0.001])
    bursts = {f"{8 * workers} concurrent calls of {size * 1000:g} ms": size for size in sizes}
    probes: dict[str, Callable[[hybridio.Runtime], Awaitable[float]]] = {
        "overhead per call (serial no-op calls)": partial(_serial, seconds=ctx.pick(3, 1, 0.1)),
        f"map_cpu throughput, {len(tiny)} tiny items": partial(map_rate, fn=echo, items=tiny),
        **{name: partial(_burst, size=size, calls=8 * workers) for name, size in bursts.items()},
    }
    pool = f"local process pool, {workers} processes"
    made = {name: Series(name, "items/s" if "map" in name else "s", pool) for name in probes}

    async def pairs(address: str) -> None:
        """Each probe on the local pool, then on the cluster (paired with the pool's value)."""
        async with (
            hybridio.Runtime(cpu_workers=workers) as local,
            hybridio.Runtime(cluster=address) as remote,  # its default slots: Dask queues the rest
        ):
            for rt in (local, remote):  # warm up: every worker started and used
                await _burst(rt, 0.001, 2 * workers)
            for name, probe in probes.items():
                pool = await probe(local)
                made[name].add(await probe(remote), pool)

    ctx.progress(f"starting a scheduler and {workers} one-thread workers on 127.0.0.1")
    with _local_cluster(workers) as address:
        for repeat in range(repeats):
            ctx.progress(f"repeat {repeat + 1}/{repeats}")
            anyio.run(pairs, address)
    note = f"on the cluster of {workers} one-thread Dask workers, against {pool}"
    rows = [series.row(SCENARIO, note=note) for series in made.values()]
    paying = [s for name, s in bursts.items() if (made[name].ratio or math.inf) <= CROSSOVER_RATIO]
    name = f"crossover: task size where the cluster costs <= {CROSSOVER_RATIO:g}x the pool"
    why = "" if paying else "not reached at the sizes measured"
    rows.append(Row(SCENARIO, name, min(paying, default=math.nan), "s", repeats, note=why))
    title = "Local process pool vs a Dask cluster of the same size"
    return ScenarioResult(SCENARIO, title, __doc__ or "", rows, extra={"workers": workers})
