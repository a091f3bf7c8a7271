"""The inline backend: run the function on the event loop's own thread."""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any

import anyio

from .._core._exceptions import OffloadTimeout
from ._base import Backend, function_name
from ._worker import unwrap

__all__ = ["InlineBackend"]


class InlineBackend(Backend):
    """Runs calls inline: no offload cost, but the loop is blocked while they run.

    Inline work cannot be interrupted. A ``timeout`` is checked when the function returns: if it
    overran, its result is discarded and ``OffloadTimeout`` is raised, so a deadline means the same
    thing on every kind.
    """

    kind = "inline"

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
