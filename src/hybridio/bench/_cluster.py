"""``hybridio bench cluster``: the local process pool against a Dask cluster of the same size.

One run starts a Dask scheduler and as many single-threaded Dask workers as the local pool has
processes, all on 127.0.0.1 (``dask scheduler`` / ``dask worker``, as a user would), and measures
the same workloads on both, in pairs (local then cluster in each repeat), each runtime with its
defaults (the cluster's 64 slots let Dask queue tasks on its workers, hiding its round trip):

* the overhead of one call (a serial loop of calls that do nothing);
* ``map_cpu`` throughput over tiny items and over 1 ms items;
* a burst of concurrent calls for growing task sizes: the cluster's time over the pool's, and the
  crossover, the smallest task size at which the cluster costs at most 10 % more than the pool.
  On one machine the cluster cannot be faster (same cores, more hops): on real machines it pays
  once the extra cores outweigh that overhead;
* the cost of the bridge to Dask's client thread on asyncio and trio, against a round trip to a
  worker thread (``anyio.to_thread.run_sync``).

Needs ``hybridio[cluster]``. Register it with ``"cluster": "hybridio.bench._cluster:run"`` in the
scenario registry.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio

from ._model import BenchContext, Row, ScenarioResult, Series, spread_of

__all__ = ["run"]

SCENARIO = "cluster"
#: The cluster "pays" from the task size where it costs at most this much more than the pool.
CROSSOVER_RATIO = 1.10
_START_TIMEOUT = 60.0


# -- the work (module level: the cluster's workers import it) -----------------------------------


def _noop() -> None:
    return None


def _square(x: int) -> int:
    return x * x


def _spin(seconds: float) -> float:
    """Pure-Python CPU work for ``seconds``."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return seconds


