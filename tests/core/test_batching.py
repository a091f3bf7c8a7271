"""Batching: results reach the right callers, and a batch fails as a whole when its worker dies."""

from __future__ import annotations

import signal

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridio import OffloadTimeout, Runtime, WorkerCrashed

from . import _workload as w

pytestmark = pytest.mark.anyio


@settings(max_examples=8, deadline=None)
@given(
    values=st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=80),
    callers=st.integers(min_value=1, max_value=24),
    kind=st.sampled_from(["cpu", "blocking"]),
)
async def test_results_are_routed_to_their_callers(
    values: list[int], callers: int, kind: str
) -> None:
    async with Runtime(cpu_workers=2, threads=4) as rt:
        got: dict[int, tuple[int, int]] = {}

        async def caller(offset: int) -> None:
            for index in range(offset, len(values), callers):
                got[index] = await rt.run(w.pid_and_value, values[index], kind=kind)  # type: ignore[call-overload]

        async with anyio.create_task_group() as tg:
            for offset in range(callers):
                tg.start_soon(caller, offset)
        assert {i: v for i, (_, v) in got.items()} == dict(enumerate(values))


async def test_sigkill_mid_batch_fails_every_caller_of_that_batch() -> None:
    async with Runtime(cpu_workers=1) as rt:
        await rt.run_cpu(w.square, 1)  # the worker is up and square's cost is known: tiny
        await rt.run_cpu(w.kill_self_if, False)  # so is this one's
        outcomes: dict[str, object] = {}

        async def call(key: str, fn: object, *args: object) -> None:
            try:
                outcomes[key] = await rt.run_cpu(fn, *args)  # type: ignore[call-overload]
            except WorkerCrashed as exc:
                outcomes[key] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "busy", w.sleep_then, 0.3, "done")  # holds the only worker
            await anyio.sleep(0.1)
            # These three queue behind it and leave together, in one batch.
            tg.start_soon(call, "before", w.square, 2)
            tg.start_soon(call, "killer", w.kill_self_if, True)
            tg.start_soon(call, "after", w.square, 4)
        assert outcomes["busy"] == "done"
        for key in ("before", "killer", "after"):
            crash = outcomes[key]
            assert isinstance(crash, WorkerCrashed), (key, crash)
            assert crash.signal == signal.SIGKILL
            assert crash.batch_size == 3
            assert "in a batch of 3 calls" in str(crash)
        stats = rt.stats()["cpu"]
        assert stats.batches == 1
        assert stats.crashes == 3
        assert await rt.run_cpu(w.square, 5) == 25  # healed


async def test_calls_of_a_function_never_seen_are_not_batched_before_its_cost_is_known() -> None:
    """Four queued 50 ms calls on two workers run two by two, never four on one worker."""
    async with Runtime(cpu_workers=2) as rt:
        await rt.run_cpu(w.square, 1)  # starts both workers
        with anyio.fail_after(30):
            while len(rt.worker_pids()) < 2:  # noqa: ASYNC110 - worker start-up has no event
                await anyio.sleep(0.01)
        async with anyio.create_task_group() as tg:
            for value in range(4):
                tg.start_soon(rt.run_cpu, w.sleep_then, 0.05, value)
        stats = rt.stats()["cpu"]
        assert stats.completed == 5
        assert stats.batches == 0  # batches of more than one call


async def test_queued_tiny_calls_share_one_round_trip_rather_than_split_between_workers() -> None:
    """Splitting microseconds of work between workers would only double the round trips."""
    async with Runtime(cpu_workers=2) as rt:
        for _ in range(3):
            await rt.run_cpu(w.square, 1)  # square's cost is known: tiny
        with anyio.fail_after(30):
            while len(rt.worker_pids()) < 2:  # noqa: ASYNC110 - worker start-up has no event
                await anyio.sleep(0.01)
        before = rt.stats()["cpu"]
        results: list[int] = []

        async def square(x: int) -> None:
            results.append(await rt.run_cpu(w.square, x))

        async with anyio.create_task_group() as tg:
            tg.start_soon(rt.run_cpu, w.sleep_then, 0.3)  # type: ignore[arg-type]  # one worker
            tg.start_soon(rt.run_cpu, w.sleep_then, 0.3)  # type: ignore[arg-type]  # the other
            await anyio.sleep(0.1)
            for x in range(10):
                tg.start_soon(square, x)
        after = rt.stats()["cpu"]
        assert sorted(results) == [x * x for x in range(10)]
        assert (after.batches - before.batches, after.batched_calls - before.batched_calls) == (
            1,
            10,
        )


async def test_a_caller_giving_up_on_a_pipelined_batch_does_not_fail_the_batch_in_front() -> None:
    """Killing the worker for a batch queued behind another would fail that one's live callers."""
    async with Runtime(cpu_workers=1) as rt:
        for _ in range(3):  # sleep_then(0) is measured tiny: its calls may be pipelined
            await rt.run_cpu(w.sleep_then, 0.0)
        results: dict[str, object] = {}

        async def front() -> None:
            results["front"] = await rt.run_cpu(w.sleep_then, 0.5, "front")

        async def behind() -> None:
            try:
                await rt.run_cpu(w.sleep_then, 0.0, "behind", timeout=0.1)
            except OffloadTimeout as exc:
                results["behind"] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(front)
            await anyio.sleep(0.05)
            tg.start_soon(behind)
        assert results["front"] == "front"
        assert isinstance(results["behind"], OffloadTimeout)
        assert rt.stats()["cpu"].crashes == 0


async def test_measured_slow_work_waits_in_a_busy_workers_pipe_not_in_the_queue() -> None:
    """Like ProcessPoolExecutor's call queue: a worker starts the next call without a round trip."""
    async with Runtime(cpu_workers=2) as rt:
        await rt.run_cpu(w.sleep_then, 0.3)  # its cost is measured: slow, but known
        results: list[object] = []

        async def call(i: int) -> None:
            results.append(await rt.run_cpu(w.sleep_then, 0.3, i))

        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(call, i)
            with anyio.fail_after(5):  # the third call is handed to a busy worker at once
                while rt.stats()["cpu"].in_flight < 3:  # noqa: ASYNC110 - no event to wait for
                    await anyio.sleep(0.01)
            assert rt.stats()["cpu"].queued == 0
        assert sorted(results) == [0, 1, 2]  # type: ignore[type-var]


async def test_work_never_measured_waits_for_an_idle_worker() -> None:
    async with Runtime(cpu_workers=1) as rt:
        await rt.run_cpu(w.square, 1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(rt.run_cpu, w.sleep_then, 0.3)  # type: ignore[arg-type]
            await anyio.sleep(0.05)
            tg.start_soon(rt.run_cpu, w.spin, 0.01)
            await anyio.sleep(0.1)
            stats = rt.stats()["cpu"]
            assert (stats.in_flight, stats.queued) == (1, 1)  # behind an unmeasured call: queued
