"""Cancelled and timed-out process work leaves no process, zombie or file descriptor behind."""

from __future__ import annotations

import gc
import os

import anyio
import psutil
import pytest

from hybridio import OffloadTimeout, Runtime

from . import _workload as w

pytestmark = pytest.mark.anyio


def _open_fds() -> int:
    # Earlier tests may leave garbage holding descriptors: collect it so that it is not closed in
    # the middle of this test and counted as "fewer than the baseline".
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


def _children() -> list[psutil.Process]:
    return psutil.Process().children(recursive=True)


async def _fds_back_to(baseline: int) -> int:
    """The open descriptors once a killed worker's reaping has finished (at most ~5 s).

    Killed workers are reaped by background tasks: on a busy machine the last one may still be
    closing its channel when the pool already looks settled. A leak never goes back.
    """
    count = _open_fds()
    for _ in range(100):
        if count == baseline:
            break
        await anyio.sleep(0.05)
        count = _open_fds()
    return count


async def _settle(rt: Runtime, workers: int) -> None:
    """Wait until the pool is back to ``workers`` idle, started workers."""
    for _ in range(500):
        if len(rt.worker_pids()) == workers and rt.stats()["cpu"].in_flight == 0:
            break
        await anyio.sleep(0.02)
    await anyio.sleep(0.05)  # let a replaced worker's pipes finish closing


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_200_cancellations_and_200_timeouts_leak_nothing(anyio_backend: str) -> None:
    before_children = {p.pid for p in _children()}
    async with Runtime(cpu_workers=2) as rt:
        await rt.run_cpu(w.square, 1)
        await _settle(rt, 2)
        baseline_fds = _open_fds()

        async def cancel_one() -> None:
            with anyio.move_on_after(0.005):
                await rt.run_cpu(w.sleep_then, 5)

        async def time_out_one() -> None:
            try:
                await rt.run_cpu(w.sleep_then, 5, timeout=0.005)
            except OffloadTimeout:
                pass

        for job in (cancel_one, time_out_one):
            for _ in range(10):
                async with anyio.create_task_group() as tg:
                    for _ in range(20):
                        tg.start_soon(job)
        await _settle(rt, 2)  # the drivers replace the killed workers
        mine = [p for p in _children() if p.pid not in before_children]
        assert all(p.status() != psutil.STATUS_ZOMBIE for p in mine)
        assert sorted(p.pid for p in mine) == sorted(rt.worker_pids())
        assert len(mine) == 2
        assert await _fds_back_to(baseline_fds) == baseline_fds
        stats = rt.stats()["cpu"]
        assert stats.cancelled + stats.timeouts == 400
        assert await rt.run_cpu(w.square, 7) == 49
    assert {p.pid for p in _children()} <= before_children


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_1000_cancelled_calls_leave_nothing(anyio_backend: str) -> None:
    before_children = {p.pid for p in _children()}
    async with Runtime(cpu_workers=2) as rt:
        await rt.run_cpu(w.square, 1)
        await _settle(rt, 2)
        baseline_fds = _open_fds()
        async with anyio.create_task_group() as tg:
            for _ in range(1000):
                tg.start_soon(rt.run_cpu, w.sleep_then, 5)  # type: ignore[arg-type]
            await anyio.sleep(0.1)
            tg.cancel_scope.cancel()
        await _settle(rt, 2)
        assert rt.stats()["cpu"].queued == 0
        mine = [p for p in _children() if p.pid not in before_children]
        assert len(mine) == 2
        assert await _fds_back_to(baseline_fds) == baseline_fds
    assert {p.pid for p in _children()} <= before_children
