"""CPython's ``Lib/test/test_concurrent_futures/``, translated case by case to hybridio.

Source: github.com/python/cpython main (executor.py, test_process_pool.py, test_thread_pool.py,
test_deadlock.py, test_init.py, test_shutdown.py). ``ExecutorTest`` cases run on both kinds
(``ProcessPoolExecutor`` -> ``kind="cpu"``, ``ThreadPoolExecutor`` -> ``kind="blocking"``); each
case keeps the original's scenario and assertion and names it in a comment. ``submit(...)`` +
``future.result()`` is ``await rt.run(...)``; ``Executor.map`` is ``Runtime.map``;
``shutdown()`` is leaving ``async with Runtime()``.

Deliberate differences (asserted here as hybridio behaves; see docs/core.md):
- a worker that dies fails the calls it was running with ``WorkerCrashed`` and is replaced; the
  pool is never "broken" (``BrokenProcessPool`` for every later submit);
- unpicklable arguments / results raise ``NotPicklable`` (naming the culprit), not
  ``PicklingError``; ``SystemExit`` in a worker (raised by the function or while pickling) does
  not reach the caller as ``SystemExit`` (issue 19), where ``ProcessPoolExecutor`` re-raises it;
- ``Runtime.map`` is lazy (items are sent as results are consumed), where ``Executor.map``
  submits every item at once (``test_map_submits_without_iteration``);
- using a closed runtime raises ``RuntimeClosed``, not ``RuntimeError``.

Not translated (specific to concurrent.futures' own API or internals):
- ``test_future.py``, ``test_wait.py``, ``test_as_completed.py``: the ``Future`` object and
  ``wait()`` / ``as_completed()`` (hybridio calls are awaited).
- ``terminate_workers()`` / ``kill_workers()`` / ``_force_shutdown``, ``shutdown(wait=False)``,
  ``cancel_futures=``, thread names and ``thread_name_prefix``, ``max_workers`` > 61 on Windows,
  ``sysconf`` permission errors, ``mp_context`` / fork start-method checks, executors garbage
  collected without shutdown (``test_del_shutdown``, gh-119592, gh-152967), the manager thread's
  wakeup pipe (gh-105829), thread-creation failure at finalization (gh-109047), the
  ``atexit`` hooks (``test_interpreter_shutdown``, ``test_submit_after_interpreter_shutdown``:
  hybridio has no fire-and-forget submit), ``submit(fn=...)`` keyword parsing.
- ``ThreadPoolExecutorTest::test_idle_thread_reuse``: which idle thread runs a call is anyio's
  (on trio, trio's thread cache may start a new one while the last is going idle); hybridio
  bounds how many run at once (``test_thread_saturation``).
- ``test_init.py``'s logging assertions, and initializers for threads (hybridio's threads have
  none).
- ``test_deadlock.py::test_gh105829_should_not_deadlock_if_wakeup_pipe_full`` (mocks internals).
"""

from __future__ import annotations

import functools
import gc
import os
import pickle
import signal
import sys
import threading
import time
import traceback
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import anyio
import pytest

import hybridio
from hybridio import (
    HybridioError,
    Kind,
    NotPicklable,
    Runtime,
    RuntimeClosed,
    WorkerCrashed,
    WorkerStartFailed,
)

from . import _funcs as f

pytestmark = pytest.mark.anyio

KINDS = [pytest.param("cpu", id="process"), pytest.param("blocking", id="thread")]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> Kind:
    return cast(Kind, request.param)


@pytest.fixture
async def executor(kind: Kind) -> AsyncIterator[Runtime]:
    """``self.executor`` of ``ExecutorTest``: a pool of 2 workers (``worker_count``)."""
    async with Runtime(cpu_workers=2, threads=2) as rt:
        yield rt


async def _collect(results: hybridio.OffloadMap[Any, Any]) -> list[Any]:
    async with results:
        return [r async for r in results]


# -- executor.py: ExecutorTest ---------------------------------------------------------------


