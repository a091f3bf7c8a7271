"""kind="interpreter": subinterpreters with their own GIL (Python 3.13+).

`make test` runs this module on Python 3.13 too (in .venv313), where it runs for real; on an
older Python only the test that the kind is refused with a clear error runs.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest

import hybridio
from hybridio import BackendUnavailable, NotPicklable, OffloadTimeout, Runtime, WorkerStartFailed

from . import _workload as w

pytestmark = pytest.mark.anyio

needs_313 = pytest.mark.skipif(
    sys.version_info < (3, 13),
    reason="subinterpreters need Python 3.13+; `make test` runs it in .venv313 "
    "when a Python 3.13 is installed",
)


def _interpreters_alive() -> set[int]:
    import _interpreters  # type: ignore[import-not-found]  # Python 3.13+

    return {ident for ident, _ in _interpreters.list_all()}


async def _eventually(predicate: Callable[[], bool]) -> None:
    """Wait (bounded) until work still running in an interpreter has had its effect."""
    for _ in range(2000):
        if predicate():
            return
        await anyio.sleep(0.01)
    raise AssertionError("it never happened")


@pytest.fixture
async def rt() -> AsyncIterator[Runtime]:
    async with Runtime(interpreters=2, timeout=30) as runtime:
        yield runtime


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="Python 3.13+ has subinterpreters")
async def test_refused_before_313_with_what_it_needs() -> None:
    async with Runtime() as runtime:
        with pytest.raises(BackendUnavailable, match=r"Python 3\.13\+") as info:
            await runtime.run(w.square, 3, kind="interpreter")
    assert info.value.kind == "interpreter"
    assert "this is Python 3." in info.value.needs


@needs_313
async def test_runs_in_an_isolated_subinterpreter(rt: Runtime) -> None:
    import _interpreters

    assert await rt.run(w.square, 7, kind="interpreter") == 49
    ident = await rt.run(w.current_interpreter, kind="interpreter")
    assert ident != _interpreters.get_current()[0]
    config = _interpreters.get_config(ident)
    assert config.gil == "own"
    assert config.check_multi_interp_extensions


@needs_313
async def test_module_level_run_uses_the_default_runtime() -> None:
    assert await hybridio.run(w.square, 5, kind="interpreter") == 25


@needs_313
async def test_lanes_run_at_the_same_time(rt: Runtime) -> None:
    a_read, a_write = os.pipe()
    b_read, b_write = os.pipe()
    results: list[bool] = []
    try:
        run = functools.partial(rt.run, kind="interpreter")
        async with anyio.create_task_group() as tg:

            async def one(write_fd: int, read_fd: int) -> None:
                results.append(await run(w.rendezvous, write_fd, read_fd))

            tg.start_soon(one, a_write, b_read)
            tg.start_soon(one, b_write, a_read)
    finally:
        for fd in (a_read, a_write, b_read, b_write):
            os.close(fd)
    assert results == [True, True]


@needs_313
async def test_exception_comes_back_with_its_traceback(rt: Runtime) -> None:
    with pytest.raises(ValueError, match="boom") as info:
        await rt.run(w.fail, "boom", kind="interpreter")
    assert isinstance(info.value.__cause__, hybridio.RemoteTraceback)
    assert "in fail" in info.value.__cause__.tb
    assert await rt.run(w.square, 3, kind="interpreter") == 9  # the lane survived


@needs_313
async def test_many_concurrent_calls_are_batched_and_answered_in_order(rt: Runtime) -> None:
    results: dict[int, int] = {}

    async def one(i: int) -> None:
        results[i] = await rt.run(w.square, i, kind="interpreter")

    async with anyio.create_task_group() as tg:
        for i in range(300):
            tg.start_soon(one, i)
    assert results == {i: i * i for i in range(300)}
    stats = rt.stats()["interpreter"]
    assert stats.completed == 300
    assert stats.batches > 0  # tiny calls shared round trips


@needs_313
async def test_map(rt: Runtime) -> None:
    async with rt.map(w.square, range(100), kind="interpreter") as results:
        assert [value async for value in results] == [i * i for i in range(100)]


@needs_313
async def test_unpicklable_argument_is_named_before_anything_is_sent(rt: Runtime) -> None:
    with pytest.raises(NotPicklable, match="argument 0") as info:
        await rt.run(w.square, threading.Lock(), kind="interpreter")  # type: ignore[call-overload]
    assert "Interpreter work crosses by pickle" in str(info.value)
    assert rt.stats()["interpreter"].workers == 0  # nothing was started for it


@needs_313
async def test_module_that_refuses_subinterpreters_is_named(rt: Runtime) -> None:
    with pytest.raises(BackendUnavailable, match="_psutil_linux") as info:
        await rt.run(w.uses_psutil, kind="interpreter")
    assert info.value.kind == "interpreter"
    assert "kind='cpu'" in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)


@needs_313
async def test_function_from_a_refusing_module_is_named(rt: Runtime) -> None:
    import psutil

    # Unpickling the function imports psutil in the interpreter, which refuses it.
    with pytest.raises(BackendUnavailable, match="_psutil_linux"):
        await rt.run(psutil.cpu_count, kind="interpreter")


@needs_313
async def test_timeout_abandons_the_call_and_raises_its_cancel_flag(
    rt: Runtime, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    await rt.run(w.square, 1, kind="interpreter")  # started: the next call runs at once
    with pytest.raises(OffloadTimeout):
        await rt.run(w.until_cancelled, str(marker), kind="interpreter", timeout=0.5)
    await _eventually(marker.exists)
    assert marker.read_text() == "cancelled"
    stats = rt.stats()["interpreter"]
    assert stats.timeouts == 1
    assert stats.abandoned == 1
    assert await rt.run(w.square, 4, kind="interpreter") == 16


@needs_313
async def test_cancelled_caller_raises_the_flag(rt: Runtime, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    await rt.run(w.square, 1, kind="interpreter")
    with anyio.move_on_after(0.5):
        await rt.run(w.until_cancelled, str(marker), kind="interpreter")
    await _eventually(marker.exists)
    assert marker.read_text() == "cancelled"
    assert rt.stats()["interpreter"].cancelled == 1


@needs_313
async def test_initializer_runs_in_each_interpreter() -> None:
    async with Runtime(interpreters=1, initializer=w.remember, initargs=("warm",)) as runtime:
        assert await runtime.run(w.recall, kind="interpreter") == "warm"
    assert w.initialised_with is None  # it ran there, not here


@needs_313
async def test_failing_initializer_is_reported() -> None:
    async with Runtime(interpreters=1, initializer=w.refuse) as runtime:
        with pytest.raises(WorkerStartFailed, match="initializer refused"):
            await runtime.run(w.square, 2, kind="interpreter")


@needs_313
async def test_closing_destroys_the_interpreters() -> None:
    used: set[int] = set()

    async def one() -> None:
        used.add(await runtime.run(w.current_interpreter, kind="interpreter"))

    async with Runtime(interpreters=2) as runtime:
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(one)
        assert used <= _interpreters_alive()
    assert not used & _interpreters_alive()


@needs_313
async def test_an_interpreter_closed_while_running_is_destroyed_when_it_returns(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "marker"
    async with Runtime(interpreters=1) as runtime:
        ident = await runtime.run(w.current_interpreter, kind="interpreter")
        with pytest.raises(OffloadTimeout):
            await runtime.run(w.until_cancelled, str(marker), kind="interpreter", timeout=0.3)
    # The call saw its flag and returned: its lane's thread then destroyed the interpreter.
    await _eventually(lambda: ident not in _interpreters_alive())
    assert marker.read_text() == "cancelled"


def _lane_threads() -> int:
    return sum(t.name == "hybridio interpreter" for t in threading.enumerate())


@needs_313
async def test_no_file_descriptor_or_thread_is_left_behind() -> None:
    fds_before = set(os.listdir("/proc/self/fd"))
    lanes_before = _lane_threads()  # the default runtime's, if an earlier test started it
    for _ in range(3):
        async with Runtime(interpreters=2) as runtime, anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(functools.partial(runtime.run, kind="interpreter"), w.square, i)
    await _eventually(lambda: _lane_threads() <= lanes_before)
    assert set(os.listdir("/proc/self/fd")) <= fds_before
