"""The default runtime ends with its event loop, however the loop ends; a runtime stays on its loop.

Scenarios from the peers' suites (anyio ``test_to_thread`` / ``test_to_process``, trio-parallel)
and from the red-team report of issue 19. Whole programs run in a subprocess with a bounded wait:
a hang fails the test instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import weakref

import anyio
import pytest

import hybridio
from hybridio import Runtime, RuntimeClosed
from hybridio._runtime._runtime import current_runtime

from . import _workload as w

pytestmark = pytest.mark.anyio

_RUNNERS = {
    "asyncio": "asyncio.run(main())",
    "asyncio+uvloop": "import uvloop; uvloop.run(main())",
    "trio": "import trio; trio.run(main)",
    # A loop closed without asyncio.run: its tasks are never cancelled.
    "run_until_complete": (
        "loop = asyncio.new_event_loop()\nloop.run_until_complete(main())\nloop.close()"
    ),
    "run_until_complete+uvloop": (
        "import uvloop\nloop = uvloop.new_event_loop()\n"
        "loop.run_until_complete(main())\nloop.close()"
    ),
}

# Printed by each program once its loop has ended: the workers and threads still alive.
_REPORT = """
import os, threading, time
import psutil

def alive(pids):
    running = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.append(pid)
        except psutil.NoSuchProcess:
            pass
    return running

def report(pids):
    pids = set(pids) | {child.pid for child in psutil.Process().children(recursive=True)}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        threads = [t for t in threading.enumerate() if t.name.startswith("hybridio")]
        if not threads and not alive(pids):
            break
        time.sleep(0.05)
    print("workers alive:", len(alive(pids)), flush=True)
    print("threads alive:", len(threads), flush=True)
"""


def _run(script: str, runner: str, *, timeout: float = 60) -> str:
    """Run ``script`` (defining ``main``) under ``runner``; return its output, or fail on a hang."""
    code = (
        "import asyncio, os, sys, time\nimport hybridio\n"
        + textwrap.dedent(_REPORT)
        + textwrap.dedent(script)
        + "\nif __name__ == '__main__':\n"
        + textwrap.indent(_RUNNERS[runner], "    ")
        + "\n    print('loop ended', flush=True)\n    report(PIDS)\n"
    )
    try:
        with tempfile.TemporaryDirectory() as directory:
            result = subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env={**os.environ, "HYBRIDIO_TEST_DIR": directory},
            )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the program hung ({runner}); output so far: {exc.stdout!r} {exc.stderr!r}")
    assert result.returncode == 0, result.stderr
    return result.stdout


def _pids_script(body: str) -> str:
    return "PIDS = []\n" + textwrap.dedent(body)


@pytest.mark.parametrize("runner", list(_RUNNERS))
def test_workers_and_threads_of_the_default_runtime_stop_with_their_loop(runner: str) -> None:
    script = _pids_script(
        """
        async def main():
            PIDS.append(await hybridio.run_cpu(os.getpid))
            for _ in range(3):
                await hybridio.run_blocking(time.sleep, 0)
            assert alive(PIDS) == PIDS
        """
    )
    out = _run(script, runner)
    assert "loop ended\nworkers alive: 0\nthreads alive: 0\n" in out


@pytest.mark.parametrize("runner", list(_RUNNERS))
def test_cancelling_a_call_during_its_run_never_blocks_loop_shutdown(runner: str) -> None:
    """Issue 19: a warm runtime, a process call cancelled natively, then main() returns."""
    script = _pids_script(
        """
        import anyio

        def slow(seconds):
            time.sleep(seconds)
            return seconds

        async def main():
            PIDS.append(await hybridio.run_cpu(os.getpid))  # warm
            if "trio" in sys.modules:
                with anyio.move_on_after(0.3):
                    await hybridio.run_cpu(slow, 30)
                return
            task = asyncio.ensure_future(hybridio.run_cpu(slow, 30))
            await asyncio.sleep(0.3)
            task.cancel()
        """
    )
    out = _run(script, runner)
    assert "loop ended\nworkers alive: 0\nthreads alive: 0\n" in out


@pytest.mark.parametrize("runner", list(_RUNNERS))
def test_a_worker_killed_during_a_call_fails_the_call_under_any_loop_runner(runner: str) -> None:
    """Under plain asyncio.run the crash went unnoticed and the caller waited forever: the end
    of the worker's channel (a transport callback, outside any task) could not start the task
    that reaps it, as anyio could not tell which async library ran there."""
    script = _pids_script(
        """
        import signal, anyio

        def hang(path):
            with open(path + ".tmp", "w") as file:
                file.write(str(os.getpid()))
            os.rename(path + ".tmp", path)
            time.sleep(60)

        async def main():
            started = os.path.join(os.environ["HYBRIDIO_TEST_DIR"], "started")
            PIDS.append(await hybridio.run_cpu(os.getpid))  # warm

            async def kill_it():
                while not os.path.exists(started):
                    await anyio.sleep(0.01)
                with open(started) as file:
                    os.kill(int(file.read()), signal.SIGKILL)

            async with anyio.create_task_group() as tg:
                tg.start_soon(kill_it)
                try:
                    await hybridio.run_cpu(hang, started)
                except hybridio.WorkerCrashed as exc:
                    print("crashed by signal", exc.signal, flush=True)
        """
    )
    out = _run(script, runner)
    assert "crashed by signal 9\nloop ended\nworkers alive: 0\nthreads alive: 0\n" in out


@pytest.mark.parametrize("runner", list(_RUNNERS))
def test_a_call_cancelled_before_the_runtime_started_leaves_no_worker(runner: str) -> None:
    script = _pids_script(
        """
        import anyio, psutil

        async def main():
            if "trio" in sys.modules:
                with anyio.move_on_after(0):
                    await hybridio.run_cpu(abs, -1)
            else:
                task = asyncio.ensure_future(hybridio.run_cpu(abs, -1))
                await asyncio.sleep(0)
                task.cancel()
            await anyio.sleep(0.5)
            print("children:", len(psutil.Process().children()), flush=True)
        """
    )
    out = _run(script, runner)
    assert "children: 0\nloop ended\nworkers alive: 0\nthreads alive: 0\n" in out


def test_a_loop_run_several_times_gets_a_working_runtime_each_time() -> None:
    script = _pids_script(
        """
        async def main():
            PIDS.append(await hybridio.run_cpu(os.getpid))
            assert await hybridio.run_blocking(abs, -2) == 2
        """
    )
    code = "loop = asyncio.new_event_loop()\n" + "loop.run_until_complete(main())\n" * 3
    _RUNNERS["three runs"] = code + "loop.close()"
    try:
        out = _run(script, "three runs")
    finally:
        del _RUNNERS["three runs"]
    assert "loop ended\nworkers alive: 0\nthreads alive: 0\n" in out


# -- event loops and threads -------------------------------------------------------------------


def _nested_loop() -> tuple[bool, int, weakref.ref[asyncio.AbstractEventLoop]]:
    """In a worker thread: an event loop of its own, using hybridio's default runtime there."""

    async def inner() -> tuple[bool, int, weakref.ref[asyncio.AbstractEventLoop]]:
        runtime = current_runtime()  # the caller's context came along: not usable here
        value = await hybridio.run_blocking(abs, -3)
        return runtime is None, value, weakref.ref(asyncio.get_running_loop())

    return asyncio.run(inner())


