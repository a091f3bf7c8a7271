"""The loop thread's own account of a block: seconds it ran on a CPU, seconds it waited for one.

A late heartbeat alone cannot tell code that held the loop from a loop that was ready to run but
got no CPU (other processes took the cores): both are late. The loop thread's CPU time can.

* On a CPU: ``time.thread_time()``, read on the loop thread itself at each heartbeat: exact
  (``CLOCK_THREAD_CPUTIME_ID``), about 1 us, on every platform.
* Waiting for a CPU: on Linux, the second field of ``/proc/self/task/<tid>/schedstat``: the
  nanoseconds the scheduler kept the thread runnable but not running (its run-queue delay,
  ``CONFIG_SCHED_INFO``, on in common kernels). One ``pread`` of a file kept open, about 3 us.
  Elsewhere (or when the file is missing) it is unknown (``None``).

Why not the watchdog thread: ``thread_time`` only measures the calling thread, and reading
another thread's counters needs the same ``/proc`` file anyway; reading both on the loop thread,
once per heartbeat, keeps the window exactly the heartbeat's (from one beat to the next).
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["ThreadClock"]


class ThreadClock:
    """CPU time and run-queue delay of the thread that creates it; read it on that thread."""

    def __init__(self) -> None:
        self._fd: int | None = None
        path = f"/proc/self/task/{threading.get_native_id()}/schedstat"
        try:
            self._fd = os.open(path, os.O_RDONLY)
            self._waited()  # the format is what we expect, or we do without it
        except (OSError, ValueError, IndexError):
            self.close()

    def read(self) -> tuple[float, float | None]:
        """``(cpu, waited)``: seconds this thread ran on a CPU and (Linux) waited for one."""
        return time.thread_time(), self._waited()

    def _waited(self) -> float | None:
        if self._fd is None:
            return None
        return int(os.pread(self._fd, 128, 0).split()[1]) / 1e9

    def close(self) -> None:
        """Close the ``/proc`` file; later reads report no run-queue delay."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
