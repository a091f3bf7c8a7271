"""Nothing a worker function does may corrupt another call's result or stop the runtime (issue 19).

Each test failed before the fix it names: results handed to the wrong caller when a function wrote
to file descriptor 1, a worker's ``sys.exit()`` ending the caller's program, map dropping the
results computed before a failing item, frozen dataclass exceptions turned into ``NotPicklable``,
and ``SystemExit`` while (un)pickling killing the runtime's task group.
"""

from __future__ import annotations

import functools
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

import hybridio
from hybridio import FunctionAborted, NotPicklable, RemoteTraceback, Runtime

from . import _hostile as h

pytestmark = pytest.mark.anyio

KINDS = pytest.mark.parametrize("kind", ["cpu", "blocking"])


async def _until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds; a generous bound turns a hang into a failure."""
    with anyio.fail_after(30):
        while not condition():  # noqa: ASYNC110 - polls state that has no event
            await anyio.sleep(0.005)


async def _collect(items: hybridio.OffloadMap[Any, int], into: list[int]) -> None:
    """Append each result to ``into`` as it arrives (so that a test sees those before an error)."""
    async with items:
        async for value in items:
            into.append(value)  # noqa: PERF401 - kept one by one on purpose


async def test_writes_to_fd_1_never_reach_the_result_channel(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # os.write(1), C printf and a child process all write to the worker's fd 1: each of 24
    # concurrent callers must still get its own result, and the pool must not lose a worker.
    async with Runtime(cpu_workers=2) as rt:
        results: dict[int, Any] = {}

        async def one(i: int) -> None:
            results[i] = await rt.run_cpu(h.noisy_identity, i)

        async with anyio.create_task_group() as tg:
            for i in range(24):
                tg.start_soon(one, i)
        assert results == {i: i for i in range(24)}
        stats = rt.stats().kinds["cpu"]
        assert stats.errors == 0
        assert stats.worker_restarts == 0
    out = capfd.readouterr().out
    assert "printf to fd 1 from a worker: 7" in out
    assert "a child of a worker on fd 1" in out


async def test_a_worker_flooding_stderr_does_not_block_its_call() -> None:
    async with Runtime(cpu_workers=1) as rt:
        with anyio.fail_after(60):  # a hang becomes a failure
            assert await rt.run_cpu(h.flood_stderr, 8) == 8 << 20


@KINDS
@pytest.mark.parametrize(
    ("fn", "original"),
    [
        (functools.partial(h.exit_with_status, 3), SystemExit),
        (h.interrupt, KeyboardInterrupt),
        (h.cancel_itself, BaseException),  # asyncio.CancelledError
    ],
    ids=["SystemExit", "KeyboardInterrupt", "CancelledError"],
)
async def test_base_exceptions_of_a_function_arrive_wrapped(
    kind: hybridio.Kind, fn: Any, original: type[BaseException]
) -> None:
    async with Runtime(cpu_workers=1, threads=1) as rt:
        with pytest.raises(FunctionAborted) as info:
            await rt.run(fn, kind=kind)
        assert isinstance(info.value.original, original)
        assert not isinstance(info.value.original, Exception)
        assert info.value.__cause__ is info.value.original
        assert "ended that call only" in str(info.value)
        # The caller's own scope was not cancelled and the worker still serves.
        assert await rt.run(h.take, 1, kind=kind) == "int"
        if kind == "cpu":
            assert rt.stats().kinds["cpu"].worker_restarts == 0


async def test_function_aborted_pickles_with_its_fields() -> None:
    import pickle

    error = FunctionAborted(SystemExit(2), "mod.fn")
    again = pickle.loads(pickle.dumps(error))
    assert isinstance(again, FunctionAborted)
    assert again.function == "mod.fn"
    assert isinstance(again.original, SystemExit)
    # .args, not .code: once `distributed` is imported (tests/cluster), tblib's exception
    # reducers rebuild a SystemExit without running its __init__, which sets .code.
    assert again.original.args == (2,)


@KINDS
@pytest.mark.parametrize("failing", [h.fail_at, h.exit_at], ids=["ValueError", "SystemExit"])
async def test_map_delivers_every_result_before_the_failing_item(
    kind: hybridio.Kind, failing: Any
) -> None:
    # One chunk of 100 items fails at item 57: the 57 results before it come first.
    async with Runtime(cpu_workers=1, threads=1) as rt:
        got: list[int] = []
        items = rt.map(functools.partial(failing, 57), range(100), kind=kind, chunksize=100)
        with pytest.raises((ValueError, FunctionAborted)) as info:
            await _collect(items, got)
        assert got == [x * 10 for x in range(57)]
        assert "item 57" in str(info.value) or "item 57" in str(getattr(info.value, "original", ""))
        if failing is h.exit_at:
            assert isinstance(info.value, FunctionAborted)


async def test_map_cpu_raises_at_the_failing_position_across_chunks() -> None:
    async with Runtime(cpu_workers=2) as rt:
        got: list[int] = []
        items = rt.map(functools.partial(h.fail_at, 250), range(400), chunksize=16)
        with pytest.raises(ValueError, match="item 250"):
            await _collect(items, got)
        assert got == [x * 10 for x in range(250)]


async def test_frozen_dataclass_exception_comes_back_as_itself() -> None:
    async with Runtime(cpu_workers=1) as rt:
        with pytest.raises(h.FrozenError) as info:
            await rt.run_cpu(h.raise_frozen, 7)
        assert info.value.code == 7
        assert info.value.why == "frozen on purpose"
        assert isinstance(info.value.__cause__, RemoteTraceback)


@pytest.mark.parametrize(
    ("call", "what"),
    [
        ((h.take, h.ExitsWhenPickled()), "argument 0"),  # pickled in the caller
        ((h.take, h.ExitsWhenUnpickled()), "arguments"),  # unpickled in the worker
        ((h.return_exits_when_pickled,), "result"),  # pickled in the worker
        ((h.return_exits_when_unpickled,), "result"),  # unpickled by the runtime's task
    ],
    ids=[
        "exit-at-pickle-args",
        "exit-at-unpickle-args",
        "exit-at-pickle-result",
        "exit-at-unpickle-result",
    ],
)
async def test_system_exit_while_pickling_fails_that_call_only(
    call: tuple[Any, ...], what: str
) -> None:
    async with Runtime(cpu_workers=1) as rt:
        before = await rt.run_cpu(h.pid)
        with pytest.raises(NotPicklable) as info:
            await rt.run_cpu(*call)
        assert info.value.what == what
        assert "SystemExit" in info.value.reason
        assert await rt.run_cpu(h.pid) == before  # the same worker: nothing was broken


async def test_max_tasks_per_worker_holds_when_calls_are_batched() -> None:
    # 40 concurrent calls would share batches: a worker must still run at most 2 of them.
    async with Runtime(cpu_workers=1, max_tasks_per_worker=2) as rt:
        pids: list[int] = []

        async def one() -> None:
            pids.append(await rt.run_cpu(h.pid))

        async with anyio.create_task_group() as tg:
            for _ in range(40):
                tg.start_soon(one)
        counts: dict[int, int] = {}
        for pid in pids:
            counts[pid] = counts.get(pid, 0) + 1
        assert len(pids) == 40
        assert max(counts.values()) <= 2
        assert len(counts) >= 20


async def test_stats_count_errors_of_a_whole_batch() -> None:
    # 8 queued calls share a worker that dies: each caller's WorkerCrashed is an error in stats.
    async with Runtime(cpu_workers=1) as rt:
        await rt.run_cpu(h.pid)  # warm, and measured as tiny so that the calls share a batch
        outcomes: list[BaseException | None] = []

        async def one(i: int) -> None:
            try:
                await rt.run_cpu(h.die_at, 3, i)
            except hybridio.WorkerCrashed as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(one, i)
        stats = rt.stats()["cpu"]
        failed = sum(1 for o in outcomes if o is not None)
        assert failed >= 1
        assert stats.errors == failed
        assert stats.crashes == failed
        assert stats.completed + stats.errors == stats.calls


async def test_stats_count_calls_failed_by_closing_the_runtime() -> None:
    closed: list[BaseException] = []
    rt = Runtime(cpu_workers=1)

    async def one() -> None:
        try:
            await rt.run_cpu(h.sleep_for, 30.0)
        except hybridio.RuntimeClosed as exc:
            closed.append(exc)

    async with anyio.create_task_group() as tg, rt:
        for _ in range(5):
            tg.start_soon(one)
        await _until(lambda: rt.stats()["cpu"].in_flight + rt.stats()["cpu"].queued == 5)
    assert len(closed) == 5
    assert rt.stats()["cpu"].errors == 5


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for init to reap it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc (Linux)")
async def test_a_killed_worker_takes_its_children_along(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    async with Runtime(cpu_workers=1) as rt:
        with pytest.raises(hybridio.OffloadTimeout):
            await rt.run_cpu(h.start_child_then_sleep, 600.0, str(pid_file), timeout=3.0)
        child = int(pid_file.read_text())
        await _until(lambda: not _alive(child))
        assert await rt.run_cpu(h.take, 1) == "int"  # a fresh worker serves


async def test_a_worker_killed_while_its_call_is_cancelled() -> None:
    async with Runtime(cpu_workers=1) as rt:
        worker = await rt.run_cpu(h.pid)
        with anyio.CancelScope() as scope:

            async def kill_and_cancel() -> None:
                await _until(lambda: rt.stats()["cpu"].in_flight == 1)
                os.kill(worker, signal.SIGKILL)
                scope.cancel()

            async with anyio.create_task_group() as tg:
                tg.start_soon(kill_and_cancel)
                await rt.run_cpu(h.sleep_for, 30.0)
        assert scope.cancelled_caught
        with anyio.fail_after(30):
            assert await rt.run_cpu(h.pid) != worker


SIGINT_SCRIPT = """
import os, signal, sys
import anyio, hybridio
sys.path.insert(0, {root!r})
from tests.core import _hostile as h

