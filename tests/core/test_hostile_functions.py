"""Nothing a worker function does may corrupt another call's result or stop the runtime (issue 19).

Each test failed before the fix it names: results handed to the wrong caller when a function wrote
to file descriptor 1, a worker's ``sys.exit()`` ending the caller's program, map dropping the
results computed before a failing item, frozen dataclass exceptions turned into ``NotPicklable``,
and ``SystemExit`` while (un)pickling killing the runtime's task group.
"""

from __future__ import annotations

import functools
from typing import Any

import anyio
import pytest

import hybridio
from hybridio import FunctionAborted, NotPicklable, RemoteTraceback, Runtime

from . import _hostile as h

pytestmark = pytest.mark.anyio

KINDS = pytest.mark.parametrize("kind", ["cpu", "blocking"])


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
    assert again.original.code == 2


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
