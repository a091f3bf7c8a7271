"""Thread work as anyio's ``to_thread`` users expect it: contexts, references, bounds, exit.

Each case is a behaviour the peers' test suites check (anyio ``test_to_thread``, CPython's
``concurrent.futures``): the caller's ``contextvars`` are seen by the function, nothing of a call
is kept once it returned, there are never more threads than ``threads=``, and a thread stuck in an
abandoned call does not keep the interpreter from exiting.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import anyio
import pytest

import hybridio
from hybridio import OffloadTimeout, Runtime

from . import _workload as w

pytestmark = pytest.mark.anyio

_request: ContextVar[str] = ContextVar("hybridio_test_request", default="unset")


def _read_request(_: object = None) -> str:
    return _request.get()


def _set_and_read(value: str) -> str:
    _request.set(value)  # in the call's own copy: the caller's value is unchanged
    return _request.get()


class Box:
    """An object a weak reference can watch (ints and strings cannot be)."""

    def __init__(self, label: str = "") -> None:
        self.label = label


class BoxError(Exception):
    """Carries an argument, as exceptions often do."""


def make_box(arg: Box) -> Box:
    return Box(arg.label + "!")


def raise_with(arg: Box) -> None:
    raise BoxError(arg.label)


@contextmanager
def _no_gc() -> Iterator[None]:
    """Only reference counting frees objects here: anything in a cycle stays alive."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# -- contextvars --------------------------------------------------------------------------------


async def test_the_callers_context_is_seen_in_the_thread() -> None:
    token = _request.set("caller")
    try:
        async with Runtime() as rt:
            assert await rt.run_blocking(_read_request) == "caller"
        assert await hybridio.run_blocking(_read_request) == "caller"  # the default runtime
    finally:
        _request.reset(token)


async def test_a_function_setting_a_variable_does_not_change_the_callers() -> None:
    async with Runtime() as rt:
        assert await rt.run_blocking(_set_and_read, "inside") == "inside"
    assert _request.get() == "unset"


async def test_32_concurrent_callers_each_see_their_own_context() -> None:
    """Batched calls (one thread trip for several callers) each run in their caller's context."""
    seen: dict[int, str] = {}
    gate = threading.Event()

    async def caller(rt: Runtime, i: int) -> None:
        _request.set(f"caller {i}")  # this task's own context
        seen[i] = await rt.run_blocking(_read_request, i)

    async with Runtime(threads=1) as rt:
        await rt.run_blocking(_read_request)  # measured as tiny: queued calls share a trip
        async with anyio.create_task_group() as tg:
            tg.start_soon(rt.run_blocking, gate.wait, 10.0)  # holds the one thread
            await anyio.sleep(0.05)
            for i in range(32):
                tg.start_soon(caller, rt, i)
            await anyio.sleep(0.05)
            gate.set()
        assert rt.stats()["blocking"].batched_calls > 0  # several callers shared a thread trip
    assert seen == {i: f"caller {i}" for i in range(32)}


async def test_map_over_threads_runs_in_the_callers_context() -> None:
    token = _request.set("mapper")
    try:
        async with (
            Runtime(threads=2) as rt,
            rt.map(_read_request, range(20), kind="blocking") as it,
        ):
            assert [value async for value in it] == ["mapper"] * 20
    finally:
        _request.reset(token)


# -- no retained references ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["blocking", "cpu"])
async def test_arguments_and_results_are_released_once_the_call_returns(
    kind: hybridio.Kind,
) -> None:
    async with Runtime(threads=2, cpu_workers=1) as rt:
        await rt.run(make_box, Box("warm"), kind=kind)
        with _no_gc():
            arg = Box("x")
            arg_ref = weakref.ref(arg)
            result = await rt.run(make_box, arg, kind=kind)
            assert result.label == "x!"
            result_ref = weakref.ref(result)
            del arg, result
            assert arg_ref() is None
            assert result_ref() is None


@pytest.mark.parametrize("kind", ["blocking", "cpu"])
async def test_an_exception_and_its_arguments_are_released_without_the_gc(
    kind: hybridio.Kind,
) -> None:
    async with Runtime(threads=2, cpu_workers=1) as rt:
        await rt.run(make_box, Box("warm"), kind=kind)
        with _no_gc():
            arg = Box("x")
            arg_ref = weakref.ref(arg)
            error_ref: weakref.ref[BaseException] | None = None
            try:
                await rt.run(raise_with, arg, kind=kind)
            except BoxError as exc:
                error_ref = weakref.ref(exc)
            del arg
            assert error_ref is not None
            assert error_ref() is None
            assert arg_ref() is None


