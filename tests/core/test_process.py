"""Process work: where it runs, results and errors, crashes, timeouts, cancellation, batching."""

from __future__ import annotations

import functools
import os
import signal
import threading

import anyio
import pytest

import hybridio
from hybridio import NotPicklable, OffloadTimeout, RemoteTraceback, Runtime, WorkerCrashed

from . import _workload as w

pytestmark = pytest.mark.anyio


async def test_runs_in_another_process() -> None:
    async with Runtime(cpu_workers=1) as rt:
        pid, _ = await rt.run_cpu(w.where)
        assert pid != os.getpid()
        assert pid in rt.worker_pids()


async def test_results_and_keyword_arguments_round_trip() -> None:
    async with Runtime(cpu_workers=1) as rt:
        assert await rt.run_cpu(w.square, 12) == 144
        assert await rt.run_cpu(functools.partial(w.add, 2, b=3)) == 5
        payload = {"a": [1, 2, (3, 4)], "b": b"\x00" * 100_000}
        assert await rt.run_cpu(w.identity, payload) == payload


async def test_exception_is_reraised_as_itself_with_remote_traceback() -> None:
    async with Runtime(cpu_workers=1) as rt:
        with pytest.raises(ValueError, match="bad input") as info:
            await rt.run_cpu(w.fail, "bad input")
        cause = info.value.__cause__
        assert isinstance(cause, RemoteTraceback)
        assert "in fail" in cause.tb
        assert "_workload.py" in cause.tb
        # The worker survives a user exception.
        assert await rt.run_cpu(w.square, 3) == 9
        assert rt.stats()["cpu"].errors == 1


async def test_exception_with_a_custom_init_comes_back_as_itself() -> None:
    async with Runtime(cpu_workers=1) as rt:
        with pytest.raises(w.NeedsTwoArgs, match="1 2") as info:
            await rt.run_cpu(w.raise_needs_two_args)
        assert isinstance(info.value.__cause__, RemoteTraceback)


async def test_unpicklable_exception_becomes_not_picklable() -> None:
    async with Runtime(cpu_workers=1) as rt:
        with pytest.raises(NotPicklable, match="HoldsALock") as info:
            await rt.run_cpu(w.raise_unpicklable_exception)
        assert info.value.what == "exception"
        assert isinstance(info.value.__cause__, RemoteTraceback)


@pytest.mark.parametrize(
    ("target", "args", "exitcode", "signum"),
    [
        (w.exit_with, (3,), 3, None),
        (w.kill_self, (), None, signal.SIGKILL),
        (w.segfault, (), None, signal.SIGSEGV),
    ],
    ids=["os._exit", "sigkill", "segfault"],
)
async def test_worker_crash_is_reported_and_pool_heals(
    target: object, args: tuple[object, ...], exitcode: int | None, signum: int | None
) -> None:
    async with Runtime(cpu_workers=1) as rt:
        first_pid, _ = await rt.run_cpu(w.where)
        with pytest.raises(WorkerCrashed) as info:
            await rt.run_cpu(target, *args)  # type: ignore[call-overload]
        crash = info.value
        assert crash.pid == first_pid
        assert crash.exitcode == exitcode
        assert crash.signal == signum
        assert crash.function.endswith(target.__name__)  # type: ignore[attr-defined]
        assert "next call will run on a fresh worker" in str(crash)
        second_pid, _ = await rt.run_cpu(w.where)
        assert second_pid != first_pid
        assert rt.stats()["cpu"].crashes == 1
        assert _is_gone(first_pid)


def _is_gone(pid: int) -> bool:
    """True when pid is neither running nor a zombie child of ours."""
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # already reaped
    return waited == pid  # pragma: no cover - a zombie was left behind and just reaped


async def test_timeout_kills_the_worker_and_next_call_succeeds() -> None:
    async with Runtime(cpu_workers=1) as rt:
        pid, _ = await rt.run_cpu(w.where)
        with pytest.raises(OffloadTimeout, match=r"did not finish within 0\.2 s") as info:
            await rt.run_cpu(w.sleep_then, 30, timeout=0.2)
        assert isinstance(info.value, TimeoutError)
        assert info.value.kind == "cpu"
        assert _is_gone(pid)
        new_pid, _ = await rt.run_cpu(w.where)
        assert new_pid != pid
        stats = rt.stats()["cpu"]
        assert stats.timeouts == 1
        assert stats.worker_restarts >= 1


async def test_runtime_default_timeout_applies() -> None:
    async with Runtime(cpu_workers=1, timeout=0.2) as rt:
        with pytest.raises(OffloadTimeout):
            await rt.run_cpu(w.sleep_then, 30)


async def test_cancellation_kills_the_worker() -> None:
    async with Runtime(cpu_workers=1) as rt:
        pid, _ = await rt.run_cpu(w.where)
        with anyio.move_on_after(0.2) as scope:
            await rt.run_cpu(w.sleep_then, 30)
        assert scope.cancelled_caught
        assert _is_gone(pid)
        assert (await rt.run_cpu(w.where))[0] != pid
        assert rt.stats()["cpu"].cancelled == 1


