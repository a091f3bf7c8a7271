"""The thread executor: one worker thread per lane, with cooperative cancellation.

Each lane owns one daemon thread, started with the lane's first call and stopped when the runtime
closes (or its event loop ends), so there are never more than ``threads`` of them, however many
callers give up. A batch is handed to the lane's thread through a queue; the thread runs it and
posts the outcomes back to the event loop. Queued calls whose measured cost is tiny share a
hand-off (the GIL serialises them anyway, and the hand-off costs more than they do); blocking
calls go one per thread so that they overlap (the dispatcher's cost model decides).

Each call runs in a copy of its caller's ``contextvars`` context, taken when it is submitted (as
``anyio.to_thread`` does), so a batch of several callers' calls runs each in its own caller's
context. Nothing of a call is kept once its outcome is handed back.

A thread cannot be killed. A caller that times out or is cancelled gets its answer at once; its
call's cancel flag is raised (``hybridio.cancel_requested()``), a call not yet started is skipped,
and a running one is abandoned: its result is discarded, and it counts in ``stats().abandoned``
(and in ``abandoned_running`` while its thread is still busy with it). Its lane stays taken until
the thread returns. The threads are daemon threads: one stuck in an abandoned call does not keep
the interpreter from exiting.
"""

from __future__ import annotations

import functools
import itertools
import sys
import threading
from collections.abc import Callable
from contextvars import Context, ContextVar, copy_context
from queue import SimpleQueue
from time import perf_counter
from typing import Any, ClassVar

import anyio
from anyio.abc import TaskGroup

from .._core._cancel import CancelToken, use_token
from .._core._exceptions import map_chunk
from .._core._metrics import KindCounters
from .._core._names import function_name, unwrap
from .._core._settings import Settings
from .._core._signal import Signal, loop_callback, signal_factory
from ._dispatch import Dispatcher
from ._executor import Capabilities, Outcome, WorkerLost

__all__ = ["ThreadExecutor", "create", "run_in_thread"]

#: One thread call: the function, its arguments, its cancel flag, whether to map, and the copy
#: of its caller's context it runs in.
Payload = tuple[Callable[..., Any], tuple[Any, ...], CancelToken, bool, Context]
Post = Callable[[Callable[[], object]], None]

_names = itertools.count(1)


class _Slot:
    """One lane's worker thread, and who frees the lane when its caller gives up.

    The caller frees the lane when the thread returns, unless it gave up first: then the thread
    does, when the function returns, by posting the release to the event loop. The lock makes
    exactly one of them do it.
    """

    __slots__ = ("abandoned", "finished", "jobs", "lock", "outcomes", "release", "wake")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.abandoned = False
        self.finished = False
        self.release: Callable[[], None] | None = None
        #: run on the event loop when a batch's outcomes are ready (unless its caller gave up)
        self.wake: Callable[[], None] | None = None
        self.outcomes: list[Outcome] | None = None
        #: batches for the thread; None asks it to exit
        self.jobs: SimpleQueue[list[Payload] | None] = SimpleQueue()


def _run_payload(payload: Payload) -> Outcome:
    fn, args, token, mapped, context = payload
    if token.cancelled:  # its caller gave up before it started
        return Outcome(False, None, 0.0)
    start = perf_counter()
    try:
        with use_token(token):
            value = context.run(map_chunk, fn, args[0]) if mapped else context.run(fn, *args)
    except BaseException as exc:  # noqa: BLE001 - goes back to its caller
        # Returned from inside the handler, which unbinds ``exc``: no local of this frame (which
        # its traceback holds) refers to the error, so no reference cycle keeps it alive.
        return Outcome(False, exc, perf_counter() - start)
    return Outcome(True, value, perf_counter() - start)


