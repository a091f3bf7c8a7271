"""The one dispatcher: queueing, batching, pipelining, timeouts and cancellation for every executor.

A dispatcher has *lanes*, one per worker (a thread slot, a process, an interpreter...), and
``pipeline`` driver tasks per lane. How a call travels:

* **Solo.** A call made while nothing else is in flight or queued, with a lane idle and ready,
  is run by its caller's own task: no hand-off, so a lone caller pays what a plain
  ``anyio.to_process`` / ``to_thread`` call pays.
* **Batches.** Otherwise the call is queued (bounded by ``max_queue``: one more raises
  ``Overloaded`` at once) and an idle driver takes a *batch* of queued calls to its worker in one
  round trip. The batch size adapts to the queue and to the measured cost of each function, so a
  batch is expected to take at most ``batch_seconds``: tiny calls share a round trip, slow calls
  go one by one and never hold fast ones hostage. With parallel workers a long queue is shared
  between the idle lanes.
* **Pipelining.** An executor may let a worker hold more than one batch: while it runs batch N
  the next driver sends batch N+1, so the worker never waits for the parent between batches.
  Tiny work is pipelined behind tiny work; measured slower work only once every worker is busy;
  work never measured waits for an idle worker.

Failures: a worker that dies fails the live calls of the batch it was running with
``WorkerCrashed``; batches queued behind it on a pipelined worker never started and run elsewhere.
One call's exception affects only that call. A caller that times out or is cancelled gets its
answer at its deadline; when every caller of a running batch has given up, its worker is killed
(``can_kill``) or, when it cannot be, left to finish with its lane counted as taken.

A worker that cannot start backs off exponentially; after ``BROKEN_AFTER`` failures in a row the
pool is *broken*: queued and new calls fail at once with ``WorkerStartFailed`` (carrying the
cause), and the pool tries again, for new work only, once the back-off has passed.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from time import perf_counter
from typing import Any, Generic, TypeVar

import anyio
from anyio.abc import TaskGroup

from .._core._exceptions import (
    OffloadError,
    OffloadTimeout,
    Overloaded,
    PartialChunk,
    RuntimeClosed,
    WorkerCrashed,
    WorkerStartFailed,
    for_caller,
)
from .._core._metrics import KindCounters
from .._core._signal import Signal, Timer, signal_factory, timer_factory
from ._call import DONE, PENDING, RUNNING, Call
from ._executor import Executor, Outcome, WorkerLost, WorkerStartError

__all__ = ["BROKEN_AFTER", "Call", "Dispatcher"]

W = TypeVar("W")

#: Consecutive start failures after which the pool is broken (calls fail at once).
BROKEN_AFTER = 3
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 30.0

# Cost assumed for a function never seen before: unbounded, so that its first call goes in a batch
# of its own and is measured (a 1 ms guess let five unknown 25 ms calls share a 5 ms batch and
# serialised them on one worker while the other idled).
_UNKNOWN_COST = math.inf
# Queued work (estimated) below which a batch is not split between idle lanes, in seconds, and
# the number of tiny calls that makes a round trip worth its fixed cost.
_SPLIT_WORTH = 0.001
_FULL_TRIP = 64


def _expire(call: Call) -> None:
    """A queued or running call reached its caller's deadline: wake the caller."""
    done = call.done
    if call.state != DONE and done is not None and not done.done():
        done.set_result(None)


def _not_started() -> Signal:
    raise RuntimeError("the dispatcher makes signals once it has started on an event loop")


class _Batch:
    __slots__ = ("calls", "cost", "doomed", "scope", "sent")

    def __init__(self, calls: list[Call], cost: float) -> None:
        self.calls = calls
        self.doomed = False  # every caller gave up while it waited behind another batch
        self.cost = cost  # the run time expected (inf when a function was never measured)
        self.scope: anyio.CancelScope | None = None
        self.sent = perf_counter()

    def given_up(self) -> bool:
        return all(c.abandoned or c.state == DONE for c in self.calls)


