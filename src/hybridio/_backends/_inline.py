"""The inline backend: run the function on the event loop's own thread."""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any

import anyio
from anyio.abc import TaskGroup

from .._core._exceptions import OffloadTimeout
from .._core._metrics import KindCounters
from .._core._names import function_name, unwrap
from .._core._settings import Settings

__all__ = ["InlineBackend", "create"]


class InlineBackend:
    """Runs calls inline: no offload cost, but the loop is blocked while they run.

    Inline work cannot be interrupted. A ``timeout`` is checked when the function returns: if it
    overran, its result is discarded and ``OffloadTimeout`` is raised, so a deadline means the same
    thing on every kind.
    """

    kind = "inline"

    def __init__(self, counters: KindCounters) -> None:
        self.counters = counters

    def start(self, task_group: TaskGroup) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def worker_ids(self) -> list[int]:
        return []

    async def call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], *, timeout: float | None
    ) -> Any:
        await anyio.lowlevel.checkpoint_if_cancelled()
        counters = self.counters
        counters.calls += 1
        counters.in_flight += 1
        start = perf_counter()
        try:
            value = unwrap(fn)(*args)
        except BaseException:
            counters.errors += 1
            raise
        finally:
            counters.in_flight -= 1
            elapsed = perf_counter() - start
            counters.record_timing(
                function_name(fn), queue_wait=0.0, run_time=elapsed, latency=elapsed
            )
        if timeout is not None and elapsed > timeout:
            counters.timeouts += 1
            raise OffloadTimeout(
                self.kind,
                timeout,
                function_name(fn),
                f" (it ran {elapsed:.3g} s on the event loop, which cannot be interrupted; "
                "its result was discarded)",
            )
        counters.completed += 1
        return value


def create(settings: Settings, counters: KindCounters) -> InlineBackend:
    """The registry's factory for ``kind="inline"``."""
    return InlineBackend(counters)
