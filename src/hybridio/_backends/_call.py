"""One offloaded call as the dispatcher tracks it (kept apart so that ``map`` loads no dispatcher)."""

from __future__ import annotations

from time import perf_counter
from typing import Any

from .._core._signal import Signal

__all__ = ["DONE", "PENDING", "RUNNING", "Call"]

PENDING, RUNNING, DONE = 0, 1, 2


class Call:
    """One submitted call: its payload, its state, and where its outcome goes."""

    __slots__ = (
        "abandoned",
        "done",
        "error",
        "lane",
        "name",
        "payload",
        "run_time",
        "state",
        "submitted",
        "value",
    )

    def __init__(self, name: str, payload: Any, done: Signal | None) -> None:
        self.name = name
        self.payload = payload
        self.state = PENDING
        self.abandoned = False
        self.done = done  # None for a call its caller drives itself (nobody waits on it)
        self.value: Any = None
        self.error: BaseException | None = None
        self.submitted = perf_counter()
        self.run_time = 0.0
        self.lane: Any = None  # the dispatcher's lane running it

    def resolve(self, value: Any = None, error: BaseException | None = None) -> None:
        self.state = DONE
        self.value = value
        self.error = error
        done = self.done
        if done is not None and not done.done():  # a cancelled caller cancelled it
            done.set_result(None)

    def outcome(self) -> Any:
        error = self.error
        if error is not None:
            # Raised once: the traceback would hold this call, and the call the error (a cycle
            # that only the gc could free, with the call's arguments).
            self.error = None
            try:
                raise error
            finally:
                del error
        return self.value
