"""Bad arguments: ``TypeError`` for a wrong type, ``ValueError`` for a wrong value, said at the call.

The message names the argument, what it got and what it takes (CPython's own convention, which
``concurrent.futures`` and anyio follow).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import hybridio
from hybridio import Runtime

from . import _workload as w

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"cpu_workers": "x"}, TypeError, r"cpu_workers must be an integer >= 1, got 'x' \(str\)"),
        ({"cpu_workers": 2.0}, TypeError, "cpu_workers must be an integer"),
        ({"cpu_workers": True}, TypeError, "cpu_workers must be an integer"),
        ({"cpu_workers": 0}, ValueError, "cpu_workers must be an integer >= 1, got 0"),
        ({"threads": 0}, ValueError, "threads must be an integer >= 1, got 0"),
        ({"threads": "8"}, TypeError, "threads must be an integer >= 1"),
        ({"threads": None}, None, ""),
        ({"max_queue": -1}, ValueError, "max_queue must be an integer >= 0"),
        ({"max_queue": 1.5}, TypeError, "max_queue must be an integer >= 0"),
        ({"max_queue": None}, TypeError, "max_queue must be an integer >= 0"),
        ({"timeout": "Foo"}, TypeError, "timeout must be a positive number of seconds or None"),
        ({"timeout": -1}, ValueError, "timeout must be a positive number of seconds or None"),
        ({"timeout": 0}, ValueError, "timeout must be a positive number"),
        ({"timeout": math.nan}, ValueError, "timeout must be a positive number"),
        ({"timeout": True}, TypeError, "timeout must be a positive number"),
        ({"max_tasks_per_worker": 0}, ValueError, "max_tasks_per_worker must be an integer >= 1"),
        ({"max_tasks_per_worker": "3"}, TypeError, "max_tasks_per_worker must be an integer"),
        ({"max_worker_rss": -5}, ValueError, "max_worker_rss must be a positive number"),
        ({"max_worker_rss": "1G"}, TypeError, "max_worker_rss must be a positive number"),
        ({"interpreters": 0}, ValueError, "interpreters must be an integer >= 1"),
        ({"batching": "yes"}, TypeError, "batching must be True or False"),
        ({"cpu_backend": "gpu"}, ValueError, "cpu_backend must be one of"),
        ({"cpu_backend": 1}, TypeError, "cpu_backend must be one of"),
        ({"default_kind": "gpu"}, ValueError, "default_kind must be one of"),
        ({"default_kind": None}, TypeError, "default_kind must be one of"),
        ({"initializer": 5}, TypeError, "initializer must be a function"),
        ({"initargs": 5}, TypeError, "initargs must be a tuple"),
    ],
)
def test_runtime_arguments(
    kwargs: dict[str, Any], error: type[Exception] | None, message: str
) -> None:
    if error is None:
        Runtime(**kwargs)
        return
    with pytest.raises(error, match=message):
        Runtime(**kwargs)


_CALLS: dict[str, Callable[..., Awaitable[Any]]] = {
    "run": lambda rt, **kw: rt.run(w.square, 2, **kw),
    "run_cpu": lambda rt, **kw: rt.run_cpu(w.square, 2, **kw),
    "run_blocking": lambda rt, **kw: rt.run_blocking(w.square, 2, **kw),
    "hybridio.run": lambda rt, **kw: hybridio.run(w.square, 2, **kw),
    "hybridio.run_cpu": lambda rt, **kw: hybridio.run_cpu(w.square, 2, **kw),
    "hybridio.run_blocking": lambda rt, **kw: hybridio.run_blocking(w.square, 2, **kw),
}


@pytest.mark.parametrize("call", list(_CALLS))
@pytest.mark.parametrize(
    ("timeout", "error"),
    [("Foo", TypeError), (-1, ValueError), (0, ValueError), ([1], TypeError)],
)
async def test_call_timeouts(call: str, timeout: object, error: type[Exception]) -> None:
    async with Runtime(cpu_workers=1, threads=1) as rt:
        with pytest.raises(error, match="timeout must be a positive number of seconds or None"):
            await _CALLS[call](rt, timeout=timeout)
        assert rt.stats()["cpu"].calls == rt.stats()["blocking"].calls == 0


@pytest.mark.parametrize(
    ("kind", "error"), [("gpu", ValueError), (3, TypeError), (["cpu"], TypeError)]
)
async def test_call_kinds(kind: object, error: type[Exception]) -> None:
    async with Runtime() as rt:
        with pytest.raises(error, match="kind must be one of 'inline', 'blocking', 'cpu'"):
            await rt.run(w.square, 1, kind=kind)  # type: ignore[call-overload]
        with pytest.raises(error, match="kind must be one of"):
            rt.map(w.square, [1], kind=kind)  # type: ignore[call-overload]


async def test_a_call_needs_a_function() -> None:
    async with Runtime() as rt:
        with pytest.raises(TypeError, match=r"expected a function to run, got 5 \(int\)"):
            await rt.run_blocking(5)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"chunksize": 0}, ValueError, "chunksize must be an integer >= 1, got 0"),
        ({"chunksize": "10"}, TypeError, r"chunksize must be an integer >= 1, got '10' \(str\)"),
        ({"chunksize": 2.5}, TypeError, "chunksize must be an integer"),
        ({"max_in_flight": 0}, ValueError, "max_in_flight must be an integer >= 1"),
        ({"max_in_flight": "x"}, TypeError, "max_in_flight must be an integer >= 1"),
        ({"timeout": "Foo"}, TypeError, "timeout must be a positive number of seconds"),
        ({"timeout": -2}, ValueError, "timeout must be a positive number of seconds"),
    ],
)
@pytest.mark.parametrize("where", ["Runtime.map_cpu", "Runtime.map", "hybridio.map_cpu"])
async def test_map_arguments(
    where: str, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    async with Runtime(cpu_workers=1) as rt:
        start: dict[str, Callable[[], object]] = {
            "Runtime.map_cpu": lambda: rt.map_cpu(w.square, [1], **kwargs),
            "Runtime.map": lambda: rt.map(w.square, [1], kind="blocking", **kwargs),
            "hybridio.map_cpu": lambda: hybridio.map_cpu(w.square, [1], **kwargs),
        }
        with pytest.raises(error, match=message):
            start[where]()


async def test_map_needs_a_function_and_an_iterable() -> None:
    async with Runtime(cpu_workers=1) as rt:
        with pytest.raises(TypeError, match="map needs a function"):
            rt.map_cpu(5, [1])  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="iterable"):
            hybridio.map_cpu(w.square, 5)  # type: ignore[call-overload]


def test_a_timeout_of_infinity_means_no_deadline() -> None:
    Runtime(timeout=math.inf)