_held: ContextVar[Box] = ContextVar("hybridio_test_held")


async def test_the_runtime_keeps_no_callers_context() -> None:
    """Background tasks started by the first call do not keep that caller's context values."""
    async with Runtime(threads=2) as rt:
        with _no_gc():
            value = Box("context")
            value_ref = weakref.ref(value)
            token = _held.set(value)
            arg = Box("argument")
            arg_ref = weakref.ref(arg)
            await rt.run_blocking(make_box, arg)  # the first call starts the thread backend
            _held.reset(token)
            del value, arg
            assert value_ref() is None
            assert arg_ref() is None


def test_the_default_runtime_keeps_no_callers_context() -> None:
    async def main() -> weakref.ref[Box]:
        value = Box("context")
        _held.set(value)
        await hybridio.run_blocking(make_box, Box())  # creates the loop's default runtime
        await hybridio.run_cpu(make_box, Box())
        return weakref.ref(value)

    async def outer() -> None:
        with _no_gc():
            value_ref = await asyncio.create_task(main())  # main's context ends with its task
            await asyncio.sleep(0)  # the loop lets go of the callback that woke us with the task
            assert value_ref() is None

    asyncio.run(outer())


async def test_batched_calls_are_released_once_they_return() -> None:
    """The dispatcher's driver does not keep the last batch it ran."""
    gate = threading.Event()
    async with Runtime(threads=1) as rt:
        await rt.run_blocking(make_box, Box("warm"))
        with _no_gc():
            args = [Box(str(i)) for i in range(8)]
            refs = [weakref.ref(arg) for arg in args]
            result_refs: list[weakref.ref[Box]] = []

            async def caller(arg: Box) -> None:
                result = await rt.run_blocking(make_box, arg)
                result_refs.append(weakref.ref(result))

            async with anyio.create_task_group() as tg:
                tg.start_soon(rt.run_blocking, gate.wait, 10.0)
                await anyio.sleep(0.05)
                for arg in args:
                    tg.start_soon(caller, arg)
                await anyio.sleep(0.05)
                gate.set()
            del args, arg
            assert [ref() for ref in refs] == [None] * 8
            assert [ref() for ref in result_refs] == [None] * 8


# -- bounds and exit ----------------------------------------------------------------------------


def _pool_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("hybridio blocking")}


async def test_never_more_threads_than_threads_under_load() -> None:
    """Timeouts, cancellations and a burst never take the pool past ``threads``."""
    ran_on: set[int] = set()
    peak = 0
    before = _pool_threads()

    def work(seconds: float) -> None:
        nonlocal peak
        ran_on.add(threading.get_ident())
        peak = max(peak, len(_pool_threads() - before))
        w.sleep_then(seconds)

    async def give_up(rt: Runtime, seconds: float) -> None:
        with anyio.move_on_after(0.01):
            await rt.run_blocking(work, seconds)

    async def time_out(rt: Runtime, seconds: float) -> None:
        try:
            await rt.run_blocking(work, seconds, timeout=0.01)
        except OffloadTimeout:
            pass

    async with Runtime(threads=3) as rt:
        for _ in range(3):
            async with anyio.create_task_group() as tg:
                for i in range(60):
                    seconds = 0.002 * (i % 5)
                    if i % 3 == 0:
                        tg.start_soon(give_up, rt, seconds)
                    elif i % 3 == 1:
                        tg.start_soon(time_out, rt, seconds)
                    else:
                        tg.start_soon(rt.run_blocking, work, seconds)
            peak = max(peak, len(_pool_threads() - before))
        assert len(ran_on) <= 3
        assert peak <= 3
    for thread in _pool_threads() - before:
        thread.join(5)
    assert not _pool_threads() - before  # the runtime's threads stopped with it


def _run_script(script: str, backend: str) -> subprocess.CompletedProcess[str]:
    runner = {
        "asyncio": "asyncio.run(main())",
        "asyncio+uvloop": "import uvloop; uvloop.run(main())",
        "trio": "import trio; trio.run(main)",
    }[backend]
    code = textwrap.dedent(script) + f"\n{runner}\nprint('returned', flush=True)\n"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("backend", ["asyncio", "asyncio+uvloop", "trio"])
def test_a_thread_stuck_in_an_abandoned_call_does_not_block_exit(backend: str) -> None:
    result = _run_script(
        """
        import asyncio, time
        import hybridio

        async def main():
            try:
                await hybridio.run_blocking(time.sleep, 1000, timeout=0.2)
            except hybridio.OffloadTimeout:
                print("timed out", flush=True)
        """,
        backend,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["timed", "out", "returned"]
