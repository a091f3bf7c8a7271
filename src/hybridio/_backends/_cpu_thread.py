"""``kind="cpu"`` on threads: for a free-threaded CPython with the GIL off (or when asked).

The thread executor with CPU-work settings: ``cpu_workers`` lanes spread over in parallel (with
the GIL off, threads run Python code at the same time), batches sized like process batches.
Nothing is pickled. A running call cannot be killed: as for ``kind="blocking"``, a caller that
gives up is answered at once and the call sees ``hybridio.cancel_requested()`` turn true.
"""

from __future__ import annotations

from typing import ClassVar

from .._core._metrics import KindCounters
from .._core._settings import Settings
from ._dispatch import Dispatcher
from ._executor import Capabilities
from ._thread import ThreadExecutor, _Slot

__all__ = ["CpuThreadExecutor", "create"]


class CpuThreadExecutor(ThreadExecutor):
    """CPU-kind executor on threads: parallel lanes, one thread each."""

    kind: ClassVar[str] = "cpu"
    capabilities: ClassVar[Capabilities] = Capabilities(can_kill=False, parallel=True)


def create(settings: Settings, counters: KindCounters) -> Dispatcher[_Slot]:
    """The registry's factory for ``kind="cpu"`` when it runs on threads."""
    return Dispatcher(
        CpuThreadExecutor(settings.cpu_workers),
        counters,
        workers=settings.cpu_workers,
        max_queue=settings.max_queue,
        batching=settings.batching,
        max_batch=256,
        batch_seconds=0.005,
    )
