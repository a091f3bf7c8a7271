"""Scenario ``interpreters`` (named only): hybridio's CPU kinds side by side, subinterpreters
(``kind="interpreter"``, Python 3.13+), worker processes and, with the GIL off, ``kind="cpu"`` on
threads, each against processes (and inline). Run it with the Python to measure; a kind this
Python lacks is a row saying so. Method and rows: docs/benchmarks.md ("interpreters")."""

from __future__ import annotations

import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import AsyncExitStack
from functools import partial

import anyio
import psutil

from hybridio import Runtime

from .._runtime._gil import gil_enabled
from .._workloads import loops_for, noop, spin
from ._harness import Plan, burst, rows
from ._model import BenchContext, Row, ScenarioResult
from ._targets import INTERPRETER_SPEEDUP

__all__ = ["run"]

SCENARIO = "interpreters"
#: Each kind measured: a runtime of ``n`` such workers, where its calls go by default.
RUNTIMES: dict[str, Callable[[int], Runtime]] = {
    "interpreter": lambda n: Runtime(interpreters=n, default_kind="interpreter"),
    "process": lambda n: Runtime(cpu_workers=n, cpu_backend="process"),
    "thread-cpu": lambda n: Runtime(cpu_workers=n, cpu_backend="thread"),
}
PARALLEL, TINY = "4 tasks of ~50 ms on 2 workers", "1000 no-op calls at once"
ALONE, FIRST = "lone call round trip", "fresh runtime's first call"
UNITS = {PARALLEL: "tasks/s", TINY: "calls/s", ALONE: "s", FIRST: "s", "memory": "bytes"}


def _available() -> tuple[list[str], list[Row]]:
    """The kinds this Python runs, and a row for each it lacks."""
    missing = {"interpreter": "needs Python 3.13+"} if sys.version_info < (3, 13) else {}
    if gil_enabled():
        missing["thread-cpu"] = "needs a free-threaded CPython with the GIL off"
    python = f"not measured: {{}} (this is Python {sys.version.split()[0]})"
    return [kind for kind in RUNTIMES if kind not in missing], [
        Row(SCENARIO, f"{kind}: {PARALLEL}", float("nan"), "tasks/s", 0, note=python.format(why))
        for kind, why in missing.items()
    ]


async def _memory(kind: str) -> float:
    """Bytes per worker: a worker process's own USS, or this process's growth per interpreter."""
    before = psutil.Process().memory_full_info().uss
    async with RUNTIMES[kind](2) as rt:
        await burst(4, rt.run, spin, 10_000)
        if kind == "process":
            return float(psutil.Process(rt.worker_pids()[0]).memory_full_info().uss)
        return (psutil.Process().memory_full_info().uss - before) / 2


async def _measure(ctx: BenchContext, kinds: list[str]) -> dict[str, list[float]]:
    """Every repeat's quantities, every kind in each repeat (a busy spell hits them all)."""
    n, trips = loops_for(ctx.pick(0.05, 0.05, 0.005)), ctx.pick(200, 100, 10)
    measured: dict[str, list[float]] = defaultdict(list)
    async with AsyncExitStack() as stack:
        runtimes = {kind: await stack.enter_async_context(RUNTIMES[kind](2)) for kind in kinds}
        for rt in runtimes.values():  # the workers start (and learn the cost)
            await burst(2, rt.run, spin, n)
        inline = partial(runtimes["process"].run, kind="inline")
        for repeat in range(ctx.pick(10, 6, 1)):
            ctx.progress(f"repeat {repeat + 1}")
            measured[f"inline: {PARALLEL}"].append(4 / await burst(4, inline, spin, n))
            for kind, rt in runtimes.items():
                measured[f"{kind}: {PARALLEL}"].append(4 / await burst(4, rt.run, spin, n))
                measured[f"{kind}: {TINY}"].append(1000 / await burst(1000, rt.run, noop))
                alone = [await burst(1, rt.run, noop) for _ in range(trips)]
                measured[f"{kind}: {ALONE}"].append(statistics.median(alone))
                start = time.perf_counter()
                async with RUNTIMES[kind](1) as fresh:
                    await fresh.run(noop)
                    measured[f"{kind}: {FIRST}"].append(time.perf_counter() - start)
    for kind in kinds:
        if kind != "thread-cpu":  # threads have no memory of their own
            measured[f"{kind}: memory"].append(await _memory(kind))
    return measured


def _plan(kinds: list[str]) -> Plan:
    """Each kind's speedup over inline, and the other kinds against processes."""
    for kind in kinds:
        rule = INTERPRETER_SPEEDUP if kind == "interpreter" else None
        yield f"{kind}: {PARALLEL} vs inline: {PARALLEL}", f"inline: {PARALLEL}", rule
        for what in (TINY, ALONE, FIRST, "memory"):
            if kind == "process" or (what, kind) == ("memory", "thread-cpu"):
                yield f"{kind}: {what}", None, None
            else:
                yield f"{kind}: {what} vs process: {what}", f"process: {what}", None


def _unit(name: str) -> str:
    return UNITS[name.split(" vs ")[0].split(": ")[1]]


def run(ctx: BenchContext) -> ScenarioResult:
    """Measure every kind this Python runs, on asyncio."""
    kinds, missing = _available()
    start = time.monotonic()
    measured = anyio.run(_measure, ctx, kinds, backend="asyncio")
    made = rows(SCENARIO, measured, (start, time.monotonic()), _plan(kinds), _unit)
    title = "hybridio's CPU kinds: subinterpreters, processes, threads without the GIL"
    return ScenarioResult(SCENARIO, title, __doc__ or "", made + missing)
