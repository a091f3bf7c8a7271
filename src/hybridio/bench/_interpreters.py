"""Subinterpreters and free-threaded threads against inline and processes.

``measure(quick=True)`` returns rows ``{"name", "value", "unit", "detail"}`` (ratios against a
baseline of the same run); ``python -m hybridio.bench._interpreters [--full]`` prints them as JSON
(the ``claims`` scenario runs it under Python 3.13). docs/benchmarks.md describes each row.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import psutil

from .._runtime._gil import gil_enabled
from .._runtime._runtime import Runtime
from .._workloads import loops_for, spin
from ._work import noop

__all__ = ["measure"]

_CALLS, _WORKERS = 4, 2


def _row(name: str, value: float, unit: str, detail: str) -> dict[str, Any]:
    return {"name": name, "value": round(value, 6), "unit": unit, "detail": detail}


def _runtime(kind: str, workers: int) -> Runtime:
    if kind == "interpreter":
        return Runtime(interpreters=workers)
    return Runtime(cpu_workers=workers, cpu_backend="thread" if kind == "thread-cpu" else "process")


async def _burst(rt: Runtime, kind: str, fn: Callable[..., Any], *args: Any, calls: int) -> float:
    """Seconds for ``calls`` concurrent calls of ``fn(*args)``."""
    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(calls):
            tg.start_soon(
                lambda: rt.run(fn, *args, kind="interpreter" if kind == "interpreter" else "cpu")
            )
    return time.perf_counter() - start


async def _measure(quick: bool) -> list[dict[str, Any]]:
    kinds = ["interpreter"] if sys.version_info >= (3, 13) else []
    kinds += ["process"] + ([] if gil_enabled() else ["thread-cpu"])
    rounds, n = 3 if quick else 7, loops_for(0.05)
    rows = [
        _row("machine/cpus", os.cpu_count() or 1, "", "shared with other work: see the ratios"),
        _row("machine/gil", float(gil_enabled()), "", f"Python {sys.version.split()[0]}"),
    ]
    best = dict.fromkeys(["inline", *kinds], math.inf)
    tiny = dict.fromkeys(kinds, math.inf)
    async with AsyncExitStack() as stack:
        runtimes = {
            kind: await stack.enter_async_context(_runtime(kind, _WORKERS)) for kind in kinds
        }
        for kind, rt in runtimes.items():  # the workers start (and learn the cost)
            await _burst(rt, kind, spin, n, calls=_WORKERS)
        for _ in range(rounds):  # every kind in each round: a busy spell hits them all
            best["inline"] = min(best["inline"], _timed(lambda: [spin(n) for _ in range(_CALLS)]))
            for kind, rt in runtimes.items():
                best[kind] = min(best[kind], await _burst(rt, kind, spin, n, calls=_CALLS))
                tiny[kind] = min(tiny[kind], await _burst(rt, kind, noop, calls=1000))
    rows.append(_row("parallel/inline", best["inline"], "s", f"{_CALLS} x ~50 ms in a row"))
    for kind in kinds:
        rows.append(_row(f"parallel/{kind}", best[kind], "s", f"{_CALLS} x ~50 ms on {_WORKERS}"))
        rows.append(
            _row(
                f"parallel/{kind}/speed-up",
                best["inline"] / best[kind],
                "x",
                "inline / this, best of",
            )
        )
        rows.append(
            _row(f"tiny/{kind}", 1000 / tiny[kind], "calls/s", "1000 concurrent no-op calls")
        )
    for kind in kinds:
        async with _runtime(kind, 1) as rt:
            samples = [await _burst(rt, kind, noop, calls=1) for _ in range(200 if quick else 1000)]
            rows.append(
                _row(
                    f"round_trip/{kind}",
                    statistics.median(samples[1:]) * 1e6,
                    "us",
                    "median, one call at a time",
                )
            )
        samples = []
        for _ in range(rounds):
            async with _runtime(kind, 1) as rt:
                samples.append(await _burst(rt, kind, noop, calls=1))
        rows.append(
            _row(f"start_up/{kind}", statistics.median(samples) * 1e3, "ms", "first call, median")
        )
        if kind != "thread-cpu":
            before = psutil.Process().memory_full_info().uss
            async with _runtime(kind, _WORKERS) as rt:
                await _burst(rt, kind, spin, 10_000, calls=2 * _WORKERS)
                if kind == "interpreter":
                    grown = (psutil.Process().memory_full_info().uss - before) / _WORKERS
                    rows.append(
                        _row(
                            "memory/interpreter",
                            grown / 2**20,
                            "MiB",
                            "parent USS growth per interpreter",
                        )
                    )
                else:
                    uss = psutil.Process(rt.worker_pids()[0]).memory_full_info().uss
                    rows.append(_row("memory/process", uss / 2**20, "MiB", "a worker's own USS"))
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
