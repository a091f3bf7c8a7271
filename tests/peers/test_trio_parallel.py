"""trio-parallel's test suite, translated case by case to hybridio's process calls.

Source: github.com/richardsheridan/trio-parallel at 32c1006 (trio_parallel/_tests/). Each case keeps
the original's scenario and assertion and names it in a comment; they run on every anyio backend
(trio-parallel's run on trio only). The originals' ``multiprocessing.Manager`` events are files
here (see ``_funcs``): no manager process to start.

Not translated (specific to trio-parallel's own API or internals):
- ``test_impl.py``: collaboration tests against mocked workers and caches (``MockWorker``,
  ``MockCache``, ``WorkerContext`` internals, ``cancellable=`` observing the deadline), except
  ``test_erroneous_scope_types`` / ``_values``, translated to ``Runtime``'s arguments.
- ``cache_scope`` follows trio's task tree (a tree variable), hybridio's current runtime follows
  contextvars (``test_cache_scope_follows_task_tree_discipline`` and
  ``test_cache_scope_overrides_nursery_task`` test that difference itself); the cases that hold
  for both (overrides, nesting, an explicit context wins) are translated with ``Runtime``.
- ``kill_on_cancel=False`` (``test_uncancellable_cancellation``): hybridio always kills a process
  call whose caller is cancelled.
- ``configure_default_context`` / ``default_context_statistics`` and their thread check,
  ``idle_timeout``, ``retire`` / ``init`` functions (``test_cache.py``'s bad/loopy retire cases,
  ``grace_period``): trio-parallel's knobs; ``retire=object`` (retire after every call) is
  translated as ``max_tasks_per_worker=1``.
- ``test_we_control_atexit_shutdowns``: inspects multiprocessing's logger; translated as "a program
  that used the default runtime exits cleanly".
- ``test_clean_exit_on_shutdown``'s exit code 0: hybridio does not expose a stopped worker's exit
  status; the case checks that stopping writes nothing and leaves no process.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

import hybridio
from hybridio import Runtime, RuntimeClosed, WorkerCrashed

from . import _funcs as f

pytestmark = pytest.mark.anyio


# trio-parallel _tests/test_defaults.py::test_run_sync
async def test_run_sync() -> None:
    trio_pid = os.getpid()
    async with Runtime(cpu_workers=1) as rt:
        child_pid = await rt.run_cpu(os.getpid)
        assert child_pid != trio_pid

        with pytest.raises(ValueError, match=r"^\d+$") as excinfo:
            await rt.run_cpu(f.raise_pid)

        assert excinfo.value.args[0] != trio_pid


class Events:
    """The three ``manager.Event()``s of trio-parallel's cancellation tests, as files."""

    def __init__(self, tmp_path: Path) -> None:
        self.block = str(tmp_path / "block")
        self.worker_start = str(tmp_path / "start")
        self.worker_done = str(tmp_path / "done")

    def is_set(self, name: str) -> bool:
        return os.path.exists(getattr(self, name))


# trio-parallel _tests/test_defaults.py::test_entry_cancellation
async def test_entry_cancellation(tmp_path: Path) -> None:
    ev = Events(tmp_path)
    child_start = False
    child_done = False

    async def child() -> None:
        nonlocal child_start, child_done
        child_start = True
        try:
            await hybridio.run_cpu(f.block_worker, ev.block, ev.worker_start, ev.worker_done)
        finally:
            child_done = True

    async with Runtime(cpu_workers=1):
        # If we cancel *before* it enters, the entry is itself a cancellation point
        with anyio.CancelScope() as scope:
            scope.cancel()
            await child()
    assert scope.cancelled_caught
    assert child_start
    assert child_done
    assert not ev.is_set("worker_start")
    assert not ev.is_set("worker_done")


