"""Queueing and opportunistic batching shared by the thread and process backends.

A dispatcher has one *lane* per worker (a thread or a process) and one driver task per lane. A call
that finds the queue empty and a lane idle may be run at once by its caller (both backends'
fast path); otherwise it is queued, and an idle driver takes a *batch* of queued calls to its lane
in one hand-off. The batch size adapts to the queue and to the measured cost of each function, so
a batch is expected to take at most ``batch_seconds``: tiny calls share a round trip, slow calls go
one by one and never hold fast ones hostage.

The queue is bounded (``max_queue``): one more call raises ``Overloaded`` at once. A caller that
times out or is cancelled gets its answer at its own deadline; what happens to work already handed
to a lane is the backend's ``_abandon_running`` (a process can be killed, a thread cannot).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any, ClassVar

import anyio
from anyio.abc import TaskGroup

from .._core._exceptions import OffloadError, OffloadTimeout, Overloaded, RuntimeClosed
from .._core._metrics import KindCounters
from ._base import Backend
from ._signal import Signal, signal_factory

__all__ = ["DONE", "PENDING", "RUNNING", "Call", "Dispatcher", "Lane"]

PENDING, RUNNING, DONE = 0, 1, 2

# Cost assumed for a function never seen before: unbounded, so that its first call goes in a batch
# of its own and is measured (a 1 ms guess let five unknown 25 ms calls share a 5 ms batch and
# serialised them on one worker while the other idled).
_UNKNOWN_COST = math.inf
# Queued work (estimated) below which a batch is not split between idle lanes, in seconds, and
# the number of tiny calls that makes a round trip worth its fixed cost.
_SPLIT_WORTH = 0.001
_FULL_TRIP = 64


def _not_started() -> Signal:
    raise RuntimeError("the dispatcher makes signals once it has started on an event loop")


class Call:
    """One submitted call: its payload, its state, and where its outcome goes."""

    __slots__ = (
        "abandoned",
        "done",
        "error",
        "lane",
        "name",
        "payload",
        "run_time",
        "state",
        "submitted",
        "value",
    )

    def __init__(self, name: str, payload: Any, done: Signal | None) -> None:
        self.name = name
        self.payload = payload
        self.state = PENDING
        self.abandoned = False
        self.done = done  # None for a call its caller drives itself (nobody waits on it)
        self.value: Any = None
        self.error: BaseException | None = None
        self.submitted = perf_counter()
        self.run_time = 0.0
        self.lane: Lane | None = None

    def resolve(self, value: Any = None, error: BaseException | None = None) -> None:
        self.state = DONE
        self.value = value
        self.error = error
        done = self.done
        if done is not None and not done.done():  # a cancelled caller cancelled it
            done.set_result(None)

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class Lane:
    """One worker's place: its driver's wake-up, the batch in flight and backend state."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.busy = False
        self.waiting = False
        self.wake = anyio.Event()
        self.batch: list[Call] = []
        self.scope: anyio.CancelScope | None = None
        self.worker: Any = None  # the process backend keeps its worker process here


