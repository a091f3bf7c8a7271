"""anyio's ``tests/test_to_thread.py``, translated case by case to ``hybridio.run_blocking``.

Source: github.com/agronholm/anyio at 660a06d (tests/test_to_thread.py). Each case keeps the
original's scenario and assertion and names it in a comment. The originals signal from the worker
thread with ``anyio.from_thread``; here worker threads set ``threading.Event``s that the test
polls (bounded), since a hybridio thread call is not promised an anyio portal.

Not translated (specific to anyio's own API):
- ``abandon_on_cancel=False`` (``test_cancel_worker_thread[noabandon]``): hybridio has no such
  flag; a cancelled thread call is always abandoned at once (its ``cancel_requested()`` turns
  true), which is the ``abandon`` variant, translated below.
- ``test_deprecated_cancellable_param``: a deprecation of anyio's own keyword.
- ``limiter=CapacityLimiter(3)`` (``test_run_in_custom_limiter``): translated with
  ``Runtime(threads=3)``, hybridio's limit.
- ``TestBlockingPortalProvider``: anyio's portal API (calls from threads into the loop).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
import weakref
from concurrent.futures import Future
from contextvars import ContextVar
from typing import NoReturn

import anyio
import pytest
import sniffio

import hybridio
from hybridio import Runtime

from . import _funcs as f

pytestmark = pytest.mark.anyio


def no_other_refs() -> list[object]:
    """anyio's conftest helper: what gc.get_referrers() sees of an object only a local holds."""
    if sys.version_info >= (3, 14):  # pragma: no cover
        return [sys._getframe(1).f_generator]  # type: ignore[attr-defined]
    return []


async def wait_event_set(event: threading.Event) -> None:
    await f.eventually(event.is_set)


# anyio tests/test_to_thread.py::test_run_in_thread_cancelled
async def test_run_in_thread_cancelled() -> None:
    state = 0

    def thread_worker() -> None:
        nonlocal state
        state = 2

    async def worker() -> None:
        nonlocal state
        state = 1
        await hybridio.run_blocking(thread_worker)
        state = 3

    async with Runtime(), anyio.create_task_group() as tg:
        tg.start_soon(worker)
        tg.cancel_scope.cancel()

    assert state == 1


# anyio tests/test_to_thread.py::test_run_in_thread_exception
async def test_run_in_thread_exception() -> None:
    def thread_worker() -> NoReturn:
        raise ValueError("foo")

    async with Runtime() as rt:
        with pytest.raises(ValueError, match=r"^foo$"):
            await rt.run_blocking(thread_worker)


# anyio tests/test_to_thread.py::test_run_in_custom_limiter
async def test_run_in_custom_limiter() -> None:
    max_active_threads = 0
    lock = threading.Lock()

    def thread_worker() -> None:
        nonlocal max_active_threads
        with lock:
            active_threads.add(threading.current_thread())
            max_active_threads = max(max_active_threads, len(active_threads))
            if len(active_threads) == 3:
                threads_started.set()
        event.wait(10)
        with lock:
            active_threads.remove(threading.current_thread())

    event = threading.Event()
    threads_started = threading.Event()
    active_threads: set[threading.Thread] = set()
    async with Runtime(threads=3) as rt, anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(rt.run_blocking, thread_worker)

        await wait_event_set(threads_started)
        assert len(active_threads) == 3
        event.set()

    assert len(active_threads) == 0
    assert max_active_threads == 3


# anyio tests/test_to_thread.py::test_cancel_worker_thread[abandon]
async def test_cancel_worker_thread() -> None:
    last_active: str | None = None
    sleep_event = threading.Event()
    finish_event = threading.Event()

    def thread_worker() -> None:
        nonlocal last_active
        sleep_event.set()
        time.sleep(0.2)
        last_active = "thread"
        finish_event.set()

    async def task_worker() -> None:
        nonlocal last_active
        try:
            await hybridio.run_blocking(thread_worker)
        finally:
            last_active = "task"

    async with Runtime():
        async with anyio.create_task_group() as tg:
            tg.start_soon(task_worker)
            await wait_event_set(sleep_event)
            tg.cancel_scope.cancel()

        await wait_event_set(finish_event)
        assert last_active == "thread"


# anyio tests/test_to_thread.py::test_cancel_wait_on_thread
async def test_cancel_wait_on_thread() -> None:
    event = threading.Event()
    future: Future[bool] = Future()

    started = threading.Event()

    def wait_event() -> None:
        started.set()
        future.set_result(event.wait(5))

    async with Runtime() as rt:
        async with anyio.create_task_group() as tg:
            tg.start_soon(rt.run_blocking, wait_event)
            await anyio.wait_all_tasks_blocked()
            # hybridio skips a call cancelled before its thread picked it up: make sure the
            # thread is waiting, as the original means to (on trio the hand-off may lag)
            await wait_event_set(started)
            tg.cancel_scope.cancel()

        await rt.run_blocking(event.set)
        assert future.result(5)


