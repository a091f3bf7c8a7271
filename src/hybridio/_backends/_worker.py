"""hybridio's worker process, and the framing it speaks with its parent.

A worker is started as ``python -m hybridio._backends._worker FD`` where ``FD`` is one end of a
socket pair: every message travels on that channel, never on the worker's stdin or stdout, so a
function that prints, or writes to file descriptor 1, cannot disturb the protocol (the worker's
stdout and stderr are the parent's, as with multiprocessing; its stdin is ``/dev/null``).

Framing: each message is a 5-byte header, ``struct`` format ``<BI`` (message type, payload length
in bytes), followed by that many bytes of pickle.

=====  ============  ========  ===========================================================
type   name          from      payload
=====  ============  ========  ===========================================================
1      INIT          parent    ``(sys.path, main path or None, initializer or None, initargs,
                               authkey or None)`` with the initializer and its arguments
                               pickled apart (bytes); authkey is multiprocessing's, when used
2      BATCH         parent    ``(calls, want_rss)``: ``calls`` a list of ``EncodedCall``, as
                               a pickle with out-of-band buffers (see below)
3      READY         worker    the worker's pid, once INIT succeeded
4      INIT_FAILED   worker    ``("Type: message", traceback text, pickled exception or None)``
5      RESULT        worker    ``(outcomes, rss)``: one ``(ok, payload, run seconds)`` per call,
                               in order; rss in bytes (0 unless asked)
=====  ============  ========  ===========================================================

A BATCH payload starts with ``struct`` ``<II`` (length of the pickle, number of out-of-band
buffers N), then N ``<Q`` buffer lengths, the pickle (protocol 5), then the N buffers: large
arguments travel as ``pickle.PickleBuffer`` and are never copied into the pickle, so the parent
holds each argument's pickle once.

The first message is INIT, answered by READY or INIT_FAILED (the worker then exits with status
3). Then BATCH messages are answered by RESULT messages in the order they came: the parent may
send the next batch before the answer to the previous one (pipelining). End of file on the
channel asks the worker to exit (status 0). Anything else is a framing error: the worker exits
with status 4, and the parent discards a worker that sends it anything unexpected.

Keep this module light: every worker imports it.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import struct
import sys
import traceback
import types
from collections.abc import Callable, Sequence
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_file_location
from time import perf_counter
from typing import Any, BinaryIO

from .._core._exceptions import PartialChunk, map_chunk
from .._core._names import unwrap

__all__ = [
    "BATCH",
    "BATCH_HEAD",
    "HEADER",
    "INIT",
    "INIT_FAILED",
    "PARTIAL",
    "RAISED",
    "READY",
    "RESULT",
    "UNPICKLABLE",
    "EncodedCall",
    "RawOutcome",
    "main",
    "read_batch",
    "rebuild_exception",
    "run_batch",
]

HEADER = struct.Struct("<BI")
#: The start of a BATCH payload: the pickle's length and the number of out-of-band buffers.
BATCH_HEAD = struct.Struct("<II")
INIT, BATCH, READY, INIT_FAILED, RESULT = 1, 2, 3, 4, 5
EXIT_INIT_FAILED = 3
EXIT_FRAMING = 4

#: Tags of a failed call's payload (``Outcome.ok`` is False).
RAISED = "raised"  # (RAISED, pickled exception or None, traceback text, "Type: message")
UNPICKLABLE = "unpicklable"  # (UNPICKLABLE, what, reason)
PARTIAL = "partial"  # a map chunk: (PARTIAL, pickled results before the failing item, RAISED tuple)

_PROTOCOL = pickle.HIGHEST_PROTOCOL

#: One call's outcome as the worker sends it: ``(ok, payload, run seconds)``, the fields of
#: ``Outcome``. A plain tuple on the wire: a NamedTuple costs ~2 us more per call to pickle here
#: and ~1 us more to unpickle in the parent.
RawOutcome = tuple[bool, Any, float]

#: One call as the parent sends it: pickled function, pickled arguments, and whether to map the
#: function over the first argument (a ``map`` chunk). See ``_serialize``.
EncodedCall = tuple[bytes, "bytes | memoryview | pickle.PickleBuffer", bool]


# Module-level functions by their pickled reference: loading one imports and looks up its module
# each time. Only functions their module binds by name are kept: a partial or a closure sent by
# value is unpickled afresh for every call, as its state must be. Bounded: cleared when full.
_functions: dict[bytes, Callable[..., Any]] = {}
_MAX_FUNCTIONS = 256


def _load_function(blob: bytes) -> Callable[..., Any]:
    fn = _functions.get(blob)
    if fn is not None:
        return fn
    # cloudpickle output is loaded by plain pickle as long as cloudpickle is importable here.
    loaded = pickle.loads(blob)
    fn = unwrap(loaded)
    if type(loaded) is types.FunctionType or fn is not loaded:  # a function or a decorated one
        module = sys.modules.get(getattr(loaded, "__module__", ""))
        if (
            module is not None
            and module.__dict__.get(getattr(loaded, "__qualname__", "")) is loaded
        ):
            if len(_functions) >= _MAX_FUNCTIONS:
                _functions.clear()
            _functions[blob] = fn
    return fn


def _dumps_exception(exc: BaseException) -> bytes | None:
    """The exception pickled so that it unpickles, or None when it cannot travel."""
    blob = _round_trip(exc)
    return blob if blob is not None else _round_trip(_Rebuilt(exc))


def _round_trip(obj: object) -> bytes | None:
    try:
        blob = pickle.dumps(obj, _PROTOCOL)
        pickle.loads(blob)  # an exception with a custom __init__ may pickle but not unpickle
    except (Exception, SystemExit):  # noqa: BLE001 - any failure means "cannot travel"
        return None
    return blob


class _Rebuilt:
    """Pickles an exception whose class cannot be rebuilt by calling it with its ``args``.

    A frozen dataclass exception (its ``__init__`` takes fields, not ``args``, and its
    ``__setattr__`` refuses the state) comes back as itself: made with ``__new__``, then given its
    ``args`` and attributes without calling ``__init__`` or ``__setattr__``.
    """

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __reduce__(self) -> tuple[object, ...]:
        exc = self.exc
        return (rebuild_exception, (type(exc), exc.args, dict(getattr(exc, "__dict__", {}))))


def rebuild_exception(
    cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]
) -> BaseException:
    """The other half of ``_Rebuilt``: an exception of ``cls`` with ``args`` and ``state``."""
    exc = cls.__new__(cls, *args)
    BaseException.__init__(exc, *args)
    for name, value in state.items():
        object.__setattr__(exc, name, value)
    return exc


def _raised(exc: BaseException) -> tuple[str, bytes | None, str, str]:
    tb = "".join(traceback.format_exception(exc))
    return (RAISED, _dumps_exception(exc), tb, f"{type(exc).__name__}: {exc}")


def _unpicklable(what: str, exc: BaseException, elapsed: float = 0.0) -> RawOutcome:
    return (False, (UNPICKLABLE, what, f"{type(exc).__name__}: {exc}"), elapsed)


def _run_one(call: EncodedCall) -> RawOutcome:
    # SystemExit raised while unpickling or pickling (a __reduce__ or __setstate__ that exits)
    # fails this call only: the worker goes on serving (CPython's test_deadlock_case family).
    fn_blob, args_blob, mapped = call
    try:
        fn = _load_function(fn_blob)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - reported to the caller
        return _unpicklable("function", exc)
    try:
        args = pickle.loads(args_blob)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - reported to the caller
        return _unpicklable("arguments", exc)
    start = perf_counter()
    try:
        value = map_chunk(fn, args[0]) if mapped else fn(*args)
    except PartialChunk as partial:  # a map chunk: the results before the failing item travel too
        elapsed = perf_counter() - start
        try:
            done = pickle.dumps(partial.results, _PROTOCOL)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - reported to the caller
            return _unpicklable("result", exc, elapsed)
        return (False, (PARTIAL, done, _raised(partial.error)), elapsed)
    except BaseException as exc:  # noqa: BLE001 - the user's exception goes back to the caller
        return (False, _raised(exc), perf_counter() - start)
    elapsed = perf_counter() - start
    try:
        return (True, pickle.dumps(value, _PROTOCOL), elapsed)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - reported to the caller
        return _unpicklable("result", exc, elapsed)


def _rss_bytes() -> int:
    """This process's resident set size now (Linux), else its peak (POSIX), else 0."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
    except (ImportError, OSError):  # pragma: no cover - Windows
        return 0


