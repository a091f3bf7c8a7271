"""The interpreter executor: subinterpreters with a GIL of their own each (Python 3.13+).

Each lane is one subinterpreter, created in the ``"isolated"`` configuration (its own GIL, no
fork, no exec, and only extension modules that support being loaded in several interpreters).
Each lane has a dedicated thread that creates the interpreter, then stays inside it serving
batches until told to stop, then destroys it (every operation on an interpreter happens on that
one thread). Inside, the thread holds that interpreter's GIL and not the main one: pure-Python
work runs in parallel with the event loop and with the other lanes. Entering an interpreter
costs tens of microseconds, so it is entered once, not per batch.

What crosses, and how (the same private 3.13 modules ``anyio.to_interpreter`` uses): calls are
pickled in the parent exactly as for worker processes (``encode_call``) and put as ``bytes`` on
a cross-interpreter queue, with a byte on a pipe to wake the lane; the subinterpreter runs them
with the process worker's own ``run_batch``, puts the pickled outcomes on a second queue and
writes a byte to a second pipe, which the event loop waits on (no thread of the parent's is
involved). So the rules of ``kind="cpu"`` hold: what cannot be pickled raises ``NotPicklable``
before anything is sent, and the worker imports the parent's main script as ``__mp_main__``
and runs the Runtime's ``initializer``. A module that refuses subinterpreters (an extension
module without multi-phase initialisation: ``ImportError: module X does not support loading in
subinterpreters``) raises ``BackendUnavailable`` naming it.

Cancellation: a running interpreter cannot be interrupted (3.13 has no API for it) nor killed.
A caller that times out or is cancelled gets its answer at once; a call not yet started is
skipped; a running one is abandoned, as on a thread: its result is discarded, and its cancel
flag (a byte the parent shares with the interpreter) makes ``hybridio.cancel_requested()`` true
inside it, so a long loop can return early. The lane stays taken until the call returns. What
no interpreter survives: ``os._exit()`` or a crash in native code ends the whole process.

Why not ``anyio.to_interpreter.run_sync``: one call per round trip (no batching), the whole
pool is shared per event loop, and a call that cannot cross surfaces as a bare pickling error.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import os
import pickle
import re
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from itertools import repeat
from types import ModuleType
from typing import Any, ClassVar

import anyio
from anyio.abc import TaskGroup

from .._core._cancel import CancelToken, use_token
from .._core._exceptions import (
    BackendUnavailable,
    NotPicklable,
    RemoteTraceback,
)
from .._core._metrics import KindCounters
from .._core._settings import Settings
from .._core._signal import Signal, loop_callback, signal_factory
from . import _worker
from ._dispatch import Dispatcher
from ._executor import Capabilities, Outcome, WorkerLost, WorkerStartError
from ._process import ProcessExecutor, _as_outcome, _decode
from ._serialize import EncodedCall, encode_call
from ._worker import RawOutcome

__all__ = ["InterpreterExecutor", "available", "create", "serve"]

_PROTOCOL = pickle.HIGHEST_PROTOCOL
#: Queue item formats and "unbound" policy of ``_interpqueues`` (3.13): plain shareable data.
_FMT_SHARED = 0
_UNBOUND_REMOVE = 2
NEEDS = "Python 3.13+ (subinterpreters with their own GIL)"
_MAX_JOBS = 8  # a job and a stop request at most are ever waiting
_REFUSED = re.compile(r"module (\S+) does not support loading in subinterpreters")

#: One interpreter call: the encoded call and its cancel flag (one byte, shared with the worker).
Payload = tuple[EncodedCall, bytearray]


@functools.cache
def _modules() -> tuple[ModuleType, ModuleType] | None:
    """``(_interpreters, _interpqueues)`` on CPython 3.13+, else None."""
    if sys.version_info < (3, 13):
        return None
    try:
        return importlib.import_module("_interpreters"), importlib.import_module("_interpqueues")
    except ImportError:  # pragma: no cover - a 3.13 build without subinterpreter support
        return None


def available() -> bool:
    """True when this interpreter can run ``kind="interpreter"`` (CPython 3.13+)."""
    return _modules() is not None


# -- inside the subinterpreter ----------------------------------------------------------------

# Run once in a new interpreter (``_hybridio_init`` is the process worker's INIT payload): take
# the parent's sys.path, import the main script and run the initializer, as a worker process does.
_INIT = """\
import pickle as _p, sys as _s
_s.path[:] = _p.loads(_hybridio_init)[0]
from hybridio._backends import _worker as _w
_w._initialise(_hybridio_init)
del _p, _s, _w, _hybridio_init
"""

# Run once more, for the interpreter's whole life: serve batches until told to stop.
_SERVE = """\
from hybridio._backends._interpreter import serve as _hybridio_serve
_hybridio_serve(*_hybridio_lane)
"""


class _SharedFlag(CancelToken):
    """A cancel token whose flag is a byte the parent writes (``hybridio.cancel_requested()``)."""

    __slots__ = ("_flag",)

    def __init__(self, flag: memoryview) -> None:
        self._flag = flag

    @property  # read from the shared byte; written only by the parent
    def cancelled(self) -> bool:
        return bool(self._flag[0])

    @cancelled.setter
    def cancelled(self, value: bool) -> None:
        self._flag[0] = int(value)


def _run_batch(calls: bytes, flags: Sequence[memoryview]) -> bytes:
    outcomes: list[RawOutcome] = []
    for call, flag in zip(pickle.loads(calls), flags, strict=True):
        token = _SharedFlag(flag)
        if token.cancelled:  # its caller gave up before it started
            outcomes.append((False, None, 0.0))
            continue
        with use_token(token):
            outcomes.extend(_worker.run_batch([call])[0])
    return pickle.dumps(outcomes, _PROTOCOL)


def serve(jobs: int, results: int, wake: int, done: int) -> None:
    """Serve batches in this (sub)interpreter until a ``None`` job; never called in the parent.

    For each byte read from ``wake``: take a job from the ``jobs`` queue, put the pickled
    outcomes on ``results`` and write a byte to ``done``. Waiting on a pipe releases this
    interpreter's GIL, and the thread never leaves the interpreter between batches (entering one
    costs tens of microseconds).
    """
    modules = _modules()
    assert modules is not None
    queues = modules[1]
    while True:
        os.read(wake, 1)
        job = queues.get(jobs)[0]
        if job is None:
            return
        queues.put(results, _run_batch(*job), _FMT_SHARED, _UNBOUND_REMOVE)
        os.write(done, b"\0")


# -- in the parent ----------------------------------------------------------------------------


class _InterpreterFailed(Exception):
    """The interpreter's own script (not the user's function) raised: ``excinfo`` says what."""

    def __init__(self, excinfo: Any) -> None:
        self.summary = f"{excinfo.type.__name__}: {excinfo.msg}"
        self.traceback = str(getattr(excinfo, "errdisplay", "") or excinfo.formatted)
        super().__init__(self.summary)


class _Started:
    """What a lane's thread says once its interpreter is ready (or could not be made)."""

    __slots__ = ("done", "error")

    def __init__(self, done: Signal) -> None:
        self.done = done
        self.error: BaseException | None = None

    def resolve(self) -> None:
        if not self.done.done():  # its awaiting task may have been cancelled (asyncio)
            self.done.set_result(None)


