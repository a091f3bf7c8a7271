"""anyio's to_thread cases that run a bare asyncio loop (no ``asyncio.run()``).

Each runs in a fresh interpreter (``main(name)``): a loop closed without asyncio.run may leave
non-daemon worker threads behind, which would keep the test process from exiting. ``main``
closes the loop as anyio's ``asyncio_event_loop`` fixture does, then joins every thread that is
left (bounded) and exits 3 naming those still alive, else prints ``ok``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import hybridio


def no_root_task(loop: asyncio.AbstractEventLoop) -> None:
    """anyio tests/test_to_thread.py::test_asyncio_no_root_task."""

    async def run_in_thread() -> None:
        try:
            await hybridio.run_blocking(time.sleep, 0)
        finally:
            loop.call_soon(loop.stop)

    task = loop.create_task(run_in_thread())
    loop.run_forever()
    task.result()


def future_callback_partial(loop: asyncio.AbstractEventLoop) -> None:
    """anyio tests/test_to_thread.py::test_asyncio_future_callback_partial."""

    def func(future: object) -> None:
        pass

    async def sleep_sync() -> None:
        return await hybridio.run_blocking(time.sleep, 0)

    task = loop.create_task(sleep_sync())
    task.add_done_callback(partial(func))
    loop.run_until_complete(asyncio.wait_for(task, 20))


def run_sync_no_asyncio_run(loop: asyncio.AbstractEventLoop) -> None:
    """anyio tests/test_to_thread.py::test_asyncio_run_sync_no_asyncio_run."""
    exceptions: list[Any] = []
    loop.set_exception_handler(lambda loop, context: exceptions.append(context))
    loop.run_until_complete(asyncio.wait_for(hybridio.run_blocking(time.sleep, 0), 20))
    assert not exceptions, exceptions


def run_sync_multiple(loop: asyncio.AbstractEventLoop) -> None:
    """anyio tests/test_to_thread.py::test_asyncio_run_sync_multiple."""
    loop.call_later(0.5, loop.stop)
    for _ in range(3):
        loop.run_until_complete(asyncio.wait_for(hybridio.run_blocking(time.sleep, 0), 20))


def no_recycle_stopping_worker(loop: asyncio.AbstractEventLoop) -> None:
    """anyio tests/test_to_thread.py::test_asyncio_no_recycle_stopping_worker."""

    async def taskfunc1() -> None:
        await hybridio.run_blocking(time.sleep, 0)
        event1.set()
        await event2.wait()

    async def taskfunc2() -> None:
        await event1.wait()
        loop.call_soon(event2.set)
        await hybridio.run_blocking(time.sleep, 0)
        # At this point, the worker would be stopped but still in the idle workers pool,
        # so the following would hang prior to the fix
        await hybridio.run_blocking(time.sleep, 0)

    event1 = asyncio.Event()
    event2 = asyncio.Event()
    task1 = loop.create_task(taskfunc1())
    task2 = loop.create_task(taskfunc2())
    loop.run_until_complete(asyncio.wait_for(asyncio.gather(task1, task2), 20))


CASES: dict[str, Callable[[asyncio.AbstractEventLoop], None]] = {
    "no_root_task": no_root_task,
    "future_callback_partial": future_callback_partial,
    "run_sync_no_asyncio_run": run_sync_no_asyncio_run,
    "run_sync_multiple": run_sync_multiple,
    "no_recycle_stopping_worker": no_recycle_stopping_worker,
}


def main(name: str) -> None:
    loop = asyncio.new_event_loop()
    try:
        CASES[name](loop)
    finally:
        loop.close()
    stuck = []
    for t in threading.enumerate():
        if t is not threading.main_thread() and not t.daemon:
            t.join(5)  # what interpreter exit would wait for, bounded
            if t.is_alive():
                stuck.append(t.name)
    if stuck:
        print("threads that would block interpreter exit:", *stuck, flush=True)
        sys.stdout.flush()
        os._exit(3)
    print("ok")
