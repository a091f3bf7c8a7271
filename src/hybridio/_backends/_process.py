"""The process backend: a pool of anyio.to_process workers with opportunistic batching.

Each worker is anyio's own ``python -m anyio.to_process`` worker, spoken to with its protocol
(``("run", func, args)`` in, ``RETURN``/``EXCEPTION`` out). hybridio owns the worker processes
instead of calling ``anyio.to_process.run_sync`` because it needs what that function does not give:
the exit code or signal of a crashed worker, a kill that never leaks a worker that was still
starting, and one round trip for many queued calls.

How a call travels:

* **Solo fast path.** When nothing is queued and a started worker is idle, the caller drives the
  round trip itself: no hand-off, so a lone caller pays what plain anyio.to_process pays. If the
  caller is cancelled or times out, the worker (running only its call) is killed.
* **Batches.** Otherwise the call is queued and a driver task (one per worker) sends a batch of
  queued calls in one round trip. The batch size adapts to the queue depth (shared fairly between
  workers) and to the measured cost of each function, so a batch is expected to take at most
  ``batch_seconds``: slow calls are not batched together and do not hold fast ones hostage.

Failure semantics with batches: a worker that dies fails every live call of its batch with
``WorkerCrashed``; one call's exception affects only that call; a caller that times out or is
cancelled gets its answer at its deadline, its result is discarded, and the worker is killed only
when every caller of the batch has given up (so neighbours still get their results).
"""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import Any, cast

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, Process, TaskGroup
from anyio.streams.buffered import BufferedByteReceiveStream

from .._core._exceptions import (
    HybridioError,
    NotPicklable,
    OffloadError,
    OffloadTimeout,
    Overloaded,
    RemoteTraceback,
    RuntimeClosed,
    WorkerCrashed,
)
from .._core._metrics import KindCounters
from . import _worker
from ._base import Backend, function_name
from ._serialize import dumps_call

__all__ = ["ProcessPool"]

_PROTOCOL = pickle.HIGHEST_PROTOCOL
_START_TIMEOUT = 30.0
_STOP_GRACE = 1.0
# Cost assumed for a function never seen before: a few unknown calls may share a batch.
_UNKNOWN_COST = 0.001
_PIPE_ERRORS = (
    anyio.EndOfStream,
    anyio.IncompleteRead,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    BrokenPipeError,
    ConnectionResetError,
)


class _WorkerGone(Exception):
    """The worker's pipes broke: it died or was killed."""


