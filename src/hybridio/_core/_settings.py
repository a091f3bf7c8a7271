"""The settings of a Runtime that its backends read (validated once, by the Runtime)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    """What a backend factory needs to build a backend; see ``Runtime`` for each field."""

    cpu_workers: int
    threads: int
    max_queue: int
    initializer: Callable[..., Any] | None
    initargs: tuple[Any, ...]
    max_tasks_per_worker: int | None
    max_worker_rss: int | None
    batching: bool
    #: subinterpreters of ``kind="interpreter"`` (Python 3.13+)
    interpreters: int = 1
    #: where ``kind="cpu"`` runs: "auto" (threads when the GIL is off), "process" or "thread"
    cpu_backend: str = "auto"
