"""Admission control per offload kind: slots in flight, and a queue bounded by the deadline.

A request that finds every slot taken waits in its kind's queue only when the queue can serve it
within its deadline: the wait is estimated from the measured time a request holds a slot (an
exponential moving average) and the number already waiting. A request that could not be served
in time, or that finds the queue at its hard cap (the memory bound), is refused at once (HTTP 503
+ ``Retry-After``): a queue that can be served within the deadline is not overload, one that
cannot only makes everyone late.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import anyio.lowlevel

from .._core._exceptions import OffloadError

__all__ = ["Admission", "Gate", "Limit", "Rejected", "default_limits"]

# Weight of the newest sample in the moving average of the time a request holds a slot.
_EWMA = 0.2
_PAUSE = 0.5
# A request is started only if it should finish before its deadline with this much to spare
# (times the measured service time, which lags when the server is slowing down).
_MARGIN = 1.5
#: Refusals held at once per kind, at most (``Limit.pause``).
MAX_HELD = 1024


@dataclass(frozen=True)
class Limit:
    """How much work of one kind a server admits.

    Args:
        in_flight: requests of this kind allowed to hold a slot at once.
        queue: hard cap of requests waiting for a slot (bounds memory); within it, a request
            waits only if the wait estimated from measured service times fits its deadline.
        retry_after: seconds suggested to refused clients when no estimate exists yet (sent
            rounded up, at least 1); otherwise the estimated time for the queue to drain.
        pause: seconds a refusal is held before the 503 goes out (0: at once). A client that
            honours ``Retry-After`` (at least 1 s) loses nothing; one that retries at once is
            slowed to a try per pause per connection, so a retry storm cannot keep the loop
            busy answering 503s while the workers starve. At most 1024 refusals per kind are
            held at a time (a coroutine and a connection each); past that they are answered
            at once.

    Example::

        hybridio.web.create_app(limits={"cpu": Limit(in_flight=4, queue=64)})
    """

    in_flight: int
    queue: int = 0
    retry_after: float = 1.0
    pause: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.in_flight, int) or isinstance(self.in_flight, bool):
            raise TypeError(f"Limit.in_flight must be an int, got {self.in_flight!r}")
        if self.in_flight < 1:
            raise ValueError(f"Limit.in_flight must be >= 1, got {self.in_flight}")
        if not isinstance(self.queue, int) or isinstance(self.queue, bool) or self.queue < 0:
            raise ValueError(f"Limit.queue must be an int >= 0, got {self.queue!r}")
        if not self.retry_after > 0 or not math.isfinite(self.retry_after):
            raise ValueError(f"Limit.retry_after must be a positive number, got {self.retry_after}")
        if not 0 <= self.pause <= self.retry_after:
            raise ValueError(f"Limit.pause must be in [0, retry_after], got {self.pause}")


def default_limits(cpu_workers: int, threads: int) -> dict[str, Limit]:
    """The limits a server gets unless told otherwise (see docs/web.md, "Admission").

    ``cpu``: eight slots per worker process, so the runtime always has the next call queued when
    a worker finishes one (a worker never idles waiting for the loop to hand it work) and can
    batch tiny calls into one round trip, and a queue cap of 256 per worker (the memory bound: what the deadline allows decides before it);
    ``blocking``: one slot per thread, cap 32 per thread; ``inline``: one at a time (inline work
    blocks the loop), cap 4. Refusals of offloaded kinds are held 0.5 s (``Limit.pause``).
    """
    return {
        "cpu": Limit(8 * cpu_workers, 256 * cpu_workers, pause=_PAUSE),
        "blocking": Limit(threads, 32 * threads, pause=_PAUSE),
        "inline": Limit(1, 4),
        # kind="auto" picks one of the others per function; its gate bounds them together.
        "auto": Limit(8 * cpu_workers + threads, 256 * cpu_workers, pause=_PAUSE),
        # kind="interpreter": like processes, one lane per interpreter.
        "interpreter": Limit(8 * cpu_workers, 256 * cpu_workers, pause=_PAUSE),
    }


class Rejected(OffloadError):
    """Raised when a request is refused: every slot is taken and the queue cannot take it."""

    def __init__(self, kind: str, limit: Limit, reason: str, retry_after: float) -> None:
        self.kind = kind
        self.limit = limit
        self.retry_after = retry_after
        self.reason = reason
        super().__init__(f"server busy: {reason}; retry in {retry_after_header(retry_after)} s")

    def __reduce__(self) -> tuple[object, ...]:
        return (Rejected, (self.kind, self.limit, self.reason, self.retry_after))


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` takes whole seconds."""
    return str(max(1, math.ceil(seconds)))


