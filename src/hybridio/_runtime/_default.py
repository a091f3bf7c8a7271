"""The default Runtime: created lazily, one per event loop, closed when the loop ends.

The runtime's background tasks need a task group that outlives any one caller, so it is hosted by
a task of the event loop itself (an asyncio task, a trio system task). When the loop shuts down
(``asyncio.run`` / ``trio.run`` returning) that task is cancelled and the runtime stops its workers,
as anyio.to_process does for its own pool.

A loop run with ``loop.run_until_complete(main())`` and then closed never cancels its tasks: there,
when the loop's main task ends, the runtime is aborted at once (its worker processes killed, its
threads told to exit), as anyio does for its worker threads and processes.

The runtime of a loop is kept in a weak mapping keyed by the loop (trio: in the run's own
storage), and nothing that refers to the loop stays there once its runtime closed: a closed loop
is freed.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import sys
import weakref
from asyncio.events import _get_running_loop
from typing import Any

import anyio
from anyio.lowlevel import RunVar

from .._core._exceptions import RuntimeClosed
from .._core._signal import background_context, running_on_trio
from ._runtime import Runtime, current_runtime

__all__ = ["get_runtime", "runtime_in_use"]

logger = logging.getLogger("hybridio")


class _Host:
    """The default runtime of one event loop, and the task that hosts it."""

    __slots__ = ("ready", "runtime", "task")

    def __init__(self) -> None:
        self.runtime = Runtime()
        self.ready = anyio.Event()
        self.task: asyncio.Task[None] | None = None


#: asyncio (and uvloop): loop -> its host; None once its runtime has closed. The values never
#: refer to their loop once closed, so a closed loop is not kept alive by this mapping.
_asyncio_hosts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Host | None] = (
    weakref.WeakKeyDictionary()
)
_trio_host: RunVar[_Host | None] = RunVar("hybridio_default_runtime")
# asyncio keeps only weak references to tasks: hold the host tasks here while they run.
_host_tasks: set[asyncio.Task[None]] = set()

_CLOSED = (
    "this event loop's default hybridio runtime has closed: the loop is shutting down. "
    "Offload work before the loop's main coroutine returns, or use `async with Runtime()`."
)


def _lookup() -> tuple[bool, _Host | None]:
    """``(found, host)`` for the running loop (found with None: its runtime has closed)."""
    loop = _get_running_loop()
    if loop is not None:
        host = _asyncio_hosts.get(loop, _MISSING)
        return (False, None) if host is _MISSING else (True, host)
    try:
        return True, _trio_host.get()
    except LookupError:
        return False, None


_MISSING: Any = object()


async def get_runtime() -> Runtime:
    """The runtime module-level calls use: the enclosing ``async with Runtime()``, else the default."""
    runtime = current_runtime()
    if runtime is not None:
        return runtime
    found, host = _lookup()
    if not found:
        host = _start_host()
    if host is None:
        raise RuntimeClosed(_CLOSED)
    if not host.ready.is_set():
        await host.ready.wait()
    if host.runtime.closed:
        raise RuntimeClosed(_CLOSED)
    return host.runtime


def runtime_in_use() -> Runtime | None:
    """The runtime module-level calls would use now, without creating one; None if there is none.

    Safe outside an event loop (returns None there).
    """
    runtime = current_runtime()
    if runtime is not None:
        return runtime
    if _get_running_loop() is None and not running_on_trio():
        return None
    _, host = _lookup()
    if host is None or not host.ready.is_set() or host.runtime.closed:
        return None
    return host.runtime


def _start_host() -> _Host:
    host = _Host()
    if running_on_trio():
        import trio

        _trio_host.set(host)
        trio.lowlevel.spawn_system_task(_run_host, host, None, name="hybridio default runtime")
        return host
    loop = asyncio.get_running_loop()
    _asyncio_hosts[loop] = host
    # In an empty context, like a trio system task (its callbacks too): the host must not keep
    # its first caller's contextvars values alive for the loop's whole life.
    task = loop.create_task(
        _run_host(host, loop), name="hybridio default runtime", context=background_context()
    )
    host.task = task
    _host_tasks.add(task)
    task.add_done_callback(_host_tasks.discard, context=contextvars.Context())
    root = _root_task(loop)
    if root is not None:
        root.add_done_callback(
            functools.partial(_root_done, weakref.ref(loop), host), context=contextvars.Context()
        )
    return host


async def _run_host(host: _Host, loop: asyncio.AbstractEventLoop | None) -> None:
    runtime = host.runtime
    try:
        await runtime.__aenter__()
    except Exception:  # pragma: no cover - entering starts no worker
        logger.exception("hybridio's default runtime could not start")
        _forget(host, loop)
        host.ready.set()
        return
    try:
        host.ready.set()
        await anyio.sleep_forever()
    except GeneratorExit:
        # Closed by the garbage collector: its loop was closed with this task pending, after
        # the runtime was aborted. Nothing may be awaited now.
        raise
    except BaseException as exc:
        try:
            await runtime.__aexit__(type(exc), exc, exc.__traceback__)
        except Exception:  # a system task must not raise
            logger.exception("hybridio's default runtime stopped with an error")
        finally:
            _forget(host, loop)
        if not isinstance(exc, Exception):
            raise


def _forget(host: _Host, loop: asyncio.AbstractEventLoop | None) -> None:
    """The runtime has closed: keep nothing that refers to its loop (later calls: RuntimeClosed)."""
    if loop is None:
        _trio_host.set(None)
    elif _asyncio_hosts.get(loop) is host:
        _asyncio_hosts[loop] = None


def _root_task(loop: asyncio.AbstractEventLoop) -> asyncio.Task[Any] | None:
    """The task ``loop.run_until_complete`` runs (asyncio.run's main task), as anyio finds it."""
    from asyncio.base_events import _run_until_complete_cb  # type: ignore[attr-defined]

    for task in asyncio.all_tasks(loop):
        for callback, _ in getattr(task, "_callbacks", None) or ():
            if callback is _run_until_complete_cb or (
                getattr(callback, "__module__", None) == "uvloop.loop"
            ):
                return task
    return None


def _run_by_runner() -> bool:
    """True inside ``asyncio.run`` / ``asyncio.Runner`` (also uvloop.run, anyio.run).

    They cancel the remaining tasks once the main task is done, and the host task then closes
    the runtime itself, waiting for its workers to exit.
    """
    runner_run = asyncio.Runner.run.__code__
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is runner_run:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _root_done(
    loop_ref: weakref.ref[asyncio.AbstractEventLoop], host: _Host, _: object = None
) -> None:
    """The loop's main task is done: abort the runtime if nothing else will close it."""
    loop = loop_ref()
    if loop is None or host.runtime.closed or _run_by_runner():
        return
    host.runtime._abort()
    if _asyncio_hosts.get(loop) is host:  # a later run of this loop gets a fresh runtime
        del _asyncio_hosts[loop]
    task = host.task
    if task is not None:
        # If the loop runs again, its host finishes the clean-up (reaps the killed workers);
        # if it is closed with the task pending, that is expected: say nothing.
        task.cancel()
        task._log_destroy_pending = False  # type: ignore[attr-defined]
