"""The process executor: hybridio's own worker processes (see ``_worker`` for the protocol).

Each worker gets a socket pair of its own for messages, so nothing it prints can disturb them. A
reader task per worker takes its answers in order and hands each to the batch that waits for it;
a worker can therefore hold two batches (pipelining): while it runs one, the next is already in
its socket buffer. When the channel ends (the worker died or was killed) the reader reaps the
process and fails the batches it held: the first with the exit code or signal, the ones behind it
as never started, so the dispatcher runs those elsewhere. An answer that does not fit the
protocol discards the worker the same way.

Why not ``anyio.to_process.run_sync``: it cannot report a crashed worker's exit code, leaks a
worker cancelled during start-up, speaks an undocumented wire format on the worker's stdout,
and allows one call in flight per worker.
"""

from __future__ import annotations

import pickle
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

import anyio
from anyio.abc import Process, TaskGroup, UNIXSocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from .._core._exceptions import NotPicklable, RemoteTraceback
from .._core._metrics import KindCounters
from .._core._settings import Settings
from .._core._signal import Signal, signal_factory
from . import _worker
from ._dispatch import Dispatcher
from ._executor import Capabilities, Outcome, WorkerLost, WorkerStartError
from ._serialize import EncodedCall, encode_call, encode_function, main_path

__all__ = ["ProcessExecutor", "create"]

_PROTOCOL = pickle.HIGHEST_PROTOCOL
_START_TIMEOUT = 30.0
_STOP_GRACE = 1.0
_CHANNEL_ERRORS = (
    anyio.EndOfStream,
    anyio.IncompleteRead,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)
_HEADER = _worker.HEADER


class _FramingError(Exception):
    """The worker sent something the protocol does not allow."""


class _Waiter:
    """A batch sent to a worker, waiting for its answer."""

    __slots__ = ("done", "error", "sent", "value")

    def __init__(self, done: Signal) -> None:
        self.done = done
        self.value: Any = None
        self.error: WorkerLost | None = None
        self.sent = False

    def resolve(self, value: Any = None, error: WorkerLost | None = None) -> None:
        self.value = value
        self.error = error
        if not self.done.done():
            self.done.set_result(None)


class _Process:
    """One worker process: its channel, the batches it holds, and how it ended."""

    __slots__ = (
        "calls_done",
        "channel",
        "lost",
        "outbox",
        "pid",
        "process",
        "receive",
        "rss",
        "sending",
        "waiting",
    )

    def __init__(self, process: Process, channel: UNIXSocketStream) -> None:
        self.process = process
        self.pid = process.pid
        self.channel = channel
        self.receive = BufferedByteReceiveStream(channel)
        self.waiting: deque[_Waiter] = deque()
        self.outbox: list[bytes] = []
        self.sending = False
        self.lost: WorkerLost | None = None
        self.calls_done = 0
        self.rss = 0

    async def read_frame(self) -> tuple[int, bytes]:
        kind, length = _HEADER.unpack(await self.receive.receive_exactly(_HEADER.size))
        return kind, await self.receive.receive_exactly(length)

    async def send(self, frame: bytes) -> None:
        """Send a frame; frames sent while another is being written follow it in order."""
        if self.sending:
            self.outbox.append(frame)
            return
        self.sending = True
        try:
            await self.channel.send(frame)
            while self.outbox:
                frames, self.outbox = self.outbox, []
                await self.channel.send(b"".join(frames))
        finally:
            self.sending = False

    async def exit_status(self) -> tuple[int | None, int | None]:
        """Reap the process (killing it if it lingers): ``(exitcode, signal)``."""
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(_STOP_GRACE):
                await self.process.wait()
            if self.process.returncode is None:
                self.kill_now()
            await self.process.aclose()
        code = self.process.returncode
        if code is not None and code < 0:
            return None, -code
        return code, None

    def kill_now(self) -> None:
        try:
            self.process.kill()
        except ProcessLookupError:
            pass


def _frame(kind: int, value: Any) -> bytes:
    payload = pickle.dumps(value, _PROTOCOL)
    return _HEADER.pack(kind, len(payload)) + payload


def _decode(name: str, outcome: Outcome) -> tuple[Any, BaseException | None]:
    """Turn a worker's outcome into ``(value, error)`` for the caller."""
    try:
        if outcome.ok:
            return pickle.loads(outcome.payload), None
        detail = outcome.payload
        if detail[0] == _worker.RAISED:
            _, blob, tb, summary = detail
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
    _, what, reason = outcome.payload
    return None, NotPicklable(what, reason, function=name)


