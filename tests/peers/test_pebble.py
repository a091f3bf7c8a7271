"""pebble's test suite (process and thread pools), translated case by case to hybridio.

Source: github.com/noxdafox/pebble at 95150f0: ``test/test_process_pool_spawn.py`` (as ``run_cpu``
/ ``map_cpu``) and ``test/test_thread_pool.py`` (as ``run_blocking`` / ``map(kind="blocking")``).
Each case keeps the original's scenario and assertion and names it in a comment. pebble's
``schedule(..., timeout=)`` is hybridio's ``timeout=``; ``future.cancel()`` is cancelling the
caller's scope. Data sizes are smaller than pebble's 100 MB (the machine is shared): 16 MiB is
still far past any pipe buffer.

Not translated (specific to pebble's own API):
- future callbacks (``*_callback``), ``pool.active``, ``close()`` / ``stop()`` / ``join()`` and
  their timeouts, ``test_*_stop_stopped_callback`` / ``_function``: pebble's pool lifecycle API;
  hybridio's is ``async with Runtime()`` (leaving it stops every worker: translated as
  ``test_process_pool_join_workers``).
- ``map`` over several iterables (``test_*_map_multi``): ``map_cpu`` takes one iterable.
- ``test_*_map_broken_pool``, the ``TestProcessPoolDeadlockOn*`` cases that replace pebble's
  ``worker_process`` and its channel mutex: pebble internals (the large-data cancel case is
  translated).
- ``test_process_pool_child_pebble``: a pebble pool inside a worker (the multiprocessing Process
  and Pool cases are translated).
- the ``TestAsyncIO*`` classes: the same cases through ``loop.run_in_executor`` (already async
  here).
- thread pools' ``max_tasks`` and ``initializer``: hybridio's threads have neither.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

import hybridio
from hybridio import NotPicklable, OffloadTimeout, Runtime, WorkerCrashed, WorkerStartFailed

from . import _funcs as f

pytestmark = pytest.mark.anyio

BIG = 16 * 1024 * 1024


# pebble test/test_process_pool_spawn.py::test_process_pool_single_future
async def test_process_pool_single_future() -> None:
    async with Runtime(cpu_workers=1) as pool:
        assert await pool.run_cpu(functools.partial(f.function, 1, keyword_argument=1)) == 2


# pebble test/test_process_pool_spawn.py::test_process_pool_multiple_futures
async def test_process_pool_multiple_futures() -> None:
    results: list[int] = []

    async def one(pool: Runtime) -> None:
        results.append(await pool.run_cpu(f.function, 1))

    async with Runtime(cpu_workers=1) as pool, anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(one, pool)
    assert sum(results) == 5


# pebble test/test_process_pool_spawn.py::test_process_pool_error
async def test_process_pool_error() -> None:
    async with Runtime(cpu_workers=1) as pool:
        with pytest.raises(BaseException, match="BOOM!"):
            await pool.run_cpu(f.raise_base_exception)


# pebble test/test_process_pool_spawn.py::test_process_pool_error_returned
async def test_process_pool_error_returned() -> None:
    async with Runtime(cpu_workers=1) as pool:
        assert isinstance(await pool.run_cpu(f.return_base_exception), BaseException)


# pebble test/test_process_pool_spawn.py::test_process_pool_pickling_error_task. Deliberate
# difference: hybridio raises NotPicklable naming the culprit, not PicklingError / TypeError.
async def test_process_pool_pickling_error_task() -> None:
    async with Runtime(cpu_workers=1) as pool:
        with pytest.raises(NotPicklable) as info:
            await pool.run_cpu(f.function, threading.Lock())
        assert info.value.what == "argument 0"


# pebble test/test_process_pool_spawn.py::test_process_pool_pickling_error_result (NotPicklable)
async def test_process_pool_pickling_error_result() -> None:
    async with Runtime(cpu_workers=1) as pool:
        with pytest.raises(NotPicklable) as info:
            await pool.run_cpu(f.return_lock)
        assert info.value.what == "result"


# pebble test/test_process_pool_spawn.py::test_process_pool_frozen_error
async def test_process_pool_frozen_error() -> None:
    async with Runtime(cpu_workers=1) as pool:
        with pytest.raises(f.FrozenError):
            await pool.run_cpu(f.frozen_error_function)


# pebble test/test_process_pool_spawn.py::test_process_pool_timeout
async def test_process_pool_timeout() -> None:
    async with Runtime(cpu_workers=1) as pool:
        with pytest.raises(TimeoutError):
            await pool.run_cpu(time.sleep, 30, timeout=0.1)


# pebble test/test_process_pool_spawn.py::test_process_pool_cancel
async def test_process_pool_cancel(tmp_path: Path) -> None:
    started = str(tmp_path / "started")
    async with Runtime(cpu_workers=1) as pool:
        with anyio.CancelScope() as scope:

            async def cancel_when_running() -> None:
                await f.wait_for_file(started)  # let the process pick up the task
                scope.cancel()

            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_when_running)
                await pool.run_cpu(f.never_halts, started)
        assert scope.cancelled_caught


# pebble test/test_process_pool_spawn.py::test_process_pool_different_process (the calls meet in
# the workers, so that two must run at once: pebble's 0.1 s sleeps only make that likely)
async def test_process_pool_different_process(tmp_path: Path) -> None:
    pids: list[int] = []

    async def one(pool: Runtime) -> None:
        pids.append(await pool.run_cpu(f.rendezvous, str(tmp_path), 2))

    with anyio.fail_after(40):
        async with Runtime(cpu_workers=2) as pool, anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(one, pool)
    assert len(set(pids)) == 2


# pebble test/test_process_pool_spawn.py::test_process_pool_future_limit
async def test_process_pool_future_limit() -> None:
    pids: list[int] = []

    async def one(pool: Runtime) -> None:
        pids.append(await pool.run_cpu(os.getpid))

    async with Runtime(cpu_workers=1, max_tasks_per_worker=2) as pool:
        for _ in range(3):  # warm: the dispatcher batches calls it has measured as tiny
            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(one, pool)
            assert len(set(pids)) == 2
            pids.clear()


# pebble test/test_process_pool_spawn.py::test_process_pool_stop_timeout
async def test_process_pool_stop_timeout() -> None:
    async with Runtime(cpu_workers=1) as pool:
        pid1 = await pool.run_cpu(os.getpid)
        with pytest.raises(OffloadTimeout):
            await pool.run_cpu(time.sleep, 30, timeout=0.1)
        pid2 = await pool.run_cpu(os.getpid)
    assert pid1 != pid2


# pebble test/test_process_pool_spawn.py::test_process_pool_stop_cancel
async def test_process_pool_stop_cancel(tmp_path: Path) -> None:
    started = str(tmp_path / "started")
    async with Runtime(cpu_workers=1) as pool:
        pid1 = await pool.run_cpu(os.getpid)
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.run_cpu, f.never_halts, started)
            await f.wait_for_file(started)  # let the process pick up the task
            tg.cancel_scope.cancel()
        pid2 = await pool.run_cpu(os.getpid)
    assert pid1 != pid2


# pebble test/test_process_pool_spawn.py::test_process_pool_initializer
async def test_process_pool_initializer() -> None:
    async with Runtime(cpu_workers=1, initializer=f.initializer, initargs=(1,)) as pool:
        assert await pool.run_cpu(f.initializer_function) == 1


# pebble test/test_process_pool_spawn.py::test_process_pool_broken_initializer. Deliberate
# difference: WorkerStartFailed (an OffloadError), not RuntimeError.
async def test_process_pool_broken_initializer() -> None:
    async with Runtime(cpu_workers=1, initializer=f.broken_initializer) as pool:
        with anyio.fail_after(30), pytest.raises(WorkerStartFailed, match="BOOM!"):
            await pool.run_cpu(f.function, 1)


# pebble test/test_process_pool_spawn.py::test_process_pool_large_data
async def test_process_pool_large_data() -> None:
    data = "a" * BIG
    async with Runtime(cpu_workers=1) as pool:
        assert await pool.run_cpu(functools.partial(f.function, data, keyword_argument="")) == data


# pebble test/test_process_pool_spawn.py::test_process_pool_stop_large_data (stopping while a
# large argument is on the way: no hang, no worker left)
async def test_process_pool_stop_large_data() -> None:
    data = "a" * BIG
    with anyio.fail_after(30):
        async with Runtime(cpu_workers=1) as pool:
            await pool.run_cpu(f.function, 1)
            with anyio.move_on_after(0.01):
                await pool.run_cpu(f.function, data)
            pids = pool.worker_pids()
    await f.eventually(lambda: all(map(f.pid_is_gone, pids)))


# pebble test/test_process_pool_spawn.py::test_process_pool_join_workers
async def test_process_pool_join_workers() -> None:
    async with Runtime(cpu_workers=4) as pool:
        await pool.run_cpu(f.function, 1)
        pids = pool.worker_pids()
    assert pool.worker_pids() == []
    await f.eventually(lambda: all(map(f.pid_is_gone, pids)))


# pebble test/test_process_pool_spawn.py::test_process_pool_exception_isolated
async def test_process_pool_exception_isolated() -> None:
    async with Runtime(cpu_workers=1) as pool:
        with pytest.raises(BaseException, match="BOOM!"):
            await pool.run_cpu(f.raise_base_exception)
        assert await pool.run_cpu(functools.partial(f.function, 1, keyword_argument=1)) == 2


# pebble test/test_process_pool_spawn.py::test_process_pool_ignoring_sigterm
async def test_process_pool_ignoring_sigterm() -> None:
    async with Runtime(cpu_workers=1) as pool:
        pid = await pool.run_cpu(os.getpid)
        with anyio.fail_after(8), pytest.raises(TimeoutError):
            await pool.run_cpu(f.sigterm_ignoring_sleep, 10, timeout=0.2)
        await f.eventually(lambda: f.pid_is_gone(pid), limit=8)


# pebble test/test_process_pool_spawn.py::test_process_pool_expired_worker
async def test_process_pool_expired_worker() -> None:
    async with Runtime(cpu_workers=1) as pool:
        worker_pid = await pool.run_cpu(os.getpid)
        with pytest.raises(WorkerCrashed) as exc_ctx:
            await pool.run_cpu(os._exit, 1)
        assert exc_ctx.value.exitcode == 1
        assert exc_ctx.value.pid == worker_pid


async def _collect(results: hybridio.OffloadMap[Any, Any]) -> list[Any]:
    async with results:
        return [r async for r in results]


# pebble test/test_process_pool_spawn.py::test_process_pool_map / _map_empty / _map_single
@pytest.mark.parametrize("elements", [[1, 2, 3], [], [0]], ids=["simple", "empty", "single"])
async def test_process_pool_map(elements: list[int]) -> None:
    async with Runtime(cpu_workers=1) as pool:
        assert await _collect(pool.map_cpu(f.function, elements)) == elements


# pebble test/test_process_pool_spawn.py::test_process_pool_map_one_chunk
async def test_process_pool_map_one_chunk() -> None:
    elements = [1, 2, 3]
    async with Runtime(cpu_workers=1) as pool:
        assert await _collect(pool.map_cpu(f.function, elements, chunksize=1)) == elements


# pebble test/test_process_pool_spawn.py::test_process_pool_map_zero_chunk
async def test_process_pool_map_zero_chunk() -> None:
    async with Runtime(cpu_workers=1) as pool:
        with pytest.raises(ValueError, match="chunksize"):
            pool.map_cpu(f.function, [], chunksize=0)


# pebble test/test_process_pool_spawn.py::test_process_pool_map_timeout
async def test_process_pool_map_timeout() -> None:
    raised: list[BaseException] = []
    elements = [30, 30, 30]
    async with Runtime(cpu_workers=1) as pool:
        generator = pool.map_cpu(time.sleep, elements, timeout=0.1)
        while True:
            try:
                await generator.__anext__()
            except TimeoutError as error:
                raised.append(error)
            except StopAsyncIteration:
                break
    assert raised
    assert all(isinstance(e, TimeoutError) for e in raised)


# pebble test/test_process_pool_spawn.py::test_process_pool_map_timeout_chunks (the timeout is per
# chunk: 6 chunks of 0.5 s, at most 2 in flight, run under a 2 s timeout; the whole map takes 3 s)
async def test_process_pool_map_timeout_chunks() -> None:
    elements = [0.1] * 30
    async with Runtime(cpu_workers=1) as pool:
        await pool.run_cpu(f.function, 1)  # the worker is up: the timeout measures the work
        results = pool.map_cpu(f.nap, elements, chunksize=5, timeout=2.0)
        assert await _collect(results) == [None] * 30


# pebble test/test_process_pool_spawn.py::test_process_pool_map_error
async def test_process_pool_map_error() -> None:
    elements = [1, "a", 3]
    got: list[Any] = []
    raised: BaseException | None = None
    async with Runtime(cpu_workers=1) as pool:
        generator = pool.map_cpu(f.function, elements)
        while True:
            try:
                got.append(await generator.__anext__())
            except TypeError as error:
                raised = error
            except StopAsyncIteration:
                break
    assert isinstance(raised, TypeError)
    assert got[:1] == [1]


# pebble test/test_process_pool_spawn.py::test_process_pool_map_cancel. Deliberate difference:
# closing the map ends the iteration (StopAsyncIteration), no CancelledError per item.
async def test_process_pool_map_cancel() -> None:
    async with Runtime(cpu_workers=1) as pool:
        generator = pool.map_cpu(f.nap, [0.0] + [30.0] * 4, chunksize=1)
        assert await generator.__anext__() is None
        with anyio.fail_after(10):
            await generator.aclose()
            for _ in range(4):
                with pytest.raises(StopAsyncIteration):
                    await generator.__anext__()


# pebble test/test_process_pool_spawn.py::test_process_pool_child_process
async def test_process_pool_child_process() -> None:
    async with Runtime(cpu_workers=1) as pool:
        with anyio.fail_after(30):
            assert await pool.run_cpu(f.process_function) == 1


# pebble test/test_process_pool_spawn.py::test_process_pool_child_pool
async def test_process_pool_child_pool() -> None:
    async with Runtime(cpu_workers=1) as pool:
        with anyio.fail_after(30):
            assert await pool.run_cpu(f.pool_function) == 1


# pebble test/test_process_pool_spawn.py::test_process_pool_pickle_function (a bound method of a
# multiprocessing.Manager proxy as the function)
async def test_process_pool_pickle_function() -> None:
    with multiprocessing.Manager() as manager:
        queue = manager.Queue()
        async with Runtime(cpu_workers=1) as pool:
            await pool.run_cpu(queue.put, 1)
        assert queue.get(timeout=1) == 1


# pebble test/test_process_pool_spawn.py::TestProcessPoolDeadlockOnCancelLargeData::
# test_pool_deadlock_stop_cancel
async def test_pool_deadlock_stop_cancel() -> None:
    data = b"A" * BIG
    with anyio.fail_after(40):
        async with Runtime(cpu_workers=2) as pool:
            async with anyio.create_task_group() as tg:
                first = anyio.Event()

                async def one() -> None:
                    await pool.run_cpu(f.function, data, b"")
                    first.set()

                for _ in range(10):
                    tg.start_soon(one)
                await first.wait()
                tg.cancel_scope.cancel()
            pids = pool.worker_pids()
    await f.eventually(lambda: all(map(f.pid_is_gone, pids)))


# -- pebble test/test_thread_pool.py -----------------------------------------------------------


# pebble test/test_thread_pool.py::test_thread_pool_single_future
async def test_thread_pool_single_future() -> None:
    async with Runtime(threads=1) as pool:
        assert await pool.run_blocking(functools.partial(f.function, 1, keyword_argument=1)) == 2


# pebble test/test_thread_pool.py::test_thread_pool_multiple_futures
async def test_thread_pool_multiple_futures() -> None:
    results: list[int] = []

    async def one(pool: Runtime) -> None:
        results.append(await pool.run_blocking(f.function, 1))

    async with Runtime(threads=1) as pool, anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(one, pool)
    assert sum(results) == 5


# pebble test/test_thread_pool.py::test_thread_pool_error
async def test_thread_pool_error() -> None:
    async with Runtime(threads=1) as pool:
        with pytest.raises(BaseException, match="BOOM!"):
            await pool.run_blocking(f.raise_base_exception)


# pebble test/test_thread_pool.py::test_process_pool_frozen_error (a thread pool case)
async def test_thread_pool_frozen_error() -> None:
    async with Runtime(threads=1) as pool:
        with pytest.raises(f.FrozenError):
            await pool.run_blocking(f.frozen_error_function)


# pebble test/test_thread_pool.py::test_thread_pool_different_thread (the calls wait for each
# other, so that two must run at once: pebble's 0.1 s sleeps only make that likely; which thread
# object runs a call is anyio's, so "2 threads" is counted as 2 calls running at once, never more)
async def test_thread_pool_different_thread() -> None:
    running: set[int] = set()
    most = 0
    both = threading.Event()
    lock = threading.Lock()

    def tid_function() -> int:
        nonlocal most
        with lock:
            running.add(threading.get_ident())
            most = max(most, len(running))
            if len(running) >= 2:
                both.set()
        both.wait(20)
        with lock:
            running.discard(threading.get_ident())
        return threading.get_ident()

    async def one(pool: Runtime) -> None:
        await pool.run_blocking(tid_function)

    with anyio.fail_after(30):
        async with Runtime(threads=2) as pool, anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(one, pool)
    assert most == 2


# pebble test/test_thread_pool.py::test_thread_pool_exception_isolated
async def test_thread_pool_exception_isolated() -> None:
    async with Runtime(threads=1) as pool:
        with pytest.raises(BaseException, match="BOOM!"):
            await pool.run_blocking(f.raise_base_exception)
        assert await pool.run_blocking(functools.partial(f.function, 1, keyword_argument=1)) == 2


# pebble test/test_thread_pool.py::test_thread_pool_map / _map_empty / _map_single
@pytest.mark.parametrize("elements", [[1, 2, 3], [], [0]], ids=["simple", "empty", "single"])
async def test_thread_pool_map(elements: list[int]) -> None:
    async with Runtime(threads=1) as pool:
        assert await _collect(pool.map(f.function, elements, kind="blocking")) == elements


# pebble test/test_thread_pool.py::test_thread_pool_map_one_chunk
async def test_thread_pool_map_one_chunk() -> None:
    elements = [1, 2, 3]
    async with Runtime(threads=1) as pool:
        results = pool.map(f.function, elements, kind="blocking", chunksize=1)
        assert await _collect(results) == elements


# pebble test/test_thread_pool.py::test_thread_pool_map_zero_chunk
async def test_thread_pool_map_zero_chunk() -> None:
    async with Runtime(threads=1) as pool:
        with pytest.raises(ValueError, match="chunksize"):
            pool.map(f.function, [], kind="blocking", chunksize=0)


# pebble test/test_thread_pool.py::test_thread_pool_map_error
async def test_thread_pool_map_error() -> None:
    raised: BaseException | None = None
    got: list[Any] = []
    async with Runtime(threads=1) as pool:
        generator = pool.map(f.function, [1, "a", 3], kind="blocking")
        while True:
            try:
                got.append(await generator.__anext__())
            except TypeError as error:
                raised = error
            except StopAsyncIteration:
                break
    assert isinstance(raised, TypeError)
    assert got[:1] == [1]


# pebble test/test_thread_pool.py::test_thread_pool_map_cancel (closing ends the iteration)
async def test_thread_pool_map_cancel() -> None:
    async with Runtime(threads=1) as pool:
        generator = pool.map(f.nap, [0.0] + [30.0] * 4, kind="blocking", chunksize=1)
        assert await generator.__anext__() is None
        with anyio.fail_after(10):
            await generator.aclose()
            for _ in range(3):
                with pytest.raises(StopAsyncIteration):
                    await generator.__anext__()
