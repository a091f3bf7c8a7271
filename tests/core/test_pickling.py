"""Work that cannot cross to a process gets a NotPicklable that names the culprit."""

from __future__ import annotations

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
