"""How busy the machine is while the bench runs: other processes' CPU use, steal, load average.

A sampler thread reads the machine's CPU times and this process tree's every quarter second; the
difference is what *other* processes used. Each series asks for the load during its own window.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psutil

from .._doctor import usable_cpus

#: Busy when other processes use this share of the usable CPUs, or the hypervisor steals 10%.
BUSY_SHARE, BUSY_STEAL, INTERVAL = 0.25, 10.0, 0.25


@dataclass(frozen=True)
class Load:
    """Mean load over a time window: ``others`` in CPU cores, ``steal`` in % of CPU time."""

    others: float
    steal: float
    load_average: float
    cpus: int
    samples: int

    @property
    def busy(self) -> bool:
        """True when other work competed for the CPUs enough to bias a timing."""
        return self.others >= BUSY_SHARE * self.cpus or self.steal >= BUSY_STEAL

    def text(self) -> str:
        """ "other processes used 1.4 of 2 CPUs, steal 0%, load average 3.1"."""
        return (
            f"other processes used {self.others:.1f} of {self.cpus} CPUs, steal "
            f"{self.steal:.0f}%, load average {self.load_average:.1f}"
        )


def _cpu(process: psutil.Process) -> float:
    try:
        t = process.cpu_times()
        return t.user + t.system + t.children_user + t.children_system
    except psutil.Error:
        return 0.0  # it exited meanwhile (its parent's children_* times count it once waited)


def _sample(me: psutil.Process) -> tuple[float, float, float, float]:
    """(time, machine busy CPU s, stolen CPU s, CPU s of this process tree)."""
    t = psutil.cpu_times()
    busy = sum(getattr(t, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))
    ours = _cpu(me) + sum(_cpu(child) for child in me.children(recursive=True))
    return time.monotonic(), busy, getattr(t, "steal", 0.0), ours


#: (time, other processes' CPUs, steal %, load average) of the enclosing ``watch()``, or None.
_samples: list[tuple[float, float, float, float]] | None = None


@contextmanager
def watch() -> Iterator[None]:
    """Sample the load in a daemon thread for the duration of the block (``during`` reads it)."""
    global _samples
    samples: list[tuple[float, float, float, float]] = []
    stop = threading.Event()

    def run() -> None:
        me, ncpu = psutil.Process(), psutil.cpu_count() or 1
        last = _sample(me)
        while not stop.wait(INTERVAL):
            now = _sample(me)
            if (wall := now[0] - last[0]) > 0:
                others = max(0.0, (now[1] - last[1]) - (now[3] - last[3])) / wall
                steal = 100 * (now[2] - last[2]) / (wall * ncpu)
                samples.append((now[0], others, steal, os.getloadavg()[0]))
            last = now

    thread = threading.Thread(target=run, name="hybridio-load", daemon=True)
    thread.start()
    previous, _samples = _samples, samples
    try:
        yield
    finally:
        _samples = previous
        stop.set()
        thread.join()


def during(start: float, end: float) -> Load | None:
    """The mean load between two ``time.monotonic()`` readings, from the enclosing ``watch()``
    (None outside one, or before its first sample); a short window gets the nearest sample."""
    samples = _samples or []
    inside = [s for s in samples if start <= s[0] <= end + INTERVAL]
    if not inside and samples:
        inside = [min(samples, key=lambda s: abs(s[0] - end))]
    if not inside:
        return None
    others, steal, load = (sum(s[i] for s in inside) / len(inside) for i in (1, 2, 3))
    return Load(others, steal, load, usable_cpus(), len(inside))
