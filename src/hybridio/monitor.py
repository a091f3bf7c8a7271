"""Loop health: measure event-loop lag and name the code that blocks the loop.

Example::

    async with hybridio.LoopMonitor() as monitor:
        await serve()
    print(monitor.report())
"""

from __future__ import annotations

from ._monitor._loop_monitor import LoopMonitor
from ._monitor._report import BlockCause, BlockEvent, LoopReport, StackFrame

__all__ = ["BlockCause", "BlockEvent", "LoopMonitor", "LoopReport", "StackFrame"]
