"""The executor protocol: what a backend must say about its workers, and nothing more.

The ``Dispatcher`` owns everything that is the same for every backend: the bounded queue, the
solo path for a lone call, batching, pipelining, timeouts, cancellation, abandonment, worker
start-up with back-off, metrics and ``map``. An executor only knows how to talk to one kind of
worker (a thread slot, a process, an interpreter, a cluster):

==============  ==========================================================================
``encode``      turn ``fn(*args)`` into the payload a worker takes (raises ``NotPicklable``)
``start``       start one worker, ready for work (raises ``WorkerStartError``)
``run_batch``   run payloads in order on a worker; one ``Outcome`` each (raises ``WorkerLost``)
``decode``      turn an outcome into the caller's value or exception
``kill``        stop a worker now, running work and all (only when ``can_kill``)
``stop``        stop an idle worker gracefully
==============  ==========================================================================

A new backend is one module with an executor and one line in the runtime's registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Protocol, TypeVar

from anyio.abc import TaskGroup

__all__ = ["Capabilities", "Executor", "Outcome", "WorkerLost", "WorkerStartError"]

W = TypeVar("W")


class Outcome(NamedTuple):
    """What running one call produced, before decoding: the executor's own encoding of it.

    ``ok`` is False when the function raised (``payload`` then encodes the exception).
    """

    ok: bool
    payload: Any
    run_time: float


class WorkerLost(Exception):
    """A worker died or had to be discarded while a batch was on it.

    ``started`` is False when the worker provably never began the batch (it was queued behind
    another one on a pipelined worker): the dispatcher then runs the batch elsewhere.
    """

    def __init__(
        self,
        *,
        pid: int | None = None,
        exitcode: int | None = None,
        signal_number: int | None = None,
        started: bool = True,
        reason: str = "",
    ) -> None:
        super().__init__(reason or f"worker {pid} lost")
        self.pid = pid
        self.exitcode = exitcode
        self.signal_number = signal_number
        self.started = started
        self.reason = reason


class WorkerStartError(Exception):
    """A worker could not be started; ``reason`` is ``"Type: message"`` of the cause.

    ``hint`` says what to do about it (``WorkerStartFailed`` shows it); None means the default
    advice, for a failure of the user's code at start-up (the initializer, or the main module).
    """

    def __init__(self, reason: str, hint: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


#: What to do when the operating system refused a worker.
OS_HINT = (
    "The operating system refused a new worker: free file descriptors or processes (close what "
    "leaks, or raise `ulimit -n` / `ulimit -u`); the pool retries on its own."
)


@dataclass(frozen=True)
class Capabilities:
    """What the dispatcher may do with an executor's workers."""

    #: A running batch can be stopped (a process can be killed; a thread cannot).
    can_kill: bool
    #: Spread a queue over idle workers (they run in parallel) rather than fill one batch first.
    parallel: bool
    #: Batches a worker may hold at once: the next one is sent while the worker runs the current.
    pipeline: int = 1


class Executor(Protocol[W]):
    """How to run batches of calls on one kind of worker. See the module docstring."""

    kind: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def bind(self, task_group: TaskGroup, lost: Callable[[W], None]) -> None:
        """Called once on the event loop before any worker starts.

        ``task_group`` hosts background tasks; call ``lost(worker)`` on the event loop when a
        worker ends on its own (so that an idle worker that died is replaced before it is used).
        """

    def encode(
        self, fn: Callable[..., Any], args: tuple[Any, ...], mapped: bool
    ) -> tuple[str, Any]:
        """``fn``'s name and the payload for ``fn(*args)`` (``mapped``: one per ``args[0]``)."""

    async def start(self) -> W:
        """Start one worker and return it ready for work."""

    async def run_batch(self, worker: W, payloads: list[Any]) -> list[Outcome]:
        """Run the payloads in order on ``worker``; one outcome per payload."""

    def decode(self, name: str, outcome: Outcome) -> tuple[Any, BaseException | None]:
        """``(value, None)`` or ``(None, exception)`` for the caller of the call."""

    def abandon(self, payload: Any) -> None:
        """Its caller gave up on a call that is running (a thread's cancel flag is raised)."""

    def orphan(self, worker: W, release: Callable[[], None]) -> bool:
        """Every caller gave up on ``worker``'s running batch and it cannot be killed.

        Return True if ``release`` will be called on the event loop once the worker is free;
        False if it is free already.
        """

    def alive(self, worker: W) -> bool:
        """False when an idle worker has died since its last batch."""

    def retire(self, worker: W) -> bool:
        """True when the worker should be replaced after its last batch (recycling limits)."""

    async def kill(self, worker: W) -> WorkerLost:
        """Stop the worker at once; say how it ended."""

    async def stop(self, worker: W) -> None:
        """Stop an idle worker gracefully (kill it if it does not stop soon)."""

    def describe(self, worker: W) -> int | None:
        """An id for messages and ``worker_pids()`` (a process id), or None."""
