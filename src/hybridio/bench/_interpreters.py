"""Scenario ``interpreters`` (named only): subinterpreters (Python 3.13+) and, with the GIL off,
``kind="cpu"`` on threads, against worker processes and inline. Method: docs/benchmarks.md."""

from __future__ import annotations

import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import AsyncExitStack

import anyio
import psutil

from .. import Runtime
from .._runtime._gil import gil_enabled
from .._workloads import loops_for, noop, spin
from ._harness import Plan, burst, rows
from ._model import BenchContext, Row, ScenarioResult
from ._targets import INTERPRETER_SPEEDUP

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


async def _memory(kind: str) -> float:
    """Bytes per worker: a worker process's own USS, else this process's growth per worker."""
    before = psutil.Process().memory_full_info().uss
    async with RUNTIMES[kind](2) as rt:
        await burst(4, rt.run, spin, 10_000)
        if kind == "process":
            return float(psutil.Process(rt.worker_pids()[0]).memory_full_info().uss)
        return (psutil.Process().memory_full_info().uss - before) / 2


def _plan(kinds: list[str]) -> Plan:
    """Each kind's speedup over inline, and the other kinds against processes."""
    for kind in kinds:
        rule = INTERPRETER_SPEEDUP if kind == "interpreter" else None
        yield f"{kind}: {PARALLEL} vs inline: {PARALLEL}", f"inline: {PARALLEL}", rule
        for what in (TINY, ALONE, FIRST, "memory"):
            base = None if kind == "process" else f"process: {what}"
            yield f"{kind}: {what}" + (f" vs {base}" if base else ""), base, None


def _unit(name: str) -> str:
    return UNITS[name.rsplit(": ", 1)[1]]


async def _measure(ctx: BenchContext, kinds: list[str]) -> list[Row]:
    """The rows of ``kinds``, every kind measured in each repeat (a busy spell hits them all)."""
    start = time.monotonic()
    n, trips = loops_for(ctx.pick(0.05, 0.05, 0.005)), ctx.pick(200, 100, 10)
    measured: dict[str, list[float]] = defaultdict(list)
    async with AsyncExitStack() as stack:
        runtimes = {kind: await stack.enter_async_context(RUNTIMES[kind](2)) for kind in kinds}
        for rt in runtimes.values():  # the workers start (and learn the cost)
            await burst(2, rt.run, spin, n)
        inline = await stack.enter_async_context(Runtime(default_kind="inline"))
        for repeat in range(ctx.pick(10, 6, 1)):
            ctx.progress(f"repeat {repeat + 1}")
            measured[f"inline: {PARALLEL}"].append(4 / await burst(4, inline.run, spin, n))
            for kind, rt in runtimes.items():
                measured[f"{kind}: {PARALLEL}"].append(4 / await burst(4, rt.run, spin, n))
                measured[f"{kind}: {TINY}"].append(1000 / await burst(1000, rt.run, noop))
                alone = [await burst(1, rt.run, noop) for _ in range(trips)]
                measured[f"{kind}: {ALONE}"].append(statistics.median(alone))
                async with RUNTIMES[kind](1) as fresh:  # its workers start on the first call
                    measured[f"{kind}: {FIRST}"].append(await burst(1, fresh.run, noop))
    for kind in kinds:
        measured[f"{kind}: memory"].append(await _memory(kind))
    return rows(SCENARIO, measured, (start, time.monotonic()), _plan(kinds), _unit)


def run(ctx: BenchContext) -> ScenarioResult:
    """Measure every kind this Python runs, on asyncio; a kind it lacks is a row saying why."""
    missing = {"interpreter": "needs Python 3.13+"} if sys.version_info < (3, 13) else {}
    if gil_enabled():
        missing["thread-cpu"] = "needs a free-threaded CPython with the GIL off"
    kinds = [kind for kind in RUNTIMES if kind not in missing]
    made = anyio.run(_measure, ctx, kinds, backend="asyncio")
    for kind, why in missing.items():
        note = f"not measured: {why} (this is Python {sys.version.split()[0]})"
        made.append(Row(SCENARIO, f"{kind}: {PARALLEL}", float("nan"), "tasks/s", 0, note=note))
    title = "hybridio's CPU kinds: subinterpreters, processes, threads without the GIL"
    return ScenarioResult(SCENARIO, title, __doc__ or "", made)
