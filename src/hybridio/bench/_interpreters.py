"""Subinterpreters and free-threaded threads against inline and processes (issue 13).

``measure()`` returns plain dicts (no CLI, no files), so any runner can hook it in::

    from hybridio.bench._interpreters import measure
    rows = measure(quick=True)

Each row is ``{"name", "value", "unit", "detail"}``; ratios are against a baseline measured in
the same run. Scenarios:

* ``parallel``: 4 calls of ~50 ms of pure-Python work, inline (one after the other on the loop)
  against ``kind="interpreter"`` and ``kind="cpu"`` on 2 workers (started beforehand);
  on a free-threaded build with the GIL off, ``kind="cpu"`` on threads too. Each round runs
  inline and then every kind, so that a busy spell of the machine hits them all.
* ``tiny``: calls per second of 1000 concurrent calls that do nothing (batched round trips).
* ``round_trip``: the median latency of a call that does nothing, one at a time.
* ``start_up``: a fresh runtime's first call (worker start-up and imports included).
* ``memory``: what one more worker costs: the parent's USS growth per interpreter, and a worker
  process's own USS (memory no other process shares).

``python -m hybridio.bench._interpreters [--full]`` prints the rows as JSON.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio

from .._runtime._gil import gil_enabled
from .._runtime._runtime import Kind, Runtime
from .._workloads import spin
from ._work import noop

__all__ = ["measure"]

Row = dict[str, Any]
_CALL_SECONDS = 0.05
_CALLS = 4
_WORKERS = 2


def _row(name: str, value: float, unit: str, detail: str) -> Row:
    return {"name": name, "value": round(value, 6), "unit": unit, "detail": detail}


def _calibrate(seconds: float) -> int:
    """How many ``spin`` loops take ``seconds`` here (best of three, on this thread)."""
    n = 200_000
    best = min(_timed(lambda: spin(n)) for _ in range(3))
    return max(1, int(n * seconds / best))


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _uss(pid: int | None = None) -> int:
    """Memory of the process that no other process shares (bytes); 0 without psutil."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with the bench extra
        return 0
    return int(psutil.Process(pid).memory_full_info().uss)


def _runtime(kind: str, workers: int) -> Runtime:
    if kind == "interpreter":
        return Runtime(interpreters=workers)
    if kind == "thread-cpu":
        return Runtime(cpu_workers=workers, cpu_backend="thread")
    return Runtime(cpu_workers=workers, cpu_backend="process")


def _kind(kind: str) -> Kind:
    return "interpreter" if kind == "interpreter" else "cpu"


async def _parallel(kinds: list[str], n: int, rounds: int) -> list[Row]:
    """Best of ``rounds``; every round runs inline and then each kind (the same noise for all)."""
    async with AsyncExitStack() as stack:
        runs = {}
        for kind in kinds:
            rt = await stack.enter_async_context(_runtime(kind, _WORKERS))
            runs[kind] = functools.partial(rt.run, kind=_kind(kind))
            async with anyio.create_task_group() as tg:  # start the workers (not measured)
                for _ in range(_WORKERS):
                    tg.start_soon(runs[kind], spin, n)  # and teach the dispatcher its cost
        best = dict.fromkeys(["inline", *kinds], float("inf"))
        for _ in range(rounds):
            best["inline"] = min(best["inline"], _timed(lambda: [spin(n) for _ in range(_CALLS)]))
            for kind, run in runs.items():
                start = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    for _ in range(_CALLS):
                        tg.start_soon(run, spin, n)
                best[kind] = min(best[kind], time.perf_counter() - start)
    inline = best["inline"]
    rows = [_row("parallel/inline", inline, "s", f"{_CALLS} x ~50 ms in a row")]
    for kind in kinds:
        rows.append(_row(f"parallel/{kind}", best[kind], "s", f"{_CALLS} x ~50 ms on {_WORKERS}"))
        rows.append(
            _row(f"parallel/{kind}/speed-up", inline / best[kind], "x", "inline / this, best of")
        )
    return rows