class Gate:
    """The admission state of one kind: a FIFO semaphore, who waits on it, how long slots last."""

    def __init__(self, kind: str, limit: Limit) -> None:
        self.kind = kind
        self.limit = limit
        self._slots = anyio.Semaphore(limit.in_flight)
        # Inline work blocks the loop: a request admitted as inline yields once before it runs,
        # so that requests that arrived with it reach the gate (and can be queued or refused).
        self._yield_first = kind == "inline"
        self.waiting = 0
        #: Refusals being held (``Limit.pause``) before their 503 goes out.
        self.pausing = 0
        self.admitted = 0
        self.rejected = 0
        #: Moving average of the seconds a request holds a slot (0: nothing measured yet).
        self.service_time = 0.0

    @property
    def in_flight(self) -> int:
        """Requests holding a slot now."""
        return self.limit.in_flight - self._slots.value

    def expected_wait(self) -> float:
        """Seconds the next request to queue would wait, from the measured service time."""
        return (self.waiting + 1) * self.service_time / self.limit.in_flight

    def _refuse(self, reason: str) -> Rejected:
        self.rejected += 1
        drain = self.waiting * self.service_time / self.limit.in_flight
        return Rejected(self.kind, self.limit, reason, drain or self.limit.retry_after)

    async def pause(self) -> None:
        """Hold a refusal for ``limit.pause`` seconds, unless ``MAX_HELD`` are held already."""
        if self.limit.pause and self.pausing < MAX_HELD:
            self.pausing += 1
            try:
                await anyio.sleep(self.limit.pause)
            finally:
                self.pausing -= 1

    @asynccontextmanager
    async def admit(self, deadline: float | None = None) -> AsyncIterator[None]:
        """Hold a slot for the body (``enter`` then ``leave``)."""
        start = await self.enter(deadline)
        try:
            yield
        finally:
            self.leave(start)

    async def enter(self, deadline: float | None = None) -> float:
        """Take a slot; queue if it can be served by ``deadline``, else refuse.

        ``deadline`` is a ``time.monotonic()`` value (None: no deadline). Returns the time the
        slot was taken, for ``leave``.

        Raises:
            Rejected: the queue is at its cap, or the request would not finish before its
                deadline (estimated from the measured time a request holds a slot).
        """
        try:
            self._slots.acquire_nowait()
        except anyio.WouldBlock:
            await self._queue(deadline)
        else:
            # A free slot is always taken: the work starts now, and refusing here would starve
            # the gate of the very measurements that tell it the server got faster again.
            if self._yield_first:
                try:
                    await anyio.lowlevel.checkpoint()
                except BaseException:
                    self._slots.release()
                    raise
        self.admitted += 1
        return time.monotonic()

    def leave(self, start: float) -> None:
        """Give back the slot taken at ``start`` (what ``enter`` returned)."""
        held = time.monotonic() - start
        self.service_time += _EWMA * (held - self.service_time) if self.service_time else held
        self._slots.release()

    async def _queue(self, deadline: float | None) -> None:
        if self.waiting >= self.limit.queue:
            raise self._refuse(
                f"{self.limit.in_flight} {self.kind} requests running and "
                f"{self.waiting} waiting (the most allowed)"
            )
        if not self.service_time and self.waiting >= self.limit.in_flight:
            # Nothing measured yet (a cold start meeting a burst): one round of waiters.
            raise self._refuse(
                f"{self.waiting} {self.kind} requests waiting and no service time measured yet"
            )
        if deadline is not None and self.service_time:
            wait = self.expected_wait()
            if time.monotonic() + wait > deadline:
                raise self._refuse(
                    f"{self.waiting} {self.kind} requests waiting: about {wait:.2g} s, "
                    "past this request's deadline"
                )
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        if deadline is not None and time.monotonic() + _MARGIN * self.service_time > deadline:
            # It waited longer than estimated: starting work that cannot finish in time
            # would only waste a worker (a process call past its deadline is killed).
            self._slots.release()
            raise self._refuse(
                f"this request waited too long for a {self.kind} slot to finish before its deadline"
            )


class Admission:
    """One ``Gate`` per offload kind."""

    def __init__(self, limits: dict[str, Limit]) -> None:
        self.gates = {kind: Gate(kind, limit) for kind, limit in limits.items()}

    def gate(self, kind: str) -> Gate:
        """The gate of ``kind``; ``KeyError`` with the known kinds when there is none."""
        try:
            return self.gates[kind]
        except KeyError:
            raise KeyError(
                f"no admission limit for kind {kind!r}; known: {', '.join(sorted(self.gates))}"
            ) from None
