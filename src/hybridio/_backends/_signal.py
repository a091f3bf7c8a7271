"""The one-shot signal a caller waits on until its call is resolved.

Every offloaded call needs one, so it is on the hot path: an ``anyio.Event`` costs several
microseconds per call on asyncio (it wraps an ``asyncio.Event``, which keeps a deque of futures),
a bare future about half a microsecond. On trio, trio's own ``Event`` is already that cheap.
Cancellation is unchanged: anyio cancels a waiting task the same way whatever it awaits.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

__all__ = ["Signal", "loop_callback", "running_on_trio", "signal_factory"]


class Signal(Protocol):
    """Set once by the event loop's side that resolves a call; awaited by its caller."""

    def set(self) -> None: ...

    def wait(self) -> Awaitable[Any]: ...


class _FutureSignal(asyncio.Future[None]):
    """A future that is its own signal: one object per call, awaited directly."""

    def set(self) -> None:
        if not self.done():  # a cancelled waiter cancels the future
            self.set_result(None)

    def wait(self) -> Awaitable[None]:
        return self


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
    return functools.partial(_FutureSignal, loop=asyncio.get_running_loop())


def loop_callback() -> Callable[[Callable[[], object]], None]:
    """A function any thread can use to run a callback on this event loop soon, without waiting.

    Once the loop has ended the callback is dropped (there is nothing left to tell). Call this on
    the event loop.
    """
    if running_on_trio():
        import trio

        token = trio.lowlevel.current_trio_token()

        def post_trio(callback: Callable[[], object]) -> None:
            try:
                token.run_sync_soon(callback)
            except trio.RunFinishedError:
                pass

        return post_trio
    loop = asyncio.get_running_loop()

    def post_asyncio(callback: Callable[[], object]) -> None:
        try:
            loop.call_soon_threadsafe(callback)
        except RuntimeError:  # the loop is closed
            pass

    return post_asyncio
