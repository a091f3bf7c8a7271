"""anyio's ``tests/test_to_process.py``, translated case by case to ``hybridio.run_cpu``.

Source: github.com/agronholm/anyio at 660a06d (tests/test_to_process.py). Each case keeps the
original's scenario and assertion and names it in a comment.

Not translated (specific to anyio's own API or internals):
- ``test_exec_while_pruning``: mocks anyio's private idle-worker deque and its pruning of workers
  idle for ``WORKER_MAX_IDLE_TIME``; hybridio keeps no such list (workers live as long as the
  runtime).
- ``cancellable=True``: hybridio has no such flag; a process call is always killed when its caller
  is cancelled (the ``cancellable=True`` behaviour), so ``test_cancel_during`` is translated with it.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path

import anyio
import pytest

import hybridio
from hybridio import Runtime

from . import _funcs as f

pytestmark = pytest.mark.anyio


# anyio tests/test_to_process.py::test_run_sync_in_process_pool
async def test_run_sync_in_process_pool() -> None:
    async with Runtime(cpu_workers=1) as rt:
        worker_pid = await rt.run_cpu(os.getpid)
        assert worker_pid != os.getpid()
        assert await rt.run_cpu(os.getpid) == worker_pid


# anyio tests/test_to_process.py::test_identical_sys_path
async def test_identical_sys_path() -> None:
    async with Runtime(cpu_workers=1) as rt:
        assert await rt.run_cpu(f.sys_path) == sys.path


# anyio tests/test_to_process.py::test_partial
async def test_partial() -> None:
    async with Runtime(cpu_workers=1) as rt:
        assert await rt.run_cpu(functools.partial(sorted, reverse=True), ["a", "b"]) == ["b", "a"]


# anyio tests/test_to_process.py::test_exception
async def test_exception() -> None:
    async with Runtime(cpu_workers=1) as rt:
        with pytest.raises(ValueError, match="invalid literal for int"):
            await rt.run_cpu(int, "a")


# anyio tests/test_to_process.py::test_print
async def test_print() -> None:
    async with Runtime(cpu_workers=1) as rt:
        worker_pid = await rt.run_cpu(os.getpid)
        await rt.run_cpu(print, "hello")
        await rt.run_cpu(print, "world")
        assert await rt.run_cpu(os.getpid) == worker_pid


# anyio tests/test_to_process.py::test_stderr_flood
async def test_stderr_flood() -> None:
    async with Runtime(cpu_workers=1) as rt:
        with anyio.fail_after(20):
            assert await rt.run_cpu(f.flood_stdout_and_stderr) == "completed"


# anyio tests/test_to_process.py::test_cancel_before
async def test_cancel_before() -> None:
    async with Runtime(cpu_workers=1) as rt:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await rt.run_cpu(os.getpid)
        assert scope.cancelled_caught
        assert rt.worker_pids() == []


# anyio tests/test_to_process.py::test_cancel_before (with the default runtime, as anyio's own
# pool: the call in a cancelled scope starts no worker process)
async def test_cancel_before_default_runtime() -> None:
    from hybridio._runtime._default import runtime_in_use

    with anyio.CancelScope() as scope:
        scope.cancel()
        await hybridio.run_cpu(os.getpid)
    runtime = runtime_in_use()
    assert runtime is None or runtime.worker_pids() == []


# anyio tests/test_to_process.py::test_cancel_during
async def test_cancel_during() -> None:
    async with Runtime(cpu_workers=1) as rt:
        worker_pid = await rt.run_cpu(os.getpid)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(rt.run_cpu, time.sleep, 5)
                await anyio.wait_all_tasks_blocked()
                tg.cancel_scope.cancel()
        # The previous worker was killed so we should get a new one now
        assert await rt.run_cpu(os.getpid) != worker_pid
        await f.eventually(lambda: f.pid_is_gone(worker_pid))


# anyio tests/test_to_process.py::test_nonexistent_main_module
async def test_nonexistent_main_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    script_path = tmp_path / "badscript"
    script_path.touch()
    monkeypatch.setattr("__main__.__file__", str(script_path / "__main__.py"))
    monkeypatch.setattr("__main__.__spec__", None)  # a script, even under `python -m pytest`
    async with Runtime(cpu_workers=1) as rt:
        assert await rt.run_cpu(os.getpid) != os.getpid()


# anyio tests/test_to_process.py::test_entrypoint_main_module
async def test_entrypoint_main_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    script_path = tmp_path / "my-entrypoint"
    script_path.write_text("foo=3")
    monkeypatch.setattr("__main__.__file__", str(script_path))
    monkeypatch.setattr("__main__.__spec__", None)  # a console-script entry point has no spec
    async with Runtime(cpu_workers=1) as rt:
        assert await rt.run_cpu(f.main_module_foo) == 3
