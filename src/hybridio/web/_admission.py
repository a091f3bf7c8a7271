"""Admission control per offload kind: a bounded number in flight plus a bounded queue.

A request that finds both full is refused at once (HTTP 503 + ``Retry-After``): a server that
queues without bound answers everyone late instead of most people on time.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

__all__ = ["Admission", "Gate", "Limit", "Rejected"]


@dataclass(frozen=True)
class Limit:
    """How much work of one kind a server admits.

    Args:
        in_flight: requests of this kind allowed to run at once.
        queue: requests allowed to wait for a free slot; one more is refused at once.
        retry_after: seconds suggested to refused clients (sent rounded up, at least 1).

    Example::

        hybridio.web.create_app(limits={"cpu": Limit(in_flight=4, queue=8)})
    """

    in_flight: int
    queue: int = 0
    retry_after: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.in_flight, int) or isinstance(self.in_flight, bool):
            raise TypeError(f"Limit.in_flight must be an int, got {self.in_flight!r}")
        if self.in_flight < 1:
            raise ValueError(f"Limit.in_flight must be >= 1, got {self.in_flight}")
        if not isinstance(self.queue, int) or isinstance(self.queue, bool) or self.queue < 0:
            raise ValueError(f"Limit.queue must be an int >= 0, got {self.queue!r}")
        if not self.retry_after > 0 or not math.isfinite(self.retry_after):
            raise ValueError(f"Limit.retry_after must be a positive number, got {self.retry_after}")


class Rejected(Exception):
    """Raised when a request is refused because its kind's slots and queue are all taken."""

    def __init__(self, kind: str, limit: Limit) -> None:
        self.kind = kind
        self.limit = limit
        super().__init__(
            f"server busy: {limit.in_flight} {kind} requests running and {limit.queue} waiting; "
            f"retry in {retry_after_header(limit.retry_after)} s"
        )


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` takes whole seconds."""
    return str(max(1, math.ceil(seconds)))


class Gate:
    """The admission state of one kind: a FIFO semaphore plus a count of who waits on it."""

    def __init__(self, kind: str, limit: Limit) -> None:
        self.kind = kind
        self.limit = limit
        self._slots = anyio.Semaphore(limit.in_flight)
        self.waiting = 0
        self.admitted = 0
        self.rejected = 0

    @property
    def in_flight(self) -> int:
        """Requests holding a slot now."""
        return self.limit.in_flight - self._slots.value

    @asynccontextmanager
    async def admit(self, timeout: float | None = None) -> AsyncIterator[None]:
        """Hold a slot for the body; wait in the queue if there is room, else raise ``Rejected``.

        Raises:
            Rejected: every slot is taken and the queue is full.
            TimeoutError: no slot freed up within ``timeout`` seconds.
        """
        try:
            self._slots.acquire_nowait()
        except anyio.WouldBlock:
            if self.waiting >= self.limit.queue:
                self.rejected += 1
                raise Rejected(self.kind, self.limit) from None
            self.waiting += 1
            try:
                with anyio.fail_after(timeout):
                    await self._slots.acquire()
            finally:
                self.waiting -= 1
        self.admitted += 1
        try:
            yield
        finally:
            self._slots.release()


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