# trio-parallel _tests/test_defaults.py::test_kill_cancellation
async def test_kill_cancellation(tmp_path: Path) -> None:
    ev = Events(tmp_path)
    child_start = False
    child_done = False

    async def child() -> None:
        nonlocal child_start, child_done
        child_start = True
        try:
            await hybridio.run_cpu(f.block_worker, ev.block, ev.worker_start, ev.worker_done)
        finally:
            child_done = True

    async with Runtime(cpu_workers=1) as rt:
        # prime worker cache so fail timeout doesn't have to be so long
        pid = await rt.run_cpu(os.getpid)
        # This is truly cancellable by killing the worker
        async with anyio.create_task_group() as tg:
            tg.start_soon(child)
            await f.wait_for_file(ev.worker_start)
            assert child_start
            # Then cancel it.
            tg.cancel_scope.cancel()
        # The task exited, but the worker died
        assert not ev.is_set("block")
        assert not ev.is_set("worker_done")
        assert child_done
        await f.eventually(lambda: f.pid_is_gone(pid))
        f.touch(ev.block)  # a worker that survived would now say it is done
        assert await rt.run_cpu(os.getpid) != pid
        assert not ev.is_set("worker_done")


# trio-parallel _tests/test_defaults.py::test_aclose
async def test_aclose() -> None:
    async with Runtime(cpu_workers=1) as ctx:
        await ctx.run_cpu(bool)
    with pytest.raises(RuntimeClosed):
        await ctx.run_cpu(bool)


# trio-parallel _tests/test_defaults.py::test_context_waits
async def test_context_waits(tmp_path: Path) -> None:
    ev = Events(tmp_path)
    finished = 0

    async def child(ctx: Runtime) -> None:
        nonlocal finished
        try:
            await ctx.run_cpu(f.block_worker, ev.block, ev.worker_start, ev.worker_done)
        finally:
            finished += 1

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            async with Runtime(cpu_workers=2) as ctx:
                tg.start_soon(child, ctx)
                tg.start_soon(child, ctx)
                await f.wait_for_file(ev.worker_start)
                f.touch(ev.block)
                await f.eventually(lambda: finished == 2)  # hybridio: leaving does not wait
            assert finished == 2


def test_startup_failure_doesnt_hang(tmp_path: Path) -> None:
    """trio-parallel _tests/test_defaults.py::test_startup_failure_doesnt_hang.

    Failing to guard startup against worker spawn recursion (no ``__main__`` guard).
    """
    script_path = tmp_path / "script.py"
    script_path.write_text("import trio, hybridio; trio.run(hybridio.run_cpu, int)\n")
    result = f.run_python(script=script_path, timeout=60)
    assert not result.stdout
    assert "__main__" in result.stderr  # the advice: guard the entry point
    assert "ExceptionGroup" not in result.stderr
    assert "MultiError" not in result.stderr
    assert result.returncode


def test_we_control_atexit_shutdowns() -> None:
    """trio-parallel _tests/test_defaults.py::test_we_control_atexit_shutdowns.

    A program that used the default runtime (trio.run(run_cpu, bool)) exits at once and cleanly,
    leaving no worker behind.
    """
    code = textwrap.dedent(
        """
        import os, trio, hybridio

        async def main():
            await hybridio.run_cpu(bool)
            return hybridio._runtime._default.runtime_in_use().worker_pids()

        print(*trio.run(main))
        """
    )
    result = f.run_python(code, timeout=60)
    assert result.returncode == 0, result.stderr
    assert not result.stderr
    pids = [int(p) for p in result.stdout.split()]
    assert pids
    assert all(f.pid_is_gone(p) for p in pids)


async def _compare_pids(rt: Runtime) -> bool:
    first = await rt.run_cpu(os.getpid)
    second = await rt.run_cpu(os.getpid)
    return first == second


# trio-parallel _tests/test_defaults.py::test_configure_default_context (retire=object: retire
# the worker after every call)
async def test_configure_default_context() -> None:
    async with Runtime(cpu_workers=1, max_tasks_per_worker=1) as rt:
        assert not await _compare_pids(rt)