# cpython test_concurrent_futures/executor.py::ExecutorTest::test_submit
async def test_submit(executor: Runtime, kind: Kind) -> None:
    assert await executor.run(pow, 2, 8, kind=kind) == 256


# cpython test_concurrent_futures/executor.py::ExecutorTest::test_submit_keyword
async def test_submit_keyword(executor: Runtime, kind: Kind) -> None:
    assert await executor.run(functools.partial(f.mul, 2, y=8), kind=kind) == 16
    result = await executor.run(functools.partial(f.capture, 1, self=2, fn=3), kind=kind)
    assert result == ((1,), {"self": 2, "fn": 3})


# cpython test_concurrent_futures/executor.py::ExecutorTest::test_map (two iterables: zipped)
async def test_map(executor: Runtime, kind: Kind) -> None:
    expected = list(map(pow, range(10), range(10)))
    pairs = [(pow, a, b) for a, b in zip(range(10), range(10), strict=True)]
    assert await _collect(executor.map(f.star, pairs, kind=kind)) == expected
    chunked = executor.map(f.star, pairs, kind=kind, chunksize=3)
    assert await _collect(chunked) == expected


# cpython test_concurrent_futures/executor.py::ExecutorTest::test_map_exception
async def test_map_exception(executor: Runtime, kind: Kind) -> None:
    pairs = [(divmod, a, b) for a, b in zip([1, 1, 1, 1], [2, 3, 0, 5], strict=True)]
    i = executor.map(f.star, pairs, kind=kind)
    async with i:
        assert await i.__anext__() == (0, 1)
        assert await i.__anext__() == (0, 1)
        with pytest.raises(ZeroDivisionError):
            await i.__anext__()


# cpython test_concurrent_futures/executor.py::ExecutorTest::test_map_timeout. Deliberate
# difference (docs/core.md): the timeout bounds each wait for the next chunk, and chunks of tiny
# work may share a round trip, so it is per item with chunksize=1 and max_in_flight=1; the
# results before the slow item are delivered, then TimeoutError.
async def test_map_timeout(executor: Runtime, kind: Kind) -> None:
    results = []
    await executor.run(int, kind=kind)  # workers up: time the work
    it = executor.map(f.nap, [0, 0, 30], kind=kind, timeout=2, chunksize=1, max_in_flight=1)
    try:
        async with it:
            async for i in it:
                results.append(i)  # noqa: PERF401 - what was yielded before the error counts
    except TimeoutError:
        pass
    else:
        pytest.fail("expected TimeoutError")

    assert results == [None, None]


# cpython test_concurrent_futures/executor.py::ExecutorTest::test_shutdown_race_issue12456
async def test_shutdown_race_issue12456(kind: Kind) -> None:
    with anyio.fail_after(20):
        async with Runtime(cpu_workers=2, threads=2) as rt:
            it = rt.map(str, [2] * 3, kind=kind)
            assert await it.__anext__() == "2"
        await it.aclose()


# cpython test_concurrent_futures/executor.py::ExecutorTest::test_no_stale_references
@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("cpu", id="process"),
        pytest.param("blocking", id="thread"),
    ],
)
async def test_no_stale_references(executor: Runtime, kind: Kind) -> None:
    my_object = f.MyObject()
    my_object_collected = threading.Event()
    my_object_callback = weakref.ref(my_object, lambda obj: my_object_collected.set())
    await executor.run(my_object.my_method, kind=kind)
    del my_object

    await f.eventually(my_object_collected.is_set, limit=5)  # no gc.collect(): no cycles either
    assert my_object_callback() is None


# cpython test_concurrent_futures/executor.py::ExecutorTest::test_max_workers_negative
@pytest.mark.parametrize("number", [0, -1])
@pytest.mark.parametrize("argument", ["cpu_workers", "threads"])
def test_max_workers_negative(argument: str, number: int) -> None:
    with pytest.raises(ValueError, match=argument):
        Runtime(**{argument: number})  # type: ignore[arg-type]