def run_batch(calls: Sequence[EncodedCall], want_rss: bool = False) -> tuple[list[RawOutcome], int]:
    """Run each encoded call in order; return the outcomes and this process's RSS."""
    return [_run_one(call) for call in calls], (_rss_bytes() if want_rss else 0)


# -- the process's main loop ------------------------------------------------------------------


def _read_frame(stream: BinaryIO) -> tuple[int, bytes] | None:
    """The next message, or None at end of file."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    kind, length = HEADER.unpack(header)
    payload = stream.read(length)
    if len(payload) < length:
        return None
    return kind, payload


def read_batch(payload: bytes) -> tuple[list[EncodedCall], bool]:
    """Unpickle a BATCH payload, its out-of-band buffers without a copy."""
    size, count = BATCH_HEAD.unpack_from(payload)
    view = memoryview(payload)
    offset = BATCH_HEAD.size
    lengths = struct.unpack_from(f"<{count}Q", payload, offset) if count else ()
    offset += 8 * count
    data = view[offset : offset + size]
    offset += size
    buffers = []
    for length in lengths:
        buffers.append(view[offset : offset + length])
        offset += length
    calls, want_rss = pickle.loads(data, buffers=buffers)
    return calls, want_rss


def _send(sock: socket.socket, kind: int, value: Any) -> None:
    payload = pickle.dumps(value, _PROTOCOL)
    sock.sendall(HEADER.pack(kind, len(payload)) + payload)


#: True while this worker imports the parent's main script: a call to a process pool then comes
#: from an unguarded top level and would start workers without end (see ``ProcessExecutor``).
bootstrapping = False


def _initialise(payload: bytes) -> None:
    """Take the parent's sys.path, import its main module as ``__mp_main__``, run the initializer."""
    global bootstrapping  # a process-wide state, read by the process executor
    path, main_path, initializer, initargs, *more = pickle.loads(payload)
    sys.path[:] = path
    if more and more[0] is not None:  # the parent's multiprocessing authkey (Manager proxies)
        import multiprocessing.process

        multiprocessing.process.current_process().authkey = more[0]
    if main_path:
        # Like multiprocessing: the parent's main script is imported under another name, so that
        # its `if __name__ == "__main__":` block does not run again, and its functions unpickle.
        # A script without a .py suffix (a console-script entry point) is Python source too.
        loader = SourceFileLoader("__mp_main__", main_path)
        spec = spec_from_file_location("__mp_main__", main_path, loader=loader)
        if spec is not None and spec.loader is not None:
            module = module_from_spec(spec)
            sys.modules["__mp_main__"] = module
            sys.modules["__main__"] = module
            bootstrapping = True
            try:
                spec.loader.exec_module(module)
            finally:
                bootstrapping = False
    if initializer is not None:
        unwrap(pickle.loads(initializer))(*pickle.loads(initargs))


