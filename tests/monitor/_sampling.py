"""Blocks that hold on a busy machine: they last until the watchdog has sampled them."""

from __future__ import annotations

import sys
import time
from collections.abc import Collection

from hybridio.monitor import LoopMonitor


def sampled(monitor: LoopMonitor) -> bool:
    """The watchdog has sampled the loop during the block under way (the heartbeat is late).

    A watchdog starved of CPU can wake 200 ms late: a test's block that ends before it is
    sampled would be a stall, so the blocking helpers of the tests wait for this.
    """
    pending, state = monitor._pending, monitor._state
    return pending is not None and state is not None and pending[0] == state[0]


# Where each loop waits for I/O when it has nothing to do: asyncio's selector, trio's epoll or
# kqueue, and queue.Queue.get for trio's guest run under anyio's pytest plugin (innermost:
# threading's Condition.wait). uvloop waits in C: no frame above the loop's own.
_WAITS = {
    ("selectors", "select"),
    ("trio._core._io_epoll", "get_events"),
    ("trio._core._io_kqueue", "get_events"),
    ("queue", "get"),
}


def parked(thread_id: int, base: Collection[int]) -> bool:
    """The loop on ``thread_id`` is waiting for I/O (``base``: the ids of the frames running it)."""
    frame = sys._current_frames().get(thread_id)
    if frame is None or id(frame) in base:
        return True
    if frame.f_code.co_name == "wait" and frame.f_back is not None:
        frame = frame.f_back  # Condition.wait: parked only if queue.Queue.get called it
    module = frame.f_globals.get("__name__")
    return (module, frame.f_code.co_name) in _WAITS


def wait_until_parked(thread_id: int, base: Collection[int]) -> None:
    """From another thread: return once the loop has gone back to waiting (a busy machine may
    take a while to run it there)."""
    deadline = time.monotonic() + 20
    while not parked(thread_id, base):
        assert time.monotonic() < deadline, "the event loop never went back to waiting"
        time.sleep(0.001)
