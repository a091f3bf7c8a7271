"""Work that cannot cross to a process gets a NotPicklable that names the culprit."""

from __future__ import annotations

import functools
import pickle
import threading

import pytest

from hybridio import NotPicklable, Runtime
from hybridio._backends import _serialize

from . import _workload as w

pytestmark = pytest.mark.anyio


async def test_lock_argument_is_named() -> None:
    async with Runtime(cpu_workers=1) as rt:
        with pytest.raises(NotPicklable, match=r"argument 0 of tests\.core\._workload\.identity"):
            await rt.run_cpu(w.identity, threading.Lock())
        assert rt.worker_pids() == []  # nothing was sent: no worker even started


async def test_generator_result_is_named_and_pool_untouched() -> None:
    async with Runtime(cpu_workers=1) as rt:
        pid, _ = await rt.run_cpu(w.where)
        with pytest.raises(NotPicklable, match="the result of") as info:
            await rt.run_cpu(w.make_generator)
        assert info.value.what == "result"
        assert "generator" in info.value.reason
        assert rt.worker_pids() == [pid]
        assert await rt.run_cpu(w.square, 3) == 9


async def test_lambda_travels_with_cloudpickle() -> None:
    async with Runtime(cpu_workers=1) as rt:
        assert await rt.run_cpu(lambda x: x + 1, 41) == 42
        offset = 10
        assert await rt.run_cpu(lambda x: x + offset, 1) == 11


async def test_lambda_without_cloudpickle_says_how_to_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_serialize, "_cloudpickle", None)
    async with Runtime(cpu_workers=1) as rt:
        with pytest.raises(NotPicklable, match="pip install cloudpickle") as info:
            await rt.run_cpu(lambda: 1)
        assert info.value.what == "function"
        assert rt.worker_pids() == []


async def test_map_cpu_sends_a_lambda_with_cloudpickle() -> None:
    async with Runtime(cpu_workers=1) as rt, rt.map_cpu(lambda x: x * 3, range(5)) as results:
        assert [x async for x in results] == [0, 3, 6, 9, 12]


async def test_map_cpu_of_a_lambda_without_cloudpickle_names_the_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_serialize, "_cloudpickle", None)

    async def consume(rt: Runtime) -> list[int]:
        async with rt.map_cpu(lambda x: x, range(3)) as results:
            return [x async for x in results]

    async with Runtime(cpu_workers=1) as rt:
        with pytest.raises(NotPicklable, match="pip install cloudpickle") as info:
            await consume(rt)
        assert info.value.what == "function"


def test_a_module_level_function_is_pickled_once_and_never_sent_stale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = w.square
    name, first = _serialize.encode_function(original)
    assert name == "tests.core._workload.square"
    assert _serialize.encode_function(original)[1] is first  # reused, not re-pickled
    # Rebinding the module's name: a reference to it would now name another function, so the
    # original is sent by value (cloudpickle), never as the stale reference.
    monkeypatch.setattr(w, "square", w.identity)
    _, again = _serialize.encode_function(original)
    assert again != first
    assert pickle.loads(again)(7) == 49


async def test_each_call_of_a_partial_gets_fresh_arguments_in_the_worker() -> None:
    async with Runtime(cpu_workers=1) as rt:
        call = functools.partial(w.append_and_count, [])
        assert [await rt.run_cpu(call, "x") for _ in range(3)] == [1, 1, 1]
        assert [await rt.run_cpu(w.append_and_count, [], "y") for _ in range(2)] == [1, 1]