seen = []


async def main():
    async with hybridio.Runtime(cpu_workers=1) as rt:
        await rt.run_cpu(h.take, 0)
        before = rt.worker_pids()
        os.killpg(os.getpgid(0), signal.SIGINT)  # what Ctrl-C in a terminal does
        for pid in before:
            os.kill(pid, signal.SIGINT)  # and a SIGINT aimed at each worker
        await anyio.sleep(0.2)
        assert await rt.run_cpu(h.take, 1) == "int"
        restarts = rt.stats()["cpu"].worker_restarts
        print("same workers" if rt.worker_pids() == before else "changed", restarts, seen)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, lambda *_: seen.append(1))  # this program survives Ctrl-C
    anyio.run(main)
"""


def test_ctrl_c_in_a_terminal_does_not_reach_idle_workers(tmp_path: Path) -> None:
    script = tmp_path / "ctrl_c.py"
    script.write_text(SIGINT_SCRIPT.format(root=str(Path(__file__).parents[2])))
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,  # its own process group: the SIGINT stays there
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "same workers 0 [1]"


EMFILE_SCRIPT = """
import os, resource, sys
import anyio, hybridio
sys.path.insert(0, {root!r})
from tests.core import _hostile as h
import hybridio._backends._channel, hybridio._backends._process, hybridio._runtime._default