# -- a cluster on this machine -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def local_cluster(workers: int) -> Iterator[str]:
    """Start ``dask scheduler`` and ``workers`` one-thread Dask workers on 127.0.0.1."""
    from distributed import Client

    dask = shutil.which("dask", path=os.path.dirname(sys.executable)) or shutil.which("dask")
    if dask is None:
        raise RuntimeError("the `dask` command is missing: pip install 'hybridio[cluster]'")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"

    def spawn(*args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([dask, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    scheduler = spawn("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
    options = ["--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard"]
    worker = spawn("worker", address, "--nworkers", str(workers), *options)
    try:
        client = Client(address, timeout=_START_TIMEOUT, set_as_default=False)  # type: ignore[no-untyped-call]
        with client:
            client.wait_for_workers(workers, timeout=_START_TIMEOUT)
        yield address
    finally:
        _stop(worker)
        _stop(scheduler)


# -- measurements --------------------------------------------------------------------------------


async def _per_call(rt: Any, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await rt.run_cpu(_noop)
    return (time.perf_counter() - start) / calls


async def _map_rate(rt: Any, fn: Callable[[Any], Any], items: list[Any]) -> float:
    start = time.perf_counter()
    async with rt.map_cpu(fn, items) as results:
        async for _ in results:
            pass
    return len(items) / (time.perf_counter() - start)


async def _burst(rt: Any, seconds: float, calls: int) -> float:
    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(calls):
            tg.start_soon(rt.run_cpu, _spin, seconds)
    return time.perf_counter() - start


async def _warm(rt: Any, workers: int) -> None:
    await _burst(rt, 0.001, 2 * workers)
    await _per_call(rt, 3)


async def _pairs(
    address: str, workers: int, probes: list[tuple[str, Callable[[Any], Awaitable[float]]]]
) -> dict[str, tuple[float, float]]:
    """Each probe on the local pool, then on the cluster: ``{name: (local, cluster)}``."""
    import hybridio

    values: dict[str, list[float]] = {name: [] for name, _ in probes}
    async with (
        hybridio.Runtime(cpu_workers=workers) as local,
        hybridio.Runtime(cluster=address) as remote,  # its default slots: Dask queues the rest
    ):
        await _warm(local, workers)
        await _warm(remote, workers)
        for name, probe in probes:
            values[name].append(await probe(local))
            values[name].append(await probe(remote))
    return {name: (pair[0], pair[1]) for name, pair in values.items()}


async def _bridge(calls: int) -> tuple[float, float]:
    """Seconds per round trip to Dask's client thread, and to an anyio worker thread."""
    from .._backends._cluster import _Connection
    from .._core._signal import loop_callback, signal_factory

    async def nothing() -> None:
        return None

    connection = _Connection("bench", None, loop_callback(), signal_factory())
    try:
        for _ in range(10):
            await connection.call(nothing())
        start = time.perf_counter()
        for _ in range(calls):
            await connection.call(nothing())
        bridge = (time.perf_counter() - start) / calls
    finally:
        await connection.close()
    start = time.perf_counter()
    for _ in range(calls):
        await anyio.to_thread.run_sync(_noop)
    return bridge, (time.perf_counter() - start) / calls


# -- the scenario --------------------------------------------------------------------------------


def _fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:g} ms"


def run(ctx: BenchContext) -> ScenarioResult:
    """Measure the local pool and a same-size Dask cluster on the same workloads."""
    started = time.perf_counter()
    workers = os.cpu_count() or 2
    repeats = ctx.repeats(5, quick=3, tiny=1)
    serial = ctx.pick(300, 100, 10)
    tiny_items = ctx.pick(20_000, 5_000, 200)
    ms_items = ctx.pick(400, 200, 8)
    sizes = ctx.pick([0.0002, 0.001, 0.005, 0.02, 0.1], [0.0002, 0.001, 0.005, 0.02, 0.05], [0.001])
    burst = 8 * workers
    probes: list[tuple[str, Callable[[Any], Awaitable[float]]]] = [
        ("call", lambda rt: _per_call(rt, serial)),
        ("map tiny", lambda rt: _map_rate(rt, _square, list(range(tiny_items)))),
        ("map 1 ms", lambda rt: _map_rate(rt, _spin, [0.001] * ms_items)),
    ]
    probes += [
        (f"burst {size}", lambda rt, size=size: _burst(rt, size, burst))  # type: ignore[misc]
        for size in sizes
    ]
    measured: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name, _ in probes}
    ctx.progress(f"cluster: starting a scheduler and {workers} workers on 127.0.0.1")
    with local_cluster(workers) as address:
        for repeat in range(repeats):
            ctx.progress(f"cluster: repeat {repeat + 1}/{repeats}")
            for name, (on_pool, on_cluster) in anyio.run(_pairs, address, workers, probes).items():
                measured[name][0].append(on_pool)
                measured[name][1].append(on_cluster)
    bridges = {
        backend: anyio.run(_bridge, ctx.pick(2000, 1000, 50), backend=backend)
        for backend in ("asyncio", "trio")
    }

    def paired(name: str, unit: str, key: str, baseline: str, note: str, scale: float = 1) -> Row:
        pool, cluster = measured[key]
        return Row(
            SCENARIO,
            name,
            statistics.median(cluster) * scale,
            unit,
            repeats=repeats,
            spread=spread_of(cluster),
            baseline=f"local process pool, {baseline}",
            baseline_value=statistics.median(pool) * scale,
            ratio=Series(
                name, unit, baseline, values=list(cluster), baseline_values=list(pool)
            ).ratio,
            note=note,
        )

    same_size = f"{workers} local processes vs {workers} one-thread Dask workers on 127.0.0.1"
    rows = [
        paired(
            "overhead per call (serial no-op calls)",
            "us",
            "call",
            "same calls",
            f"{serial} calls one after another; ratio = cluster / pool; {same_size}",
            scale=1e6,
        ),
        paired(
            f"map_cpu throughput, {tiny_items} tiny items",
            "items/s",
            "map tiny",
            "same map",
            "ratio = cluster / pool (higher is better); chunks sized by map_cpu",
        ),
        paired(
            f"map_cpu throughput, {ms_items} x 1 ms",
            "items/s",
            "map 1 ms",
            "same map",
            "ratio = cluster / pool (higher is better); chunks sized by map_cpu",
        ),
    ]
    crossover = math.nan
    for size in sizes:
        row = paired(
            f"{burst} concurrent calls of {_fmt_ms(size)}",
            "s",
            f"burst {size}",
            "same burst",
            "ratio = cluster time / pool time (lower is better)",
        )
        if row.ratio is not None and row.ratio <= CROSSOVER_RATIO and math.isnan(crossover):
            crossover = size * 1000
        rows.append(row)
    rows.append(
        Row(
            SCENARIO,
            f"crossover: task size where the cluster costs <= {CROSSOVER_RATIO:g}x the pool",
            crossover,
            "ms",
            repeats=repeats,
            note="NaN: not reached at the sizes measured; on one machine the cluster only adds "
            "hops, on real machines it pays from about this size once it has more cores",
        )
    )
    for backend, (bridge, thread) in bridges.items():
        rows.append(
            Row(
                SCENARIO,
                f"bridge round trip to the Dask client's thread, {backend}",
                bridge * 1e6,
                "us",
                baseline="anyio.to_thread.run_sync round trip",
                baseline_value=thread * 1e6,
                ratio=bridge / thread if thread else None,
                note="paid once per batch (one Dask task), on top of Dask's own round trip",
            )
        )
    return ScenarioResult(
        name=SCENARIO,
        title="Local process pool vs a Dask cluster of the same size",
        description=(
            "The same workloads on hybridio's process pool and on Runtime(cluster=...) with as "
            "many one-thread Dask workers, scheduler and workers started with the dask command "
            "on 127.0.0.1. Ratios are paired per repeat (shared machines are noisy)."
        ),
        rows=rows,
        seconds=time.perf_counter() - started,
        extra={"workers": workers, "crossover_ms": crossover, "sizes_s": sizes},
    )
