"""Subinterpreters and free-threaded threads against inline and processes: docs/benchmarks.md
("interpreters"). ``python -m hybridio.bench._interpreters [--full]`` prints the rows as JSON
(``claims`` runs it in .venv313, which has no bench extra: keep this module's imports light)."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import psutil

from hybridio import Kind, Runtime

from .._runtime._gil import gil_enabled
from .._workloads import loops_for, noop, spin
from ._load import usable_cpus
from ._model import gather

__all__ = ["burst", "measure"]

#: The ``kind=`` of each measured kind's calls ("cpu" for processes and threads).
WHERE: dict[str, Kind] = {"interpreter": "interpreter", "inline": "inline"}


async def burst(call: Callable[[], Awaitable[object]], calls: int) -> float:
    """Seconds for ``calls`` concurrent calls."""
    start = time.perf_counter()
    await gather([call] * calls)
    return time.perf_counter() - start


def _runtime(kind: str, workers: int) -> Runtime:
    """A runtime with ``workers`` workers of ``kind``."""
    if kind == "interpreter":
        return Runtime(interpreters=workers)
    return Runtime(cpu_workers=workers, cpu_backend="thread" if kind == "thread-cpu" else "process")


async def _burst(
    rt: Runtime, kind: str, calls: int, fn: Callable[..., Any] = noop, *args: Any
) -> float:
    """Seconds for ``calls`` concurrent calls of ``fn(*args)`` on ``kind`` (or inline)."""
    return await burst(lambda: rt.run(fn, *args, kind=WHERE.get(kind, "cpu")), calls)


async def _measure(quick: bool) -> list[dict[str, Any]]:
    """Every row, in the order printed."""
    kinds = ["interpreter"] if sys.version_info >= (3, 13) else []
    kinds += ["process"] + ([] if gil_enabled() else ["thread-cpu"])
    rounds, n, trips = (3, loops_for(0.05), 199) if quick else (7, loops_for(0.05), 999)
    rows = []

    def add(name: str, value: float, unit: str, detail: str) -> None:
        rows.append({"name": name, "value": round(value, 6), "unit": unit, "detail": detail})

    add("machine/cpus", usable_cpus(), "", "usable here, shared with other work: see the ratios")
    add("machine/gil", float(gil_enabled()), "", f"Python {sys.version.split()[0]}")
    times: dict[str, list[float]] = defaultdict(list)
    async with AsyncExitStack() as stack:
        runtimes = {kind: await stack.enter_async_context(_runtime(kind, 2)) for kind in kinds}
        for kind, rt in runtimes.items():  # the workers start (and learn the cost)
            await _burst(rt, kind, 2, spin, n)
        for _ in range(rounds):  # every kind in each round: a busy spell hits them all
            times["inline"].append(await _burst(runtimes["process"], "inline", 4, spin, n))
            for kind, rt in runtimes.items():
                times[kind].append(await _burst(rt, kind, 4, spin, n))
                times[f"tiny/{kind}"].append(await _burst(rt, kind, 1000))
    inline = min(times["inline"])
    add("parallel/inline", inline, "s", "4 x ~50 ms in a row, best of the rounds")
    for kind in kinds:
        add(f"parallel/{kind}", min(times[kind]), "s", "4 x ~50 ms on 2 workers")
        add(f"parallel/{kind}/speed-up", inline / min(times[kind]), "x", "inline / this")
        tiny = 1000 / min(times[f"tiny/{kind}"])
        add(f"tiny/{kind}", tiny, "calls/s", "1000 concurrent no-op calls")
    for kind in kinds:
        async with _runtime(kind, 1) as rt:  # one by one, after the first call
            times[f"round_trip/{kind}"] = [await _burst(rt, kind, 1) for _ in range(trips + 1)][1:]
        for _ in range(rounds):
            async with _runtime(kind, 1) as rt:
                times[f"start_up/{kind}"].append(await _burst(rt, kind, 1))
        trip = statistics.median(times[f"round_trip/{kind}"]) * 1e6
        add(f"round_trip/{kind}", trip, "us", "median, one by one")
        start = statistics.median(times[f"start_up/{kind}"]) * 1e3
        add(f"start_up/{kind}", start, "ms", "first call, median")
        if kind != "thread-cpu":
            before = psutil.Process().memory_full_info().uss
            async with _runtime(kind, 2) as rt:
                await _burst(rt, kind, 4, spin, 10_000)
                if kind == "interpreter":
                    grown = (psutil.Process().memory_full_info().uss - before) / 2 / 2**20
                    add("memory/interpreter", grown, "MiB", "parent USS growth per interpreter")
                else:
                    uss = psutil.Process(rt.worker_pids()[0]).memory_full_info().uss / 2**20
                    add("memory/process", uss, "MiB", "a worker's own USS")
    return rows


def measure(quick: bool = True) -> list[dict[str, Any]]:
    """Run every measurement on asyncio and return the rows."""
    return anyio.run(_measure, quick)


if __name__ == "__main__":
    print(json.dumps(measure(quick="--full" not in sys.argv), indent=1))