async def main():
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    hog = []
    try:
        while True:
            hog.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    for _ in range({free}):  # room for the channel, not for the process
        os.close(hog.pop())
    try:
        await hybridio.run_cpu(h.take, 1)
    except hybridio.WorkerStartFailed as exc:
        assert "operating system refused" in str(exc), exc
        print("refused")
    for fd in hog:
        os.close(fd)
    for _ in range(100):  # the pool recovers on its own once descriptors are free
        try:
            print(await hybridio.run_cpu(h.take, 1))
            break
        except hybridio.WorkerStartFailed:
            await anyio.sleep(0.1)


if __name__ == "__main__":
    backend = sys.argv[1]
    options = {{"use_uvloop": True}} if backend == "uvloop" else {{}}
    anyio.run(main, backend="trio" if backend == "trio" else "asyncio", backend_options=options)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")
@pytest.mark.parametrize("loop", ["asyncio", "uvloop", "trio"])
@pytest.mark.parametrize("free", [0, 3])
def test_the_os_refusing_a_worker_fails_calls_clearly_then_recovers(
    tmp_path: Path, loop: str, free: int
) -> None:
    script = tmp_path / "emfile.py"
    script.write_text(EMFILE_SCRIPT.format(root=str(Path(__file__).parents[2]), free=free))
    done = subprocess.run(
        [sys.executable, str(script), loop],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refused", "int"], done.stdout + done.stderr


async def test_a_worker_killed_during_start_up_is_not_blamed_on_the_main_module() -> None:
    async with Runtime(cpu_workers=1, initializer=h.kill_self) as rt:
        with pytest.raises(hybridio.WorkerStartFailed) as info:
            await rt.run_cpu(h.take, 1)
    message = str(info.value)
    assert "killed by signal 9" in message
    assert "__main__" not in message


async def test_an_initializer_that_raises_gets_the_main_module_advice() -> None:
    async with Runtime(cpu_workers=1, initializer=h.exit_with_status, initargs=(5,)) as rt:
        with pytest.raises(hybridio.WorkerStartFailed) as info:
            await rt.run_cpu(h.take, 1)
    assert "SystemExit" in str(info.value)
    assert "if __name__ == '__main__':" in str(info.value)


def test_a_large_argument_is_pickled_once_and_sent_without_a_copy() -> None:
    from hybridio._backends._process import ProcessExecutor, _batch_frame

    executor = ProcessExecutor()
    _, call = executor.encode(h.take, (b"x" * (1 << 20),), False)
    blob = call[1]
    assert isinstance(blob, pickle.PickleBuffer)
    parts = _batch_frame([call], want_rss=False)
    assert len(parts) == 3  # head, the pickle of the batch, then the argument's own pickle
    assert parts[2].obj is blob.raw().obj  # the very bytes encode made: no second pickle
    assert len(parts[1]) < 1024  # the batch's pickle refers to it, it does not hold it


@pytest.mark.parametrize("size", [0, 1 << 16, 3 << 20], ids=["empty", "64KiB", "3MiB"])
async def test_large_arguments_and_results_round_trip(size: int) -> None:
    data = os.urandom(size)
    async with Runtime(cpu_workers=2) as rt:
        results: dict[int, bytes] = {}

        async def one(i: int) -> None:
            results[i] = await rt.run_cpu(h.identity, data + bytes([i]))

        async with anyio.create_task_group() as tg:
            for i in range(6):  # concurrent large frames share the channel, whole and in order
                tg.start_soon(one, i)
        assert results == {i: data + bytes([i]) for i in range(6)}
        assert await rt.run_cpu(h.take, data) == "bytes"


async def test_a_caller_cancelled_while_its_large_argument_is_sent() -> None:
    async with Runtime(cpu_workers=1) as rt:
        with anyio.move_on_after(0.001):
            await rt.run_cpu(h.identity, b"y" * (32 << 20))
        assert await rt.run_cpu(h.identity, b"z" * (2 << 20)) == b"z" * (2 << 20)


async def test_a_cpu_bound_call_whose_worker_died_then_the_next_call() -> None:
    from hybridio._runtime._runtime import use_runtime

    async with Runtime(cpu_workers=1) as rt:
        with use_runtime(rt):
            with pytest.raises(hybridio.WorkerCrashed):
                await h.decorated_exit(4)
            assert await h.decorated_take(1) == "int"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
async def test_a_forked_grandchild_holding_the_channel_does_not_mask_a_crash() -> None:
    async with Runtime(cpu_workers=1) as rt:
        with anyio.fail_after(30), pytest.raises(hybridio.WorkerCrashed) as info:
            await rt.run_cpu(h.fork_then_die)
        assert info.value.signal == signal.SIGKILL
        assert await rt.run_cpu(h.take, 1) == "int"


PARENT_DIES_SCRIPT = """
import os, signal, sys
import anyio, hybridio
sys.path.insert(0, {root!r})
from tests.core import _hostile as h


async def main():
    async with hybridio.Runtime(cpu_workers=1) as rt:
        await rt.run_cpu(h.take, 0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(rt.run_cpu, h.sleep_for, 1.0)
            await anyio.sleep(0.3)
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    anyio.run(main)
"""


def test_a_worker_whose_parent_was_killed_exits_quietly(tmp_path: Path) -> None:
    script = tmp_path / "parent_dies.py"
    script.write_text(PARENT_DIES_SCRIPT.format(root=str(Path(__file__).parents[2])))
    # stderr is read to its end, which comes when the worker (which inherited it) has exited.
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == -signal.SIGKILL
    assert "Traceback" not in done.stderr, done.stderr
