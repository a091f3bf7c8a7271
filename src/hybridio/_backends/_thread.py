"""The thread backend: worker threads through anyio.to_thread, with admission and cooperative cancel."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from time import perf_counter
from typing import Any

import anyio
import anyio.to_thread

from .._core._cancel import CancelToken, use_token
from .._core._exceptions import OffloadTimeout, Overloaded
from .._core._metrics import KindCounters
from ._base import Backend, function_name
from ._worker import unwrap

__all__ = ["ThreadPool"]


class _ThreadCall:
    """What the loop and the worker thread share about one call (guarded by the pool's lock)."""

    __slots__ = ("abandoned", "finished", "run_time", "started", "token")

    def __init__(self) -> None:
        self.token = CancelToken()
        self.started = 0.0
        self.run_time = 0.0
        self.finished = False
        self.abandoned = False


class ThreadPool(Backend):
    """Blocking-kind backend: at most ``threads`` calls run at once, at most ``max_queue`` wait.

    A thread cannot be killed: a caller that times out or is cancelled gets its answer at once, the
    thread is abandoned (``stats().abandoned``; ``abandoned_running`` until it returns) and
    ``hybridio.cancel_requested()`` turns true inside it.
    """

    kind = "blocking"

    def __init__(self, counters: KindCounters, *, threads: int, max_queue: int) -> None:
        super().__init__(counters)
        self._limiter = anyio.CapacityLimiter(threads)
        # Admission is ours (above); anyio's own per-call limiter must not cap us a second time.
        self._unlimited = anyio.CapacityLimiter(math.inf)
        self._max_queue = max_queue
        self._lock = threading.Lock()

    async def call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], *, timeout: float | None
    ) -> Any:
        counters = self.counters
        limiter = self._limiter
        if limiter.available_tokens < 1 and counters.queued >= self._max_queue:
            counters.rejected += 1
            raise Overloaded(self.kind, counters.queued, self._max_queue)
        name = function_name(fn)
        target = unwrap(fn)
        state = _ThreadCall()
        lock = self._lock

        def run_in_thread() -> Any:
            state.started = perf_counter()
            try:
                with use_token(state.token):
                    return target(*args)
            finally:
                state.run_time = perf_counter() - state.started
                with lock:
                    state.finished = True
                    if state.abandoned:
                        counters.abandoned_running -= 1

        counters.calls += 1
        counters.queued += 1
        submitted = perf_counter()
        queued = True
        value: Any = None
        deadline = math.inf if timeout is None else anyio.current_time() + timeout
        try:
            with anyio.CancelScope(deadline=deadline) as scope:
                await limiter.acquire()
                counters.queued -= 1
                queued = False
                counters.in_flight += 1
                try:
                    value = await anyio.to_thread.run_sync(
                        run_in_thread, abandon_on_cancel=True, limiter=self._unlimited
                    )
                finally:
                    counters.in_flight -= 1
                    limiter.release()
        except anyio.get_cancelled_exc_class():
            self._abandon(state, queued)
            counters.cancelled += 1
            raise
        except BaseException:
            counters.errors += 1
            self._record(name, submitted, state)
            raise
        if scope.cancelled_caught:
            self._abandon(state, queued)
            counters.timeouts += 1
            raise OffloadTimeout(self.kind, timeout or 0.0, name)
        counters.completed += 1
        self._record(name, submitted, state)
        return value

    def _abandon(self, state: _ThreadCall, queued: bool) -> None:
        """Raise the thread's cancel flag and count it if it is still running."""
        if queued:
            self.counters.queued -= 1
        state.token.cancel()
        with self._lock:
            if state.started and not state.finished:
                state.abandoned = True
                self.counters.abandoned += 1
                self.counters.abandoned_running += 1

    def _record(self, name: str, submitted: float, state: _ThreadCall) -> None:
        now = perf_counter()
        self.counters.record_timing(
            name,
            queue_wait=max(state.started - submitted, 0.0),
            run_time=state.run_time,
            latency=now - submitted,
        )