async def _tiny_throughput(kinds: list[str], calls: int, rounds: int) -> list[Row]:
    """Calls per second of ``calls`` concurrent do-nothing calls (what offloading itself costs)."""
    async with AsyncExitStack() as stack:
        runs = {}
        for kind in kinds:
            rt = await stack.enter_async_context(_runtime(kind, _WORKERS))
            runs[kind] = functools.partial(rt.run, kind=_kind(kind))
            await runs[kind](noop)
        best = dict.fromkeys(kinds, float("inf"))
        for _ in range(rounds):
            for kind, run in runs.items():
                start = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    for _ in range(calls):
                        tg.start_soon(run, noop)
                best[kind] = min(best[kind], time.perf_counter() - start)
    return [
        _row(f"tiny/{kind}", calls / best[kind], "calls/s", f"{calls} concurrent no-op calls")
        for kind in kinds
    ]


async def _round_trip(kinds: list[str], calls: int) -> list[Row]:
    rows = []
    for kind in kinds:
        async with _runtime(kind, 1) as rt:
            await rt.run(noop, kind=_kind(kind))
            samples = []
            for _ in range(calls):
                start = time.perf_counter()
                await rt.run(noop, kind=_kind(kind))
                samples.append(time.perf_counter() - start)
        median = statistics.median(samples)
        rows.append(_row(f"round_trip/{kind}", median * 1e6, "us", "median, one call at a time"))
    return rows


async def _start_up(kinds: list[str], rounds: int) -> list[Row]:
    rows = []
    for kind in kinds:
        samples = []
        for _ in range(rounds):
            async with _runtime(kind, 1) as rt:
                start = time.perf_counter()
                await rt.run(noop, kind=_kind(kind))
                samples.append(time.perf_counter() - start)
        rows.append(
            _row(f"start_up/{kind}", statistics.median(samples) * 1e3, "ms", "first call, median")
        )
    return rows


async def _memory(kinds: list[str]) -> list[Row]:
    rows = []
    if "interpreter" in kinds:
        before = _uss()
        async with Runtime(interpreters=_WORKERS) as rt:
            async with anyio.create_task_group() as tg:
                for _ in range(_WORKERS * 2):
                    tg.start_soon(functools.partial(rt.run, kind="interpreter"), spin, 10_000)
            grown = (_uss() - before) / _WORKERS
        rows.append(
            _row("memory/interpreter", grown / 2**20, "MiB", "parent USS growth per interpreter")
        )
    if "process" in kinds:
        async with Runtime(cpu_workers=1, cpu_backend="process") as rt:
            await rt.run(spin, 10_000, kind="cpu")
            (pid,) = rt.worker_pids()
            rows.append(_row("memory/process", _uss(pid) / 2**20, "MiB", "a worker's own USS"))
    return rows


async def _measure(quick: bool) -> list[Row]:
    kinds = ["process"]
    if sys.version_info >= (3, 13):
        kinds.insert(0, "interpreter")
    if not gil_enabled():
        kinds.append("thread-cpu")
    rounds = 3 if quick else 7
    n = _calibrate(_CALL_SECONDS)
    rows = [
        _row("machine/cpus", os.cpu_count() or 1, "", "shared with other work: see the ratios"),
        _row("machine/gil", float(gil_enabled()), "", f"Python {sys.version.split()[0]}"),
    ]
    rows += await _parallel(kinds, n, rounds)
    rows += await _tiny_throughput(kinds, 1000, rounds)
    rows += await _round_trip(kinds, 200 if quick else 1000)
    rows += await _start_up(kinds, rounds)
    rows += await _memory(kinds)
    return rows


def measure(quick: bool = True) -> list[Row]:
    """Run every scenario on asyncio and return the rows (see the module docstring)."""
    return anyio.run(_measure, quick)


if __name__ == "__main__":
    print(json.dumps(measure(quick="--full" not in sys.argv), indent=1))