# cpython test_concurrent_futures/executor.py::ExecutorTest::test_free_reference
async def test_free_reference(executor: Runtime, kind: Kind) -> None:
    async with executor.map(f.make_dummy_object, range(10), kind=kind) as results:
        async for obj in results:
            wr = weakref.ref(obj)
            del obj
            gc.collect()
            assert wr() is None


# -- test_process_pool.py ----------------------------------------------------------------------


# cpython test_process_pool.py::ProcessPoolExecutorTest::test_killed_child. Deliberate difference:
# the running call fails with WorkerCrashed, the pool replaces the worker and goes on.
async def test_killed_child(tmp_path: Path) -> None:
    started = str(tmp_path / "started")
    gate = str(tmp_path / "gate")
    async with Runtime(cpu_workers=1) as rt:

        async def kill_it() -> None:
            await f.wait_for_file(started)
            f.kill(f.read_pid(started), signal.SIGTERM)

        async with anyio.create_task_group() as tg:
            tg.start_soon(kill_it)
            with pytest.raises(WorkerCrashed) as info:
                await rt.run_cpu(f.report_pid_then_wait, started, gate)
        assert info.value.signal == signal.SIGTERM
        # Submitting other jobs works: the pool healed.
        assert await rt.run_cpu(pow, 2, 8) == 256


# cpython test_process_pool.py::ProcessPoolExecutorTest::test_broken_process_pool_traceback
async def test_broken_process_pool_traceback(tmp_path: Path) -> None:
    gate = str(tmp_path / "gate")
    errors: list[BaseException] = []

    async def one(rt: Runtime, i: int) -> None:
        try:
            await rt.run_cpu(f.report_pid_then_wait, str(tmp_path / f"started{i}"), gate)
        except WorkerCrashed as exc:
            errors.append(exc)

    async with Runtime(cpu_workers=1) as rt, anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(one, rt, i)
        await f.eventually(lambda: bool(f.listing(tmp_path, "started?")))
        f.kill(f.read_pid(f.listing(tmp_path, "started?")[0]), signal.SIGTERM)
        await f.eventually(lambda: bool(errors))
        f.touch(gate)  # the calls the kill did not reach finish on a fresh worker
    assert errors
    assert len({id(e) for e in errors}) == len(errors)  # one exception per call
    for exc in errors:
        count = sum(
            1
            for frame_summary in traceback.extract_tb(exc.__traceback__)
            if frame_summary.filename == __file__
        )
        # This code file should appear exactly once in the traceback.
        assert count == 1


# cpython test_process_pool.py::ProcessPoolExecutorTest::test_map_chunksize
async def test_map_chunksize() -> None:
    pairs = [(pow, a, b) for a, b in zip(range(40), range(40), strict=True)]
    ref = list(map(pow, range(40), range(40)))
    async with Runtime(cpu_workers=2) as rt:
        for chunksize in (6, 50, 40):
            assert await _collect(rt.map_cpu(f.star, pairs, chunksize=chunksize)) == ref
        with pytest.raises(ValueError, match="chunksize"):
            rt.map_cpu(f.star, pairs, chunksize=-1)


# cpython test_process_pool.py::ProcessPoolExecutorTest::test_traceback
async def test_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    async with Runtime(cpu_workers=1) as rt:
        with pytest.raises(Exception) as cm:  # noqa: PT011 - the type is asserted below
            await rt.run_cpu(f.traceback_function)

    exc = cm.value
    assert type(exc) is RuntimeError
    assert exc.args == (123,)
    cause = exc.__cause__
    assert type(cause) is hybridio.RemoteTraceback
    assert "raise RuntimeError(123)  # some comment" in cause.tb

    try:
        raise exc
    except RuntimeError:
        sys.excepthook(*sys.exc_info())
    assert "raise RuntimeError(123)  # some comment" in capsys.readouterr().err


# cpython test_process_pool.py::test_traceback_when_child_process_terminates_abruptly
async def test_traceback_when_child_process_terminates_abruptly() -> None:
    exit_code = 99
    async with Runtime(cpu_workers=1) as rt:
        with pytest.raises(WorkerCrashed) as bpe:
            await rt.run_cpu(os._exit, exit_code)
    assert f"exited with code {exit_code}" in str(bpe.value)


