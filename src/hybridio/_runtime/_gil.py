"""Free-threaded CPython: is the GIL off here, and where ``kind="cpu"`` runs because of it.

On a free-threaded build (``python3.13t``, ``Py_GIL_DISABLED``) with the GIL off, threads run
pure-Python code in parallel: ``kind="cpu"`` can then run on threads, with no pickling, no
worker start-up and no copies of the arguments. The GIL can be on even in such a build (``-X
gil=1``, ``PYTHON_GIL=1``, or an extension module imported that does not declare itself safe
without it), so the decision reads ``sys._is_gil_enabled()`` when the backend is created.
"""

from __future__ import annotations

import sys
import sysconfig
from typing import Literal

__all__ = [
    "CPU_BACKENDS",
    "CpuBackend",
    "cpu_runs_on_threads",
    "free_threaded_build",
    "gil_enabled",
]

CpuBackend = Literal["auto", "process", "thread"]
CPU_BACKENDS: tuple[CpuBackend, ...] = ("auto", "process", "thread")


def free_threaded_build() -> bool:
    """True on a CPython built with ``--disable-gil`` (whether or not the GIL is on now)."""
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def gil_enabled() -> bool:
    """True when the GIL is on now (always, before Python 3.13)."""
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return True if is_enabled is None else bool(is_enabled())


def cpu_runs_on_threads(cpu_backend: str, *, gil_enabled: bool) -> bool:
    """Whether ``kind="cpu"`` runs on threads: the decision, from explicit inputs.

    ``"process"`` and ``"thread"`` are what they say; ``"auto"`` is threads exactly when the GIL
    is off (measured on a free-threaded 3.13: see docs/core.md).
    """
    if cpu_backend == "process":
        return False
    if cpu_backend == "thread":
        return True
    if cpu_backend == "auto":
        return not gil_enabled
    raise ValueError(
        f"cpu_backend must be one of {', '.join(map(repr, CPU_BACKENDS))}, got {cpu_backend!r}"
    )
