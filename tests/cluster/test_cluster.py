"""Kind "cpu" on a Dask cluster: same semantics as the local pool, on a real LocalCluster."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import anyio
import distributed
import pytest

import hybridio
from hybridio import (
    OffloadTimeout,
    Overloaded,
    RemoteTraceback,
    Runtime,
    WorkerCrashed,
    WorkerStartFailed,
)
from hybridio._backends import _cluster

from . import _workload as w

pytestmark = pytest.mark.anyio

ASYNCIO_ONLY = pytest.mark.parametrize(
    "anyio_backend", [pytest.param(("asyncio", {}), id="asyncio")]
)


def worker_pids(client: distributed.Client) -> set[int]:
    return set(client.run(os.getpid).values())


def hybridio_tasks(client: distributed.Client) -> list[str]:
    """Keys of hybridio's tasks the scheduler still holds."""

    def keys(dask_scheduler: distributed.Scheduler) -> list[str]:
        return [str(key) for key in dask_scheduler.tasks if str(key).startswith("hybridio:")]

    return client.run_on_scheduler(keys)  # type: ignore[no-any-return]


async def eventually(check: Callable[[], bool], within: float = 15.0) -> None:
    """Wait until ``check()`` holds (it asks the scheduler: run it in a thread)."""
    with anyio.fail_after(within):
        while True:
            if await anyio.to_thread.run_sync(check):
                return
            await anyio.sleep(0.1)


async def test_cpu_work_runs_on_the_cluster_and_threads_stay_local(
    cluster: distributed.LocalCluster, client: distributed.Client
) -> None:
    with anyio.fail_after(30):
        async with Runtime(cluster=cluster.scheduler_address) as rt:
            remote = worker_pids(client)
            assert await rt.run_cpu(w.where) in remote
            assert await rt.run(w.where) in remote  # the default kind
            assert await w.cube(3) == 27  # @cpu_bound
            assert await rt.run_blocking(w.where) == os.getpid()
            assert await rt.run(threading.get_ident, kind="inline") == threading.get_ident()
            assert rt.worker_pids() == []  # nothing local
            assert rt.cpu_workers == _cluster.DEFAULT_SLOTS


async def test_results_in_order_and_tiny_calls_share_dask_tasks(
    cluster: distributed.LocalCluster,
) -> None:
    with anyio.fail_after(30):
        async with Runtime(cluster=cluster.scheduler_address, cpu_workers=2) as rt:
            async with rt.map_cpu(w.square, range(2000)) as results:
                assert [r async for r in results] == [i * i for i in range(2000)]
            got: dict[int, int] = {}

            async def one(i: int) -> None:
                got[i] = await rt.run_cpu(w.square, i)

            async with anyio.create_task_group() as tg:
                for i in range(300):
                    tg.start_soon(one, i)
            assert got == {i: i * i for i in range(300)}
            stats = rt.stats()["cpu"]
            assert stats.batched_calls > 0
            assert stats.batches < stats.batched_calls  # fewer Dask tasks than calls


async def test_the_users_exception_with_the_remote_traceback(
    cluster: distributed.LocalCluster,
) -> None:
    with anyio.fail_after(30):
        async with Runtime(cluster=cluster.scheduler_address) as rt:
            with pytest.raises(ValueError, match="bad input") as info:
                await rt.run_cpu(w.fail, "bad input")
            cause = info.value.__cause__
            assert isinstance(cause, RemoteTraceback)
            assert "in fail" in str(cause)
            assert await rt.run_cpu(w.square, 4) == 16  # the slot is fine


async def test_timeout_cancels_the_dask_future(
    cluster: distributed.LocalCluster, client: distributed.Client
) -> None:
    with anyio.fail_after(30):
        async with Runtime(cluster=cluster.scheduler_address) as rt:
            with pytest.raises(OffloadTimeout):
                await rt.run_cpu(w.nap, 1.5, timeout=0.3)
            await eventually(lambda: hybridio_tasks(client) == [])
            assert rt.stats()["cpu"].timeouts == 1
            assert await rt.run_cpu(w.square, 5) == 25