class _Interpreter:
    """One lane: a subinterpreter, the thread it runs on, and the channel to it.

    Jobs and results travel on two cross-interpreter queues; two pipes wake each side (a pipe
    is the one thing both an event loop and a subinterpreter can wait on). The lock makes
    ``close`` idempotent across the event loop and the exit handler.
    """

    __slots__ = (
        "__weakref__",
        "calls_done",
        "closed",
        "done",
        "exited",
        "failure",
        "jobs",
        "lock",
        "results",
        "running",
        "thread",
        "wake",
    )

    def __init__(self, exited: _Started) -> None:
        modules = _modules()
        assert modules is not None
        queues = modules[1]
        self.jobs: int = queues.create(_MAX_JOBS, _FMT_SHARED, _UNBOUND_REMOVE)
        self.results: int = queues.create(_MAX_JOBS, _FMT_SHARED, _UNBOUND_REMOVE)
        self.wake = os.pipe()
        self.done = os.pipe()
        os.set_blocking(self.done[0], False)
        self.lock = threading.Lock()
        self.running = False
        self.closed = False
        self.failure: _InterpreterFailed | None = None
        self.calls_done = 0
        self.exited = exited
        self.thread: threading.Thread | None = None

    def send(self, job: tuple[bytes, tuple[memoryview, ...]] | None) -> None:
        modules = _modules()
        assert modules is not None
        modules[1].put(self.jobs, job, _FMT_SHARED, _UNBOUND_REMOVE)
        os.write(self.wake[1], b"\0")

    async def receive(self) -> bytes:
        """Wait for the running batch's pickled outcomes."""
        await anyio.wait_readable(self.done[0])
        os.read(self.done[0], 1)
        modules = _modules()
        assert modules is not None
        try:
            blob: bytes = modules[1].get(self.results)[0]
        except RuntimeError:  # QueueEmpty: the thread wrote the byte because serve() ended
            failure = self.failure or "the interpreter stopped serving"
            raise WorkerLost(reason=f"the interpreter failed: {failure}") from None
        return blob

    def close(self) -> None:
        """Ask the thread to destroy the interpreter once its current batch (if any) returns."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
        self.send(None)

    def ended(self) -> None:
        """On the event loop once the thread has destroyed the interpreter: free the rest."""
        for fd in (*self.wake, *self.done):
            os.close(fd)
        modules = _modules()
        assert modules is not None
        modules[1].destroy(self.jobs)
        modules[1].destroy(self.results)
        self.exited.resolve()


# Lanes whose thread may still run. At exit each is told to stop and joined: a thread still
# inside its subinterpreter when Python finalises is a fatal error, so the exit waits for a call
# still running (as concurrent.futures does for its workers).
_live: weakref.WeakSet[_Interpreter] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for lane in list(_live):
        thread = lane.thread
        if thread is not None and thread.is_alive():
            lane.close()
            thread.join()


def _host(
    lane: _Interpreter,
    init: bytes,
    started: _Started,
    post: Callable[[Callable[[], object]], None],
) -> None:
    """A lane's thread: create the interpreter, serve in it until told to stop, destroy it."""
    modules = _modules()
    assert modules is not None
    interpreters = modules[0]
    try:
        ident = interpreters.create("isolated")
    except BaseException as exc:  # noqa: BLE001 - reported to start()
        started.error = exc
        post(started.resolve)
        post(lane.ended)
        return
    try:
        # Sharing a buffer (the cancel flags) needs the module imported on the receiving side.
        failure = interpreters.exec(ident, "import _interpreters")
        if failure is None:
            failure = interpreters.exec(ident, _INIT, {"_hybridio_init": init})
        if failure is not None:
            started.error = _InterpreterFailed(failure)
            post(started.resolve)
            return
        post(started.resolve)
        channel = (lane.jobs, lane.results, lane.wake[0], lane.done[1])
        failure = interpreters.exec(ident, _SERVE, {"_hybridio_lane": channel})
        if failure is not None:  # not the user's code: serve() itself failed
            lane.failure = _InterpreterFailed(failure)
            lane.closed = True
            os.write(lane.done[1], b"\0")  # wake the batch waiting for it
    finally:
        interpreters.destroy(ident)
        post(lane.ended)


