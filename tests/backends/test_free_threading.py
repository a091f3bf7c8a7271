"""Where kind="cpu" runs: processes, or threads on a free-threaded CPython with the GIL off."""

from __future__ import annotations

import os
import sys
import sysconfig
import threading

import pytest

from hybridio import Runtime
from hybridio._runtime._gil import cpu_runs_on_threads, free_threaded_build, gil_enabled

from . import _cpu_workload as w


@pytest.mark.parametrize(
    ("cpu_backend", "gil_on", "threads"),
    [
        ("auto", True, False),
        ("auto", False, True),
        ("process", True, False),
        ("process", False, False),
        ("thread", True, True),
        ("thread", False, True),
    ],
)
def test_decision(cpu_backend: str, gil_on: bool, threads: bool) -> None:
    assert cpu_runs_on_threads(cpu_backend, gil_enabled=gil_on) is threads


def test_decision_rejects_unknown_values() -> None:
    with pytest.raises(ValueError, match="cpu_backend must be one of"):
        cpu_runs_on_threads("green", gil_enabled=True)
    with pytest.raises(ValueError, match="cpu_backend must be one of"):
        Runtime(cpu_backend="green")  # type: ignore[arg-type]


def test_detection_matches_this_build() -> None:
    assert free_threaded_build() is bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    if not free_threaded_build():
        assert gil_enabled()  # only a free-threaded build can run without the GIL
    if sys.version_info >= (3, 13):
        assert gil_enabled() is sys._is_gil_enabled()


def test_runtime_reports_where_cpu_work_runs() -> None:
    assert Runtime(cpu_backend="process").cpu_on_threads is False
    assert Runtime(cpu_backend="thread").cpu_on_threads is True
    assert Runtime().cpu_on_threads is (not gil_enabled())


@pytest.mark.anyio
async def test_thread_backend_runs_cpu_work_in_this_process_without_pickling() -> None:
    async with Runtime(cpu_backend="thread", cpu_workers=2) as rt:
        pid, thread = await rt.run_cpu(w.where)
        assert pid == os.getpid()
        assert thread != threading.get_ident()
        assert await rt.run_cpu(w.locked, threading.Lock())  # a lock cannot be pickled
        assert rt.worker_pids() == []
        assert rt.stats()["cpu"].completed == 2


@pytest.mark.anyio
async def test_process_backend_runs_cpu_work_in_worker_processes() -> None:
    async with Runtime(cpu_backend="process", cpu_workers=1) as rt:
        pid, _ = await rt.run_cpu(w.where)
        assert pid != os.getpid()
        assert rt.worker_pids() == [pid]


@pytest.mark.anyio
@pytest.mark.skipif(
    gil_enabled(),
    reason="the GIL is on here: needs a free-threaded CPython run with the GIL off (python3.13t)",
)
async def test_auto_runs_cpu_work_on_threads_when_the_gil_is_off() -> None:
    async with Runtime(cpu_workers=2) as rt:
        pid, _ = await rt.run_cpu(w.where)
        assert pid == os.getpid()


def test_interpreters_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interpreters"):
        Runtime(interpreters=0)
    assert Runtime(interpreters=3).interpreters == 3
