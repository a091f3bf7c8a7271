"""The thread executor: worker threads through ``anyio.to_thread``, with cooperative cancellation.

Each lane is one ``anyio.to_thread.run_sync`` at a time, so at most ``threads`` calls run at once.
Queued calls whose measured cost is tiny share a hand-off to a thread (the GIL serialises them
anyway, and the hand-off costs more than they do); blocking calls go one per thread so that they
overlap (the dispatcher's cost model decides).

A thread cannot be killed. A caller that times out or is cancelled gets its answer at once; its
call's cancel flag is raised (``hybridio.cancel_requested()``), a call not yet started is skipped,
and a running one is abandoned: its result is discarded, and it counts in ``stats().abandoned``
(and in ``abandoned_running`` while its thread is still busy with it). Its lane stays taken until
the thread returns, so the number of threads stays bounded however many callers give up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from time import perf_counter
from typing import Any, ClassVar

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from .._core._cancel import CancelToken, use_token
from .._core._exceptions import map_chunk
from .._core._metrics import KindCounters
from .._core._names import function_name, unwrap
from .._core._settings import Settings
from .._core._signal import loop_callback
from ._dispatch import Dispatcher
from ._executor import Capabilities, Outcome, WorkerLost

__all__ = ["ThreadExecutor", "create", "run_in_thread"]

#: One thread call: the function, its arguments, its cancel flag, and whether to map.
Payload = tuple[Callable[..., Any], tuple[Any, ...], CancelToken, bool]


class _Slot:
    """One lane's thread slot; decides who frees it when its caller gives up.

    The caller frees the slot when the thread returns, unless it gave up first: then the thread
    does, when the function returns, by posting the release to the event loop. The lock makes
    exactly one of them do it.
    """

    __slots__ = ("abandoned", "finished", "lock", "release")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.abandoned = False
        self.finished = False
        self.release: Callable[[], None] | None = None


def _run_payload(payload: Payload) -> Outcome:
    fn, args, token, mapped = payload
    if token.cancelled:  # its caller gave up before it started
        return Outcome(False, None, 0.0)
    start = perf_counter()
    try:
        with use_token(token):
            value = map_chunk(fn, args[0]) if mapped else fn(*args)
    except BaseException as exc:  # noqa: BLE001 - goes back to its caller
        return Outcome(False, exc, perf_counter() - start)
    return Outcome(True, value, perf_counter() - start)


def run_in_thread(
    payloads: list[Payload], slot: _Slot, post: Callable[[Callable[[], object]], None]
) -> list[Outcome]:
    """Run a batch in the current (worker) thread, then hand the slot back if nobody waits."""
    try:
        return [_run_payload(payload) for payload in payloads]
    finally:
        with slot.lock:
            slot.finished = True
            release = slot.release if slot.abandoned else None
        if release is not None:  # its caller gave up: free the lane from here
            post(release)


class ThreadExecutor:
    """Blocking-kind executor: one worker thread per lane, at most ``threads`` at once."""

    kind: ClassVar[str] = "blocking"
    capabilities: ClassVar[Capabilities] = Capabilities(can_kill=False, parallel=False)

    def __init__(self, threads: int) -> None:
        # Our lanes bound the threads; anyio's default thread limiter must not cap them again.
        self._limiter = anyio.CapacityLimiter(threads)
        self._post: Callable[[Callable[[], object]], None] | None = None

    def bind(self, task_group: TaskGroup, lost: Callable[[_Slot], None]) -> None:
        self._post = loop_callback()

    def encode(
        self, fn: Callable[..., Any], args: tuple[Any, ...], mapped: bool
    ) -> tuple[str, Payload]:
        return function_name(fn), (unwrap(fn), args, CancelToken(), mapped)

    async def start(self) -> _Slot:
        return _Slot()

    async def run_batch(self, worker: _Slot, payloads: list[Payload]) -> list[Outcome]:
        assert self._post is not None
        worker.finished = worker.abandoned = False
        worker.release = None
        # abandon_on_cancel: a caller that gives up (or a runtime that closes) does not wait for a
        # thread that may never end; the slot says when the thread is free again.
        return await anyio.to_thread.run_sync(
            run_in_thread,
            payloads,
            worker,
            self._post,
            abandon_on_cancel=True,
            limiter=self._limiter,
        )

    def decode(self, name: str, outcome: Outcome) -> tuple[Any, BaseException | None]:
        if outcome.ok:
            return outcome.payload, None
        error: BaseException | None = outcome.payload
        if error is None:  # pragma: no cover - skipped calls belong to callers who left
            error = anyio.get_cancelled_exc_class()()
        return None, error

    def abandon(self, payload: Payload) -> None:
        payload[2].cancel()

    def orphan(self, worker: _Slot, release: Callable[[], None]) -> bool:
        with worker.lock:
            if worker.finished:
                return False
            worker.abandoned = True
            worker.release = release
            return True

    def alive(self, worker: _Slot) -> bool:
        return True

    def retire(self, worker: _Slot) -> bool:
        return False

    async def kill(self, worker: _Slot) -> WorkerLost:  # pragma: no cover - can_kill is False
        raise NotImplementedError("a thread cannot be killed")

    async def stop(self, worker: _Slot) -> None:
        pass

    def describe(self, worker: _Slot) -> int | None:
        return None


def create(settings: Settings, counters: KindCounters) -> Dispatcher[_Slot]:
    """The registry's factory for ``kind="blocking"``."""
    return Dispatcher(
        ThreadExecutor(settings.threads),
        counters,
        workers=settings.threads,
        max_queue=settings.max_queue,
        batching=settings.batching,
        max_batch=64,
        batch_seconds=0.0005,
    )