# trio-parallel _tests/test_defaults.py::test_sequential_runs. Deliberate difference: the default
# runtime belongs to its event loop, so each run gets its own workers, stopped when it ends
# (trio-parallel keeps one global cache, and the same worker answers both runs).
def test_sequential_runs(anyio_backend: tuple[str, dict[str, object]]) -> None:
    backend, options = anyio_backend

    async def run_with_timeout() -> int:
        with anyio.fail_after(20):
            return await hybridio.run_cpu(os.getpid)

    first = anyio.run(run_with_timeout, backend=backend, backend_options=options)
    second = anyio.run(run_with_timeout, backend=backend, backend_options=options)
    assert first != second
    assert f.pid_is_gone(first)
    assert f.pid_is_gone(second)


# trio-parallel _tests/test_defaults.py::test_concurrent_runs
def test_concurrent_runs(anyio_backend: tuple[str, dict[str, object]]) -> None:
    backend, options = anyio_backend

    async def worker(i: int) -> None:
        with anyio.fail_after(20):
            assert await hybridio.run_cpu(int, i) == i
            for _ in range(30):
                assert await hybridio.run_cpu(int, i) == i
            with anyio.move_on_after(0.5):
                while True:
                    assert await hybridio.run_cpu(int, i) == i

    def run(i: int) -> None:
        anyio.run(worker, i, backend=backend, backend_options=options)

    async def both() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(2):
                tg.start_soon(anyio.to_thread.run_sync, run, i)

    anyio.run(both)


# trio-parallel _tests/test_defaults.py::test_nice_names
def test_nice_names() -> None:
    for objname, obj in vars(hybridio).items():
        if not objname.startswith("_") and objname in hybridio.__all__:
            assert "._" not in obj.__module__


# trio-parallel _tests/test_impl.py::test_erroneous_scope_types
@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"timeout": [-1]}, id="timeout-list"),
        pytest.param({"initializer": 0}, id="initializer-0"),
        pytest.param({"cpu_workers": "2"}, id="cpu_workers-str"),
        pytest.param({"max_tasks_per_worker": 1.5}, id="max_tasks-float"),
    ],
)
def test_erroneous_scope_types(kwargs: dict[str, object]) -> None:
    with pytest.raises(TypeError):
        Runtime(**kwargs)  # type: ignore[arg-type]


# trio-parallel _tests/test_impl.py::test_erroneous_scope_values
@pytest.mark.parametrize(
    "kwargs",
    [{"cpu_backend": "wrong"}, {"timeout": -1}, {"max_tasks_per_worker": -1}],
    ids=["worker_type-wrong", "timeout-neg", "max_tasks-neg"],
)
def test_erroneous_scope_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError, as the original
        Runtime(**kwargs)  # type: ignore[arg-type]


async def _assert_worker_pid(pid: int, matches: bool) -> None:
    comparison = pid == await hybridio.run_cpu(os.getpid)
    assert comparison == matches


# trio-parallel _tests/test_impl.py::test_cache_scope_overrides_run_sync
async def test_cache_scope_overrides_run_sync() -> None:
    pid = await hybridio.run_cpu(os.getpid)

    async with Runtime(cpu_workers=1):
        await _assert_worker_pid(pid, False)


# trio-parallel _tests/test_impl.py::test_cache_scope_overrides_nested
async def test_cache_scope_overrides_nested() -> None:
    pid1 = await hybridio.run_cpu(os.getpid)
    async with Runtime(cpu_workers=1):
        pid2 = await hybridio.run_cpu(os.getpid)
        async with Runtime(cpu_workers=1):
            await _assert_worker_pid(pid1, False)
            await _assert_worker_pid(pid2, False)


# trio-parallel _tests/test_impl.py::test_cache_scope_doesnt_override_explicit_context
async def test_cache_scope_doesnt_override_explicit_context() -> None:
    async with Runtime(cpu_workers=1) as ctx:
        pid = await ctx.run_cpu(os.getpid)
        async with Runtime(cpu_workers=1):
            assert pid == await ctx.run_cpu(os.getpid)


# trio-parallel _tests/test_worker.py::test_cancel_start
async def test_cancel_start() -> None:
    async with Runtime(cpu_workers=1) as rt:
        with anyio.fail_after(10):
            with anyio.move_on_after(0) as cs:
                await rt.run_cpu(bool)
            assert cs.cancelled_caught
            assert rt.worker_pids() == []


