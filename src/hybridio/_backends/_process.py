"""The process executor: hybridio's own worker processes (see ``_worker`` for the protocol).

Each worker gets a socket pair of its own for messages (``_channel``), so nothing it prints can
disturb them. Answers arrive in order and each goes to the batch that waits for it; a worker can
therefore hold two batches (pipelining): while it runs one, the next is already in its socket
buffer. When the channel ends (the worker died or was killed) the process is reaped and the
batches it held fail: the first with the exit code or signal, the ones behind it as never
started, so the dispatcher runs those elsewhere. An answer that does not fit the protocol
discards the worker the same way.

Why not ``anyio.to_process.run_sync``: it cannot report a crashed worker's exit code, leaks a
worker cancelled during start-up, speaks an undocumented wire format on the worker's stdout,
and allows one call in flight per worker.
"""

from __future__ import annotations

import functools
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from itertools import repeat
from typing import Any, ClassVar

import anyio
from anyio.abc import Process, TaskGroup

from .._core._exceptions import NotPicklable, PartialChunk, RemoteTraceback
from .._core._metrics import KindCounters
from .._core._settings import Settings
from .._core._signal import Signal, signal_factory
from . import _worker
from ._channel import Channel, FramingError, open_channel
from ._dispatch import Dispatcher
from ._executor import OS_HINT, Capabilities, Outcome, WorkerLost, WorkerStartError
from ._serialize import EncodedCall, dumps_args, encode_function, main_path

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


class _Waiter:
    """A batch (or the start-up handshake) sent to a worker, waiting for its answer."""

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
        "ended",
        "exit_fd",
        "handshake",
        "live",
        "lost",
        "pid",
        "process",
        "rss",
        "waiting",
    )

    def __init__(self, process: Process, live: set[_Process]) -> None:
        self.live = live  # the executor's processes not yet reaped: this one until it is
        live.add(self)
        self.process = process
        self.pid = process.pid
        self.channel: Channel | None = None
        self.waiting: deque[_Waiter] = deque()
        self.handshake: _Waiter | None = None
        self.lost: WorkerLost | None = None
        self.ended = anyio.Event()  # set when its channel has ended
        self.calls_done = 0
        self.rss = 0
        # Readable once the process has exited (Linux pidfd): a worker that died idle is known
        # dead before a call is sent to it, even when its channel's end is not yet read.
        self.exit_fd = _open_pidfd(self.pid)

    def exited(self) -> bool:
        """True when the process is known to have exited (never blocks)."""
        fd = self.exit_fd
        return fd is not None and bool(select.select((fd,), (), (), 0)[0])

    def on_frame(self, kind: int, payload: bytes | bytearray) -> None:
        """An answer arrived: hand it to the batch waiting for it (in order)."""
        if kind == _worker.RESULT and self.waiting:
            try:
                value = pickle.loads(payload)
            except Exception as exc:
                raise FramingError(f"unreadable answer: {exc!r}") from exc
            self.waiting.popleft().resolve(value)
        elif kind in (_worker.READY, _worker.INIT_FAILED) and self.handshake is not None:
            handshake, self.handshake = self.handshake, None
            handshake.resolve((kind, payload))
        else:
            raise FramingError(f"unexpected message type {kind}")

    async def exit_status(self) -> tuple[int | None, int | None]:
        """Reap the process (killing it if it lingers): ``(exitcode, signal)``."""
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(_STOP_GRACE):
                await self.process.wait()
            if self.process.returncode is None:
                self.kill_now()
            await self.process.aclose()
        _kill_group(self.pid)  # what the worker started and left behind goes with it
        if self.exit_fd is not None:
            os.close(self.exit_fd)
            self.exit_fd = None
        self.live.discard(self)
        code = self.process.returncode
        if code is not None and code < 0:
            return None, -code
        return code, None

    def kill_now(self) -> None:
        """Kill the worker and every process it started (its process group)."""
        if not _kill_group(self.pid):
            try:
                self.process.kill()
            except ProcessLookupError:
                pass

    async def close_channel(self) -> None:
        if self.channel is not None:
            await self.channel.aclose()


