"""Subinterpreters and free-threaded threads against inline and processes: docs/benchmarks.md
("interpreters"). ``python -m hybridio.bench._interpreters [--full]`` prints the rows as JSON
(``claims`` runs it in .venv313, which has no bench extra: keep this module's imports light)."""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable
from contextlib import AsyncExitStack
from functools import partial
from typing import Any

import anyio
import psutil

from hybridio import Runtime

from .._runtime._gil import gil_enabled
from .._workloads import loops_for, noop, spin
from ._harness import burst
from ._load import usable_cpus

__all__ = ["measure"]

#: Each kind measured: a runtime of ``n`` such workers, where its calls go by default.
RUNTIMES: dict[str, Callable[[int], Runtime]] = {
    "interpreter": lambda n: Runtime(interpreters=n, default_kind="interpreter"),
    "process": lambda n: Runtime(cpu_workers=n, cpu_backend="process"),
    "thread-cpu": lambda n: Runtime(cpu_workers=n, cpu_backend="thread"),
}


async def _measure(quick: bool) -> list[dict[str, Any]]:
    """Every row, in the order printed."""
    kinds = ["interpreter"] if sys.version_info >= (3, 13) else []
    kinds += ["process"] + ([] if gil_enabled() else ["thread-cpu"])
    rounds, trips, n = (3 if quick else 7), (200 if quick else 1000), loops_for(0.05)
    rows = []

    def add(name: str, value: float, unit: str, detail: str) -> None:
        rows.append({"name": name, "value": round(value, 6), "unit": unit, "detail": detail})

    add("machine/cpus", usable_cpus(), "", "usable here, shared with other work: see the ratios")
    add("machine/gil", float(gil_enabled()), "", f"Python {sys.version.split()[0]}")
    times: dict[str, list[float]] = defaultdict(list)
    async with AsyncExitStack() as stack:
        runtimes = {kind: await stack.enter_async_context(RUNTIMES[kind](2)) for kind in kinds}
        for rt in runtimes.values():  # the workers start (and learn the cost)
            await burst(2, rt.run, spin, n)
        inline = partial(runtimes["process"].run, kind="inline")
        for _ in range(rounds):  # every kind in each round: a busy spell hits them all
            times["inline"].append(await burst(4, inline, spin, n))
            for kind, rt in runtimes.items():
                times[kind].append(await burst(4, rt.run, spin, n))
                times[f"tiny/{kind}"].append(await burst(1000, rt.run, noop))
    add("parallel/inline", min(times["inline"]), "s", "4 x ~50 ms in a row, best of the rounds")
    for kind in kinds:
        add(f"parallel/{kind}", min(times[kind]), "s", "4 x ~50 ms on 2 workers")
        speedup = min(times["inline"]) / min(times[kind])
        add(f"parallel/{kind}/speed-up", speedup, "x", "inline / this")
        tiny = 1000 / min(times[f"tiny/{kind}"])
        add(f"tiny/{kind}", tiny, "calls/s", "1000 concurrent no-op calls")
    for kind in kinds:
        async with RUNTIMES[kind](1) as rt:
            await rt.run(noop)  # the worker starts
            alone = [await burst(1, rt.run, noop) for _ in range(trips)]
        add(f"round_trip/{kind}", statistics.median(alone) * 1e6, "us", "median, one by one")
        for _ in range(rounds):
            async with RUNTIMES[kind](1) as rt:
                times[f"start_up/{kind}"].append(await burst(1, rt.run, noop))
        start = statistics.median(times[f"start_up/{kind}"]) * 1e3
        add(f"start_up/{kind}", start, "ms", "first call, median")
        if kind != "thread-cpu":
            before = psutil.Process().memory_full_info().uss
            async with RUNTIMES[kind](2) as rt:
                await burst(4, rt.run, spin, 10_000)
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