class Dispatcher(Backend):
    """Lanes, a bounded queue, driver tasks and batching; subclasses say how a batch runs.

    Outcomes are tuples ``(tag, payload, run_seconds, *details)``; the subclass turns each into the
    caller's value or exception (``_decode``).
    """

    #: Share the queue evenly between idle lanes (processes: parallel) rather than filling one
    #: lane's batch first (threads: the GIL serialises tiny calls anyway).
    fair_split: ClassVar[bool] = True
    #: A lane whose whole batch was given up is cancelled (a process is killed); a thread cannot
    #: be, so its lane stays busy until the thread returns and the thread count stays bounded.
    can_kill: ClassVar[bool] = True

    def __init__(
        self,
        counters: KindCounters,
        *,
        lanes: int,
        max_queue: int,
        batching: bool,
        max_batch: int,
        batch_seconds: float,
    ) -> None:
        super().__init__(counters)
        self._lanes = [Lane(i) for i in range(lanes)]
        self._pending: deque[Call] = deque()
        self._max_queue = max_queue
        self._max_batch = max_batch if batching else 1
        self._batch_seconds = batch_seconds
        self._cost: dict[str, float] = {}
        self._task_group: TaskGroup | None = None
        self._active = False
        self._activate = anyio.Event()
        self._closed = False
        self._woken = 0  # drivers woken that have not yet taken their batch
        # Each call needs a signal for its caller; the maker suited to the event loop is chosen
        # once, when the dispatcher starts (see _signal).
        self.new_signal: Callable[[], Signal] = _not_started

    # -- hooks ---------------------------------------------------------------------------------

    async def _prepare(self, lane: Lane) -> None:
        """Make the lane ready before it takes work (the process backend starts its worker)."""

    @abstractmethod
    async def _execute(self, lane: Lane, batch: list[Call]) -> list[tuple[Any, ...]]:
        """Run a batch on a lane and return one outcome per call, in order.

        Raise an ``OffloadError`` to fail the whole batch.
        """

    @abstractmethod
    def _decode(self, call: Call, outcome: tuple[Any, ...]) -> tuple[Any, BaseException | None]:
        """Turn an outcome into ``(value, error)``."""

    @abstractmethod
    async def _solo(self, lane: Lane, call: Call, timeout: float | None) -> Any:
        """Run a lone call on an idle lane from its caller's own task (no hand-off)."""

    def _abandon_running(self, call: Call) -> None:
        """A caller gave up on a call a lane is running (default: its result is discarded)."""

    async def _stop_lane(self, lane: Lane) -> None:
        """Release the lane's resources when the dispatcher stops."""

    async def _after_batch(self, lane: Lane) -> None:
        """Called after a batch completed normally (the process backend recycles workers)."""

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, task_group: TaskGroup) -> None:
        self._task_group = task_group
        self.new_signal = signal_factory()
        for lane in self._lanes:
            task_group.start_soon(self._drive, lane, name=f"hybridio {self.kind} lane {lane.index}")

    async def aclose(self) -> None:
        self._closed = True
        while self._pending:
            call = self._pending.popleft()
            self.counters.queued -= 1
            call.resolve(error=RuntimeClosed("the runtime was closed before this call ran"))
        # Driver tasks are cancelled with the runtime's task group and stop their lanes.

    @property
    def workers(self) -> int:
        """The number of lanes (worker processes or threads)."""
        return len(self._lanes)

    # -- submitting ----------------------------------------------------------------------------

    def route(self, name: str, payload: Any, timeout: float | None) -> Awaitable[Any]:
        """Run a call: solo when it is alone, else through the queue; return what to await.

        Only a lone call (nothing in flight or queued, a lane idle and ready) runs solo: while
        others run, queueing lets calls share a hand-off, where a solo call would spend a whole
        round trip on itself. Not a coroutine: ``Overloaded`` is raised before any await.
        """
        if not self.counters.in_flight and not self._pending and not self._closed:
            lane = self._idle_lane()
            if lane is not None:
                self.counters.calls += 1
                return self._solo(lane, Call(name, payload, None), timeout)
        return self.wait(self.submit(name, payload), timeout)

    def submit(self, name: str, payload: Any) -> Call:
        """Queue a call without waiting for it."""
        if self._closed or self._task_group is None:
            raise RuntimeClosed("the runtime is closed; create a new one to offload work")
        counters = self.counters
        if len(self._pending) >= self._max_queue:
            counters.rejected += 1
            raise Overloaded(self.kind, len(self._pending), self._max_queue)
        counters.calls += 1
        counters.queued += 1
        call = Call(name, payload, self.new_signal())
        self._pending.append(call)
        if not self._active:
            self._active = True
            self._activate.set()
        self._notify()
        return call

    def _ready(self, lane: Lane) -> bool:
        """True when the lane can take work without preparing first (a started worker process)."""
        return True

    def _idle_lane(self) -> Lane | None:
        """A lane whose driver is idle and ready, for a caller to use directly."""
        for lane in self._lanes:
            if lane.waiting and not lane.busy and self._ready(lane):
                return lane
        return None

    def _notify(self) -> None:
        """Wake one idle driver (preferring a ready lane) to take queued work.

        At most one driver is woken at a time: it takes a batch of everything that queued in the
        meantime and wakes the next one if work is left. This is what turns a burst of calls into
        a few round trips instead of one hand-off per call.
        """
        if self._woken:
            return
        candidate: Lane | None = None
        for lane in self._lanes:
            if lane.waiting and not lane.busy:
                if self._ready(lane):
                    candidate = lane
                    break
                candidate = candidate or lane
        if candidate is not None:
            self._wake(candidate)

    def _wake(self, lane: Lane) -> None:
        lane.waiting = False
        self._woken += 1
        lane.wake.set()

    async def wait(self, call: Call, timeout: float | None) -> Any:
        """Wait for a submitted call; abandon it on timeout or cancellation."""
        assert call.done is not None
        try:
            if timeout is None:
                await call.done
            else:
                with anyio.fail_after(timeout):
                    await call.done
        except TimeoutError:
            if call.state != DONE:
                self.abandon(call, timed_out=True)
                raise OffloadTimeout(self.kind, timeout or 0.0, call.name) from None
        except BaseException:
            if call.state != DONE:
                self.abandon(call, timed_out=False)
            raise
        return call.outcome()

    def abandon(self, call: Call, *, timed_out: bool, kill: bool = True) -> None:
        """The caller gave up: drop the call if queued, else tell the backend.

        With ``kill=True`` a lane whose whole batch was given up is cancelled when the backend
        ``can_kill`` (the process backend kills its worker). ``map_cpu`` stopping early passes ``kill=False``: running work finishes
        and is discarded.
        """
        call.abandoned = True
        if timed_out:
            self.counters.timeouts += 1
        else:
            self.counters.cancelled += 1
        if call.state == PENDING:
            try:
                self._pending.remove(call)
                self.counters.queued -= 1
            except ValueError:  # pragma: no cover - state says pending but not queued
                pass
            call.state = DONE
            return
        self._abandon_running(call)
        lane = call.lane
        if (
            kill
            and self.can_kill
            and lane is not None
            and lane.scope is not None
            and all(c.abandoned or c.state == DONE for c in lane.batch)
        ):
            lane.scope.cancel()

    # -- running -------------------------------------------------------------------------------

    async def _drive(self, lane: Lane) -> None:
        """A lane's driver: prepare the lane when needed, then run batches of queued calls."""
        try:
            await self._activate.wait()
            while True:
                try:
                    await self._prepare(lane)
                except OffloadError as exc:
                    self._fail_some(exc)
                    await anyio.sleep(0.1)  # do not spin on a worker that cannot start
                    continue
                if not self._pending or lane.busy:
                    lane.waiting = True
                    try:
                        await lane.wake.wait()
                    finally:
                        if lane.wake.is_set():
                            self._woken -= 1
                    lane.wake = anyio.Event()
                    continue
                batch = self._take_batch()
                if batch:
                    if self._pending:
                        self._notify()  # share the rest of the queue with another idle lane
                    await self._run(lane, batch)
        finally:
            lane.waiting = False
            with anyio.CancelScope(shield=True):
                await self._stop_lane(lane)
            for call in lane.batch:
                if call.state != DONE:
                    call.resolve(error=RuntimeClosed("the runtime was closed while this call ran"))

    def _fail_some(self, error: OffloadError) -> None:
        """A lane could not be prepared: fail one batch's worth of queued calls with the reason."""
        for call in self._take_batch():
            self.counters.in_flight -= 1
            self.counters.errors += 1
            call.resolve(error=error)

    def _take_batch(self) -> list[Call]:
        pending = self._pending
        limit = self._max_batch
        costs = self._cost
        if self.fair_split:
            # Leave a fair share of the queue to the other idle lanes when running it in parallel
            # saves real time. A few tiny calls go in one round trip: splitting them would only
            # double the parent's per-round-trip work, which is what limits them.
            idle = sum(1 for lane in self._lanes if not lane.busy)
            if idle > 1 and pending:
                share = math.ceil(len(pending) / idle)
                work = costs.get(pending[0].name, _UNKNOWN_COST) * len(pending)
                # Tiny calls are split only when each share still fills a round trip: then one
                # worker runs its share while the parent handles the other's results.
                limit = min(
                    limit, max(1, share) if work >= _SPLIT_WORTH else max(share, _FULL_TRIP)
                )
        batch: list[Call] = []
        budget = self._batch_seconds
        spent = 0.0
        for _ in range(min(limit, len(pending))):
            call = pending[0]
            cost = costs.get(call.name, _UNKNOWN_COST)
            if batch and spent + cost > budget:
                break
            pending.popleft()
            batch.append(call)
            spent += cost
            call.state = RUNNING
        self.counters.queued -= len(batch)
        self.counters.in_flight += len(batch)
        return batch

    def _start_batch(self, lane: Lane, batch: list[Call]) -> float:
        """Mark a batch as handed to a lane; return the time it was sent."""
        lane.busy = True
        lane.batch = batch
        sent = perf_counter()
        for call in batch:
            call.lane = lane
        if len(batch) > 1:
            self.counters.batches += 1
            self.counters.batched_calls += len(batch)
        return sent

    async def _run(self, lane: Lane, batch: list[Call]) -> None:
        sent = self._start_batch(lane, batch)
        outcomes: list[tuple[Any, ...]] | None = None
        error: BaseException | None = None
        try:
            with anyio.CancelScope() as scope:
                lane.scope = scope
                try:
                    outcomes = await self._execute(lane, batch)
                except OffloadError as exc:
                    error = exc
            if scope.cancelled_caught:  # every caller gave up (see abandon)
                error = OffloadError("every caller of this batch gave up")
        finally:
            lane.scope = None
            lane.busy = False
            self.counters.in_flight -= len(batch)
        if outcomes is not None:
            self._finish(batch, outcomes, sent)
            lane.batch = []
            await self._after_batch(lane)
        else:
            assert error is not None
            for call in batch:
                if call.state != DONE:
                    call.resolve(error=error)
            lane.batch = []

    def _finish(self, batch: list[Call], outcomes: list[tuple[Any, ...]], sent: float) -> None:
        """Route each outcome to its caller and record timings (once per call: keep it lean)."""
        now = perf_counter()
        counters = self.counters
        decode = self._decode
        cost = self._cost
        total_run = 0.0
        for outcome in outcomes:
            total_run += outcome[2]
        overhead = max((now - sent - total_run) / len(batch), 0.0)
        timings: list[tuple[str, float, float, float]] = []
        record = timings.append
        completed = errors = 0
        for call, outcome in zip(batch, outcomes, strict=True):
            run_time = outcome[2]
            call.run_time = run_time
            name = call.name
            previous = cost.get(name)
            # Pessimistic: a slower call raises the estimate at once (it must not be batched with
            # others again), a faster one lowers it slowly.
            if previous is None or run_time > previous:
                cost[name] = run_time
            else:
                cost[name] = 0.8 * previous + 0.2 * run_time
            latency = now - call.submitted
            queue_wait = latency - run_time - overhead
            record((name, max(0.0, queue_wait), run_time, latency))
            if call.abandoned:
                call.state = DONE
                continue
            value, error = decode(call, outcome)
            if error is None:
                completed += 1
            else:
                errors += 1
            call.resolve(value, error)
        counters.record_timings(timings)
        counters.completed += completed
        counters.errors += errors