# cpython test_process_pool.py::ProcessPoolExecutorTest::test_ressources_gced_in_workers
async def test_ressources_gced_in_workers(tmp_path: Path) -> None:
    deleted = tmp_path / "deleted"
    obj = f.DelTouches(str(deleted))
    async with Runtime(cpu_workers=1) as rt:
        await rt.run_cpu(id, obj)
        await f.wait_for_file(deleted, limit=5)


# cpython test_process_pool.py::ProcessPoolExecutorTest::test_saturation
async def test_saturation(tmp_path: Path) -> None:
    gate = str(tmp_path / "gate")
    started = tmp_path / "started"
    started.mkdir()
    async with Runtime(cpu_workers=2) as rt, anyio.create_task_group() as tg:
        for _ in range(15 * rt.cpu_workers):
            tg.start_soon(rt.run_cpu, f.wait_gate, gate, str(started))
        await f.eventually(lambda: len(f.listing(started)) == rt.cpu_workers)
        assert len(rt.worker_pids()) == rt.cpu_workers
        f.touch(gate)


# cpython test_process_pool.py::ProcessPoolExecutorTest::test_idle_process_reuse_one. Deliberate
# difference: a runtime starts its cpu_workers processes at its first call (documented), where
# ProcessPoolExecutor spawns on demand, and any idle one may take the next call.
async def test_idle_process_reuse_one() -> None:
    async with Runtime(cpu_workers=4) as rt:
        assert await rt.run_cpu(f.mul, 21, 2) == 42
        assert await rt.run_cpu(f.mul, 6, 7) == 42
        assert await rt.run_cpu(f.mul, 3, 14) == 42
        assert len(rt.worker_pids()) <= rt.cpu_workers


# cpython test_process_pool.py::ProcessPoolExecutorTest::test_idle_process_reuse_multiple (as
# above: never more processes than cpu_workers)
async def test_idle_process_reuse_multiple() -> None:
    async with Runtime(cpu_workers=5) as rt, anyio.create_task_group() as tg:
        await rt.run_cpu(f.mul, 12, 7)
        tg.start_soon(rt.run_cpu, f.mul, 33, 25)
        await rt.run_cpu(f.mul, 25, 26)
        tg.start_soon(rt.run_cpu, f.mul, 18, 29)
        await rt.run_cpu(f.mul, 1, 2)
        tg.start_soon(rt.run_cpu, f.mul, 0, 9)
        assert len(rt.worker_pids()) <= rt.cpu_workers


# cpython test_process_pool.py::ProcessPoolExecutorTest::test_max_tasks_per_child
async def test_max_tasks_per_child() -> None:
    async with Runtime(cpu_workers=1, max_tasks_per_worker=3) as rt:
        original_pid = await rt.run_cpu(os.getpid)
        # The worker pid remains the same as the worker could be reused
        assert await rt.run_cpu(os.getpid) == original_pid
        assert len(rt.worker_pids()) == 1
        assert await rt.run_cpu(os.getpid) == original_pid

        # A new worker is spawned, with a statistically different pid,
        # while the previous was reaped.
        new_pid = await rt.run_cpu(os.getpid)
        assert original_pid != new_pid
        assert len(rt.worker_pids()) == 1


