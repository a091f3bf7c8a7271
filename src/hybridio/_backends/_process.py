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

import pickle
import subprocess
import sys
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from typing import Any, cast

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, Process
from anyio.streams.buffered import BufferedByteReceiveStream

from .._core._exceptions import (
    HybridioError,
    NotPicklable,
    OffloadError,
    OffloadTimeout,
    RemoteTraceback,
    WorkerCrashed,
)
from .._core._metrics import KindCounters
from . import _worker
from ._dispatch import RUNNING, Call, Dispatcher, Lane
from ._serialize import encode_call

__all__ = ["ProcessPool"]

_PROTOCOL = pickle.HIGHEST_PROTOCOL
_START_TIMEOUT = 30.0
_STOP_GRACE = 1.0
_PIPE_ERRORS = (
    anyio.EndOfStream,
    anyio.IncompleteRead,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    BrokenPipeError,
    ConnectionResetError,
)


def _main_path() -> str | None:
    """The main script the worker should import as ``__mp_main__`` (so its functions unpickle).

    Like multiprocessing, a main module run with ``python -m`` (it has a ``__spec__``) is not
    re-run from its file: a package's ``__main__.py`` with relative imports cannot be.
    """
    main = sys.modules["__main__"]
    if getattr(main, "__spec__", None) is not None:
        return None
    path: str | None = getattr(main, "__file__", None)
    return path


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
        # Shielded: a cancellation landing inside the spawn would orphan the new process.
        with anyio.CancelScope(shield=True):
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
                await worker._command(("init", sys.path, _main_path()))
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
                f"worker process failed to start: {type(exc).__name__}: {exc}. The worker "
                "imports your main module (as multiprocessing does): guard its entry point with "
                "`if __name__ == '__main__':`. If you passed an initializer, it may have raised."
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


def _decode_outcome(name: str, outcome: tuple[Any, ...]) -> tuple[Any, BaseException | None]:
    """Turn a worker's outcome tuple into ``(value, error)`` for the caller."""
    tag = outcome[0]
    try:
        if tag == _worker.OK:
            return pickle.loads(outcome[1]), None
        if tag == _worker.RAISED:
            _, blob, _, tb, summary = outcome
            if blob is None:
                exc: BaseException = NotPicklable(
                    "exception", f"{summary} (its exception could not be pickled)", function=name
                )
            else:
                exc = pickle.loads(blob)
            exc.__cause__ = RemoteTraceback(tb)
            return None, exc
    except Exception as exc:  # noqa: BLE001 - the result or exception cannot be rebuilt here
        return None, NotPicklable("result", f"{type(exc).__name__}: {exc}", function=name)
    what, reason = outcome[1]
    return None, NotPicklable(what, reason, function=name)


class ProcessPool(Dispatcher):
    """Process-kind backend. See the module docstring for how calls travel."""

    kind = "cpu"
    fair_split = True

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
        super().__init__(
            counters,
            lanes=workers,
            max_queue=max_queue,
            batching=batching,
            max_batch=max_batch,
            batch_seconds=batch_seconds,
        )
        self._initializer = initializer
        self._initargs = initargs
        self._max_tasks = max_tasks_per_worker
        self._max_rss = max_worker_rss

    def pids(self) -> list[int]:
        """Pids of the live worker processes (for tests and diagnostics)."""
        return [lane.worker.pid for lane in self._lanes if lane.worker is not None]

    # -- submitting ----------------------------------------------------------------------------

    def call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], *, timeout: float | None
    ) -> Awaitable[Any]:
        # Not a coroutine itself: it returns the one coroutine the caller awaits (one frame less
        # per call on the hot path). NotPicklable and Overloaded are raised before any await.
        name, blob = encode_call(fn, args)
        return self.route(name, blob, timeout)

    async def _solo(self, lane: Lane, call: Call, timeout: float | None) -> Any:
        """Run one call on an idle worker from the caller's own task (no hand-off)."""
        worker: _Worker = lane.worker
        call.state = RUNNING
        sent = self._start_batch(lane, [call])
        self.counters.in_flight += 1
        try:
            try:
                with anyio.fail_after(timeout) if timeout is not None else nullcontext():
                    outcomes = await self._round_trip(worker, [call])
            except TimeoutError:
                self.counters.timeouts += 1
                call.abandoned = True
                await self._replace(lane, worker)
                raise OffloadTimeout(self.kind, timeout or 0.0, call.name) from None
            except anyio.get_cancelled_exc_class():
                self.counters.cancelled += 1
                call.abandoned = True
                await self._replace(lane, worker)
                raise
            except _WorkerGone:
                raise await self._crashed(lane, worker, [call]) from None
            self._finish([call], outcomes, sent)
            await self._after_batch(lane)
            return call.outcome()
        finally:
            self.counters.in_flight -= 1
            lane.busy = False
            lane.batch = []
            if self._pending:
                self._notify()

    # -- dispatcher hooks ------------------------------------------------------------------------

    def _ready(self, lane: Lane) -> bool:
        return lane.worker is not None

    async def _prepare(self, lane: Lane) -> None:
        if lane.worker is None:
            lane.worker = await _Worker.start(self._initializer, self._initargs)
            self.counters.workers += 1

    async def _round_trip(self, worker: _Worker, batch: list[Call]) -> list[tuple[Any, ...]]:
        outcomes, _ = await worker.run_batch([c.payload for c in batch], self._max_rss is not None)
        return outcomes

    async def _execute(self, lane: Lane, batch: list[Call]) -> list[tuple[Any, ...]]:
        worker: _Worker = lane.worker
        try:
            return await self._round_trip(worker, batch)
        except _WorkerGone:
            raise await self._crashed(lane, worker, batch) from None
        except anyio.get_cancelled_exc_class():
            # Every caller gave up (or the runtime is closing): stop the work mid-call.
            await self._replace(lane, worker)
            raise

    def _decode(self, call: Call, outcome: tuple[Any, ...]) -> tuple[Any, BaseException | None]:
        return _decode_outcome(call.name, outcome)

    async def _after_batch(self, lane: Lane) -> None:
        worker: _Worker | None = lane.worker
        if worker is None:
            return
        too_many = self._max_tasks is not None and worker.calls_done >= self._max_tasks
        too_big = self._max_rss is not None and worker.rss > self._max_rss
        if too_many or too_big:
            self._forget(lane, worker)
            await worker.stop()

    async def _stop_lane(self, lane: Lane) -> None:
        if lane.worker is not None:
            worker, lane.worker = lane.worker, None
            self.counters.workers -= 1
            await worker.stop()

    # -- worker replacement --------------------------------------------------------------------

    async def _crashed(self, lane: Lane, worker: _Worker, batch: list[Call]) -> WorkerCrashed:
        exitcode, signal_number = await worker.exit_status()
        self._forget(lane, worker)
        self.counters.crashes += sum(1 for c in batch if not c.abandoned)
        return WorkerCrashed(
            pid=worker.pid,
            exitcode=exitcode,
            signal_number=signal_number,
            function=batch[0].name,
            batch_size=len(batch),
        )

    async def _replace(self, lane: Lane, worker: _Worker) -> None:
        """Kill a worker whose work nobody wants any more; its driver starts a fresh one."""
        await worker.kill()
        self._forget(lane, worker)

    def _forget(self, lane: Lane, worker: _Worker) -> None:
        if lane.worker is worker:
            lane.worker = None
            self.counters.workers -= 1
            self.counters.worker_restarts += 1
            if lane.waiting:  # the driver is idle: let it start the replacement now
                self._wake(lane)