def run_in_thread(payloads: list[Payload], slot: _Slot, post: Post) -> None:
    """Run a batch in the current (worker) thread, then tell the event loop.

    The outcomes go to the caller (``slot.wake``); if the caller gave up, the lane is freed
    (``slot.release``) and the outcomes are dropped.
    """
    outcomes = [_run_payload(payload) for payload in payloads]
    payloads.clear()  # the batch is the thread's: drop the calls before their callers resume
    with slot.lock:
        slot.finished = True
        if slot.abandoned:
            callback = slot.release
        else:
            callback = slot.wake
            if callback is not None:  # else its caller has left: nothing may keep the outcomes
                slot.outcomes = outcomes
    del outcomes
    if callback is not None:
        post(callback)


def _serve(slot: _Slot, post: Post) -> None:
    """A worker thread's life: run the batches it is handed until asked to exit."""
    jobs = slot.jobs
    while True:
        payloads = jobs.get()
        if payloads is None:
            return
        run_in_thread(payloads, slot, post)
        del payloads  # nothing of a call outlives it here


def _wake(done: Signal) -> None:
    if not done.done():  # a cancelled caller cancelled it
        done.set_result(None)


def _async_library_var() -> ContextVar[str | None] | None:
    """sniffio's variable, when sniffio is loaded: a worker thread is not in an async library."""
    sniffio = sys.modules.get("sniffio")
    return getattr(sniffio, "current_async_library_cvar", None)


class ThreadExecutor:
    """Blocking-kind executor: one worker thread per lane, at most ``threads`` at once."""

    kind: ClassVar[str] = "blocking"
    capabilities: ClassVar[Capabilities] = Capabilities(can_kill=False, parallel=False)

    def __init__(self, threads: int) -> None:
        self._threads = threads
        self._slots: set[_Slot] = set()  # lanes whose thread was started and not yet stopped
        self._post: Post | None = None
        self._new_signal: Callable[[], Signal] | None = None
        self._library_var = _async_library_var()

    def bind(self, task_group: TaskGroup, lost: Callable[[_Slot], None]) -> None:
        self._post = loop_callback()
        self._new_signal = signal_factory()
        self._library_var = _async_library_var()

    def encode(
        self, fn: Callable[..., Any], args: tuple[Any, ...], mapped: bool
    ) -> tuple[str, Payload]:
        # Called in the caller's task: the call runs in a copy of the caller's context.
        context = copy_context()
        var = self._library_var
        if var is not None and context.get(var) is not None:
            context.run(var.set, None)
        return function_name(fn), (unwrap(fn), args, CancelToken(), mapped, context)

    async def start(self) -> _Slot:
        assert self._post is not None
        assert len(self._slots) < self._threads, "one thread per lane: a lane never has two"
        slot = _Slot()
        thread = threading.Thread(
            target=_serve,
            args=(slot, self._post),
            name=f"hybridio {self.kind} thread {next(_names)}",
            daemon=True,  # a thread stuck in an abandoned call must not block interpreter exit
        )
        thread.start()
        self._slots.add(slot)
        return slot

    async def run_batch(self, worker: _Slot, payloads: list[Payload]) -> list[Outcome]:
        assert self._new_signal is not None
        done = self._new_signal()
        worker.finished = worker.abandoned = False
        worker.release = None
        worker.wake = functools.partial(_wake, done)
        worker.jobs.put(payloads)
        try:
            # A caller that gives up (or a runtime that closes) does not wait for a thread that
            # may never end; the slot says when the thread is free again.
            await done
        finally:
            with worker.lock:
                worker.wake = None
                outcomes, worker.outcomes = worker.outcomes, None
        assert outcomes is not None
        return outcomes

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
        """Ask the worker's thread to exit once its current batch (if any) returns."""
        if worker in self._slots:
            self._slots.discard(worker)
            worker.jobs.put(None)

    def abort(self) -> None:
        """Ask every thread to exit once its current batch returns, without waiting."""
        for slot in list(self._slots):
            self._slots.discard(slot)
            slot.jobs.put(None)

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