class _Worker:
    """One anyio.to_process worker process and its pipes."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.pid = process.pid
        self.calls_done = 0
        self.rss = 0
        self._stdin = cast(ByteSendStream, process.stdin)
        self._stdout = BufferedByteReceiveStream(cast(ByteReceiveStream, process.stdout))

    @classmethod
    async def start(
        cls, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]
    ) -> _Worker:
        """Start a worker, initialise it, and return it ready; never leaves a process behind."""
        process = await anyio.open_process(
            [sys.executable, "-u", "-m", "anyio.to_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        worker = cls(process)
        try:
            with anyio.fail_after(_START_TIMEOUT):
                ready = await worker._stdout.receive_exactly(6)
                if ready != b"READY\n":
                    raise OffloadError(f"worker process sent {ready!r} instead of READY")
                main_path = getattr(sys.modules["__main__"], "__file__", None)
                await worker._command(("init", sys.path, main_path))
                if initializer is not None:
                    await worker._command(("run", initializer, initargs))
        except BaseException as exc:
            await worker.kill()
            if isinstance(exc, HybridioError | anyio.get_cancelled_exc_class()):
                raise
            if isinstance(exc, TimeoutError):
                raise OffloadError(
                    f"worker process did not start within {_START_TIMEOUT:g} s"
                ) from exc
            raise OffloadError(
                f"worker process failed to start: {type(exc).__name__}: {exc}. "
                "If you passed an initializer, it raised this; fix it or remove it."
            ) from exc
        return worker

    async def _command(self, command: tuple[Any, ...]) -> Any:
        try:
            await self._stdin.send(pickle.dumps(command, _PROTOCOL))
            header = await self._stdout.receive_until(b"\n", 64)
            status, length = header.split(b" ")
            payload = await self._stdout.receive_exactly(int(length))
        except _PIPE_ERRORS as exc:
            raise _WorkerGone from exc
        value = pickle.loads(payload)
        if status == b"EXCEPTION":
            raise value
        return value

    async def run_batch(
        self, blobs: list[bytes], want_rss: bool
    ) -> tuple[list[tuple[Any, ...]], int]:
        try:
            result = await self._command(("run", _worker.run_batch, (blobs, want_rss)))
        except _WorkerGone:
            raise
        except BaseException as exc:
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                raise
            # The worker could not even run the batch function (hybridio not importable there?).
            raise OffloadError(
                f"the worker process could not run the batch: {type(exc).__name__}: {exc}"
            ) from exc
        outcomes, rss = cast(tuple[list[tuple[Any, ...]], int], result)
        self.calls_done += len(blobs)
        self.rss = rss
        return outcomes, rss

    async def exit_status(self) -> tuple[int | None, int | None]:
        """Reap a worker whose pipes broke: ``(exitcode, signal)``."""
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(_STOP_GRACE):
                await self.process.wait()
            if self.process.returncode is None:
                await self.kill()
        code = self.process.returncode
        if code is not None and code < 0:
            return None, -code
        return code, None

    async def kill(self) -> None:
        """Kill the process and reap it (shielded: safe to call while being cancelled)."""
        with anyio.CancelScope(shield=True):
            try:
                self.process.kill()
            except ProcessLookupError:
                pass
            await self.process.aclose()

    async def stop(self) -> None:
        """Ask the worker to exit (EOF on its stdin); kill it if it does not within a second."""
        with anyio.CancelScope(shield=True):
            try:
                await self._stdin.aclose()
            except _PIPE_ERRORS:
                pass
            with anyio.move_on_after(_STOP_GRACE):
                await self.process.wait()
            await self.kill()


_PENDING, _RUNNING, _DONE = 0, 1, 2


class _Call:
    """One submitted call: its payload, its state, and where its outcome goes."""

    __slots__ = (
        "abandoned",
        "blob",
        "done",
        "error",
        "name",
        "run_time",
        "sent",
        "slot",
        "state",
        "submitted",
        "value",
    )

    def __init__(self, name: str, blob: bytes) -> None:
        self.name = name
        self.blob = blob
        self.state = _PENDING
        self.abandoned = False
        self.done = anyio.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.submitted = perf_counter()
        self.sent = 0.0
        self.run_time = 0.0
        self.slot: _Slot | None = None

    def resolve(self, value: Any = None, error: BaseException | None = None) -> None:
        self.state = _DONE
        self.value = value
        self.error = error
        self.done.set()

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class _Slot:
    """A place for one worker: the process, its driver task's wake-up and the batch in flight."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.worker: _Worker | None = None
        self.busy = False
        self.waiting = False
        self.wake = anyio.Event()
        self.batch: list[_Call] = []
        self.scope: anyio.CancelScope | None = None


def _decode(call: _Call, outcome: tuple[Any, ...]) -> tuple[Any, BaseException | None]:
    """Turn a worker's outcome tuple into ``(value, error)`` for the caller."""
    tag = outcome[0]
    if tag == _worker.OK:
        return pickle.loads(outcome[1]), None
    if tag == _worker.RAISED:
        _, blob, _, tb, summary = outcome
        cause = RemoteTraceback(tb)
        if blob is None:
            exc: BaseException = NotPicklable(
                "exception", f"{summary} (its exception could not be pickled)", function=call.name
            )
        else:
            exc = pickle.loads(blob)
        exc.__cause__ = cause
        return None, exc
    _, what, reason, _ = outcome
    return None, NotPicklable(what, reason, function=call.name)


