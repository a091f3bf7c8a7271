"""Functions the cluster's workers run: a module they can import (the tests' package is on their path)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import hybridio

_prepared: list[str] = []


def where() -> int:
    return os.getpid()


def square(x: int) -> int:
    return x * x


def fail(message: str) -> None:
    raise ValueError(message)


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def prepare(tag: str) -> None:
    """A Runtime initializer: leaves a mark in the worker process."""
    _prepared.append(tag)


def prepared() -> list[str]:
    return list(_prepared)


def die() -> None:
    """Kill the worker process running this call (a crash the function cannot catch)."""
    os.kill(os.getpid(), signal.SIGKILL)


def die_once(marker: str) -> str:
    """Kill this worker the first time (leaving ``marker``); succeed when Dask runs it again."""
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return "ran again"


def report_then_nap(marker: str, seconds: float) -> int:
    """Write this worker's pid to ``marker`` (so a test can kill it), then sleep."""
    Path(marker).write_text(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


@hybridio.cpu_bound
def cube(x: int) -> int:
    return x * x * x
