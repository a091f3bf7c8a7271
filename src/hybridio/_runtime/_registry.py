"""Which module builds the backend of each kind: loaded by name on first use, like anyio's backends.

A backend module has a ``create(settings, counters)`` function returning the backend. Adding a
kind is one line here (and its name in ``Kind``).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Protocol

from .._core._metrics import KindCounters
from .._core._settings import Settings
from ._gil import cpu_runs_on_threads, gil_enabled

if TYPE_CHECKING:
    from .._backends._base import Backend

__all__ = ["BACKENDS", "CLUSTER_BACKEND", "create_backend"]

#: kind -> module with its ``create`` factory
BACKENDS: dict[str, str] = {
    "inline": "hybridio._backends._inline",
    "blocking": "hybridio._backends._thread",
    "cpu": "hybridio._backends._process",
    "interpreter": "hybridio._backends._interpreter",
}

#: The module of kind "cpu" when the runtime has a cluster (``Runtime(cluster=...)``).
CLUSTER_BACKEND = "hybridio._backends._cluster"
#: ``kind="cpu"`` where threads run Python in parallel (free-threaded CPython, GIL off)
CPU_ON_THREADS = "hybridio._backends._cpu_thread"


class _Factory(Protocol):
    def __call__(self, settings: Settings, counters: KindCounters) -> Backend: ...


def create_backend(
    kind: str, settings: Settings, counters: KindCounters, *, cluster: object | None = None
) -> Backend:
    """Import the kind's backend module and build its backend (``cluster``: see ``Runtime``)."""
    if cluster is not None and kind == "cpu":
        backend: Backend = import_module(CLUSTER_BACKEND).create(
            settings, counters, cluster=cluster
        )
        return backend
    module = BACKENDS[kind]
    if kind == "cpu" and cpu_runs_on_threads(settings.cpu_backend, gil_enabled=gil_enabled()):
        module = CPU_ON_THREADS
    factory: _Factory = import_module(module).create
    return factory(settings, counters)
