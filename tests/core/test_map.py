"""map_cpu: ordered, chunked, bounded, stops early."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator

import anyio
import anyio.lowlevel
import pytest

import hybridio
from hybridio import Runtime

from . import _workload as w

pytestmark = pytest.mark.anyio


async def test_results_keep_input_order() -> None:
    async with Runtime(cpu_workers=2) as rt:
        results = [r async for r in rt.map_cpu(w.square, range(2000))]
        assert results == [i * i for i in range(2000)]


async def test_work_runs_in_workers_in_chunks() -> None:
    async with Runtime(cpu_workers=2) as rt:
        pids = {pid async for pid, _ in rt.map_cpu(w.pid_and_value, range(500))}
        assert os.getpid() not in pids
        assert pids <= set(rt.worker_pids())
        # 500 items in far fewer round trips: chunking happened.
        assert rt.stats()["cpu"].calls < 100


async def test_fixed_chunksize_is_honoured() -> None:
    async with Runtime(cpu_workers=1) as rt:
        results = [r async for r in rt.map_cpu(w.square, range(100), chunksize=10)]
        assert results == [i * i for i in range(100)]
        assert rt.stats()["cpu"].calls == 10


async def test_memory_stays_bounded_on_a_huge_generator() -> None:
    pulled = 0

    def numbers() -> Iterator[int]:
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield i

    async with Runtime(cpu_workers=2) as rt:
        mapping = rt.map_cpu(w.square, numbers(), chunksize=50, max_in_flight=4)
        async with mapping:
            seen = 0
            async for value in mapping:
                assert value == seen * seen
                seen += 1
                if seen == 1000:
                    break
        # Never more than max_in_flight chunks ahead of the consumer.
        assert mapping.max_items_in_flight <= 4 * 50
        assert pulled <= 1000 + 5 * 50
        # Stopping early dropped the rest: the runtime is idle and usable.
        assert rt.stats()["cpu"].queued == 0
        assert await rt.run_cpu(w.square, 3) == 9


async def test_infinite_generator_stops_cleanly_with_module_level_map() -> None:
    async with Runtime(cpu_workers=1):
        total = 0
        async for value in hybridio.map_cpu(w.square, itertools.count()):
            total += 1
            if value > 10_000:
                break
        assert total == 102  # 0..101: 101 squared is the first above 10,000


async def test_async_iterable_input() -> None:
    async def source() -> AsyncIterator[int]:
        for i in range(30):
            await anyio.lowlevel.checkpoint()
            yield i

    async with Runtime(cpu_workers=1) as rt:
        assert [r async for r in rt.map_cpu(w.square, source())] == [i * i for i in range(30)]


async def test_first_exception_ends_the_map() -> None:
    async with Runtime(cpu_workers=1) as rt:
        results = rt.map_cpu(w.fail, ["x", "y"], chunksize=1)
        with pytest.raises(ValueError, match="x"):
            await results.__anext__()
        with pytest.raises(StopAsyncIteration):  # the map ended with the exception
            await results.__anext__()
        assert await rt.run_cpu(w.square, 2) == 4


async def test_empty_input() -> None:
    async with Runtime(cpu_workers=1) as rt:
        assert [r async for r in rt.map_cpu(w.square, [])] == []


async def test_bad_arguments() -> None:
    async with Runtime(cpu_workers=1) as rt:
        with pytest.raises(ValueError, match="chunksize"):
            rt.map_cpu(w.square, [1], chunksize=0)
        with pytest.raises(TypeError, match="iterable"):
            rt.map_cpu(w.square, 5)  # type: ignore[call-overload]


async def test_a_coroutine_function_is_refused_before_anything_runs() -> None:
    async def double(x: int) -> int:
        return 2 * x

    async with Runtime(cpu_workers=1) as rt:
        with pytest.raises(TypeError, match="coroutine function"):
            rt.map(double, [1], kind="blocking")
        with pytest.raises(TypeError, match="coroutine function"):
            hybridio.map_cpu(double, [1])
