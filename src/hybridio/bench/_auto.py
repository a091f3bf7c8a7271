"""Scenario ``auto``: does ``kind="auto"`` put each function where it runs best? Auto against the
fixed kinds alone and in a mixed workload. Method: docs/benchmarks.md; findings: docs/core.md."""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import anyio

import hybridio
from hybridio import Kind

from .._workloads import echo, loops_for, sha256_hex, sleep_for, spin
from . import _targets as t
from ._harness import Plan, rows, throughput
from ._model import MIN_REPEATS, BenchContext, Rule, ScenarioResult

SCENARIO = "auto"
FIXED: tuple[Kind, ...] = ("inline", "blocking", "cpu")
#: The mixed workload: function, callers, and its best fixed kind (what auto should find).
MIXED: dict[str, tuple[Callable[[Any], Any], int, Kind]] = {
    "tiny": (echo, 8, "inline"),
    "python 25 ms": (spin, 4, "cpu"),
    "sha256 8 MB": (sha256_hex, 2, "blocking"),
    "blocking 20 ms": (sleep_for, 8, "blocking"),
}
#: Alone: callers, auto's rule against the first kind, the kinds taking turns with auto.
SOLO: dict[str, tuple[int, Rule, tuple[Kind, ...]]] = {
    "tiny": (32, t.AUTO_TINY, ("cpu",)),
    "python 25 ms": (8, t.AUTO_PYTHON, ("inline", "cpu")),
    "sha256 8 MB": (4, t.AUTO_SHA256, ("inline", "blocking")),  # threads against inline
}


def _plan(best: Kind) -> Plan:
    """Every row; ``best``: the single kind for all functions that did best when mixed."""
    for work, (callers, rule, kinds) in SOLO.items():
        name, base = f"{work} x{callers}: ", f"{work} x{callers}: {kinds[0]}"
        yield name + "auto", base, rule
        yield from ((name + kind, base, None) for kind in kinds[1:])
    yield "python 25 ms x8: auto, loop max lag", None, t.AUTO_LAG
    yield "python 25 ms x8: cpu, loop max lag", None, None
    for work in MIXED:
        mixed = f"mixed {work}: "
        yield mixed + "auto vs best per function", mixed + "best per function", t.AUTO_MIXED
    yield f"mixed overall: auto vs {best}", f"mixed overall: {best}", t.AUTO_OVERALL


def _unit(name: str) -> str:
    return "s" if "lag" in name else "geomean calls/s" if "overall" in name else "calls/s"


async def _measure(ctx: BenchContext) -> ScenarioResult:
    """Auto and the fixed kinds taking turns in each repeat."""
    seconds, size = ctx.pick(2.0, 1.0, 0.2), ctx.pick(8 << 20, 8 << 20, 1 << 20)
    args: dict[str, Any] = {"tiny": 1, "python 25 ms": loops_for(0.025), "blocking 20 ms": 0.02}
    args["sha256 8 MB"] = b"\x5a" * size
    strategies: dict[str, dict[str, Kind]] = {k: dict.fromkeys(MIXED, k) for k in ("auto", *FIXED)}
    strategies["best per function"] = {name: work[2] for name, work in MIXED.items()}
    measured: dict[str, list[float]] = defaultdict(list)
    start = time.monotonic()
    async with hybridio.Runtime(cpu_workers=2, threads=32) as rt:

        async def rate(work: str, kind: Kind, callers: int, seconds: float = seconds) -> float:
            """Calls per second of ``callers`` callers of ``work`` for ``seconds``."""
            call = partial(rt.run, MIXED[work][0], args[work], kind=kind)
            return await throughput(call, callers, seconds, yield_every=32)

        async def mixed(kinds: Mapping[str, Kind], seconds: float = seconds) -> dict[str, float]:
            """Every function's callers at once: calls per second per function."""
            rates: dict[str, float] = {}

            async def one(work: str) -> None:
                rates[work] = await rate(work, kinds[work], MIXED[work][1], seconds)

            async with anyio.create_task_group() as tg:  # one failure stops the others
                for work in MIXED:
                    tg.start_soon(one, work)
            return rates

        ctx.progress("warming up: the workers start, auto learns the functions")
        for _ in range(4):
            for work in MIXED:
                await rate(work, "auto", 4, 0.05)
                await rate(work, "cpu", 4, 0.05)
            await mixed(strategies["auto"], 0.2)
        for repeat in range(ctx.pick(10, MIN_REPEATS, 1)):
            ctx.progress(f"repeat {repeat + 1}")
            flip = slice(None, None, -1 if repeat % 2 else 1)  # auto goes first every other time
            for work, (callers, _, kinds) in SOLO.items():
                for kind in ("auto", *kinds)[flip]:
                    name = f"{work} x{callers}: {kind}"
                    if work != "python 25 ms" or kind == "inline":  # inline: the loop is blocked
                        measured[name].append(await rate(work, kind, callers))
                        continue
                    async with hybridio.LoopMonitor(threshold=0.015, interval=0.003) as monitor:
                        measured[name].append(await rate(work, kind, callers))
                    measured[f"{name}, loop max lag"].append(monitor.report().lag.max)
            for strategy in list(strategies)[flip]:
                rates = await mixed(strategies[strategy])
                rates["overall"] = statistics.geometric_mean(rates.values())
                for work, value in rates.items():
                    measured[f"mixed {work}: {strategy}"].append(value)
        decisions = {name: dataclasses.asdict(d) for name, d in rt.stats().auto.items()}
    best = max(FIXED, key=lambda kind: statistics.median(measured[f"mixed overall: {kind}"]))
    made = rows(SCENARIO, measured, (start, time.monotonic()), _plan(best), _unit)
    title = 'kind="auto": routing learned per function'
    return ScenarioResult(SCENARIO, title, __doc__ or "", made, extra={"decisions": decisions})


def run(ctx: BenchContext) -> ScenarioResult:
    """Measure ``kind="auto"`` against fixed kinds on tiny, Python, hashing and mixed work."""
    return anyio.run(_measure, ctx, backend="asyncio")