class _Lane(Generic[W]):
    """One worker's place: the worker, the batches it holds, and its start-up state."""

    __slots__ = ("batches", "index", "started", "starting", "taken", "worker")

    def __init__(self, index: int) -> None:
        self.index = index
        self.worker: W | None = None
        self.taken = 0  # calls given to its current worker (for max_tasks)
        self.batches: list[_Batch] = []
        self.starting = False
        self.started = anyio.Event()


class _Driver:
    """A task that takes batches to one lane; idle drivers wait to be woken."""

    __slots__ = ("lane", "waiting", "wake")

    def __init__(self, lane: _Lane[Any]) -> None:
        self.lane = lane
        self.waiting = False
        self.wake = anyio.Event()


class Dispatcher(Generic[W]):
    """Runs calls of one kind on an executor's workers. See the module docstring."""

    def __init__(
        self,
        executor: Executor[W],
        counters: KindCounters,
        *,
        workers: int,
        max_queue: int,
        batching: bool = True,
        max_batch: int = 256,
        batch_seconds: float = 0.005,
        max_tasks: int | None = None,
    ) -> None:
        self.executor = executor
        self.kind = executor.kind
        self.counters = counters
        caps = executor.capabilities
        self._can_kill = caps.can_kill
        self._parallel = caps.parallel
        self._depth = max(1, caps.pipeline)
        self._lanes: list[_Lane[W]] = [_Lane(i) for i in range(workers)]
        self._drivers = [_Driver(lane) for _ in range(self._depth) for lane in self._lanes]
        self._pending: deque[Call] = deque()
        self._max_queue = max_queue
        self._max_batch = max_batch if batching else 1
        self._batch_seconds = batch_seconds
        # Calls a worker may take before it is replaced: batches never take it past that.
        self._max_tasks = max_tasks or math.inf
        self._cost: dict[str, float] = {}
        self._task_group: TaskGroup | None = None
        self._active = False
        self._activate = anyio.Event()
        self._closed = False
        self._woken = 0  # drivers woken that have not yet taken their batch
        self._failures = 0  # consecutive worker start failures
        self._retry_at = 0.0
        self._start_error: WorkerStartFailed | None = None
        self._abandonments = False  # some running batch may have been given up
        # Each call needs a signal for its caller; the maker suited to the event loop is chosen
        # once, when the dispatcher starts.
        self.new_signal: Callable[[], Signal] = _not_started
        self._call_later: Callable[[float, Callable[[Any], object], Any], Timer] | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, task_group: TaskGroup) -> None:
        """Start the drivers in ``task_group`` (workers start with the first call)."""
        self._task_group = task_group
        self.new_signal = signal_factory()
        self._call_later = timer_factory()
        self.executor.bind(task_group, self._lost)
        for driver in self._drivers:
            lane = driver.lane
            task_group.start_soon(self._drive, driver, name=f"hybridio {self.kind} {lane.index}")

    async def aclose(self) -> None:
        """Refuse new work and fail queued calls; drivers stop with the runtime's task group."""
        self._closed = True
        queued = list(self._pending)
        self._pending.clear()
        self.counters.queued -= len(queued)
        self._fail(queued, RuntimeClosed("the runtime was closed before this call ran"))

    def abort(self) -> None:
        """Stop every worker now, without waiting: the event loop ends without the clean-up.

        For a loop closed without ``asyncio.run``: its tasks never run again, so the drivers
        cannot stop their workers. Executors that can (``abort()``) stop them all here.
        """
        self._closed = True
        abort: Callable[[], None] | None = getattr(self.executor, "abort", None)
        if abort is not None:
            abort()

    @property
    def workers(self) -> int:
        """The number of lanes (worker processes, threads...)."""
        return len(self._lanes)

    def worker_ids(self) -> list[int]:
        """Ids (pids for processes) of the live workers."""
        ids = []
        for lane in self._lanes:
            if lane.worker is not None:
                ident = self.executor.describe(lane.worker)
                if ident is not None:
                    ids.append(ident)
        return ids

    # -- submitting ----------------------------------------------------------------------------

    def call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], *, timeout: float | None
    ) -> Awaitable[Any]:
        """Run ``fn(*args)``: return what to await (errors of admission are raised at once)."""
        name, payload = self.executor.encode(fn, args, False)
        return self.route(name, payload, timeout)

    def encode(
        self, fn: Callable[..., Any], args: tuple[Any, ...], *, mapped: bool
    ) -> tuple[str, Any]:
        """The executor's name and payload for a call (``map`` sends chunks ``mapped``)."""
        return self.executor.encode(fn, args, mapped)

    def route(self, name: str, payload: Any, timeout: float | None) -> Awaitable[Any]:
        """Run a call solo when it is alone, else through the queue; return what to await.

        Only a lone call (nothing in flight or queued, a lane idle and ready) runs solo: while
        others run, queueing lets calls share a round trip, where a solo call would spend a whole
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
        if self._failures >= BROKEN_AFTER:
            self._check_broken()
        counters = self.counters
        pending = self._pending
        if len(pending) >= self._max_queue:
            counters.rejected += 1
            raise Overloaded(self.kind, len(pending), self._max_queue)
        counters.calls += 1
        counters.queued += 1
        call = Call(name, payload, self.new_signal())
        pending.append(call)
        if not self._woken:  # else a woken driver takes this call with the others
            if not self._active:
                self._active = True
                self._activate.set()
            self._notify()
        return call

    def _check_broken(self) -> None:
        """Fail at once while the pool is broken and its back-off has not passed."""
        error = self._start_error
        if error is not None and anyio.current_time() < self._retry_at:
            self.counters.calls += 1
            self.counters.errors += 1
            raise WorkerStartFailed(
                self.kind,
                error.reason,
                failures=self._failures,
                retry_in=max(0.0, self._retry_at - anyio.current_time()),
                hint=error.hint,
            ) from error.__cause__

    async def wait(self, call: Call, timeout: float | None) -> Any:
        """Wait for a submitted call; abandon it on timeout or cancellation."""
        assert call.done is not None
        call_later = self._call_later
        if timeout is not None and call_later is not None:
            # asyncio: a timer wakes the caller at its deadline (much cheaper than a cancel scope)
            timer = call_later(timeout, _expire, call)
            try:
                await call.done
            except BaseException:
                timer.cancel()
                if call.state != DONE:
                    self.abandon(call, timed_out=False)
                raise
            timer.cancel()
            if call.state != DONE:  # the timer woke us: the call is late
                self.abandon(call, timed_out=True)
                raise OffloadTimeout(self.kind, timeout, call.name)
            return call.outcome()
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
        """The caller gave up: drop the call if queued, else let the lane know.

        With ``kill=True`` a batch whose callers all gave up is stopped when the executor can
        kill (its worker is killed). ``map`` stopping early passes ``kill=False``: running work
        finishes and is discarded.
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
        if lane is None or not kill:
            return
        for position, batch in enumerate(lane.batches):
            if call in batch.calls:
                if batch.given_up():
                    # Kill only for the batch the worker is running: one queued behind it on a
                    # pipelined worker is tiny work whose result is simply dropped, and killing
                    # would fail the live callers of the batch in front.
                    if self._can_kill:
                        if position == 0 and batch.scope is not None:
                            batch.scope.cancel()
                        else:  # stopped if the worker gets to it (see _release)
                            batch.doomed = True
                    self._count_abandoned_running()
                break

    # -- lanes and drivers ---------------------------------------------------------------------

    def _ready(self, lane: _Lane[W]) -> bool:
        """True when the lane's worker is started and alive (a dead one is forgotten here)."""
        worker = lane.worker
        if worker is None:
            return False
        if not self.executor.alive(worker):
            self._forget(lane, worker)
            return False
        return True

    def _idle_lane(self) -> _Lane[W] | None:
        """A lane with a ready worker and nothing on it, for a caller to use directly."""
        for lane in self._lanes:
            if not lane.batches and lane.taken < self._max_tasks and self._ready(lane):
                return lane
        return None

    def _can_take(self, lane: _Lane[W]) -> bool:
        """True when the lane may take a batch of the queue's head now."""
        if lane.taken >= self._max_tasks:  # it is replaced once its batches are done
            return False
        held = len(lane.batches)
        if held == 0:
            return True
        if held >= self._depth or not self._pending:
            return False
        # Tiny work goes behind tiny work: the worker never waits for the parent between them.
        budget = self._batch_seconds
        head = self._cost.get(self._pending[0].name, _UNKNOWN_COST)
        if head <= budget and all(batch.cost <= budget for batch in lane.batches):
            return True
        # Slower work goes behind a batch only when every worker is busy (it would wait anyway)
        # and every cost involved has been measured, as ProcessPoolExecutor keeps one call
        # queued per worker: the worker starts it the moment it is free, without a round trip
        # to the parent. A call never measured waits for an idle worker.
        if head == _UNKNOWN_COST or any(batch.cost == _UNKNOWN_COST for batch in lane.batches):
            return False
        return all(other.batches for other in self._lanes)

    def _idle_driver_elsewhere(self, lane: _Lane[W]) -> bool:
        """True when another lane's worker is idle and ready, and its driver waits for work."""
        for driver in self._drivers:
            other = driver.lane
            if driver.waiting and other is not lane and not other.batches and other.worker:
                return True
        return False

    def _notify(self) -> None:
        """Wake one idle driver (preferring an idle, ready lane) to take queued work.

        At most one driver is woken at a time: it takes a batch of everything that queued in the
        meantime and wakes the next one if work is left. This is what turns a burst of calls into
        a few round trips instead of one hand-off per call.
        """
        if self._woken:
            return
        best: _Driver | None = None
        best_rank = 3
        for driver in self._drivers:
            if not driver.waiting:
                continue
            lane = driver.lane
            if not lane.batches:
                rank = 0 if lane.worker is not None else 1
            elif self._can_take(lane) and lane.worker is not None:
                rank = 2
            else:
                continue
            if rank < best_rank:
                best, best_rank = driver, rank
                if rank == 0:
                    break
        if best is not None:
            self._wake(best)

    def _wake(self, driver: _Driver) -> None:
        driver.waiting = False
        self._woken += 1
        driver.wake.set()

    async def _idle(self, driver: _Driver) -> None:
        driver.waiting = True
        try:
            await driver.wake.wait()
        finally:
            driver.waiting = False
            if driver.wake.is_set():
                self._woken -= 1
            driver.wake = anyio.Event()

    async def _drive(self, driver: _Driver) -> None:
        """A driver: start its lane's worker when needed, then run batches of queued calls."""
        lane = driver.lane
        try:
            await self._activate.wait()
            while True:
                if lane.worker is None:
                    await self._start_worker(driver)
                    continue
                if not self._pending or not self._can_take(lane) or not self._ready(lane):
                    await self._idle(driver)
                    continue
                if lane.batches and self._idle_driver_elsewhere(lane):
                    # Pipelining is for when every worker is busy: an idle one takes this work.
                    self._notify()
                    await self._idle(driver)
                    continue
                calls, cost = self._take_batch(lane)
                if calls:
                    if self._pending:
                        self._notify()  # share the rest of the queue with another driver
                    await self._run(lane, calls, cost)
                del calls  # done: their arguments and results are their callers' alone
        finally:
            with anyio.CancelScope(shield=True):
                worker, lane.worker = lane.worker, None
                if worker is not None:
                    self.counters.workers -= 1
                    await self.executor.stop(worker)
            closed = RuntimeClosed("the runtime was closed while this call ran")
            for batch in lane.batches:
                self._fail(batch.calls, closed)

    def _fail(self, calls: list[Call], error: BaseException) -> None:
        """Answer every unanswered call with ``error``; those a caller still waits for count."""
        for call in calls:
            if call.state != DONE:
                if not call.abandoned:
                    self.counters.errors += 1
                call.resolve(error=error)

    async def _start_worker(self, driver: _Driver) -> None:
        """Start the lane's worker, honouring the back-off after failures."""
        lane = driver.lane
        if lane.starting:  # another driver of this lane is starting it
            await lane.started.wait()
            return
        if self._failures:
            # After a failure, start again only once the back-off has passed, and only for work:
            # an idle pool whose workers cannot start must not spawn processes in a loop.
            delay = self._retry_at - anyio.current_time()
            if delay > 0:
                await anyio.sleep(delay)
                return
            if not self._pending:
                await self._idle(driver)
                return
        lane.starting = True
        try:
            worker = await self.executor.start()
        except WorkerStartError as exc:
            self._start_failed(exc)
            return
        except Exception as exc:  # noqa: BLE001 - any failure to start is a start failure
            failure = WorkerStartError(
                f"{type(exc).__name__}: {exc}",
                "The pool retries on its own; the original error is chained as the cause.",
            )
            failure.__cause__ = exc
            self._start_failed(failure)
            return
        finally:
            lane.starting = False
            lane.started.set()
            lane.started = anyio.Event()
        lane.worker = worker
        lane.taken = 0
        self.counters.workers += 1
        if self._failures:
            self._failures = 0
            self._start_error = None
            self.counters.broken = False
        if self._pending:
            self._notify()

    def _start_failed(self, exc: WorkerStartError) -> None:
        self._failures += 1
        self.counters.start_failures += 1
        backoff = min(_BACKOFF_FIRST * 2 ** (self._failures - 1), _BACKOFF_MAX)
        self._retry_at = anyio.current_time() + backoff
        error = WorkerStartFailed(
            self.kind, exc.reason, failures=self._failures, retry_in=backoff, hint=exc.hint
        )
        error.__cause__ = exc.__cause__
        self._start_error = error
        if self._failures >= BROKEN_AFTER:
            self.counters.broken = True
            while self._pending:  # fail everything queued, at once
                call = self._pending.popleft()
                self.counters.queued -= 1
                self.counters.errors += 1
                call.resolve(error=error)

    def _take_batch(self, lane: _Lane[W]) -> tuple[list[Call], float]:
        pending = self._pending
        limit = self._max_batch
        if lane.taken + limit > self._max_tasks:
            limit = max(1, int(self._max_tasks - lane.taken))
        costs = self._cost
        if self._parallel:
            # Leave a fair share of the queue to the other free batch slots (idle workers, and
            # pipelined slots of busy ones) when that saves real time: several smaller batches
            # in flight let the parent handle one's answers while workers run the others. A
            # few tiny calls go in one round trip: splitting them would only double the
            # parent's per-round-trip work, which is what limits them.
            depth = self._depth
            free = sum(depth - len(lane.batches) for lane in self._lanes if lane.worker is not None)
            if free > 1 and pending:
                share = math.ceil(len(pending) / free)
                work = costs.get(pending[0].name, _UNKNOWN_COST) * len(pending)
                # Tiny calls are split only when each share still fills a round trip: then one
                # worker runs its share while the parent handles the other's results.
                limit = min(
                    limit, max(1, share) if work >= _SPLIT_WORTH else max(share, _FULL_TRIP)
                )
        batch: list[Call] = []
        budget = self._batch_seconds
        spent = 0.0
        name = None
        cost = _UNKNOWN_COST
        for _ in range(min(limit, len(pending))):
            call = pending[0]
            if call.name is not name:  # a queue is mostly one function: look its cost up once
                name = call.name
                cost = costs.get(name, _UNKNOWN_COST)
            if batch and spent + cost > budget:
                break
            pending.popleft()
            batch.append(call)
            spent += cost
            call.state = RUNNING
        self.counters.queued -= len(batch)
        self.counters.in_flight += len(batch)
        return batch, spent

    def _hold(self, lane: _Lane[W], calls: list[Call], cost: float) -> _Batch:
        """Put a batch on a lane (``cost``: the run time it is expected to take)."""
        batch = _Batch(calls, cost)
        lane.batches.append(batch)
        lane.taken += len(calls)
        for call in calls:
            call.lane = lane
        if len(calls) > 1:
            self.counters.batches += 1
            self.counters.batched_calls += len(calls)
        return batch

    def _release(self, lane: _Lane[W], batch: _Batch) -> None:
        """Take a finished (or abandoned and now free) batch off its lane."""
        try:
            lane.batches.remove(batch)
        except ValueError:  # pragma: no cover - released twice
            return
        self.counters.in_flight -= len(batch.calls)
        if lane.batches:
            following = lane.batches[0]
            if following.doomed and following.scope is not None:  # now running, wanted by none
                following.scope.cancel()
        self._count_abandoned_running()
        if self._pending:
            self._notify()

    # -- running -------------------------------------------------------------------------------

    async def _solo(self, lane: _Lane[W], call: Call, timeout: float | None) -> Any:
        """Run one call on an idle lane from the caller's own task (no hand-off)."""
        worker = lane.worker
        assert worker is not None
        call.state = RUNNING
        self.counters.in_flight += 1
        batch = self._hold(lane, [call], self._cost.get(call.name, _UNKNOWN_COST))
        started = anyio.current_time()
        try:
            with anyio.fail_after(timeout) if timeout is not None else nullcontext():
                outcomes = await self.executor.run_batch(worker, [call.payload])
        except TimeoutError:
            self.counters.timeouts += 1
            await self._give_up(lane, worker, batch)
            raise OffloadTimeout(self.kind, timeout or 0.0, call.name) from None
        except anyio.get_cancelled_exc_class():
            self.counters.cancelled += 1
            await self._give_up(lane, worker, batch)
            raise
        except WorkerLost as lost:
            self._release(lane, batch)
            if not lost.started:  # it died before taking the call: run it on a fresh worker
                self._forget(lane, worker)
                self.counters.calls -= 1
                if timeout is not None:  # within what is left of the caller's deadline
                    timeout = max(0.0, timeout - (anyio.current_time() - started))
                return await self.wait(self.submit(call.name, call.payload), timeout)
            call.state = DONE
            self.counters.errors += 1
            if self._closed:  # the runtime stopped the worker under this call
                raise RuntimeClosed("the runtime was closed while this call ran") from None
            raise self._crashed(lane, worker, batch, lost) from None
        except BaseException as exc:
            self._release(lane, batch)
            if isinstance(exc, Exception):  # a batch-level error (a cluster's, say)
                self.counters.errors += 1
            raise
        self._release(lane, batch)
        self._finish(batch, outcomes)
        del outcomes  # an error raised below must not reach itself through this frame (a cycle)
        await self._after_batch(lane, worker)
        return call.outcome()

    async def _give_up(self, lane: _Lane[W], worker: W, batch: _Batch) -> None:
        """A solo caller gave up on its running call: kill the worker, or leave it to finish."""
        call = batch.calls[0]
        call.abandoned = True
        call.state = DONE
        self._abandon_running(call)
        if self._can_kill:
            with anyio.CancelScope(shield=True):
                self._forget(lane, worker)
                await self.executor.kill(worker)
            self._release(lane, batch)
        elif not self.executor.orphan(worker, lambda: self._release(lane, batch)):
            self._release(lane, batch)
        else:
            self._count_abandoned_running()

    async def _run(self, lane: _Lane[W], calls: list[Call], cost: float) -> None:
        worker = lane.worker
        assert worker is not None
        batch = self._hold(lane, calls, cost)
        outcomes: list[Outcome] | None = None
        error: BaseException | None = None
        requeue = False
        try:
            with anyio.CancelScope() as scope:
                batch.scope = scope
                try:
                    outcomes = await self.executor.run_batch(worker, [c.payload for c in calls])
                except WorkerLost as lost:
                    if self._closed:
                        error = RuntimeClosed("the runtime was closed while this call ran")
                    elif lost.started:
                        error = self._crashed(lane, worker, batch, lost)
                    else:
                        requeue = True
                        self._forget(lane, worker)
                except OffloadError as exc:
                    error = exc
            if scope.cancelled_caught:  # every caller gave up (see abandon): stop the work
                error = OffloadError("every caller of this batch gave up")
                with anyio.CancelScope(shield=True):
                    self._forget(lane, worker)
                    await self.executor.kill(worker)
        except BaseException:
            # The runtime is closing: the worker is stopped by the driver's cleanup, and the
            # batch's callers are answered here (it is no longer on the lane to be found there).
            self._release(lane, batch)
            self._fail(calls, RuntimeClosed("the runtime was closed while this call ran"))
            raise
        batch.scope = None
        self._release(lane, batch)
        if outcomes is not None:
            self._finish(batch, outcomes)
            await self._after_batch(lane, worker)
        elif requeue:
            live = [c for c in calls if c.state != DONE and not c.abandoned]
            for call in reversed(live):  # back to the head of the queue, in order
                call.state = PENDING
                call.lane = None
                self._pending.appendleft(call)
            self.counters.queued += len(live)
            if live:
                self._notify()
        else:
            assert error is not None
            self._fail(calls, error)

    def _crashed(self, lane: _Lane[W], worker: W, batch: _Batch, lost: WorkerLost) -> WorkerCrashed:
        self._forget(lane, worker)
        self.counters.crashes += sum(1 for c in batch.calls if not c.abandoned)
        return WorkerCrashed(
            pid=lost.pid,
            exitcode=lost.exitcode,
            signal_number=lost.signal_number,
            function=batch.calls[0].name,
            batch_size=len(batch.calls),
        )

    def _lost(self, worker: W) -> None:
        """A worker ended on its own (the executor noticed): its lane starts a fresh one."""
        for lane in self._lanes:
            if lane.worker is worker:
                self._forget(lane, worker)
                break

    def _forget(self, lane: _Lane[W], worker: W) -> None:
        """The lane's worker is gone (or going): the lane starts a fresh one."""
        if lane.worker is worker:
            lane.worker = None
            self.counters.workers -= 1
            self.counters.worker_restarts += 1
            for driver in self._drivers:  # an idle driver of the lane starts the replacement
                if driver.lane is lane and driver.waiting:
                    self._wake(driver)
                    break

    async def _after_batch(self, lane: _Lane[W], worker: W) -> None:
        """Recycle a worker past its limits once nothing else is on it."""
        if not lane.batches and lane.worker is worker and self.executor.retire(worker):
            self._forget(lane, worker)
            await self.executor.stop(worker)

    def _finish(self, batch: _Batch, outcomes: list[Outcome]) -> None:
        """Route each outcome to its caller and record timings (once per call: keep it lean)."""
        now = perf_counter()
        calls = batch.calls
        counters = self.counters
        decode = self.executor.decode
        cost = self._cost
        n = len(calls)
        runs = [outcome.run_time for outcome in outcomes]
        overhead = max((now - batch.sent - sum(runs)) / n, 0.0)
        latencies = [now - call.submitted for call in calls]
        waits = [
            wait if wait > 0.0 else 0.0  # noqa: FURB136 - a conditional is cheaper than max()
            for wait in [
                latency - run - overhead for latency, run in zip(latencies, runs, strict=True)
            ]
        ]
        completed = errors = 0
        name: str | None = None
        estimate = 0.0
        same = 0  # calls of the current function, and their run time
        run_sum = 0.0
        for call, outcome, run_time in zip(calls, outcomes, runs, strict=True):
            call.run_time = run_time
            if call.name is not name:  # a batch is mostly one function: one update per run
                if name is not None:
                    cost[name] = estimate
                    counters.record_function(name, same, run_sum, overhead * same)
                name = call.name
                estimate = cost.get(name, -1.0)
                same = 0
                run_sum = 0.0
            same += 1
            run_sum += run_time
            # Pessimistic: a slower call raises the estimate at once (it must not be batched with
            # others again), a faster one lowers it slowly.
            if run_time > estimate:
                estimate = run_time
            else:
                estimate = 0.8 * estimate + 0.2 * run_time
            if call.abandoned:
                call.state = DONE
                continue
            value, error = decode(name, outcome)
            if error is None:
                completed += 1
            else:
                errors += 1
                if not isinstance(error, Exception) or isinstance(error, PartialChunk):
                    error = for_caller(name, error)  # never SystemExit or a cancellation
            call.resolve(value, error)
        if name is not None:
            cost[name] = estimate
            counters.record_function(name, same, run_sum, overhead * same)
        counters.record_batch(waits, runs, overhead, latencies)
        counters.completed += completed
        counters.errors += errors

    def _abandon_running(self, call: Call) -> None:
        """A caller gave up on its running call: its result will be discarded."""
        self.executor.abandon(call.payload)
        if not self._can_kill:  # work that runs on although nobody wants it
            self.counters.abandoned += 1
            self._abandonments = True

    def _count_abandoned_running(self) -> None:
        """Batches still running that every caller has given up on (threads run on)."""
        if not self._abandonments:  # the common case, on every batch: nothing to count
            return
        running = sum(1 for lane in self._lanes for batch in lane.batches if batch.given_up())
        self.counters.abandoned_running = running
        self._abandonments = running > 0
