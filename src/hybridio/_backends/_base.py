"""The interface every backend implements, and the bookkeeping of one offloaded call."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from anyio.abc import TaskGroup

from .._core._metrics import KindCounters

__all__ = ["Backend", "function_name"]


def function_name(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of a callable, looking through ``functools.partial``."""
    while hasattr(fn, "func"):  # functools.partial, possibly nested
        fn = fn.func
    module = getattr(fn, "__module__", None) or "?"
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{qualname}"


class Backend(ABC):
    """Runs calls of one kind. Created and owned by a Runtime; used only from its event loop."""

    kind: ClassVar[str]

    def __init__(self, counters: KindCounters) -> None:
        self.counters = counters

    async def start(self, task_group: TaskGroup) -> None:  # noqa: B027 - optional hook
        """Start background tasks (if any) in the runtime's task group."""

    @abstractmethod
    def call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], *, timeout: float | None
    ) -> Awaitable[Any]:
        """Run ``fn(*args)`` and return its result, or raise its exception or an offload error.

        An ``async def`` or a function returning the awaitable to await.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Stop accepting work and release resources (workers, threads)."""
