"""The one-shot signal a caller waits on until its call is resolved.

Every offloaded call needs one, so it is on the hot path: an ``anyio.Event`` costs several
microseconds per call on asyncio (it wraps an ``asyncio.Event``, which keeps a deque of futures),
a bare future about half a microsecond. On trio, trio's own ``Event`` is already that cheap.
Cancellation is unchanged: anyio cancels a waiting task the same way whatever it awaits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

__all__ = ["Signal", "running_on_trio", "signal_factory"]


class Signal(Protocol):
    """Set once by the event loop's side that resolves a call; awaited by its caller."""

    def set(self) -> None: ...

    def wait(self) -> Awaitable[Any]: ...


class _FutureSignal:
    __slots__ = ("_future",)

    def __init__(self, future: asyncio.Future[None]) -> None:
        self._future = future

    def set(self) -> None:
        if not self._future.done():  # a cancelled waiter cancels the future
            self._future.set_result(None)

    def wait(self) -> Awaitable[None]:
        return self._future


def running_on_trio() -> bool:
    """True when the current task runs on trio (and not on asyncio)."""
    try:
        import trio

        trio.lowlevel.current_task()
    except (ImportError, RuntimeError):
        return False
    return True


def signal_factory() -> Callable[[], Signal]:
    """A maker of signals for the running event loop; call it on that loop."""
    if running_on_trio():
        import trio

        return trio.Event
    create_future = asyncio.get_running_loop().create_future

    def make() -> Signal:
        return _FutureSignal(create_future())

    return make
