"""Blocks that hold on a busy machine: they last until the watchdog has sampled them."""

from __future__ import annotations

from hybridio.monitor import LoopMonitor


def sampled(monitor: LoopMonitor) -> bool:
    """The watchdog has sampled the loop during the block under way (the heartbeat is late).

    A watchdog starved of CPU can wake 200 ms late: a test's block that ends before it is
    sampled would be a stall, so the blocking helpers of the tests wait for this.
    """
    pending, state = monitor._pending, monitor._state
    return pending is not None and state is not None and pending[0] == state[0]