# cpython test_process_pool.py::test_max_tasks_per_child_pending_tasks_gh115634 (and each worker
# ran at most max_tasks calls)
@pytest.mark.parametrize(
    ("max_workers", "max_tasks", "num_tasks"), [(1, 2, 6), (2, 2, 8)], ids=["1-2-6", "2-2-8"]
)
async def test_max_tasks_per_child_pending_tasks_gh115634(
    max_workers: int, max_tasks: int, num_tasks: int
) -> None:
    results: dict[int, tuple[int, int]] = {}

    async def one(rt: Runtime, i: int) -> None:
        results[i] = await rt.run_cpu(f.pid_and_mul, i, 2)

    with anyio.fail_after(30):
        async with (
            Runtime(cpu_workers=max_workers, max_tasks_per_worker=max_tasks) as rt,
            anyio.create_task_group() as tg,
        ):
            for i in range(num_tasks):
                tg.start_soon(one, rt, i)
    assert [results[i][1] for i in range(num_tasks)] == [i * 2 for i in range(num_tasks)]
    pids = [pid for pid, _ in results.values()]
    assert max(pids.count(p) for p in pids) <= max_tasks


# cpython test_process_pool.py::ProcessPoolExecutorTest::test_max_tasks_early_shutdown (and each
# worker ran one call)
async def test_max_tasks_early_shutdown() -> None:
    results: dict[int, tuple[int, int]] = {}

    async def one(rt: Runtime, i: int) -> None:
        results[i] = await rt.run_cpu(f.pid_and_mul, i, i)

    with anyio.fail_after(30):
        async with (
            Runtime(cpu_workers=3, max_tasks_per_worker=1) as rt,
            anyio.create_task_group() as tg,
        ):
            for i in range(6):
                tg.start_soon(one, rt, i)
    for i in range(6):
        assert results[i][1] == f.mul(i, i)
    assert len({pid for pid, _ in results.values()}) == 6


# -- test_thread_pool.py -----------------------------------------------------------------------


# cpython test_thread_pool.py::ThreadPoolExecutorTest::test_map_submits_without_iteration.
# Deliberate difference: Runtime.map is lazy; nothing runs before the results are iterated.
async def test_map_submits_without_iteration() -> None:
    finished: list[int] = []
    async with Runtime(threads=2) as rt:
        results = rt.map(finished.append, range(10), kind="blocking")
        await anyio.sleep(0.05)
        assert finished == []
        assert await _collect(results) == [None] * 10
    assert sorted(finished) == list(range(10))


# cpython test_thread_pool.py::ThreadPoolExecutorTest::test_default_workers
def test_default_workers() -> None:
    expected = min(32, (os.cpu_count() or 1) + 4)
    assert Runtime().threads == expected


# cpython test_thread_pool.py::ThreadPoolExecutorTest::test_saturation (and never more threads
# than threads=)
async def test_thread_saturation() -> None:
    sem = threading.Semaphore(0)
    running: set[int] = set()
    most = 0
    lock = threading.Lock()

    def acquire_lock() -> None:
        nonlocal most
        with lock:
            running.add(threading.get_ident())
            most = max(most, len(running))
        sem.acquire(timeout=30)
        with lock:
            running.discard(threading.get_ident())

    async with Runtime(threads=4) as rt, anyio.create_task_group() as tg:
        for _ in range(15 * rt.threads):
            tg.start_soon(rt.run_blocking, acquire_lock)
        await f.eventually(lambda: len(running) == rt.threads)
        for _ in range(15 * rt.threads):
            sem.release()
    assert most == 4


# cpython test_thread_pool.py::ThreadPoolExecutorTest::test_executor_map_current_future_cancel
async def test_executor_map_current_future_cancel() -> None:
    stop_event = threading.Event()
    log = []

    def log_n_wait(ident: str) -> None:
        log.append(f"{ident=} started")
        try:
            stop_event.wait(30)
        finally:
            log.append(f"{ident=} stopped")

    async with Runtime(threads=1) as pool, anyio.create_task_group() as tg:
        # submit work to saturate the pool
        tg.start_soon(pool.run_blocking, log_n_wait, "first")
        await f.eventually(lambda: bool(log))
        try:
            with pytest.raises(TimeoutError):
                async with pool.map(
                    log_n_wait, ["second", "third"], kind="blocking", timeout=0.05
                ) as gen:
                    await gen.__anext__()
        finally:
            stop_event.set()
    # ident='second' is cancelled as a result of raising a TimeoutError
    # ident='third' is cancelled because it remained in the collection of futures
    assert log == ["ident='first' started", "ident='first' stopped"]


