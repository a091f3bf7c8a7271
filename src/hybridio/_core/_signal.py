"""The one-shot signal a caller waits on until its call is resolved.

Every offloaded call needs one, so it is on the hot path: an ``anyio.Event`` costs several
microseconds per call on asyncio (it wraps an ``asyncio.Event``, which keeps a deque of futures),
a bare future about half a microsecond. On trio, trio's own ``Event`` is already that cheap.
Cancellation is unchanged: anyio cancels a waiting task the same way whatever it awaits (on
asyncio that cancels the future too, so resolve with ``if not done(): set_result(None)``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Generator
from contextvars import Context
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import trio

__all__ = [
    "Signal",
    "Timer",
    "background_context",
    "loop_callback",
    "running_on_trio",
    "signal_factory",
    "timer_factory",
]


class Signal(Protocol):
    """A one-shot future: resolved once by the event loop's side, awaited by the call's caller.

    On asyncio it is a plain ``asyncio.Future`` (C code end to end); on trio a ``trio.Event``
    behind the same three methods.
    """

    def done(self) -> bool: ...

    def set_result(self, result: None, /) -> None: ...

    def __await__(self) -> Generator[Any, None, Any]: ...


class _TrioSignal:
    __slots__ = ("_event",)

    def __init__(self, event: trio.Event) -> None:
        self._event = event

    def done(self) -> bool:
        return self._event.is_set()

    def set_result(self, result: None, /) -> None:
        self._event.set()

    def __await__(self) -> Generator[Any, None, Any]:
        return self._event.wait().__await__()


def running_on_trio() -> bool:
    """True when the current task runs on trio (and not on asyncio).

    Never imports trio: a program running on trio has imported it already, and importing it on
    an asyncio loop blocks that loop for a while (it probes the system's libraries).
    """
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


def signal_factory() -> Callable[[], Signal]:
    """A maker of signals for the running event loop; call it on that loop."""
    if running_on_trio():
        import trio

        event = trio.Event

        def make() -> Signal:
            return _TrioSignal(event())

        return make
    return asyncio.get_running_loop().create_future


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


class Timer(Protocol):
    """A scheduled callback that can be called off (``asyncio.TimerHandle``)."""

    def cancel(self) -> None: ...


def timer_factory() -> Callable[[float, Callable[[Any], object], Any], Timer] | None:
    """``loop.call_later`` on asyncio (and uvloop), None on trio; call it on the event loop.

    A deadline for a queued call is then one timer handle (about a microsecond) instead of a
    cancel scope (anyio's costs ~10-15 us on asyncio): the timer resolves the call's signal and
    its caller finds the call unfinished.
    """
    if running_on_trio():
        return None
    return asyncio.get_running_loop().call_later


def background_context() -> Context:
    """An empty ``contextvars`` context for a runtime's background tasks; call it on the loop.

    Empty: a background task started by a caller must not keep that caller's context values
    alive for the runtime's life. It says which async library runs (sniffio's variable, which
    anyio reads): a transport callback scheduled from such a task (a worker's channel ending)
    runs outside any task, where sniffio could not tell, and anyio could not start a task from it.
    """
    context = Context()
    sniffio = sys.modules.get("sniffio")
    if sniffio is not None:
        context.run(
            sniffio.current_async_library_cvar.set, "trio" if running_on_trio() else "asyncio"
        )
    return context