# trio-parallel _tests/test_worker.py::test_run_sync
async def test_worker_run_sync() -> None:
    async with Runtime(cpu_workers=1) as rt:
        assert await rt.run_cpu(bool) is False


# trio-parallel _tests/test_worker.py::test_run_sync_large_job
async def test_run_sync_large_job() -> None:
    n = 2**20
    async with Runtime(cpu_workers=1) as rt:
        x = await rt.run_cpu(bytes, bytearray(n))
        assert len(x) == n


# trio-parallel _tests/test_worker.py::test_run_sync_coroutine_error
async def test_run_sync_coroutine_error() -> None:
    async with Runtime(cpu_workers=1) as rt:
        with pytest.raises(TypeError, match="coroutine function"):
            await rt.run_cpu(f.null_async_fn)  # type: ignore[unused-coroutine]


# trio-parallel _tests/test_worker.py::test_clean_exit_on_shutdown
async def test_clean_exit_on_shutdown(capfd: pytest.CaptureFixture[str]) -> None:
    async with Runtime(cpu_workers=1) as rt:
        assert await rt.run_cpu(bool) is False
        pid = rt.worker_pids()[0]
    with anyio.fail_after(5):
        await f.eventually(lambda: f.pid_is_gone(pid))
    out, err = capfd.readouterr()
    assert not err
    assert not out


# trio-parallel _tests/test_worker.py::test_tracebacks
async def test_tracebacks() -> None:
    async with Runtime(cpu_workers=1) as rt:
        with pytest.raises(f.SpecialError, match="test2") as excinfo:
            await rt.run_cpu(f.chained_exc)
    c = excinfo.getrepr().chain  # type: ignore[union-attr]
    assert c
    assert "test1" in str(c)


# trio-parallel _tests/test_proc.py::test_run_sync_cancel_infinite_loop
async def test_run_sync_cancel_infinite_loop(tmp_path: Path) -> None:
    started = str(tmp_path / "started")
    async with Runtime(cpu_workers=1) as rt:
        pid = await rt.run_cpu(os.getpid)
        async with anyio.create_task_group() as tg:
            tg.start_soon(rt.run_cpu, f.never_halts, started)
            await f.wait_for_file(started)
            tg.cancel_scope.cancel()
        await f.eventually(lambda: f.pid_is_gone(pid), limit=5)


# trio-parallel _tests/test_proc.py::test_run_sync_raises_on_kill
async def test_run_sync_raises_on_kill(tmp_path: Path) -> None:
    started = str(tmp_path / "started")
    async with Runtime(cpu_workers=1) as rt:
        pid = await rt.run_cpu(os.getpid)  # running start so actual test is less racy

        async def killer() -> None:
            await f.wait_for_file(started)
            f.kill(pid, signal.SIGKILL)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(killer)
                with pytest.raises(WorkerCrashed) as exc_info:
                    await rt.run_cpu(f.never_halts, started)
        assert exc_info.value.signal == signal.SIGKILL
        assert exc_info.value.pid == pid


# trio-parallel _tests/test_proc.py::test_run_sync_raises_on_sudden_death
async def test_run_sync_raises_on_sudden_death() -> None:
    expected_code = 42
    async with Runtime(cpu_workers=1) as rt:
        with pytest.raises(WorkerCrashed) as excinfo:
            with anyio.fail_after(20):
                await rt.run_cpu(os._exit, expected_code)
        assert excinfo.value.exitcode == expected_code


# trio-parallel _tests/test_proc.py::test_exhaustively_cancel_run_sync (cancel at job send if we
# reuse the worker: no process may be left running the job)
async def test_exhaustively_cancel_run_sync(tmp_path: Path) -> None:
    started = str(tmp_path / "started")
    async with Runtime(cpu_workers=1) as rt:
        await rt.run_cpu(int)
        with anyio.fail_after(10):
            with anyio.move_on_after(0):
                await rt.run_cpu(f.never_halts, started)
            # the only worker answers again: it was killed and replaced, or never got the job
            await rt.run_cpu(int)


