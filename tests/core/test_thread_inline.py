"""Thread and inline work: where it runs, timeouts, cooperative cancel, admission."""

from __future__ import annotations

import contextvars
import os
import threading

import anyio
import pytest

import hybridio
from hybridio import OffloadTimeout, Overloaded, Runtime
from hybridio._backends._thread import ThreadExecutor, _Slot, run_in_thread
from hybridio._core._cancel import CancelToken

from . import _workload as w

pytestmark = pytest.mark.anyio


async def test_blocking_runs_in_another_thread_of_this_process() -> None:
    async with Runtime() as rt:
        pid, thread = await rt.run_blocking(w.where)
        assert pid == os.getpid()
        assert thread != threading.get_ident()


async def test_inline_runs_on_the_loop_thread() -> None:
    async with Runtime() as rt:
        pid, thread = await rt.run(w.where, kind="inline")
        assert (pid, thread) == (os.getpid(), threading.get_ident())


@pytest.mark.parametrize("kind", ["inline", "blocking"])
async def test_results_and_exceptions_round_trip(kind: hybridio.Kind) -> None:
    async with Runtime() as rt:
        assert await rt.run(w.square, 9, kind=kind) == 81
        with pytest.raises(ValueError, match="boom"):
            await rt.run(w.fail, "boom", kind=kind)
        stats = rt.stats()[kind]
        assert (stats.calls, stats.completed, stats.errors) == (2, 1, 1)


async def test_thread_timeout_abandons_and_function_sees_cancel() -> None:
    started, observed = threading.Event(), threading.Event()
    async with Runtime() as rt:
        with pytest.raises(OffloadTimeout) as info:
            await rt.run_blocking(w.wait_for_cancel, started, observed, 10.0, timeout=0.1)
        assert info.value.kind == "blocking"
        assert started.is_set()
        stats = rt.stats()["blocking"]
        assert stats.timeouts == 1
        assert stats.abandoned == 1
        await anyio.to_thread.run_sync(observed.wait, 5.0)
        assert observed.is_set()
        # The abandoned thread has returned: no longer counted as running.
        for _ in range(100):
            if rt.stats()["blocking"].abandoned_running == 0:
                break
            await anyio.sleep(0.01)
        assert rt.stats()["blocking"].abandoned_running == 0


async def test_thread_cancellation_raises_the_flag() -> None:
    started, observed = threading.Event(), threading.Event()
    async with Runtime() as rt:
        # Cancelled once the function runs (not after a fixed delay a busy machine may outlast).
        with anyio.CancelScope() as scope:

            async def cancel_once_started() -> None:
                await anyio.to_thread.run_sync(started.wait, 30.0)
                scope.cancel()

            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_once_started)
                await rt.run_blocking(w.wait_for_cancel, started, observed, 30.0)
        await anyio.to_thread.run_sync(observed.wait, 30.0)
        assert observed.is_set()
        assert rt.stats()["blocking"].cancelled == 1


def test_cancel_requested_is_false_outside_a_worker_thread() -> None:
    assert hybridio.cancel_requested() is False


async def test_user_timeout_error_is_not_mistaken_for_a_deadline() -> None:
    async with Runtime() as rt:
        with pytest.raises(TimeoutError) as info:
            await rt.run_blocking(_raise_timeout, timeout=5)
        assert not isinstance(info.value, OffloadTimeout)


def _raise_timeout() -> None:
    raise TimeoutError("the user's own")


async def test_inline_timeout_is_checked_when_the_work_returns() -> None:
    async with Runtime() as rt:
        with pytest.raises(OffloadTimeout, match="cannot be interrupted"):
            await rt.run(w.sleep_then, 0.05, kind="inline", timeout=0.01)
        assert rt.stats()["inline"].timeouts == 1


async def test_thread_queue_bound_raises_overloaded_at_once() -> None:
    release = threading.Event()
    async with Runtime(threads=1, max_queue=1) as rt:
        async with anyio.create_task_group() as tg:
            tg.start_soon(rt.run_blocking, release.wait, 5.0)  # runs
            await anyio.sleep(0.05)
            tg.start_soon(rt.run_blocking, w.square, 2)  # waits in the queue
            await anyio.sleep(0.05)
            with pytest.raises(Overloaded, match="max_queue=1") as info:
                await rt.run_blocking(w.square, 3)
            assert info.value.kind == "blocking"
            release.set()
        assert rt.stats()["blocking"].rejected == 1