def _open_pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)  # type: ignore[attr-defined,unused-ignore]  # Linux only
    except (AttributeError, OSError):  # another OS, an old kernel, or no descriptor left
        return None


def _kill_group(pid: int) -> bool:
    """SIGKILL the process group a worker leads; False when there is none (left) to kill.

    Each worker starts its own session, hence its own group: Ctrl-C in a terminal (SIGINT to the
    terminal's foreground group) never reaches it, and killing it takes its children along,
    unless they started a session of their own. A group id is not reused while a member lives.
    """
    if not hasattr(os, "killpg"):  # pragma: no cover - Windows
        return False
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


#: Builds an ``Outcome`` from the worker's plain tuple in C (``Outcome._make`` is Python code).
_as_outcome: Callable[[type[Outcome], _worker.RawOutcome], Outcome] = tuple.__new__


def _frame(kind: int, value: Any) -> bytes:
    payload = pickle.dumps(value, _PROTOCOL)
    return _HEADER.pack(kind, len(payload)) + payload


#: A BATCH frame's fixed start: the header, then the pickle's length and its buffer count.
_BATCH_START = struct.Struct("<BIII")
#: Arguments at least this large travel out of band (their pickle is sent, never copied).
_OUT_OF_BAND = 64 * 1024


def _batch_frame(payloads: list[EncodedCall], want_rss: bool) -> list[Any]:
    """A BATCH frame as the parts to send in order (see ``_worker``'s protocol)."""
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps((payloads, want_rss), 5, buffer_callback=buffers.append)
    if not buffers:
        return [_BATCH_START.pack(_worker.BATCH, len(data) + 8, len(data), 0) + data]
    raws = [buffer.raw() for buffer in buffers]
    lengths = [raw.nbytes for raw in raws]
    size = 8 + 8 * len(raws) + len(data) + sum(lengths)
    head = _BATCH_START.pack(_worker.BATCH, size, len(data), len(raws))
    return [head + struct.pack(f"<{len(raws)}Q", *lengths), data, *raws]


def _decode(name: str, outcome: Outcome) -> tuple[Any, BaseException | None]:
    """Turn a worker's outcome into ``(value, error)`` for the caller."""
    try:
        if outcome.ok:
            return pickle.loads(outcome.payload), None
        detail = outcome.payload
        if detail[0] == _worker.PARTIAL:
            _, done, raised = detail
            return None, PartialChunk(pickle.loads(done), _raised(name, raised))
        if detail[0] == _worker.RAISED:
            return None, _raised(name, detail)
    # SystemExit from a __setstate__ fails this call, never the task that reads the answers.
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - cannot be rebuilt here
        return None, NotPicklable("result", f"{type(exc).__name__}: {exc}", function=name)
    _, what, reason = outcome.payload
    return None, NotPicklable(what, reason, function=name)