class ProcessExecutor:
    """CPU-kind executor: worker processes that can be killed and hold two batches at once."""

    kind: ClassVar[str] = "cpu"
    capabilities: ClassVar[Capabilities] = Capabilities(can_kill=True, parallel=True, pipeline=2)

    def __init__(
        self,
        *,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_worker: int | None = None,
        max_worker_rss: int | None = None,
    ) -> None:
        self._initializer = initializer
        self._initargs = initargs
        self._max_tasks = max_tasks_per_worker
        self._max_rss = max_worker_rss
        self._task_group: TaskGroup | None = None
        self._new_signal: Callable[[], Signal] | None = None
        self._lost: Callable[[_Process], None] = lambda worker: None

    def bind(self, task_group: TaskGroup, lost: Callable[[_Process], None]) -> None:
        self._task_group = task_group
        self._new_signal = signal_factory()
        self._lost = lost

    def encode(
        self, fn: Callable[..., Any], args: tuple[Any, ...], mapped: bool
    ) -> tuple[str, EncodedCall]:
        # NotPicklable is raised here, before anything is sent or queued.
        return encode_call(fn, args, mapped=mapped)

    # -- starting ------------------------------------------------------------------------------

    def _init_message(self) -> bytes:
        initializer = initargs = None
        if self._initializer is not None:
            try:
                initializer = encode_function(self._initializer)[1]
                initargs = pickle.dumps(self._initargs, _PROTOCOL)
            except Exception as exc:
                raise WorkerStartError(f"{type(exc).__name__}: {exc}") from exc
        return _frame(_worker.INIT, (sys.path, main_path(), initializer, initargs))

    async def start(self) -> _Process:
        assert self._task_group is not None
        init = self._init_message()
        ours, theirs = socket.socketpair()
        try:
            # Shielded: a cancellation landing inside the spawn would orphan the new process.
            with anyio.CancelScope(shield=True):
                process = await anyio.open_process(
                    [sys.executable, "-m", "hybridio._backends._worker", str(theirs.fileno())],
                    stdin=subprocess.DEVNULL,
                    stdout=None,
                    stderr=None,
                    pass_fds=(theirs.fileno(),),
                )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        worker = _Process(process, await UNIXSocketStream.from_socket(ours))
        try:
            with anyio.fail_after(_START_TIMEOUT):
                await worker.send(init)
                kind, payload = await worker.read_frame()
                if kind == _worker.INIT_FAILED:
                    raise self._init_failed(payload)
                if kind != _worker.READY:
                    raise WorkerStartError(f"the worker answered INIT with message type {kind}")
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self.kill(worker)
            if isinstance(exc, WorkerStartError | anyio.get_cancelled_exc_class()):
                raise
            if isinstance(exc, TimeoutError):
                raise WorkerStartError(
                    f"the worker did not start within {_START_TIMEOUT:g} s"
                ) from exc
            code, signal_number = await worker.exit_status()
            how = f"exit code {code}" if signal_number is None else f"signal {signal_number}"
            raise WorkerStartError(
                f"the worker process ended during start-up ({how}): see its output above"
            ) from exc
        self._task_group.start_soon(self._read, worker, name=f"hybridio worker {worker.pid}")
        return worker

    @staticmethod
    def _init_failed(payload: bytes) -> WorkerStartError:
        summary, tb, blob = pickle.loads(payload)
        error = WorkerStartError(summary)
        cause: BaseException = RemoteTraceback(tb)
        if blob is not None:
            try:
                exc: BaseException = pickle.loads(blob)
            except Exception:  # noqa: BLE001 - the traceback alone says what it was
                exc = cause
            else:
                exc.__cause__ = cause
            cause = exc
        error.__cause__ = cause
        return error

    # -- running -------------------------------------------------------------------------------

    async def run_batch(self, worker: _Process, payloads: list[EncodedCall]) -> list[Outcome]:
        if worker.lost is not None:
            raise WorkerLost(pid=worker.pid, started=False, reason="the worker is gone")
        assert self._new_signal is not None
        waiter = _Waiter(self._new_signal())
        worker.waiting.append(waiter)  # before sending: the answer may come at once
        try:
            await worker.send(_frame(_worker.BATCH, (payloads, self._max_rss is not None)))
        except _CHANNEL_ERRORS:
            if waiter in worker.waiting and worker.waiting[0] is not waiter:
                worker.waiting.remove(waiter)
            raise WorkerLost(pid=worker.pid, started=False, reason="the channel broke") from None
        waiter.sent = True
        await waiter.done
        if waiter.error is not None:
            raise waiter.error
        outcomes, rss = waiter.value
        worker.calls_done += len(payloads)
        worker.rss = rss
        return outcomes  # type: ignore[no-any-return]

    async def _read(self, worker: _Process) -> None:
        """Hand each answer to the batch waiting for it, in order; fail them when it ends."""
        reason = ""
        try:
            while True:
                kind, payload = await worker.read_frame()
                if kind != _worker.RESULT or not worker.waiting:
                    raise _FramingError(f"unexpected message type {kind}")
                try:
                    value = pickle.loads(payload)
                except Exception as exc:
                    raise _FramingError(f"unreadable answer: {exc!r}") from exc
                worker.waiting.popleft().resolve(value)
        except _CHANNEL_ERRORS:
            pass
        except _FramingError as exc:
            reason = f"worker {worker.pid} broke the protocol ({exc}) and was discarded"
            worker.kill_now()
        finally:
            with anyio.CancelScope(shield=True):
                await self._ended(worker, reason)

    async def _ended(self, worker: _Process, reason: str) -> None:
        if worker.lost is None:  # it ended on its own (not killed or stopped by us)
            worker.lost = WorkerLost(pid=worker.pid, reason=reason or "the worker ended")
            self._lost(worker)
        code, signal_number = await worker.exit_status()
        await worker.channel.aclose()
        first = True
        while worker.waiting:
            waiter = worker.waiting.popleft()
            started = first and waiter.sent
            waiter.resolve(
                error=WorkerLost(
                    pid=worker.pid,
                    exitcode=code,
                    signal_number=signal_number,
                    started=started,
                    reason=reason,
                )
            )
            first = False

    def decode(self, name: str, outcome: Outcome) -> tuple[Any, BaseException | None]:
        return _decode(name, outcome)

    def abandon(self, payload: EncodedCall) -> None:
        pass  # a process is killed instead (when every caller of its batch gave up)

    def orphan(self, worker: _Process, release: Callable[[], None]) -> bool:
        return False  # pragma: no cover - processes are killed, never orphaned

    def alive(self, worker: _Process) -> bool:
        return worker.lost is None

    def retire(self, worker: _Process) -> bool:
        too_many = self._max_tasks is not None and worker.calls_done >= self._max_tasks
        too_big = self._max_rss is not None and worker.rss > self._max_rss
        return too_many or too_big

    # -- stopping ------------------------------------------------------------------------------

    async def kill(self, worker: _Process) -> WorkerLost:
        with anyio.CancelScope(shield=True):
            if worker.lost is None:
                worker.lost = WorkerLost(pid=worker.pid, reason="killed")
            worker.kill_now()
            code, signal_number = await worker.exit_status()
            await worker.channel.aclose()
        return WorkerLost(pid=worker.pid, exitcode=code, signal_number=signal_number)

    async def stop(self, worker: _Process) -> None:
        """End of file on its channel asks the worker to exit; kill it if it lingers."""
        with anyio.CancelScope(shield=True):
            if worker.lost is None:
                worker.lost = WorkerLost(pid=worker.pid, reason="stopped")
            try:
                await worker.channel.send_eof()
            except _CHANNEL_ERRORS:
                pass
            await worker.exit_status()
            await worker.channel.aclose()

    def describe(self, worker: _Process) -> int | None:
        return worker.pid


def create(settings: Settings, counters: KindCounters) -> Dispatcher[_Process]:
    """The registry's factory for ``kind="cpu"``."""
    executor = ProcessExecutor(
        initializer=settings.initializer,
        initargs=settings.initargs,
        max_tasks_per_worker=settings.max_tasks_per_worker,
        max_worker_rss=settings.max_worker_rss,
    )
    return Dispatcher(
        executor,
        counters,
        workers=settings.cpu_workers,
        max_queue=settings.max_queue,
        batching=settings.batching,
        max_batch=256,
        batch_seconds=0.005,
    )