async def test_process_queue_bound_raises_overloaded_at_once() -> None:
    async with Runtime(cpu_workers=1, max_queue=2) as rt:
        await rt.run_cpu(w.square, 1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(rt.run_cpu, w.sleep_then, 0.3)  # type: ignore[arg-type]
            await anyio.sleep(0.05)
            tg.start_soon(rt.run_cpu, w.square, 2)
            tg.start_soon(rt.run_cpu, w.square, 3)
            await anyio.sleep(0.01)
            with anyio.fail_after(0.5):  # refused at once, not after waiting
                with pytest.raises(Overloaded, match="cpu work refused"):
                    await rt.run_cpu(w.square, 4)
        assert rt.stats()["cpu"].rejected == 1


async def test_lone_calls_are_counted_and_timed_like_queued_ones() -> None:
    async with Runtime(threads=2) as rt:
        for _ in range(3):  # the first is queued (it starts the lanes), the others run solo
            assert await rt.run_blocking(w.square, 4) == 16
        with pytest.raises(ValueError, match="lone"):
            await rt.run_blocking(w.fail, "lone")
        stats = rt.stats()["blocking"]
        assert (stats.calls, stats.completed, stats.errors, stats.in_flight) == (4, 3, 1, 0)
        assert stats.latency.count == stats.run_time.count == 4


@pytest.mark.parametrize("give_up", ["timeout", "cancel"])
async def test_an_abandoned_lone_call_keeps_its_thread_until_the_function_returns(
    give_up: str,
) -> None:
    """threads=1 stays a bound: a caller that gave up does not free its thread for the next call."""
    release = threading.Event()
    async with Runtime(threads=1) as rt:
        await rt.run_blocking(w.square, 1)  # the lane is idle and ready: the next call runs solo
        if give_up == "timeout":
            with pytest.raises(OffloadTimeout):
                await rt.run_blocking(release.wait, 10.0, timeout=0.05)
        else:
            with anyio.move_on_after(0.05):
                await rt.run_blocking(release.wait, 10.0)
        stats = rt.stats()["blocking"]
        assert (stats.timeouts, stats.cancelled) == ((1, 0) if give_up == "timeout" else (0, 1))
        assert rt.stats()["blocking"].abandoned_running == 1
        async with anyio.create_task_group() as tg:
            tg.start_soon(rt.run_blocking, w.square, 5)
            await anyio.sleep(0.05)
            stats = rt.stats()["blocking"]
            assert (stats.queued, stats.in_flight) == (1, 1)  # waits for the abandoned thread
            release.set()
        stats = rt.stats()["blocking"]
        assert (stats.completed, stats.in_flight, stats.abandoned_running) == (2, 0, 0)


@pytest.mark.parametrize("caller_first", [True, False])
def test_exactly_one_side_releases_an_abandoned_calls_lane(caller_first: bool) -> None:
    """The caller releases the lane if the thread already returned, else the thread posts it."""
    executor = ThreadExecutor(1)
    slot = _Slot()
    posted: list[object] = []
    releases: list[str] = []
    slot.wake = lambda: releases.append("woken")
    payload = (w.square, (3,), CancelToken(), False, contextvars.copy_context())

    def orphan() -> None:
        if not executor.orphan(slot, lambda: releases.append("thread")):
            releases.append("caller")

    if caller_first:
        orphan()
    run_in_thread([payload], slot, posted.append)
    if not caller_first:
        orphan()
    for callback in posted:  # what the event loop would run
        assert callable(callback)
        callback()
    assert releases == (["thread"] if caller_first else ["caller", "woken"])
    if caller_first:  # the outcomes of a call nobody waits for are dropped
        assert slot.outcomes is None
    else:
        assert slot.outcomes is not None
        assert slot.outcomes[0].payload == 9