class ProcessPool(Backend):
    """Process-kind backend. See the module docstring for how calls travel."""

    kind = "cpu"

    def __init__(
        self,
        counters: KindCounters,
        *,
        workers: int,
        max_queue: int,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_worker: int | None = None,
        max_worker_rss: int | None = None,
        batching: bool = True,
        max_batch: int = 256,
        batch_seconds: float = 0.005,
    ) -> None:
        super().__init__(counters)
        self._slots = [_Slot(i) for i in range(workers)]
        self._pending: deque[_Call] = deque()
        self._max_queue = max_queue
        self._initializer = initializer
        self._initargs = initargs
        self._max_tasks = max_tasks_per_worker
        self._max_rss = max_worker_rss
        self._max_batch = max_batch if batching else 1
        self._batch_seconds = batch_seconds
        self._cost: dict[str, float] = {}
        self._task_group: TaskGroup | None = None
        self._active = False
        self._closed = False
        self._activate = anyio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, task_group: TaskGroup) -> None:
        self._task_group = task_group
        for slot in self._slots:
            task_group.start_soon(self._drive, slot, name=f"hybridio process driver {slot.index}")

    async def aclose(self) -> None:
        self._closed = True
        while self._pending:
            call = self._pending.popleft()
            self.counters.queued -= 1
            call.resolve(error=RuntimeClosed("the runtime was closed before this call ran"))
        # Driver tasks are cancelled with the runtime's task group; they stop their workers.

    @property
    def workers(self) -> int:
        """The number of worker processes the pool keeps."""
        return len(self._slots)

    def pids(self) -> list[int]:
        """Pids of the live worker processes (for tests and diagnostics)."""
        return [slot.worker.pid for slot in self._slots if slot.worker is not None]

    # -- submitting ------------------------------------------------------------------------

    async def call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], *, timeout: float | None
    ) -> Any:
        name = function_name(fn)
        blob = dumps_call(fn, args, name)
        if not self._pending and not self._closed:
            slot = self._idle_slot()
            if slot is not None:
                self.counters.calls += 1
                return await self._solo(slot, _Call(name, blob), timeout)
        return await self.wait(self.submit(name, blob), timeout)

    def submit(self, name: str, blob: bytes) -> _Call:
        """Queue a call without waiting for it (``map_cpu`` keeps several in flight)."""
        if self._closed or self._task_group is None:
            raise RuntimeClosed("the runtime is closed; create a new one to offload work")
        counters = self.counters
        if len(self._pending) >= self._max_queue:
            counters.rejected += 1
            raise Overloaded(self.kind, len(self._pending), self._max_queue)
        counters.calls += 1
        counters.queued += 1
        call = _Call(name, blob)
        self._pending.append(call)
        if not self._active:
            self._active = True
            self._activate.set()
        self._notify()
        return call

    def _idle_slot(self) -> _Slot | None:
        for slot in self._slots:
            if slot.worker is not None and not slot.busy and slot.waiting:
                return slot
        return None

    def _notify(self) -> None:
        """Wake one idle driver that has a worker (or any idle one) to take queued work."""
        candidate: _Slot | None = None
        for slot in self._slots:
            if slot.waiting and not slot.busy:
                if slot.worker is not None:
                    candidate = slot
                    break
                candidate = candidate or slot
        if candidate is not None:
            candidate.waiting = False
            candidate.wake.set()

    async def wait(self, call: _Call, timeout: float | None) -> Any:
        """Wait for a submitted call; abandon it on timeout or cancellation."""
        try:
            if timeout is None:
                await call.done.wait()
            else:
                with anyio.fail_after(timeout):
                    await call.done.wait()
        except TimeoutError:
            if call.state != _DONE:
                self.abandon(call, timed_out=True)
                raise OffloadTimeout(self.kind, timeout or 0.0, call.name) from None
        except BaseException:
            if call.state != _DONE:
                self.abandon(call, timed_out=False)
            raise
        return call.outcome()

    def abandon(self, call: _Call, *, timed_out: bool, kill: bool = True) -> None:
        """The caller gave up: drop the call if queued; kill its worker if its batch is all dead.

        With ``kill=False`` (``map_cpu`` stopping early) running work finishes and is discarded.
        """
        call.abandoned = True
        if timed_out:
            self.counters.timeouts += 1
        else:
            self.counters.cancelled += 1
        if call.state == _PENDING:
            try:
                self._pending.remove(call)
                self.counters.queued -= 1
            except ValueError:  # pragma: no cover - state says pending but not queued
                pass
            call.state = _DONE
            return
        slot = call.slot
        if (
            kill
            and slot is not None
            and slot.scope is not None
            and all(c.abandoned or c.state == _DONE for c in slot.batch)
        ):
            slot.scope.cancel()

    # -- running ----------------------------------------------------------------------------

    async def _solo(self, slot: _Slot, call: _Call, timeout: float | None) -> Any:
        """Run one call on an idle worker from the caller's own task (no hand-off)."""
        worker = slot.worker
        assert worker is not None
        slot.busy = True
        slot.batch = [call]
        call.state = _RUNNING
        call.slot = slot
        self.counters.in_flight += 1
        call.sent = perf_counter()
        try:
            try:
                if timeout is None:
                    outcomes, _ = await worker.run_batch([call.blob], self._max_rss is not None)
                else:
                    with anyio.fail_after(timeout):
                        outcomes, _ = await worker.run_batch([call.blob], self._max_rss is not None)
            except TimeoutError:
                self.counters.timeouts += 1
                call.abandoned = True
                await self._replace(slot, worker)
                raise OffloadTimeout(self.kind, timeout or 0.0, call.name) from None
            except _WorkerGone:
                error = await self._crashed(slot, worker, [call])
                raise error from None
            except anyio.get_cancelled_exc_class():
                self.counters.cancelled += 1
                call.abandoned = True
                await self._replace(slot, worker)
                raise
            self._finish([call], outcomes, call.sent)
            await self._maybe_recycle(slot, worker)
            return call.outcome()
        finally:
            self.counters.in_flight -= 1
            slot.busy = False
            slot.batch = []
            if self._pending:
                self._notify()

    async def _drive(self, slot: _Slot) -> None:
        """One worker's driver: start the worker when needed, then run batches of queued calls."""
        try:
            await self._activate.wait()
            while True:
                if slot.worker is None:
                    try:
                        slot.worker = await _Worker.start(self._initializer, self._initargs)
                    except OffloadError as exc:
                        self._fail_some(exc)
                        await anyio.sleep(0.1)  # do not spin on an initializer that always fails
                        continue
                    self.counters.workers += 1
                if not self._pending or slot.busy:
                    slot.waiting = True
                    await slot.wake.wait()
                    slot.wake = anyio.Event()
                    continue
                batch = self._take_batch()
                if batch:
                    if self._pending:
                        self._notify()  # share the rest of the queue with an idle worker
                    await self._run(slot, batch)
        finally:
            slot.waiting = False
            if slot.worker is not None:
                worker, slot.worker = slot.worker, None
                self.counters.workers -= 1
                await worker.stop()
            for call in slot.batch:
                if call.state != _DONE:
                    call.resolve(error=RuntimeClosed("the runtime was closed while this call ran"))

    def _fail_some(self, error: OffloadError) -> None:
        """A worker could not start: fail one batch's worth of queued calls with the reason."""
        for call in self._take_batch():
            self.counters.in_flight -= 1
            self.counters.errors += 1
            call.resolve(error=error)

    def _take_batch(self) -> list[_Call]:
        pending = self._pending
        limit = min(self._max_batch, max(1, math.ceil(len(pending) / len(self._slots))))
        batch: list[_Call] = []
        budget = self._batch_seconds
        spent = 0.0
        while pending and len(batch) < limit:
            call = pending[0]
            cost = self._cost.get(call.name, _UNKNOWN_COST)
            if batch and spent + cost > budget:
                break
            pending.popleft()
            self.counters.queued -= 1
            batch.append(call)
            spent += cost
            call.state = _RUNNING
        self.counters.in_flight += len(batch)
        return batch

    async def _run(self, slot: _Slot, batch: list[_Call]) -> None:
        worker = slot.worker
        assert worker is not None
        slot.busy = True
        slot.batch = batch
        sent = perf_counter()
        for call in batch:
            call.slot = slot
            call.sent = sent
        if len(batch) > 1:
            self.counters.batches += 1
            self.counters.batched_calls += len(batch)
        outcomes: list[tuple[Any, ...]] | None = None
        error: BaseException | None = None
        try:
            with anyio.CancelScope() as scope:
                slot.scope = scope
                try:
                    outcomes, _ = await worker.run_batch(
                        [c.blob for c in batch], self._max_rss is not None
                    )
                except _WorkerGone:
                    error = await self._crashed(slot, worker, batch)
                except OffloadError as exc:
                    error = exc
            if scope.cancelled_caught:  # every caller gave up: stop the runaway work
                await self._replace(slot, worker)
                error = OffloadError("every caller of this batch gave up")
        finally:
            slot.scope = None
            slot.busy = False
            self.counters.in_flight -= len(batch)
        if outcomes is not None:
            self._finish(batch, outcomes, sent)
            slot.batch = []
            await self._maybe_recycle(slot, worker)
        else:
            assert error is not None
            for call in batch:
                if call.state != _DONE:
                    call.resolve(error=error)
            slot.batch = []

    def _finish(self, batch: list[_Call], outcomes: list[tuple[Any, ...]], sent: float) -> None:
        """Route each outcome to its caller and record timings."""
        now = perf_counter()
        counters = self.counters
        total_run = sum(o[2] if o[0] != _worker.UNPICKLABLE else o[3] for o in outcomes)
        overhead = max(now - sent - total_run, 0.0) / len(batch)
        for call, outcome in zip(batch, outcomes, strict=True):
            run_time = outcome[2] if outcome[0] != _worker.UNPICKLABLE else outcome[3]
            call.run_time = run_time
            previous = self._cost.get(call.name)
            self._cost[call.name] = (
                run_time if previous is None else 0.8 * previous + 0.2 * run_time
            )
            latency = now - call.submitted
            counters.record_timing(
                call.name,
                queue_wait=max(latency - run_time - overhead, 0.0),
                run_time=run_time,
                latency=latency,
            )
            if call.abandoned:
                call.state = _DONE
                continue
            try:
                value, error = _decode(call, outcome)
            except Exception as exc:  # noqa: BLE001 - the result or exception cannot be rebuilt here
                value, error = None, NotPicklable("result", f"{type(exc).__name__}: {exc}")
            if error is None:
                counters.completed += 1
            else:
                counters.errors += 1
            call.resolve(value, error)

    async def _crashed(self, slot: _Slot, worker: _Worker, batch: list[_Call]) -> WorkerCrashed:
        exitcode, signal_number = await worker.exit_status()
        self._forget(slot, worker)
        live = [c for c in batch if not c.abandoned]
        self.counters.crashes += len(live)
        return WorkerCrashed(
            pid=worker.pid,
            exitcode=exitcode,
            signal_number=signal_number,
            function=batch[0].name,
            batch_size=len(batch),
        )

    async def _replace(self, slot: _Slot, worker: _Worker) -> None:
        """Kill a worker whose work nobody wants any more; its driver starts a fresh one."""
        await worker.kill()
        self._forget(slot, worker)

    def _forget(self, slot: _Slot, worker: _Worker) -> None:
        if slot.worker is worker:
            slot.worker = None
            self.counters.workers -= 1
            self.counters.worker_restarts += 1
            if slot.waiting:  # the driver is idle: let it start the replacement now
                slot.waiting = False
                slot.wake.set()

    async def _maybe_recycle(self, slot: _Slot, worker: _Worker) -> None:
        too_many = self._max_tasks is not None and worker.calls_done >= self._max_tasks
        too_big = self._max_rss is not None and worker.rss > self._max_rss
        if (too_many or too_big) and slot.worker is worker:
            self._forget(slot, worker)
            await worker.stop()