# anyio tests/test_to_thread.py::test_contextvar_propagation
async def test_contextvar_propagation() -> None:
    var = ContextVar("var", default=1)
    var.set(6)
    async with Runtime() as rt:
        assert await rt.run_blocking(var.get) == 6


CALLER = ContextVar("caller", default=-1)


def read_caller() -> int:
    return CALLER.get()


# anyio tests/test_to_thread.py::test_contextvar_propagation, under 32 concurrent callers (issue
# 19: queued thread calls share hand-offs; each must still see its own caller's values)
async def test_contextvar_propagation_concurrent_callers() -> None:
    seen: dict[int, int] = {}

    async def caller(i: int) -> None:
        CALLER.set(i)
        seen[i] = await rt.run_blocking(read_caller)

    async with Runtime(threads=2) as rt:
        for _ in range(3):  # the first rounds measure the function: then calls are batched
            async with anyio.create_task_group() as tg:
                for i in range(32):
                    tg.start_soon(caller, i)
            assert seen == {i: i for i in range(32)}


# anyio tests/test_to_thread.py::test_asynclib_detection
async def test_asynclib_detection() -> None:
    async with Runtime() as rt:
        with pytest.raises(sniffio.AsyncLibraryNotFoundError):
            await rt.run_blocking(sniffio.current_async_library)


# anyio tests/test_to_thread.py::test_asyncio_cancel_native_task
@pytest.mark.parametrize(
    "anyio_backend",
    [("asyncio", {}), ("asyncio", {"use_uvloop": True})],
    ids=["asyncio", "asyncio+uvloop"],
)
async def test_asyncio_cancel_native_task() -> None:
    task: asyncio.Task[None] | None = None

    async def run_in_thread() -> None:
        nonlocal task
        task = asyncio.current_task()
        await hybridio.run_blocking(time.sleep, 0.2)

    async with Runtime():
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run_in_thread)
                await anyio.wait_all_tasks_blocked()
                assert task is not None
                task.cancel()


def run_bare_loop_case(name: str) -> None:
    """Run a ``_loops`` case in a fresh interpreter: it must pass and leave the process free
    to exit (no thread left that interpreter exit would wait for)."""
    result = f.run_python(f"from tests.peers._loops import main; main({name!r})", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == ["ok"]


# anyio tests/test_to_thread.py::test_asyncio_no_root_task
# anyio tests/test_to_thread.py::test_asyncio_future_callback_partial
# anyio tests/test_to_thread.py::test_asyncio_run_sync_no_asyncio_run
# anyio tests/test_to_thread.py::test_asyncio_run_sync_multiple
# anyio tests/test_to_thread.py::test_asyncio_no_recycle_stopping_worker
# (each on a bare asyncio loop closed as anyio's asyncio_event_loop fixture does; in a subprocess)
@pytest.mark.parametrize(
    "case",
    [
        pytest.param("no_root_task"),
        pytest.param("future_callback_partial"),
        pytest.param("run_sync_no_asyncio_run"),
        pytest.param("run_sync_multiple"),
        pytest.param("no_recycle_stopping_worker"),
    ],
)
def test_asyncio_bare_loop(case: str) -> None:
    run_bare_loop_case(case)


# anyio tests/test_to_thread.py::test_stopiteration
async def test_stopiteration() -> None:
    def raise_stopiteration() -> NoReturn:
        raise StopIteration

    async with Runtime() as rt:
        with pytest.raises(RuntimeError, match="coroutine raised StopIteration"):
            await rt.run_blocking(raise_stopiteration)


class Foo:
    pass


# anyio tests/test_to_thread.py::test_run_sync_worker_cyclic_references
async def test_run_sync_worker_cyclic_references() -> None:
    def foo(_: Foo) -> None:
        pass

    cvar = ContextVar[Foo]("cvar")
    contextval = Foo()
    arg = Foo()
    cvar.set(contextval)
    async with Runtime() as rt:
        await rt.run_blocking(foo, arg)
        cvar.set(Foo())
        gc.collect()
        await anyio.lowlevel.checkpoint()

        assert gc.get_referrers(contextval) == no_other_refs()
        assert gc.get_referrers(foo) == no_other_refs()
        assert gc.get_referrers(arg) == no_other_refs()


# anyio tests/test_to_thread.py::test_asyncio_run_does_not_leak_event_loop
def test_asyncio_run_does_not_leak_event_loop() -> None:
    def thread_worker() -> None:
        pass

    async def main() -> weakref.ref[object]:
        await hybridio.run_blocking(thread_worker)
        return weakref.ref(asyncio.get_running_loop())

    loop_ref = anyio.run(main)

    gc.collect()
    assert loop_ref() is None
