"""The default Runtime: created lazily, one per event loop, closed when the loop ends.

The runtime's background tasks need a task group that outlives any one caller, so it is hosted by
a task of the event loop itself (an asyncio task, a trio system task). When the loop shuts down
(``asyncio.run`` / ``trio.run`` returning) that task is cancelled and the runtime stops its workers,
as anyio.to_process does for its own pool.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio
from anyio.lowlevel import RunVar

from .._core._signal import running_on_trio
from ._runtime import Runtime, current_runtime

__all__ = ["get_runtime", "runtime_in_use"]

logger = logging.getLogger("hybridio")

_default: RunVar[Runtime] = RunVar("hybridio_default_runtime")
_starting: RunVar[anyio.Event] = RunVar("hybridio_default_runtime_starting")
# asyncio keeps only weak references to tasks: hold the host tasks here.
_hosts: set[Any] = set()


async def get_runtime() -> Runtime:
    """The runtime module-level calls use: the enclosing ``async with Runtime()``, else the default."""
    runtime = current_runtime()
    if runtime is not None:
        return runtime
    try:
        runtime = _default.get()
    except LookupError:
        pass
    else:
        if not runtime.closed:
            return runtime
    try:
        starting = _starting.get()
    except LookupError:
        starting = anyio.Event()
        _starting.set(starting)
        runtime = Runtime()
        _spawn_host(runtime, starting)
    await starting.wait()
    return _default.get()


def runtime_in_use() -> Runtime | None:
    """The runtime module-level calls would use now, without creating one; None if there is none.

    Safe outside an event loop (returns None there).
    """
    runtime = current_runtime()
    if runtime is not None:
        return runtime
    try:
        runtime = _default.get()
    except (LookupError, RuntimeError):  # no default runtime yet, or no event loop
        return None
    return None if runtime.closed else runtime


def _spawn_host(runtime: Runtime, ready: anyio.Event) -> None:
    async def host() -> None:
        try:
            async with runtime:
                _default.set(runtime)
                ready.set()
                await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            raise
        except Exception:  # a system task must not raise
            logger.exception("hybridio's default runtime stopped with an error")

    if running_on_trio():
        import trio

        trio.lowlevel.spawn_system_task(host, name="hybridio default runtime")
    else:
        task = asyncio.get_running_loop().create_task(host(), name="hybridio default runtime")
        _hosts.add(task)
        task.add_done_callback(_hosts.discard)