async def test_asyncio_run_inside_a_thread_call_uses_and_frees_its_own_loop() -> None:
    async with Runtime(threads=2) as rt:
        own_runtime_ignored, value, loop_ref = await rt.run_blocking(_nested_loop)
        assert own_runtime_ignored
        assert value == 3
    gc.collect()
    assert loop_ref() is None  # the nested loop's default runtime does not keep it alive


def test_the_default_runtime_does_not_keep_its_loop_alive() -> None:
    async def main() -> weakref.ref[asyncio.AbstractEventLoop]:
        await hybridio.run_blocking(abs, -1)
        await hybridio.run_cpu(abs, -1)
        return weakref.ref(asyncio.get_running_loop())

    loop_ref = asyncio.run(main())
    gc.collect()
    assert loop_ref() is None


@pytest.mark.parametrize("other", ["asyncio", "trio"])
@pytest.mark.parametrize("kind", ["blocking", "cpu", "inline"])
async def test_a_runtime_used_from_another_event_loop_says_so(
    other: str, kind: hybridio.Kind
) -> None:
    errors: list[BaseException] = []

    async with Runtime(cpu_workers=1, threads=1) as rt:
        await rt.run(w.square, 2, kind=kind)

        async def use() -> None:
            try:
                await rt.run(w.square, 2, kind=kind)
            except BaseException as exc:  # noqa: BLE001 - inspected below
                errors.append(exc)

        def elsewhere() -> None:
            if other == "asyncio":
                asyncio.run(use())
            else:
                import trio

                trio.run(use)

        thread = threading.Thread(target=elsewhere)
        thread.start()
        await anyio.to_thread.run_sync(thread.join)
        assert await rt.run(w.square, 3, kind=kind) == 9
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeClosed)
    assert "belongs to another event loop" in str(errors[0])
    assert "create a Runtime of its own" in str(errors[0])