# -- test_deadlock.py: ExecutorDeadlockTest ----------------------------------------------------


async def _check_error(
    error: type[BaseException] | tuple[type[BaseException], ...], func: Any, *args: Any
) -> BaseException:
    """test_deadlock.py::_check_error: the call fails with ``error`` (no deadlock), and the pool
    heals: the next call on the same runtime succeeds."""
    async with Runtime(cpu_workers=2) as executor:
        with anyio.fail_after(30):
            with pytest.raises(error) as info:
                await executor.run_cpu(func, *args)
            assert await executor.run_cpu(pow, 2, 8) == 256
    return info.value


# cpython test_deadlock.py::ExecutorDeadlockTest::test_error_at_task_pickle (NotPicklable)
async def test_error_at_task_pickle() -> None:
    err = await _check_error(NotPicklable, id, f.ErrorAtPickle())
    assert "Error in pickle" in str(err)


# cpython test_deadlock.py::ExecutorDeadlockTest::test_exit_at_task_unpickle
async def test_exit_at_task_unpickle() -> None:
    await _check_error(HybridioError, id, f.ExitAtUnpickle())


# cpython test_deadlock.py::ExecutorDeadlockTest::test_error_at_task_unpickle
async def test_error_at_task_unpickle() -> None:
    await _check_error((pickle.UnpicklingError, HybridioError), id, f.ErrorAtUnpickle())


# cpython test_deadlock.py::ExecutorDeadlockTest::test_crash_at_task_unpickle
async def test_crash_at_task_unpickle() -> None:
    await _check_error(WorkerCrashed, id, f.CrashAtUnpickle())


# cpython test_deadlock.py::ExecutorDeadlockTest::test_crash_during_func_exec_on_worker
async def test_crash_during_func_exec_on_worker() -> None:
    await _check_error(WorkerCrashed, f.crash)


# cpython test_deadlock.py::ExecutorDeadlockTest::test_exit_during_func_exec_on_worker.
# Deliberate difference (issue 19): SystemExit comes back wrapped in a hybridio error.
async def test_exit_during_func_exec_on_worker() -> None:
    err = await _check_error(HybridioError, f.call_exit, 1)
    assert "SystemExit" in str(err) or isinstance(err.__cause__, SystemExit)


# cpython test_deadlock.py::test_exit_during_func_exec_on_worker, on a thread (issue 19: thread
# calls too)
async def test_exit_during_func_exec_on_thread() -> None:
    async with Runtime(threads=2) as rt:
        with pytest.raises(HybridioError):
            await rt.run_blocking(f.call_exit, 1)


# cpython test_deadlock.py::ExecutorDeadlockTest::test_error_during_func_exec_on_worker
async def test_error_during_func_exec_on_worker() -> None:
    await _check_error(RuntimeError, f.raise_error, RuntimeError)


# cpython test_deadlock.py::ExecutorDeadlockTest::test_crash_during_result_pickle_on_worker
async def test_crash_during_result_pickle_on_worker() -> None:
    await _check_error(WorkerCrashed, f.return_instance, f.CrashAtPickle)


# cpython test_deadlock.py::ExecutorDeadlockTest::test_exit_during_result_pickle_on_worker.
# Deliberate difference (issue 19): a hybridio error, not SystemExit.
async def test_exit_during_result_pickle_on_worker() -> None:
    await _check_error(HybridioError, f.return_instance, f.ExitAtPickle)


# cpython test_deadlock.py::ExecutorDeadlockTest::test_error_during_result_pickle_on_worker
async def test_error_during_result_pickle_on_worker() -> None:
    err = await _check_error(NotPicklable, f.return_instance, f.ErrorAtPickle)
    assert err.what == "result"  # type: ignore[attr-defined]


# cpython test_deadlock.py::test_error_during_result_unpickle_in_result_handler
async def test_error_during_result_unpickle_in_result_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stderr", sys.stderr)  # restored: the unpickling replaces it
    await _check_error(
        (pickle.UnpicklingError, HybridioError), f.return_instance, f.ErrorAtUnpickle
    )


