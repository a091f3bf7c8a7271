"""What the runtime needs of a backend: start, run a call, close."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from anyio.abc import TaskGroup

__all__ = ["Backend"]


class Backend(Protocol):
    """Runs calls of one kind. Created and owned by a Runtime; used only from its event loop."""

    kind: str

    def start(self, task_group: TaskGroup) -> None:
        """Start background tasks (if any) in the runtime's task group."""

    def call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], *, timeout: float | None
    ) -> Awaitable[Any]:
        """Run ``fn(*args)`` and return what to await for its result.

        Admission errors (``Overloaded``, ``NotPicklable``) are raised at once, before any await.
        """

    async def aclose(self) -> None:
        """Stop accepting work and release resources (workers, threads)."""

    def worker_ids(self) -> list[int]:
        """Ids of live workers (process ids), for diagnostics."""