def _raised(name: str, detail: tuple[str, bytes | None, str, str]) -> BaseException:
    """The exception a worker's function raised, its worker traceback chained as ``__cause__``."""
    _, blob, tb, summary = detail
    exc: BaseException
    if blob is None:
        exc = NotPicklable(
            "exception", f"{summary} (its exception could not be pickled)", function=name
        )
    else:
        exc = pickle.loads(blob)
    # Not `exc.__cause__ = ...`: a frozen dataclass exception refuses attribute assignment.
    object.__setattr__(exc, "__cause__", RemoteTraceback(tb))
    return exc


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
        self._processes: set[_Process] = set()  # every process not yet reaped (for abort)

    def bind(self, task_group: TaskGroup, lost: Callable[[_Process], None]) -> None:
        self._task_group = task_group
        self._new_signal = signal_factory()
        self._lost = lost

    def encode(
        self, fn: Callable[..., Any], args: tuple[Any, ...], mapped: bool
    ) -> tuple[str, EncodedCall]:
        if _worker.bootstrapping:  # as multiprocessing refuses to start a process then
            raise RuntimeError(
                "process work was started while a worker imported the main module: its top "
                "level would run the program again in every worker; guard its entry point with "
                "`if __name__ == '__main__':`"
            )
        # NotPicklable is raised here, before anything is sent or queued.
        name, function = encode_function(fn)
        arguments = dumps_args(args, name)
        if len(arguments) >= _OUT_OF_BAND:  # large: pickled once, sent without a copy
            return name, (function, pickle.PickleBuffer(arguments), mapped)
        return name, (function, arguments, mapped)

    # -- starting ------------------------------------------------------------------------------

    def _init_message(self) -> bytes:
        initializer = initargs = None
        if self._initializer is not None:
            try:
                initializer = encode_function(self._initializer)[1]
                initargs = pickle.dumps(self._initargs, _PROTOCOL)
            except Exception as exc:
                raise WorkerStartError(f"{type(exc).__name__}: {exc}") from exc
        # multiprocessing's authkey, as its own children get it: a Manager proxy passed to a
        # worker can then connect to its manager (only when the program uses multiprocessing).
        process = sys.modules.get("multiprocessing.process")
        authkey = None if process is None else bytes(process.current_process().authkey)
        return _frame(_worker.INIT, (sys.path, main_path(), initializer, initargs, authkey))

    async def start(self) -> _Process:
        task_group = self._task_group
        assert task_group is not None
        init = self._init_message()
        try:
            ours, theirs = socket.socketpair()
        except OSError as exc:  # out of file descriptors...
            raise WorkerStartError(f"no channel for a worker: {exc}", OS_HINT) from exc
        try:
            # Shielded: a cancellation landing inside the spawn would orphan the new process.
            with anyio.CancelScope(shield=True):
                process = await anyio.open_process(
                    [sys.executable, "-m", "hybridio._backends._worker", str(theirs.fileno())],
                    stdin=subprocess.DEVNULL,
                    stdout=None,
                    stderr=None,
                    pass_fds=(theirs.fileno(),),
                    start_new_session=True,  # its own process group: see _kill_group
                )
        except BaseException as exc:
            ours.close()
            if isinstance(exc, OSError):
                raise WorkerStartError(f"could not start a worker process: {exc}", OS_HINT) from exc
            raise
        finally:
            theirs.close()
        worker = _Process(process, self._processes)
        assert self._new_signal is not None
        handshake = worker.handshake = _Waiter(self._new_signal())
        try:
            worker.channel = await open_channel(
                ours, worker.on_frame, functools.partial(self._channel_ended, worker), task_group
            )
            with anyio.fail_after(_START_TIMEOUT):
                await worker.channel.send(init)
                await handshake.done
            if handshake.error is not None:
                raise handshake.error
            kind, payload = handshake.value
            if kind == _worker.INIT_FAILED:
                raise self._init_failed(payload)
            # A worker's death is seen as the end of its channel; but a process it forked keeps
            # the channel open, so its exit is watched too.
            task_group.start_soon(self._watch, worker, name=f"hybridio watch {worker.pid}")
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self.kill(worker)
            if isinstance(exc, WorkerStartError | anyio.get_cancelled_exc_class()):
                raise
            if isinstance(exc, TimeoutError):
                raise WorkerStartError(
                    f"the worker did not start within {_START_TIMEOUT:g} s",
                    "A busy machine or a slow main module import can cause this; the pool "
                    "retries on its own.",
                ) from exc
            code, signal_number = await worker.exit_status()
            if signal_number is not None:  # not the user's code: something killed it
                raise WorkerStartError(
                    f"the worker process was killed by signal {signal_number} during start-up",
                    "Something outside hybridio killed it (the out-of-memory killer, an operator, "
                    "a supervisor); the pool retries on its own.",
                ) from exc
            raise WorkerStartError(
                f"the worker process ended during start-up (exit code {code}): see its output above"
            ) from exc
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
        channel = worker.channel
        if worker.lost is not None or channel is None or worker.exited():
            raise WorkerLost(pid=worker.pid, started=False, reason="the worker is gone")
        assert self._new_signal is not None
        waiter = _Waiter(self._new_signal())
        worker.waiting.append(waiter)  # before sending: the answer may come at once
        try:
            frame = _batch_frame(payloads, self._max_rss is not None)
            if len(frame) == 1:
                await channel.send(frame[0])
            else:  # large arguments: sent as they are, in slices, never joined
                await channel.send_parts(frame)
        except _CHANNEL_ERRORS:
            if worker.waiting and worker.waiting[-1] is waiter:
                worker.waiting.pop()
            raise WorkerLost(pid=worker.pid, started=False, reason="the channel broke") from None
        waiter.sent = True
        await waiter.done
        if waiter.error is not None:
            raise waiter.error
        raw, rss = waiter.value
        if len(raw) != len(payloads):  # never hand one caller another's answer: discard it
            worker.kill_now()
            raise WorkerLost(
                pid=worker.pid,
                reason=f"worker {worker.pid} answered {len(raw)} of {len(payloads)} calls",
            )
        worker.calls_done += len(payloads)
        worker.rss = rss
        return list(map(_as_outcome, repeat(Outcome), raw))

    async def _watch(self, worker: _Process) -> None:
        """End the channel of a worker that exited while something else still holds it open."""
        await worker.process.wait()
        if worker.lost is None:
            with anyio.move_on_after(_STOP_GRACE):  # answers it wrote before it died come first
                await worker.ended.wait()
            await worker.close_channel()

    def _channel_ended(self, worker: _Process, error: BaseException | None) -> None:
        """The channel ended (called on the event loop, maybe outside any task)."""
        worker.ended.set()
        if worker.lost is not None:
            # We killed or stopped it, and whoever did reaps it: only the batches it still held
            # are told (this also runs while the runtime, or its event loop, shuts down).
            self._fail_waiting(worker, worker.lost.reason, None, None)
            return
        reason = ""
        if isinstance(error, FramingError):
            reason = f"worker {worker.pid} broke the protocol ({error}) and was discarded"
            worker.kill_now()
        # It ended on its own: its lane starts a fresh one; its exit status is read, then the
        # batches it held fail with it.
        worker.lost = WorkerLost(pid=worker.pid, reason=reason or "the worker ended")
        self._lost(worker)
        assert self._task_group is not None
        self._task_group.start_soon(self._reap, worker, reason, name=f"hybridio reap {worker.pid}")

    async def _reap(self, worker: _Process, reason: str) -> None:
        code, signal_number = await worker.exit_status()
        await worker.close_channel()
        self._fail_waiting(worker, reason, code, signal_number)

    @staticmethod
    def _fail_waiting(
        worker: _Process, reason: str, code: int | None, signal_number: int | None
    ) -> None:
        """Fail what the worker held, in order: the first batch ran, those behind never did."""
        lost = {"pid": worker.pid, "exitcode": code, "signal_number": signal_number}
        if worker.handshake is not None:
            worker.handshake.resolve(error=WorkerLost(started=False, reason=reason, **lost))
        first = True
        while worker.waiting:
            waiter = worker.waiting.popleft()
            started = first and waiter.sent
            waiter.resolve(error=WorkerLost(started=started, reason=reason, **lost))
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
            # Answers the worker wrote before it died are read first, in order: a batch behind
            # the killed one is then known to have started (or not) and is never run twice.
            with anyio.move_on_after(_STOP_GRACE):
                await worker.ended.wait()
            await worker.close_channel()
        return WorkerLost(pid=worker.pid, exitcode=code, signal_number=signal_number)

    async def stop(self, worker: _Process) -> None:
        """End of file on its channel asks the worker to exit; kill it if it lingers."""
        with anyio.CancelScope(shield=True):
            if worker.lost is None:
                worker.lost = WorkerLost(pid=worker.pid, reason="stopped")
            if worker.channel is not None:
                try:
                    await worker.channel.send_eof()
                except _CHANNEL_ERRORS:
                    pass
            await worker.exit_status()
            await worker.close_channel()

    def abort(self) -> None:
        """Kill every worker, also one starting, without waiting: the event loop is ending
        without running the clean-up."""
        for worker in list(self._processes):
            if worker.lost is None:
                worker.lost = WorkerLost(pid=worker.pid, reason="stopped")
            worker.kill_now()
            if worker.exit_fd is not None:  # nobody will reap it here: close its pidfd now
                os.close(worker.exit_fd)
                worker.exit_fd = None

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
        max_tasks=settings.max_tasks_per_worker,
    )
