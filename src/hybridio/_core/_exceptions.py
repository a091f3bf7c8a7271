"""hybridio's exceptions.

The tree::

    HybridioError
    ├── OffloadError               the work could not be run where it was sent
    │   ├── WorkerCrashed          a worker process died (exit code or signal)
    │   ├── WorkerStartFailed      a worker could not start (its initializer or the main module raised)
    │   ├── NotPicklable           a function, argument, result or exception cannot cross processes
    │   ├── Overloaded             admission refused: the queue for that kind is full
    │   └── BackendUnavailable     the kind needs something this interpreter or machine lacks
    ├── FunctionAborted            the function raised SystemExit, KeyboardInterrupt or a cancellation
    ├── OffloadTimeout             the call missed its deadline (also a builtin ``TimeoutError``)
    ├── RuntimeClosed              the runtime was closed, or is used outside its event loop
    ├── AsyncioRequired            an aiohttp-based part (web, crawl) was run on trio
    └── RemoteTraceback            never raised: a worker's traceback, chained as ``__cause__``

An exception raised by the user's own function is never wrapped: it is re-raised as itself, and for
process work the worker's formatted traceback is chained as its ``__cause__`` (a ``RemoteTraceback``).
The one exception to that rule is a ``BaseException`` that is not an ``Exception`` (``SystemExit``,
``KeyboardInterrupt``, ``asyncio.CancelledError``...) raised by a function offloaded to a worker: re-raised
as itself it would end the caller's program or cancel the caller's task, so it arrives as
``FunctionAborted`` carrying the original.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "AsyncioRequired",
    "BackendUnavailable",
    "FunctionAborted",
    "HybridioError",
    "NotPicklable",
    "OffloadError",
    "OffloadTimeout",
    "Overloaded",
    "RemoteTraceback",
    "RuntimeClosed",
    "WorkerCrashed",
    "WorkerStartFailed",
]


class HybridioError(Exception):
    """Base class of every exception hybridio raises on its own account."""


class OffloadError(HybridioError):
    """Raised when work could not be run by the backend it was sent to."""


class WorkerCrashed(OffloadError):
    """Raised when the worker process running a call died before answering.

    The pool replaces the worker; the next call runs on a fresh one.

    Attributes:
        exitcode: the exit status when the process exited, ``None`` when killed by a signal.
        signal: the number of the signal that killed it, ``None`` when it exited.
        pid: the worker's process id.
        function: the qualified name of the function that was running (the first of a batch).
    """

    def __init__(
        self,
        *,
        pid: int | None,
        exitcode: int | None,
        signal_number: int | None,
        function: str,
        batch_size: int = 1,
    ) -> None:
        self.pid = pid
        self.exitcode = exitcode
        self.signal = signal_number
        self.function = function
        self.batch_size = batch_size
        if signal_number is not None:
            try:
                how = f"was killed by signal {signal_number} ({signal.Signals(signal_number).name})"
            except ValueError:
                how = f"was killed by signal {signal_number}"
        elif exitcode is not None:
            how = f"exited with code {exitcode}"
        else:
            how = "stopped answering"
        batch = f" (in a batch of {batch_size} calls)" if batch_size > 1 else ""
        super().__init__(
            f"worker process {pid} {how} while running {function}{batch}. "
            "The pool has replaced it; the next call will run on a fresh worker. "
            "If the function calls os._exit(), exhausts memory or crashes native code, "
            "fix that or run it with kind='blocking' to debug it in this process."
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_worker_crashed,
            (self.pid, self.exitcode, self.signal, self.function, self.batch_size),
        )


def _rebuild_worker_crashed(
    pid: int | None, exitcode: int | None, signal_number: int | None, function: str, batch: int
) -> WorkerCrashed:
    return WorkerCrashed(
        pid=pid, exitcode=exitcode, signal_number=signal_number, function=function, batch_size=batch
    )


class WorkerStartFailed(OffloadError):
    """Raised when a worker could not be started: its initializer raised, or the main module failed
    to import in the worker.

    After a few failures in a row the pool is marked broken: queued and new calls fail at once with
    this error (never a storm of process spawns), and the pool tries again on its own after a
    back-off. The original exception is chained as ``__cause__`` when it could be rebuilt here.

    Attributes:
        kind: the offload kind.
        reason: ``"Type: message"`` of the original failure.
        failures: consecutive start failures so far.
        retry_in: seconds until the pool tries to start a worker again.
    """

    def __init__(
        self,
        kind: str,
        reason: str,
        *,
        failures: int = 1,
        retry_in: float = 0.0,
        hint: str | None = None,
    ) -> None:
        self.kind = kind
        self.reason = reason
        self.failures = failures
        self.retry_in = retry_in
        self.hint = hint
        state = (
            f"after {failures} failed starts in a row the {kind} pool is broken and retries in "
            f"{retry_in:.3g} s"
            if failures > 1
            else f"the {kind} pool retries in {retry_in:.3g} s"
        )
        advice = hint or (
            "If the Runtime's initializer or your main module raised, fix that (workers import "
            "the main module, as multiprocessing does: guard its entry point with "
            "`if __name__ == '__main__':`)."
        )
        super().__init__(f"a {kind} worker could not start: {reason}; {state}. {advice}")

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_start_failed,
            (self.kind, self.reason, self.failures, self.retry_in, self.hint),
        )


def _rebuild_start_failed(
    kind: str, reason: str, failures: int, retry_in: float, hint: str | None = None
) -> WorkerStartFailed:
    return WorkerStartFailed(kind, reason, failures=failures, retry_in=retry_in, hint=hint)


class NotPicklable(OffloadError):
    """Raised when something that must cross to a worker process cannot be pickled.

    Nothing was sent and the pool is untouched.

    Attributes:
        what: ``"function"``, ``"argument 0"`` .. ``"argument N"``, ``"keyword argument 'x'"``,
            ``"result"`` or ``"exception"``.
        reason: the pickling error's own message.
    """

    def __init__(self, what: str, reason: str, *, function: str = "?", hint: str = "") -> None:
        self.what = what
        self.reason = reason
        self.function = function
        self.hint = hint
        advice = hint or (
            "Process work must be picklable: use a module-level function (not a lambda, a closure "
            "or a method of a local class) and plain data arguments (not locks, sockets, open files "
            "or generators), or use kind='blocking' to run it in a thread of this process."
        )
        super().__init__(f"the {what} of {function} cannot be pickled: {reason}. {advice}")

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_not_picklable, (self.what, self.reason, self.function, self.hint))


def _rebuild_not_picklable(what: str, reason: str, function: str, hint: str) -> NotPicklable:
    return NotPicklable(what, reason, function=function, hint=hint)


class Overloaded(OffloadError):
    """Raised at once when a call is refused because the queue of its kind is full.

    hybridio never queues without bound: shed load (HTTP 503), slow the producer, or raise
    ``max_queue`` if the backlog is expected.

    Attributes:
        kind: the offload kind (``"cpu"`` or ``"blocking"``).
        queued: how many calls were waiting.
        max_queue: the configured bound.
    """

    def __init__(self, kind: str, queued: int, max_queue: int) -> None:
        self.kind = kind
        self.queued = queued
        self.max_queue = max_queue
        super().__init__(
            f"{kind} work refused: {queued} calls already queued (max_queue={max_queue}). "
            "Retry later, shed load, or create the Runtime with a larger max_queue."
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (Overloaded, (self.kind, self.queued, self.max_queue))


class BackendUnavailable(OffloadError):
    """Raised when a kind cannot run here: it needs a newer Python, a build option or an extra.

    Attributes:
        kind: the kind asked for.
        needs: what it needs (``"Python 3.13+"``, ``"pip install 'hybridio[cluster]'"``...).
    """

    def __init__(self, kind: str, needs: str) -> None:
        self.kind = kind
        self.needs = needs
        super().__init__(f"kind={kind!r} is not available here: it needs {needs}.")

    def __reduce__(self) -> tuple[object, ...]:
        return (BackendUnavailable, (self.kind, self.needs))


class FunctionAborted(HybridioError):
    """Raised when an offloaded function raised ``SystemExit``, ``KeyboardInterrupt`` or a cancellation.

    Those exceptions end a program or cancel a task: raised in the caller as themselves, a worker's
    ``sys.exit()`` or an ``argparse`` error would stop a whole server, and a ``CancelledError``
    would look like the caller's own cancellation while the error vanished. The worker is fine and
    keeps serving; only this call failed.

    Attributes:
        original: the exception the function raised (also chained as ``__cause__``).
        function: the qualified name of the function.
    """

    def __init__(self, original: BaseException, function: str) -> None:
        self.original = original
        self.function = function
        super().__init__(
            f"{function} raised {type(original).__name__}({_arguments(original)}) in a worker. "
            "It ended that call only, not your program or task; catch it in the function if it "
            "is expected (the original is the .original attribute)."
        )
        self.__cause__ = original

    def __reduce__(self) -> tuple[object, ...]:
        return (FunctionAborted, (self.original, self.function))


def _arguments(exc: BaseException) -> str:
    return ", ".join(map(repr, exc.args))


class PartialChunk(Exception):
    """A ``map`` chunk that stopped at an item's exception: the results before it, and the error.

    ``OffloadMap`` delivers ``results`` first, then raises ``error`` at its position.
    """

    def __init__(self, results: list[Any], error: BaseException) -> None:
        super().__init__(len(results), error)
        self.results = results
        self.error = error


def map_chunk(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """``[fn(item) for item in items]``, raising ``PartialChunk`` with the results before a failure."""
    results: list[Any] = []
    append = results.append
    try:
        for item in items:
            append(fn(item))
    except BaseException as exc:  # noqa: BLE001 - travels with the results computed before it
        raise PartialChunk(results, exc) from None
    return results


def for_caller(name: str, error: BaseException) -> BaseException:
    """The error a caller gets for ``error`` raised by its offloaded function ``name``."""
    if isinstance(error, Exception):
        if isinstance(error, PartialChunk):
            error.error = for_caller(name, error.error)
        return error
    return FunctionAborted(error, name)


class OffloadTimeout(HybridioError, TimeoutError):
    """Raised when a call does not finish within its ``timeout``.

    A process call that times out has its worker killed (unless other live callers share its
    batch); a thread call cannot be killed, so it is abandoned, counted in ``stats()``, and its
    function can see ``hybridio.cancel_requested()`` turn true.

    Attributes:
        kind: the offload kind.
        timeout: the deadline in seconds.
        function: the qualified name of the function.
    """

    def __init__(self, kind: str, timeout: float, function: str, detail: str = "") -> None:
        self.kind = kind
        self.timeout = timeout
        self.function = function
        super().__init__(
            f"{function} ({kind}) did not finish within {timeout:g} s{detail}. "
            "Raise the timeout, make the work smaller, or split it."
        )

        self.detail = detail

    def __reduce__(self) -> tuple[object, ...]:
        return (OffloadTimeout, (self.kind, self.timeout, self.function, self.detail))


class AsyncioRequired(HybridioError, RuntimeError):
    """Raised when a part built on aiohttp (``hybridio.web``, ``hybridio.crawl``) runs on trio.

    aiohttp is asyncio-only: run it with ``asyncio.run()`` (or uvloop).
    """


class RuntimeClosed(HybridioError):
    """Raised when work is submitted to a Runtime that is closed or not yet entered."""


class RemoteTraceback(HybridioError):
    """The formatted traceback of an exception raised in a worker process.

    Chained as ``__cause__`` of the re-raised exception so that the worker's frames show up in the
    parent's traceback.
    """

    def __init__(self, tb: str) -> None:
        self.tb = tb
        super().__init__(tb)

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'

    def __reduce__(self) -> tuple[object, ...]:
        return (RemoteTraceback, (self.tb,))