async def test_batches_form_when_calls_queue() -> None:
    async with Runtime(cpu_workers=2) as rt:
        await rt.run_cpu(w.square, 1)  # warm up
        results: dict[int, int] = {}

        async def caller(i: int) -> None:
            for j in range(20):
                results[i * 100 + j] = await rt.run_cpu(w.square, i * 100 + j)

        async with anyio.create_task_group() as tg:
            for i in range(32):
                tg.start_soon(caller, i)
        assert results == {k: k * k for k in results}
        assert len(results) == 32 * 20
        stats = rt.stats()["cpu"]
        assert stats.batches > 0
        assert stats.batched_calls > stats.batches
        assert stats.completed == 32 * 20 + 1


async def test_one_exception_in_a_batch_affects_only_its_caller() -> None:
    async with Runtime(cpu_workers=1) as rt:
        await rt.run_cpu(w.square, 1)
        outcomes: dict[int, object] = {}

        async def call(i: int) -> None:
            try:
                if i == 5:
                    await rt.run_cpu(w.fail, "only me")
                else:
                    outcomes[i] = await rt.run_cpu(w.square, i)
            except ValueError as exc:
                outcomes[i] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, 100)
            for i in range(10):
                tg.start_soon(call, i)
        assert isinstance(outcomes.pop(5), ValueError)
        assert outcomes == {i: i * i for i in outcomes}


async def test_timeout_of_one_caller_in_a_batch_keeps_neighbours_results() -> None:
    async with Runtime(cpu_workers=1) as rt:
        await rt.run_cpu(w.square, 1)
        outcomes: dict[str, object] = {}

        async def slow_neighbour() -> None:
            outcomes["neighbour"] = await rt.run_cpu(w.sleep_then, 0.4, "kept")

        async def impatient() -> None:
            try:
                await rt.run_cpu(w.sleep_then, 0.4, "lost", timeout=0.1)
            except OffloadTimeout as exc:
                outcomes["impatient"] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(rt.run_cpu, w.sleep_then, 0.1)  # type: ignore[arg-type]  # keep the worker busy so both queue
            await anyio.sleep(0.02)
            tg.start_soon(slow_neighbour)
            tg.start_soon(impatient)
        assert isinstance(outcomes["impatient"], OffloadTimeout)
        assert outcomes["neighbour"] == "kept"


async def test_initializer_runs_in_each_worker() -> None:
    async with Runtime(cpu_workers=1, initializer=w.remember, initargs=("warm",)) as rt:
        assert await rt.run_cpu(w.initialized) == ["warm"]


async def test_failing_initializer_gives_a_clear_error() -> None:
    async with Runtime(cpu_workers=1, initializer=w.failing_initializer) as rt:
        with pytest.raises(hybridio.OffloadError, match="initializer"):
            await rt.run_cpu(w.square, 2)


async def test_workers_are_recycled_after_max_tasks() -> None:
    async with Runtime(cpu_workers=1, max_tasks_per_worker=3) as rt:
        pids = [await rt.run_cpu(w.where) for _ in range(7)]
        distinct = {pid for pid, _ in pids}
        assert len(distinct) == 3  # 3 + 3 + 1 calls


async def test_workers_are_recycled_above_rss_limit() -> None:
    async with Runtime(cpu_workers=1, max_worker_rss=150 * 1024 * 1024) as rt:
        first = await rt.run_cpu(w.allocate_and_report, 200)
        second = await rt.run_cpu(w.where)
        assert second[0] != first


async def test_stats_separate_run_time_from_overhead() -> None:
    async with Runtime(cpu_workers=1) as rt:
        for _ in range(5):
            await rt.run_cpu(w.spin, 0.01)
        stats = rt.stats()["cpu"]
        assert stats.run_time.count == 5
        assert stats.run_time.sum >= 0.05
        assert stats.latency.sum >= stats.run_time.sum
        fn = stats.functions["tests.core._workload.spin"]
        assert fn.calls == 5
        assert fn.run_seconds == pytest.approx(stats.run_time.sum)
        assert fn.overhead_seconds == pytest.approx(stats.overhead.sum)


def test_offload_paid_off_compares_run_time_with_overhead() -> None:
    assert hybridio.FunctionStats(3, run_seconds=0.3, overhead_seconds=0.001).offload_paid_off
    assert not hybridio.FunctionStats(
        3, run_seconds=0.0001, overhead_seconds=0.001
    ).offload_paid_off


async def test_calls_after_close_raise_runtime_closed() -> None:
    async with Runtime(cpu_workers=1) as rt:
        pass
    with pytest.raises(hybridio.RuntimeClosed):
        await rt.run_cpu(w.square, 2)


async def test_no_worker_left_after_exit() -> None:
    async with Runtime(cpu_workers=2) as rt:
        async with anyio.create_task_group() as tg:
            tg.start_soon(rt.run_cpu, w.square, 1)
            tg.start_soon(rt.run_cpu, w.square, 2)
        pids = rt.worker_pids()
        assert pids
    for pid in pids:
        assert _is_gone(pid)


def test_thread_and_process_ids_differ_from_loop() -> None:
    # Guard against the test module itself being run inside a worker.
    assert threading.current_thread() is threading.main_thread()