async def test_cancellation_cancels_the_dask_future(
    cluster: distributed.LocalCluster, client: distributed.Client
) -> None:
    with anyio.fail_after(30):
        async with Runtime(cluster=cluster.scheduler_address) as rt:
            async with anyio.create_task_group() as tg:
                tg.start_soon(rt.run_cpu, w.nap, 1.5)
                await eventually(lambda: len(hybridio_tasks(client)) == 1)
                tg.cancel_scope.cancel()
            await eventually(lambda: hybridio_tasks(client) == [])
            assert rt.stats()["cpu"].cancelled == 1


async def test_overloaded_from_the_bounded_queue(cluster: distributed.LocalCluster) -> None:
    with anyio.fail_after(30):
        async with Runtime(cluster=cluster.scheduler_address, cpu_workers=1, max_queue=1) as rt:
            async with anyio.create_task_group() as tg:
                tg.start_soon(rt.run_cpu, w.nap, 0.5)  # runs
                await eventually(lambda: rt.stats()["cpu"].in_flight == 1)
                tg.start_soon(rt.run_cpu, w.nap, 0.1)  # waits in the queue
                await eventually(lambda: rt.stats()["cpu"].queued == 1)
                with pytest.raises(Overloaded):
                    await rt.run_cpu(w.square, 2)
            assert rt.stats()["cpu"].rejected == 1


@ASYNCIO_ONLY
async def test_a_worker_killed_mid_call_is_retried_by_dask_once(
    cluster: distributed.LocalCluster, tmp_path: Path
) -> None:
    with anyio.fail_after(45):
        async with Runtime(cluster=cluster.scheduler_address) as rt:
            assert await rt.run_cpu(w.die_once, str(tmp_path / "died")) == "ran again"


@ASYNCIO_ONLY
async def test_a_worker_killed_mid_call_past_dasks_retries_is_worker_crashed(
    cluster: distributed.LocalCluster,
) -> None:
    with anyio.fail_after(45):
        async with Runtime(cluster=cluster.scheduler_address) as rt:
            with pytest.raises(WorkerCrashed) as info:
                await rt.run_cpu(w.die)
            assert info.value.function.endswith("die")
            assert rt.stats()["cpu"].crashes == 1
            assert await rt.run_cpu(w.square, 6) == 36  # the nannies restart the workers


async def test_a_scheduler_that_is_down_is_named_in_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_cluster, "CONNECT_TIMEOUT", 0.5)
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{unused.getsockname()[1]}"
    with anyio.fail_after(30):
        async with Runtime(cluster=address, cpu_workers=1) as rt:
            for _ in range(2):  # once connecting, then at once while the pool is broken
                with pytest.raises(WorkerStartFailed, match=address):
                    await rt.run_cpu(w.square, 2)


async def test_the_environment_variable_and_module_level_calls(
    cluster: distributed.LocalCluster, client: distributed.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYBRIDIO_CLUSTER", cluster.scheduler_address)
    with anyio.fail_after(30):
        # No Runtime: the event loop's default one reads HYBRIDIO_CLUSTER.
        assert await hybridio.run_cpu(w.where) in worker_pids(client)
        async with hybridio.map_cpu(w.square, [1, 2, 3]) as results:
            assert [r async for r in results] == [1, 4, 9]


async def test_a_client_and_an_initializer_that_stays_local(
    cluster: distributed.LocalCluster, client: distributed.Client
) -> None:
    with anyio.fail_after(30):
        # A server's initializer (ignore signals, lower the priority) is for its own processes:
        # Dask sets up its workers itself (preload scripts, plugins).
        async with Runtime(cluster=client, initializer=w.prepare, initargs=("local",)) as rt:
            assert await rt.run_cpu(w.where) in worker_pids(client)
            assert "local" not in await rt.run_cpu(w.prepared)


def test_a_cluster_must_be_an_address_a_client_or_a_cluster() -> None:
    with pytest.raises(TypeError, match="scheduler address"):
        Runtime(cluster=42)
    with pytest.raises(ValueError, match="scheduler address"):
        Runtime(cluster=" ")