# trio-parallel _tests/test_proc.py::test_ki_does_not_propagate
async def test_ki_does_not_propagate() -> None:
    async with Runtime(cpu_workers=1) as rt:
        assert await rt.run_cpu(signal.raise_signal, signal.SIGINT) is None  # type: ignore[func-returns-value]


def test_ki_to_process_group() -> None:
    """trio-parallel _tests/test_proc.py::test_ki_does_not_propagate, as Ctrl-C in a terminal does.

    SIGINT to the whole process group: the parent handles its own; idle workers survive or are
    replaced, and the next call succeeds.
    """
    code = textwrap.dedent(
        """
        import os, signal, anyio, hybridio

        async def main():
            got = []
            signal.signal(signal.SIGINT, lambda *a: got.append(1))
            async with hybridio.Runtime(cpu_workers=2) as rt:
                async with anyio.create_task_group() as tg:
                    for _ in range(4):
                        tg.start_soon(rt.run_cpu, os.getpid)
                os.killpg(os.getpgid(0), signal.SIGINT)
                with anyio.fail_after(20):
                    while not got:
                        await anyio.sleep(0.01)
                    await anyio.sleep(0.2)  # let a worker killed by it be seen
                    for _ in range(4):
                        assert await rt.run_cpu(int, 7) == 7
            print("ok")

        for backend in ("asyncio", "trio"):
            anyio.run(main, backend=backend)
        """
    )
    result = f.run_python(code, timeout=90)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", "ok"]


# trio-parallel _tests/test_proc.py::test_unpickleable[_lambda]. Deliberate difference: hybridio
# sends a function stdlib pickle refuses by value with cloudpickle, so the lambda runs.
async def test_unpickleable_lambda() -> None:
    async with Runtime(cpu_workers=1) as rt:
        assert await rt.run_cpu(f._lambda) is None  # type: ignore[func-returns-value]


# trio-parallel _tests/test_proc.py::test_unpickleable[_return_lambda]: a result pickle refuses
async def test_unpickleable_result() -> None:
    async with Runtime(cpu_workers=1) as rt:
        with pytest.raises(hybridio.NotPicklable) as excinfo:
            await rt.run_cpu(f.return_lambda)
        assert excinfo.value.what == "result"


# trio-parallel _tests/test_proc.py::test_no_trio_in_subproc
async def test_no_trio_in_subproc() -> None:
    async with Runtime(cpu_workers=1) as rt:
        assert await rt.run_cpu(f.trio_not_imported)


# trio-parallel _tests/test_cache.py::test_prune_cache (a dead idle worker is pruned, not used).
# Not strict: whether the loop noticed the death before the next call is a race (it fails about
# one run in three on asyncio+uvloop); a poll before use would make it hold every time.
async def test_prune_cache() -> None:
    async with Runtime(cpu_workers=1) as rt:
        dead = await rt.run_cpu(os.getpid)
        f.kill(dead, signal.SIGKILL)
        await f.eventually(lambda: f.pid_is_gone(dead))
        with anyio.fail_after(20):
            live = await rt.run_cpu(os.getpid)
        assert live != dead


# trio-parallel _tests/test_cache.py::test_retire (init/retire run twice: a new worker after 2)
async def test_retire() -> None:
    async with Runtime(cpu_workers=1, max_tasks_per_worker=2) as rt:
        with anyio.fail_after(20):
            first = await rt.run_cpu(os.getpid)
            assert await rt.run_cpu(os.getpid) == first
            assert await rt.run_cpu(os.getpid) != first
            await f.eventually(lambda: f.pid_is_gone(first))


# trio-parallel _tests/test_cache.py::test_shutdown (and math.inf as a grace period: the runtime
# waits for nothing when idle)
async def test_shutdown() -> None:
    pids = []
    for _ in range(2):
        async with Runtime(cpu_workers=1, timeout=math.inf) as rt:
            await rt.run_cpu(bool)
            pids += rt.worker_pids()
        with anyio.fail_after(5):
            await f.eventually(lambda pids=pids: all(map(f.pid_is_gone, pids)))


# keep sys imported for type checkers of the subprocess scripts above
assert sys.executable
