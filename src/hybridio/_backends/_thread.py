"""The thread backend: worker threads through anyio.to_thread, with batching and cooperative cancel.

Each lane is one ``anyio.to_thread.run_sync`` at a time, so at most ``threads`` calls run at once.
Queued calls whose measured cost is tiny share a hand-off to a thread (the GIL serialises them
anyway, and the hand-off costs more than they do); blocking calls (their cost is measured) go one
per thread so that they overlap.

A thread cannot be killed. A caller that times out or is cancelled gets its answer at once; its
call's cancel flag is raised (``hybridio.cancel_requested()``), a call not yet started is skipped,
and a running one is abandoned: its result is discarded, and it counts in ``stats().abandoned``
(and in ``abandoned_running`` while its thread is still busy with it).
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any

import anyio
import anyio.to_thread

from .._core._cancel import CancelToken, use_token
from .._core._metrics import KindCounters
from ._base import function_name
from ._dispatch import DONE, Call, Dispatcher, Lane
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

    async def call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], *, timeout: float | None
    ) -> Any:
        payload = (unwrap(fn), args, CancelToken())
        return await self.wait(self.submit(function_name(fn), payload), timeout)

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
