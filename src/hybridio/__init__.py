"""hybridio: run async services that mix I/O-bound and CPU-bound work, safely and measurably.

The event loop does I/O; ``run_cpu`` sends pure-Python CPU work to worker processes,
``run_blocking`` sends blocking calls to worker threads, and ``Runtime.stats()`` says what each
choice cost. Built on anyio: works on asyncio, asyncio+uvloop and trio.
"""

from ._backends._map import OffloadMap as OffloadMap
from ._core._cancel import cancel_requested as cancel_requested
from ._core._exceptions import BackendUnavailable as BackendUnavailable
from ._core._exceptions import FunctionAborted as FunctionAborted
from ._core._exceptions import HybridioError as HybridioError
from ._core._exceptions import NotPicklable as NotPicklable
from ._core._exceptions import OffloadError as OffloadError
from ._core._exceptions import OffloadTimeout as OffloadTimeout
from ._core._exceptions import Overloaded as Overloaded
from ._core._exceptions import RemoteTraceback as RemoteTraceback
from ._core._exceptions import RuntimeClosed as RuntimeClosed
from ._core._exceptions import WorkerCrashed as WorkerCrashed
from ._core._exceptions import WorkerStartFailed as WorkerStartFailed
from ._core._metrics import AutoDecision as AutoDecision
from ._core._metrics import FunctionStats as FunctionStats
from ._core._metrics import HistogramSnapshot as HistogramSnapshot
from ._core._metrics import KindStats as KindStats
from ._core._metrics import RuntimeStats as RuntimeStats
from ._export import prometheus_text as prometheus_text
from ._monitor._loop_monitor import LoopMonitor as LoopMonitor
from ._monitor._report import BlockEvent as BlockEvent
from ._monitor._report import LoopReport as LoopReport
from ._monitor._report import StackFrame as StackFrame
from ._runtime._api import OffloadedFunction as OffloadedFunction
from ._runtime._api import blocking as blocking
from ._runtime._api import cpu_bound as cpu_bound
from ._runtime._api import map_cpu as map_cpu
from ._runtime._api import offload as offload
from ._runtime._api import run as run
from ._runtime._api import run_blocking as run_blocking
from ._runtime._api import run_cpu as run_cpu
from ._runtime._runtime import Kind as Kind
from ._runtime._runtime import Runtime as Runtime
from ._version import __version__ as __version__

#: The former name of ``OffloadMap`` (``map_cpu`` returned a ``CpuMap``); kept as an alias.
CpuMap = OffloadMap

__all__ = [
    "AutoDecision",
    "BackendUnavailable",
    "BlockEvent",
    "CpuMap",
    "FunctionAborted",
    "FunctionStats",
    "HistogramSnapshot",
    "HybridioError",
    "Kind",
    "KindStats",
    "LoopMonitor",
    "LoopReport",
    "NotPicklable",
    "OffloadError",
    "OffloadMap",
    "OffloadTimeout",
    "OffloadedFunction",
    "Overloaded",
    "RemoteTraceback",
    "Runtime",
    "RuntimeClosed",
    "RuntimeStats",
    "StackFrame",
    "WorkerCrashed",
    "WorkerStartFailed",
    "__version__",
    "blocking",
    "cancel_requested",
    "cpu_bound",
    "map_cpu",
    "offload",
    "prometheus_text",
    "run",
    "run_blocking",
    "run_cpu",
]

# Public names say where users import them from (as httpx does): tracebacks, reprs and docs
# show `hybridio.Runtime`, not the private module that defines it.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or (callable(_obj) and hasattr(_obj, "__code__")):
        _obj.__module__ = "hybridio"
del _name, _obj
