"""The demo server's work functions: pure-Python CPU work, blocking sleeps, hashing.

They run in worker processes too, so this module imports nothing heavy (no aiohttp): a worker
imports it by reference when it unpickles a call.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time

from .._workloads import calibrate as loops_per_second
from .._workloads import spin

__all__ = ["calibrate", "hash_buffer", "prepare_worker", "sleep_ms", "spin"]

# One zero-filled buffer per process, grown on demand: allocating tens of MiB per request would
# measure the allocator, not the hash.
_buffer = bytearray()


def calibrate(target_seconds: float = 0.05) -> float:
    """How many ``spin`` loops take one millisecond on this machine, measured now."""
    return loops_per_second(target_seconds) / 1000.0


def sleep_ms(ms: float) -> float:
    """A blocking call: sleep ``ms`` milliseconds (releases the GIL, blocks its thread)."""
    time.sleep(ms / 1000.0)
    return ms


def hash_buffer(nbytes: int) -> str:
    """SHA-256 of ``nbytes`` zero bytes: C code that releases the GIL while it runs."""
    global _buffer
    if len(_buffer) < nbytes:
        _buffer = bytearray(nbytes)
    return hashlib.sha256(memoryview(_buffer)[:nbytes]).hexdigest()


def prepare_worker(nice: int) -> None:
    """Initialise a server's worker process: lower its priority, leave shutdown to the server.

    Ctrl-C in a terminal signals the whole process group: workers ignore SIGINT/SIGTERM so that
    requests in flight can finish while the server drains; the server stops them afterwards.
    """
    if nice and hasattr(os, "nice"):
        os.nice(nice)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