# cpython test_deadlock.py::test_exit_during_result_unpickle_in_result_handler (SystemExit in this
# process while unpickling a result: in a subprocess, in case it ends the interpreter)
def test_exit_during_result_unpickle_in_result_handler(anyio_backend: Any) -> None:
    backend, options = anyio_backend
    code = f"""
import anyio, hybridio
from tests.peers import _funcs as f

async def main():
    async with hybridio.Runtime(cpu_workers=2) as rt:
        with anyio.fail_after(30):
            try:
                await rt.run_cpu(f.return_instance, f.ExitAtUnpickle)
            except hybridio.HybridioError as exc:
                print("error", type(exc).__name__)
            assert await rt.run_cpu(pow, 2, 8) == 256
    print("healed")

anyio.run(main, backend={backend!r}, backend_options={options!r})
"""
    result = f.run_python(code, timeout=60)
    assert result.stdout.split()[::2] == ["error", "healed"], result.stderr
    assert result.returncode == 0


# cpython test_deadlock.py::ExecutorDeadlockTest::test_shutdown_deadlock (a worker fails after
# the shutdown began: the call fails, leaving does not hang)
async def test_shutdown_deadlock() -> None:
    outcome: list[BaseException] = []

    async def call(rt: Runtime) -> None:
        try:
            await rt.run_cpu(f.crash, 0.1)
        except HybridioError as exc:
            outcome.append(exc)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg, Runtime(cpu_workers=2) as executor:
            await executor.run_cpu(int)
            tg.start_soon(call, executor)
            await anyio.wait_all_tasks_blocked()
    assert len(outcome) == 1
    assert isinstance(outcome[0], (WorkerCrashed, RuntimeClosed))


# cpython test_deadlock.py::ExecutorDeadlockTest::test_shutdown_deadlock_pickle
async def test_shutdown_deadlock_pickle() -> None:
    with anyio.fail_after(30):
        async with Runtime(cpu_workers=2) as executor:
            await executor.run_cpu(id, 42)
            with pytest.raises(NotPicklable):
                await executor.run_cpu(id, f.ErrorAtPickle())


# cpython test_deadlock.py::ExecutorDeadlockTest::test_crash_big_data
async def test_crash_big_data() -> None:
    data = "a" * (4 * 1024 * 1024 + 1)  # support.PIPE_MAX_SIZE
    with anyio.fail_after(60):
        async with Runtime(cpu_workers=2) as executor:
            with pytest.raises(WorkerCrashed):
                await _collect(executor.map_cpu(f.crash_with_data, [data] * 10))


# -- test_init.py ------------------------------------------------------------------------------


# cpython test_init.py::InitializerMixin::test_initializer (process pools)
async def test_initializer() -> None:
    async with Runtime(cpu_workers=2, initializer=f.initializer, initargs=("initialized",)) as rt:
        results: list[Any] = []

        async def one() -> None:
            results.append(await rt.run_cpu(f.initializer_function))

        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(one)
    assert results == ["initialized", "initialized"]


# cpython test_init.py::FailingInitializerMixin::test_initializer (process pools; the pool
# "breaks": calls fail at once with WorkerStartFailed until a retry succeeds)
async def test_failing_initializer() -> None:
    async with Runtime(cpu_workers=2, initializer=f.init_fail) as rt:
        with anyio.fail_after(30):
            with pytest.raises(WorkerStartFailed, match="error in initializer"):
                await rt.run_cpu(f.initializer_function)
            # ... and from this point calls are guaranteed to fail
            with pytest.raises(WorkerStartFailed):
                await rt.run_cpu(f.initializer_function)


# -- test_shutdown.py --------------------------------------------------------------------------


# cpython test_shutdown.py::ExecutorShutdownTest::test_run_after_shutdown. Deliberate difference:
# RuntimeClosed (a HybridioError), not RuntimeError.
async def test_run_after_shutdown(kind: Kind) -> None:
    async with Runtime(cpu_workers=1) as rt:
        pass
    with pytest.raises(RuntimeClosed):
        await rt.run(pow, 2, 5, kind=kind)