def _refused_module(text: str) -> str | None:
    match = _REFUSED.search(text)
    return match.group(1) if match else None


def _explain(name: str, error: BaseException | None) -> BaseException | None:
    """Turn "this module refuses subinterpreters" into a ``BackendUnavailable`` naming it."""
    if isinstance(error, NotPicklable):
        module = _refused_module(error.reason)
    elif isinstance(error, ImportError):
        module = _refused_module(str(error))
    else:
        return error
    if module is None:
        return error
    unavailable = BackendUnavailable(
        "interpreter",
        f"every module {name} imports to support subinterpreters, and the extension module "
        f"{module!r} does not (it has no multi-phase initialisation); run {name} with kind='cpu'",
    )
    unavailable.__cause__ = error
    return unavailable


_HINT = (
    "Interpreter work crosses by pickle, as process work does: use a module-level function and "
    "plain data arguments, or use kind='blocking' to run it in a thread of this interpreter."
)


class InterpreterExecutor:
    """Interpreter-kind executor: one subinterpreter per lane, driven from a worker thread."""

    kind: ClassVar[str] = "interpreter"
    capabilities: ClassVar[Capabilities] = Capabilities(can_kill=False, parallel=True)

    def __init__(
        self,
        *,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_worker: int | None = None,
    ) -> None:
        self._for_init = ProcessExecutor(initializer=initializer, initargs=initargs)
        self._max_tasks = max_tasks_per_worker
        self._post: Callable[[Callable[[], object]], None] | None = None
        self._new_signal: Callable[[], Signal] | None = None
        self._task_group: TaskGroup | None = None

    def bind(self, task_group: TaskGroup, lost: Callable[[_Interpreter], None]) -> None:
        self._task_group = task_group
        self._post = loop_callback()
        self._new_signal = signal_factory()

    def encode(
        self, fn: Callable[..., Any], args: tuple[Any, ...], mapped: bool
    ) -> tuple[str, Payload]:
        try:
            name, call = encode_call(fn, args, mapped=mapped)
        except NotPicklable as exc:
            raise NotPicklable(exc.what, exc.reason, function=exc.function, hint=_HINT) from None
        return name, (call, bytearray(1))

    def _init_payload(self) -> bytes:
        """The worker process's INIT payload (sys.path, main script, initializer), unframed."""
        return self._for_init._init_message()[_worker.HEADER.size :]

    async def start(self) -> _Interpreter:
        assert self._post is not None
        assert self._new_signal is not None
        init = self._init_payload()
        lane = _Interpreter(_Started(self._new_signal()))
        started = _Started(self._new_signal())
        lane.thread = threading.Thread(
            target=_host,
            args=(lane, init, started, self._post),
            name="hybridio interpreter",
            daemon=True,  # an abandoned call must not keep the process alive at exit
        )
        lane.thread.start()
        _live.add(lane)
        # Shielded: a cancellation must not lose an interpreter that is being created.
        with anyio.CancelScope(shield=True):
            await started.done
        error = started.error
        if error is None:
            return lane
        if isinstance(error, _InterpreterFailed):
            failed = WorkerStartError(error.summary)
            failed.__cause__ = RemoteTraceback(error.traceback)
            raise failed
        raise WorkerStartError(f"{type(error).__name__}: {error}") from error

    async def run_batch(self, worker: _Interpreter, payloads: list[Payload]) -> list[Outcome]:
        if worker.closed:
            raise WorkerLost(started=False, reason="the interpreter is gone")
        calls = pickle.dumps([payload[0] for payload in payloads], _PROTOCOL)
        worker.running = True
        worker.send((calls, tuple(memoryview(payload[1]) for payload in payloads)))
        # A caller that gives up (or a runtime that closes) stops waiting here; the interpreter
        # runs on, and ``orphan`` / ``stop`` say what happens to its lane.
        blob = await worker.receive()
        worker.running = False
        raw: list[RawOutcome] = pickle.loads(blob)
        worker.calls_done += len(raw)
        return list(map(_as_outcome, repeat(Outcome), raw))

    def decode(self, name: str, outcome: Outcome) -> tuple[Any, BaseException | None]:
        if not outcome.ok and outcome.payload is None:  # pragma: no cover - its caller left
            return None, anyio.get_cancelled_exc_class()()
        value, error = _decode(name, outcome)
        return value, _explain(name, error)

    def abandon(self, payload: Payload) -> None:
        payload[1][0] = 1  # seen by cancel_requested() inside the interpreter

    def orphan(self, worker: _Interpreter, release: Callable[[], None]) -> bool:
        if not worker.running:
            return False
        assert self._task_group is not None
        self._task_group.start_soon(self._drain, worker, release)
        return True

    @staticmethod
    async def _drain(worker: _Interpreter, release: Callable[[], None]) -> None:
        """Wait for a batch every caller gave up on, discard its outcomes, free its lane."""
        try:
            await worker.receive()
        except WorkerLost:
            pass
        finally:
            worker.running = False
            release()

    def alive(self, worker: _Interpreter) -> bool:
        return not worker.closed

    def retire(self, worker: _Interpreter) -> bool:
        return self._max_tasks is not None and worker.calls_done >= self._max_tasks

    async def kill(self, worker: _Interpreter) -> WorkerLost:  # pragma: no cover - can_kill False
        raise NotImplementedError("a running subinterpreter cannot be killed")

    async def stop(self, worker: _Interpreter) -> None:
        """Destroy an idle interpreter now; a running one as soon as its batch returns."""
        worker.close()
        if not worker.running:
            with anyio.CancelScope(shield=True):
                await worker.exited.done

    def describe(self, worker: _Interpreter) -> int | None:
        return None


def create(settings: Settings, counters: KindCounters) -> Dispatcher[_Interpreter]:
    """The registry's factory for ``kind="interpreter"``."""
    if not available():
        version = ".".join(map(str, sys.version_info[:3]))
        raise BackendUnavailable("interpreter", f"{NEEDS}; this is Python {version}")
    executor = InterpreterExecutor(
        initializer=settings.initializer,
        initargs=settings.initargs,
        max_tasks_per_worker=settings.max_tasks_per_worker,
    )
    return Dispatcher(
        executor,
        counters,
        workers=settings.interpreters,
        max_queue=settings.max_queue,
        batching=settings.batching,
        max_batch=256,
        batch_seconds=0.005,
        max_tasks=settings.max_tasks_per_worker,
    )
