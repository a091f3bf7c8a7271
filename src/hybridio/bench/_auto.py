"""Scenario ``auto``: does ``kind="auto"`` put each function where it runs best? Auto against the
fixed kinds alone, in a mixed workload and across the loop/process crossover. Method:
docs/benchmarks.md ("auto"); what it shows: docs/core.md ("Choosing a kind")."""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import anyio

import hybridio
from hybridio import Kind

from .._workloads import echo, loops_for, sha256_hex, sleep_for, spin
from . import _targets as t
from ._harness import Plan, rows, throughput
from ._model import MIN_REPEATS, BenchContext, Row, Rule, ScenarioResult

__all__ = ["run"]

SCENARIO = "auto"
FIXED: tuple[Kind, ...] = ("inline", "blocking", "cpu")
#: The mixed workload: function, callers, and its best fixed kind (what auto should find).
MIXED: dict[str, tuple[Callable[[Any], Any], int, Kind]] = {
    "tiny": (echo, 8, "inline"),
    "python 25 ms": (spin, 4, "cpu"),
    "sha256 8 MB": (sha256_hex, 2, "blocking"),
    "blocking 20 ms": (sleep_for, 8, "blocking"),
}
#: Alone: callers, the fixed kind taking turns with auto, auto's baseline and its rule.
SOLO: dict[str, tuple[int, Kind, Kind, Rule]] = {
    "tiny": (32, "cpu", "cpu", t.AUTO_TINY),
    "python 25 ms": (8, "cpu", "inline", t.AUTO_PYTHON),
    "sha256 8 MB": (4, "blocking", "inline", t.AUTO_SHA256),
}
#: The crossover's kinds: auto against the loop and a process.
CROSSOVER: tuple[Kind, ...] = ("inline", "cpu", "auto")


async def _rate(rt: hybridio.Runtime, fn: Any, arg: Any, kind: Kind, n: int, s: float) -> float:
    """Calls per second of ``n`` callers of ``fn(arg)`` for ``s`` seconds."""
    return await throughput(lambda: rt.run(fn, arg, kind=kind), n, s, yield_every=32)


def _plan(best: Mapping[str, str]) -> Plan:
    """Every row; ``best``: each function's best single kind for all, and the best overall."""
    plan: list[tuple[str, str | None, Rule | None]] = []
    for work, (callers, kind, base, rule) in SOLO.items():
        name = f"{work} x{callers}: "
        plan += [(name + "auto", name + base, rule)]
        plan += [(name + kind, None if kind == base else name + base, None)]
    plan += [("python 25 ms x8: auto, loop max lag", None, t.AUTO_LAG)]
    plan += [("python 25 ms x8: cpu, loop max lag", None, None)]
    for work in MIXED:  # against its best kind, and (for the record) the best single kind for all
        mixed = f"mixed {work}: "
        plan += [(mixed + "auto vs best per function", mixed + "best per function", t.AUTO_MIXED)]
        plan += [(f"{mixed}auto vs {best[work]}", mixed + best[work], None)]
    for strategy in ("best per function", *FIXED):
        judged = t.AUTO_OVERALL if strategy == best["overall"] else None
        plan += [(f"mixed overall: auto vs {strategy}", f"mixed overall: {strategy}", judged)]
    return plan


def _unit(name: str) -> str:
    return "s" if "lag" in name else "geomean calls/s" if "overall" in name else "calls/s"


