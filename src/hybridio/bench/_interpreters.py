"""Subinterpreters and free-threaded threads against inline and processes.

``measure(quick=True)`` returns rows ``{"name", "value", "unit", "detail"}`` (ratios against a
baseline of the same run); ``python -m hybridio.bench._interpreters [--full]`` prints them as JSON
(the ``claims`` scenario runs it under Python 3.13). docs/benchmarks.md describes each row.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import psutil

from hybridio import Kind, Runtime

from .._runtime._gil import gil_enabled
from .._workloads import loops_for, noop, spin
from ._load import usable_cpus

__all__ = ["measure"]


def _runtime(kind: str, workers: int) -> Runtime:
    if kind == "interpreter":
        return Runtime(interpreters=workers)
    return Runtime(cpu_workers=workers, cpu_backend="thread" if kind == "thread-cpu" else "process")


async def _burst(rt: Runtime, kind: str, fn: Callable[..., Any], *args: Any, calls: int) -> float:
    """Seconds for ``calls`` concurrent calls of ``fn(*args)``."""
    where: Kind = "interpreter" if kind == "interpreter" else "cpu"
    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(calls):
            tg.start_soon(lambda: rt.run(fn, *args, kind=where))
    return time.perf_counter() - start


async def _measure(quick: bool) -> list[dict[str, Any]]:
    kinds = ["interpreter"] if sys.version_info >= (3, 13) else []
    kinds += ["process"] + ([] if gil_enabled() else ["thread-cpu"])
    rounds, n = 3 if quick else 7, loops_for(0.05)
    rows = []

    def add(name: str, value: float, unit: str, detail: str) -> None:
        rows.append({"name": name, "value": round(value, 6), "unit": unit, "detail": detail})

    add("machine/cpus", usable_cpus(), "", "usable here, shared with other work: see the ratios")
    add("machine/gil", float(gil_enabled()), "", f"Python {sys.version.split()[0]}")
    best = dict.fromkeys(["inline", *kinds], math.inf)
    tiny = dict.fromkeys(kinds, math.inf)
    async with AsyncExitStack() as stack:
        runtimes = {kind: await stack.enter_async_context(_runtime(kind, 2)) for kind in kinds}
        for kind, rt in runtimes.items():  # the workers start (and learn the cost)
            await _burst(rt, kind, spin, n, calls=2)
        for _ in range(rounds):  # every kind in each round: a busy spell hits them all
            best["inline"] = min(best["inline"], _timed(lambda: [spin(n) for _ in range(4)]))
            for kind, rt in runtimes.items():
                best[kind] = min(best[kind], await _burst(rt, kind, spin, n, calls=4))
                tiny[kind] = min(tiny[kind], await _burst(rt, kind, noop, calls=1000))
    add("parallel/inline", best["inline"], "s", "4 x ~50 ms in a row, best of the rounds")
    for kind in kinds:
        add(f"parallel/{kind}", best[kind], "s", "4 x ~50 ms on 2 workers")
        add(f"parallel/{kind}/speed-up", best["inline"] / best[kind], "x", "inline / this")
        add(f"tiny/{kind}", 1000 / tiny[kind], "calls/s", "1000 concurrent no-op calls")
    for kind in kinds:
        async with _runtime(kind, 1) as rt:
            trips = [await _burst(rt, kind, noop, calls=1) for _ in range(200 if quick else 1000)]
        add(f"round_trip/{kind}", statistics.median(trips[1:]) * 1e6, "us", "median, one by one")
        starts = []
        for _ in range(rounds):
            async with _runtime(kind, 1) as rt:
                starts.append(await _burst(rt, kind, noop, calls=1))
        add(f"start_up/{kind}", statistics.median(starts) * 1e3, "ms", "first call, median")
        if kind != "thread-cpu":
            before = psutil.Process().memory_full_info().uss
            async with _runtime(kind, 2) as rt:
                await _burst(rt, kind, spin, 10_000, calls=4)
                if kind == "interpreter":
                    grown = (psutil.Process().memory_full_info().uss - before) / 2 / 2**20
                    add("memory/interpreter", grown, "MiB", "parent USS growth per interpreter")
                else:
                    uss = psutil.Process(rt.worker_pids()[0]).memory_full_info().uss / 2**20
                    add("memory/process", uss, "MiB", "a worker's own USS")
    return rows


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(quick: bool = True) -> list[dict[str, Any]]:
    """Run every measurement on asyncio and return the rows (see the module docstring)."""
    return anyio.run(_measure, quick)


if __name__ == "__main__":
    print(json.dumps(measure(quick="--full" not in sys.argv), indent=1))
