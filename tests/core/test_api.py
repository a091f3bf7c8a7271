"""The module-level API, decorators, the default runtime and argument checking."""

from __future__ import annotations

import os
import threading

import pytest

import hybridio
from hybridio import Runtime

from . import _workload as w

pytestmark = pytest.mark.anyio


async def test_one_liners_use_a_default_runtime() -> None:
    pid, _ = await hybridio.run_cpu(w.where)
    assert pid != os.getpid()
    _, thread = await hybridio.run_blocking(w.where)
    assert thread != threading.get_ident()
    assert await hybridio.run(w.square, 5, kind="inline") == 25


async def test_module_functions_use_the_enclosing_runtime() -> None:
    async with Runtime(cpu_workers=1) as rt:
        pid, _ = await hybridio.run_cpu(w.where)
        assert pid in rt.worker_pids()
        assert rt.stats()["cpu"].calls == 1


async def test_decorated_functions_work_in_every_kind() -> None:
    async with Runtime(cpu_workers=1) as rt:
        pid, value = await w.decorated_cpu(4, scale=3)
        assert pid in rt.worker_pids()
        assert value == 12
        thread, value = await w.decorated_blocking(5)
        assert thread != threading.get_ident()
        assert value == 5
        # The declared kind is the default of run(); an explicit kind wins.
        assert (await rt.run(w.decorated_cpu, 2))[0] in rt.worker_pids()
        assert await rt.run(w.decorated_cpu, 2, kind="inline") == (os.getpid(), 2)
        assert (await rt.run(w.decorated_cpu, 2, kind="blocking"))[0] == os.getpid()
        results = [r async for r in rt.map_cpu(w.decorated_cpu, [1, 2])]
        assert [v for _, v in results] == [1, 2]


async def test_coroutine_function_is_refused() -> None:
    async def not_sync() -> None:
        pass

    with pytest.raises(TypeError, match="coroutine function"):
        await hybridio.run(not_sync, kind="blocking")  # type: ignore[unused-coroutine]


async def test_unknown_kind_is_refused() -> None:
    async with Runtime() as rt:
        with pytest.raises(ValueError, match="kind must be one of"):
            await rt.run(w.square, 1, kind="gpu")  # type: ignore[call-overload]


async def test_bad_timeout_is_refused() -> None:
    async with Runtime() as rt:
        with pytest.raises(ValueError, match="timeout must be a positive number"):
            await rt.run_cpu(w.square, 1, timeout=-1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cpu_workers": 0}, "cpu_workers must be an integer >= 1"),
        ({"max_queue": -1}, "max_queue must be an integer >= 0"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"max_worker_rss": -5}, "max_worker_rss must be a positive number"),
    ],
)
def test_bad_runtime_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Runtime(**kwargs)  # type: ignore[arg-type]


async def test_runtime_must_be_entered() -> None:
    rt = Runtime()
    with pytest.raises(hybridio.RuntimeClosed, match="enter the Runtime first"):
        await rt.run_cpu(w.square, 1)


async def test_runtime_cannot_be_entered_twice() -> None:
    async with Runtime() as rt:
        with pytest.raises(RuntimeError, match="only once"):
            await rt.__aenter__()


async def test_body_exception_propagates_unwrapped() -> None:
    with pytest.raises(KeyError):
        async with Runtime():
            raise KeyError("mine")
