"""The thread backend: worker threads through anyio.to_thread, with batching and cooperative cancel.

Each lane is one ``anyio.to_thread.run_sync`` at a time, so at most ``threads`` calls run at once.
Queued calls whose measured cost is tiny share a hand-off to a thread (the GIL serialises them
anyway, and the hand-off costs more than they do); blocking calls (their cost is measured) go one
per thread so that they overlap.

A call made while no other call runs or waits is run by its caller directly (``_solo``): no
hand-off to the lane's driver task, so a lone caller pays about what plain ``anyio.to_thread`` pays.

A thread cannot be killed. A caller that times out or is cancelled gets its answer at once; its
call's cancel flag is raised (``hybridio.cancel_requested()``), a call not yet started is skipped,
and a running one is abandoned: its result is discarded, and it counts in ``stats().abandoned``
(and in ``abandoned_running`` while its thread is still busy with it). Its lane stays taken until
the thread returns, so the number of threads stays bounded however many callers give up.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from time import perf_counter
from typing import Any

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from .._core._cancel import CancelToken, use_token
from .._core._exceptions import OffloadTimeout
from .._core._metrics import KindCounters
from ._base import function_name
from ._dispatch import DONE, RUNNING, Call, Dispatcher, Lane
from ._signal import loop_callback
from ._worker import unwrap

__all__ = ["ThreadPool"]

_OK, _RAISED, _SKIPPED = 0, 1, 2


def _run_in_thread(
    batch: list[tuple[Callable[..., Any], tuple[Any, ...], CancelToken]],
) -> list[tuple[Any, ...]]:
    outcomes: list[tuple[Any, ...]] = []
    for fn, args, token in batch:
        if token.cancelled:  # its caller gave up before it started
            outcomes.append((_SKIPPED, None, 0.0))
            continue
        start = perf_counter()
        try:
            with use_token(token):
                value = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - goes back to its caller
            outcomes.append((_RAISED, exc, perf_counter() - start))
        else:
            outcomes.append((_OK, value, perf_counter() - start))
    return outcomes


class _Handoff:
    """Who gives a solo call's lane back: its caller, unless the caller gave up first.

    Then the thread does, when the function returns, by posting the release to the event loop.
    The lock makes exactly one of them do it.
    """

    __slots__ = ("abandoned", "finished", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.abandoned = False
        self.finished = False

    def caller_gave_up(self) -> bool:
        """Mark the call abandoned; True if the thread had already finished (release it now)."""
        with self.lock:
            self.abandoned = True
            return self.finished


def _run_solo(
    item: tuple[Callable[..., Any], tuple[Any, ...], CancelToken],
    handoff: _Handoff,
    post: Callable[[Callable[[], object]], None],
    release: Callable[[], object],
) -> list[tuple[Any, ...]]:
    outcomes = _run_in_thread([item])
    with handoff.lock:
        handoff.finished = True
        abandoned = handoff.abandoned
    if abandoned:  # nobody is waiting for this thread: hand its lane back from here
        post(release)
    return outcomes


class ThreadPool(Dispatcher):
    """Blocking-kind backend: at most ``threads`` calls run at once, at most ``max_queue`` wait."""

    kind = "blocking"
    fair_split = False
    can_kill = False

    def __init__(
        self,
        counters: KindCounters,
        *,
        threads: int,
        max_queue: int,
        batching: bool = True,
        max_batch: int = 64,
        batch_seconds: float = 0.0005,
    ) -> None:
        super().__init__(
            counters,
            lanes=threads,
            max_queue=max_queue,
            batching=batching,
            max_batch=max_batch,
            batch_seconds=batch_seconds,
        )
        # Our lanes bound the threads; anyio's default thread limiter must not cap them again.
        self._limiter = anyio.CapacityLimiter(threads)

    async def start(self, task_group: TaskGroup) -> None:
        await super().start(task_group)
        self._post = loop_callback()

    def call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], *, timeout: float | None
    ) -> Awaitable[Any]:
        return self.route(function_name(fn), (unwrap(fn), args, CancelToken()), timeout)

    async def _solo(self, lane: Lane, call: Call, timeout: float | None) -> Any:
        """Run a lone call in a thread from the caller's own task (no hand-off to the driver)."""
        call.state = RUNNING
        sent = self._start_batch(lane, [call])
        self.counters.in_flight += 1
        handoff = _Handoff()
        try:
            with anyio.fail_after(timeout) if timeout is not None else nullcontext():
                outcomes = await anyio.to_thread.run_sync(
                    _run_solo,
                    call.payload,
                    handoff,
                    self._post,
                    functools.partial(self._release, lane),
                    abandon_on_cancel=True,
                    limiter=self._limiter,
                )
        except BaseException as exc:
            timed_out = isinstance(exc, TimeoutError)
            if timed_out:
                self.counters.timeouts += 1
            else:
                self.counters.cancelled += 1
            call.abandoned = True
            call.state = DONE
            self._abandon_running(call)
            if handoff.caller_gave_up():
                self._release(lane)
            if timed_out:
                raise OffloadTimeout(self.kind, timeout or 0.0, call.name) from None
            raise
        self._release(lane)
        self._finish([call], outcomes, sent)
        return call.outcome()

    def _release(self, lane: Lane) -> None:
        """A solo call's thread returned: the lane takes work again."""
        lane.busy = False
        lane.batch = []
        self.counters.in_flight -= 1
        self._count_abandoned_running()
        if self._pending:
            self._notify()

    async def _execute(self, lane: Lane, batch: list[Call]) -> list[tuple[Any, ...]]:
        # abandon_on_cancel: when the runtime closes, do not wait for a thread that may never end.
        return await anyio.to_thread.run_sync(
            _run_in_thread,
            [call.payload for call in batch],
            abandon_on_cancel=True,
            limiter=self._limiter,
        )

    def _decode(self, call: Call, outcome: tuple[Any, ...]) -> tuple[Any, BaseException | None]:
        tag, payload, _ = outcome
        if tag == _OK:
            return payload, None
        error: BaseException = payload
        return None, error

    def _abandon_running(self, call: Call) -> None:
        call.payload[2].cancel()
        self.counters.abandoned += 1
        self._count_abandoned_running()

    async def _after_batch(self, lane: Lane) -> None:
        self._count_abandoned_running()

    def _count_abandoned_running(self) -> None:
        """Lanes whose thread is still busy with work every caller has given up on."""
        self.counters.abandoned_running = sum(
            1
            for lane in self._lanes
            if lane.busy and all(c.abandoned or c.state == DONE for c in lane.batch)
        )