# cpython test_shutdown.py::ExecutorShutdownTest::test_hang_issue12364
async def test_hang_issue12364(kind: Kind) -> None:
    with anyio.fail_after(30):
        async with Runtime(cpu_workers=2, threads=2) as rt, anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(functools.partial(rt.run, time.sleep, 0.01, kind=kind))


# cpython test_shutdown.py::ExecutorShutdownTest::test_cancel_futures (closing with calls queued:
# the queued ones get RuntimeClosed, the others finish)
async def test_cancel_futures(kind: Kind) -> None:
    outcomes: list[BaseException | None] = []

    async def one(rt: Runtime) -> None:
        try:
            await rt.run(time.sleep, 0.1, kind=kind)
        except RuntimeClosed as exc:
            outcomes.append(exc)
        else:
            outcomes.append(None)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            rt = Runtime(cpu_workers=2, threads=2)
            async with rt:
                await rt.run(int, kind=kind)
                for _ in range(50):
                    tg.start_soon(one, rt)
                await f.eventually(lambda: rt.stats()[kind].queued > 20 and None in outcomes)
    cancelled = [o for o in outcomes if o is not None]
    others = [o for o in outcomes if o is None]
    assert len(outcomes) == 50
    assert len(cancelled) > 20
    assert len(others) > 0


# cpython test_shutdown.py::ExecutorShutdownTest::test_hang_gh94440 (a call cancelled right before
# the shutdown does not hang it)
async def test_hang_gh94440(kind: Kind) -> None:
    with anyio.fail_after(10):
        async with Runtime(cpu_workers=1, threads=1) as rt:
            await rt.run(int, kind=kind)
            with anyio.CancelScope() as scope:
                scope.cancel()
                await rt.run(int, kind=kind)


# cpython test_shutdown.py::ThreadPoolShutdownTest::test_threads_terminate /
# ProcessPoolShutdownTest::test_processes_terminate
async def test_workers_terminate(kind: Kind) -> None:
    sem = threading.Semaphore(0)
    async with Runtime(cpu_workers=3, threads=3) as rt:
        if kind == "cpu":
            pids: list[int] = []

            async def one() -> None:
                pids.append(await rt.run_cpu(os.getpid))

            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(one)
            workers = rt.worker_pids()
        else:
            idents: set[int] = set()

            def acquire_lock() -> None:
                idents.add(threading.get_ident())
                sem.acquire(timeout=30)

            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(rt.run_blocking, acquire_lock)
                await f.eventually(lambda: len(idents) == 3)
                for _ in range(3):
                    sem.release()
    if kind == "cpu":
        await f.eventually(lambda: all(map(f.pid_is_gone, workers)))


# cpython test_shutdown.py::ThreadPoolShutdownTest / ProcessPoolShutdownTest::
# test_context_manager_shutdown
async def test_context_manager_shutdown(kind: Kind) -> None:
    async with Runtime(cpu_workers=2, threads=5) as e:
        assert await _collect(e.map(abs, range(-5, 5), kind=kind)) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]
        pids = e.worker_pids()
    await f.eventually(lambda: all(map(f.pid_is_gone, pids)))


# cpython test_shutdown.py::ProcessPoolShutdownTest::test_shutdown_gh_132969_case_1 / _2
@pytest.mark.parametrize("max_workers", [2, 4])
async def test_shutdown_gh_132969(max_workers: int) -> None:
    result = 0
    with anyio.fail_after(30):
        async with Runtime(cpu_workers=max_workers, max_tasks_per_worker=1) as executor:
            try:
                result += await executor.run_cpu(f.nap, 0.1, 1)
                result += await executor.run_cpu(f.raise_error, ValueError)
                result += await executor.run_cpu(f.nap, 0.3, 3)
            except ValueError:
                # stop processing results upon first exception
                pass
    assert result == 1
