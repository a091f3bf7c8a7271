"""A worker that cannot start: back-off, a broken pool that fails fast, recovery, no fork storm."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

import hybridio
from hybridio import Runtime, WorkerStartFailed
from hybridio._backends._dispatch import BROKEN_AFTER

from . import _workload as w

pytestmark = pytest.mark.anyio


async def _until_broken(rt: Runtime) -> WorkerStartFailed:
    """Call until the pool is broken; return the error calls get then."""
    error: WorkerStartFailed | None = None
    with anyio.fail_after(20):
        while not rt.stats()["cpu"].broken:
            with pytest.raises(WorkerStartFailed) as info:
                await rt.run_cpu(w.square, 2)
            error = info.value
    assert error is not None
    return error


async def test_initializer_error_is_carried_and_the_pool_breaks() -> None:
    async with Runtime(cpu_workers=2, initializer=w.failing_initializer) as rt:
        error = await _until_broken(rt)
        assert "initializer exploded" in str(error)
        assert isinstance(error.__cause__, RuntimeError)  # the initializer's own exception
        assert "failing_initializer" in str(error.__cause__.__cause__)  # with its traceback
        stats = rt.stats()["cpu"]
        assert stats.start_failures >= BROKEN_AFTER
        assert stats.workers == 0


async def test_a_broken_pool_fails_new_calls_at_once_and_spawns_nothing_while_idle() -> None:
    async with Runtime(cpu_workers=2, initializer=w.failing_initializer) as rt:
        await _until_broken(rt)
        with anyio.fail_after(0.5):  # no waiting for a worker: the pool is known broken
            with pytest.raises(WorkerStartFailed, match="broken"):
                await rt.run_cpu(w.square, 2)
        await anyio.sleep(0.5)  # the other lane's start, if one was under way, ends
        failures = rt.stats()["cpu"].start_failures
        await anyio.sleep(1.0)  # idle: a broken pool must not retry in a loop (a fork storm)
        assert rt.stats()["cpu"].start_failures == failures


async def test_the_pool_recovers_on_its_own_once_workers_can_start(tmp_path: Path) -> None:
    flag = tmp_path / "broken"
    flag.touch()
    async with Runtime(cpu_workers=1, initializer=w.fail_while_exists, initargs=(str(flag),)) as rt:
        await _until_broken(rt)
        flag.unlink()
        with anyio.fail_after(30):
            while True:  # fails fast until the back-off has passed, then starts a worker
                try:
                    assert await rt.run_cpu(w.square, 3) == 9
                    break
                except WorkerStartFailed:
                    await anyio.sleep(0.05)
        stats = rt.stats()["cpu"]
        assert not stats.broken
        assert stats.workers == 1


async def test_a_closure_initializer_travels_by_value_and_its_error_is_carried() -> None:
    async with Runtime(cpu_workers=1, initializer=_local_initializer()) as rt:
        error = await _until_broken(rt)
        assert "never runs" in str(error)


def _local_initializer() -> Callable[[], None]:
    def init() -> None:  # a closure: picklable only by value
        raise RuntimeError("never runs")

    return init


def test_the_error_pickles_with_every_field() -> None:
    error = WorkerStartFailed("cpu", "RuntimeError: boom", failures=4, retry_in=0.4)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.kind, copy.reason, copy.failures, copy.retry_in) == (
        "cpu",
        "RuntimeError: boom",
        4,
        0.4,
    )
    assert str(copy) == str(error)
    assert isinstance(copy, hybridio.OffloadError)