def main(argv: Sequence[str]) -> int:
    """Serve batches on the channel whose file descriptor is ``argv[0]``; return the exit status."""
    try:
        return _serve(argv)
    except (BrokenPipeError, ConnectionResetError):
        return 0  # the parent went away (killed, say): nobody is left to answer


def _serve(argv: Sequence[str]) -> int:
    # Ctrl-C in a terminal reaches the whole process group: the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd = int(argv[0])
    os.set_inheritable(fd, False)  # a program this worker runs must not hold its channel open
    sock = socket.socket(fileno=fd)
    stream = sock.makefile("rb")
    frame = _read_frame(stream)
    if frame is None:
        return 0
    kind, payload = frame
    if kind != INIT:
        print(f"hybridio worker: expected INIT, got message type {kind}", file=sys.stderr)
        return EXIT_FRAMING
    try:
        _initialise(payload)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which decides
        _, blob, tb, summary = _raised(exc)
        _send(sock, INIT_FAILED, (summary, tb, blob))
        return EXIT_INIT_FAILED
    _send(sock, READY, os.getpid())
    while True:
        frame = _read_frame(stream)
        if frame is None:
            return 0
        kind, payload = frame
        if kind != BATCH:
            print(f"hybridio worker: unexpected message type {kind}", file=sys.stderr)
            return EXIT_FRAMING
        calls, want_rss = read_batch(payload)
        _send(sock, RESULT, run_batch(calls, want_rss))


if __name__ == "__main__":
    # Run the importable copy of this module, not this __main__ one: pickles refer to the former.
    from hybridio._backends._worker import main as _main

    sys.exit(_main(sys.argv[1:]))