async def _crossover(ctx: BenchContext, loops_per_us: float) -> list[Row]:
    """Pure Python of 20 µs to 5 ms, 8 callers: inline, a process, and auto once it has learned
    (a runtime per size, so that auto learns that size alone)."""
    made = []
    for micros in ctx.pick((20, 100, 300, 1000, 5000), (20, 100, 300, 1000, 5000), (100,)):
        n, name = max(1, round(micros * loops_per_us)), f"crossover: pure Python {micros} µs x8"
        start = time.monotonic()
        async with hybridio.Runtime(cpu_workers=2, threads=8) as rt:
            await _rate(rt, spin, n, "cpu", 8, 0.05)  # the workers start
            for _ in range(6):  # auto learns it
                await _rate(rt, spin, n, "auto", 8, 0.02)
            rates = [await _rate(rt, spin, n, k, 8, ctx.pick(1.0, 0.5, 0.1)) for k in CROSSOVER]
            chose = rt.stats().auto["hybridio._workloads.spin"].kind
        measured = {f"{name}: {kind}": [rate] for kind, rate in zip(CROSSOVER, rates, strict=True)}
        plan = [
            (f"{name}: {k}", f"{name}: inline" if k != "inline" else None, None) for k in CROSSOVER
        ]
        made += rows(SCENARIO, measured, (start, time.monotonic()), plan, _unit)
        made[-1].note = f"auto chose {chose}"
    return made


async def _measure(ctx: BenchContext) -> ScenarioResult:
    """Auto and the fixed kinds taking turns in each repeat, then the crossover."""
    seconds, loops_per_us = ctx.pick(2.0, 1.0, 0.2), loops_for(1.0) / 1e6
    data = b"\x5a" * ctx.pick(8 << 20, 8 << 20, 1 << 20)
    args = {"tiny": 1, "python 25 ms": round(25_000 * loops_per_us), "sha256 8 MB": data}
    args["blocking 20 ms"] = 0.02
    strategies: dict[str, dict[str, Kind]] = {k: dict.fromkeys(MIXED, k) for k in ("auto", *FIXED)}
    strategies["best per function"] = {name: work[2] for name, work in MIXED.items()}
    measured: dict[str, list[float]] = defaultdict(list)
    start = time.monotonic()
    async with hybridio.Runtime(cpu_workers=2, threads=32) as rt:

        async def rate(work: str, kind: Kind, callers: int, seconds: float = seconds) -> float:
            return await _rate(rt, MIXED[work][0], args[work], kind, callers, seconds)

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
        for repeat in range(ctx.repeats(10, quick=MIN_REPEATS)):
            ctx.progress(f"repeat {repeat + 1}")
            flip = slice(None, None, -1 if repeat % 2 else 1)  # auto goes first every other time
            for work, (callers, kind, base, _) in SOLO.items():
                name = f"{work} x{callers}: "
                if base == "inline":
                    measured[name + base].append(await rate(work, base, callers))
                turns: tuple[Kind, ...] = ("auto", kind)
                for turn in turns[flip]:
                    if work != "python 25 ms":
                        measured[name + turn].append(await rate(work, turn, callers))
                        continue
                    async with hybridio.LoopMonitor(threshold=0.015, interval=0.003) as monitor:
                        measured[name + turn].append(await rate(work, turn, callers))
                    measured[f"{name}{turn}, loop max lag"].append(monitor.report().lag.max)
            for strategy in list(strategies)[flip]:
                rates = await mixed(strategies[strategy])
                for work, value in rates.items():
                    measured[f"mixed {work}: {strategy}"].append(value)
                overall = statistics.geometric_mean(rates.values())
                measured[f"mixed overall: {strategy}"].append(overall)
        decisions = {name: dataclasses.asdict(d) for name, d in rt.stats().auto.items()}
    medians = {key: statistics.median(values) for key, values in measured.items()}
    best = {
        work: max(FIXED, key=lambda kind: medians[f"mixed {work}: {kind}"])
        for work in (*MIXED, "overall")
    }
    made = rows(SCENARIO, measured, (start, time.monotonic()), _plan(best), _unit)
    next(row for row in made if "lag" in row.name).target = "< 15 ms"
    ctx.progress("crossover")
    made += await _crossover(ctx, loops_per_us)
    title = 'kind="auto": routing learned per function'
    return ScenarioResult(SCENARIO, title, __doc__ or "", made, extra={"decisions": decisions})


def run(ctx: BenchContext) -> ScenarioResult:
    """Measure ``kind="auto"`` against fixed kinds on tiny, Python, hashing and mixed work."""
    return anyio.run(_measure, ctx, backend="asyncio")
