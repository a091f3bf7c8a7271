"""Scenario ``auto``: does ``kind="auto"`` put each function where it runs best?

On one asyncio loop, with auto and the fixed kinds taking turns: tiny calls, pure Python, sha256
(C code that releases the GIL), the crossover between the loop and a process for pure Python, and
a mixed workload under every fixed kind, the best kind per function (chosen by hand) and auto.
What each part shows is in docs/core.md ("Choosing a kind").
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio

import hybridio

from .._workloads import echo, loops_for, sha256_hex, sleep_for, spin
from . import _targets as t
from ._dispatch import throughput
from ._harness import Plan, rows
from ._model import MIN_REPEATS, BenchContext, Row, Rule, ScenarioResult, Series

__all__ = ["run"]

SCENARIO = "auto"
FIXED: tuple[hybridio.Kind, ...] = ("inline", "blocking", "cpu")
#: The mixed workload: function, callers, and its best fixed kind (what auto should find).
MIXED_WORK: dict[str, tuple[Callable[[Any], Any], int, hybridio.Kind]] = {
    "tiny": (echo, 8, "inline"),
    "python 25 ms": (spin, 4, "cpu"),
    "sha256 8 MB": (sha256_hex, 2, "blocking"),
    "blocking 20 ms": (sleep_for, 8, "blocking"),
}


async def _rate(
    rt: hybridio.Runtime, fn: Any, arg: Any, kind: hybridio.Kind, n: int, s: float
) -> float:
    """Calls per second of ``n`` callers of ``fn(arg)`` for ``s`` seconds."""
    return await throughput(lambda: rt.run(fn, arg, kind=kind), n, s, yield_every=32)


async def _mixed(
    rt: hybridio.Runtime, kinds: dict[str, hybridio.Kind], args: dict[str, Any], seconds: float
) -> dict[str, float]:
    """Every function's callers at once: calls per second per function."""
    rates: dict[str, float] = {}

    async def one(name: str) -> None:
        fn, callers, _ = MIXED_WORK[name]
        rates[name] = await _rate(rt, fn, args[name], kinds[name], callers, seconds)

    async with anyio.create_task_group() as tg:
        for name in MIXED_WORK:
            tg.start_soon(one, name)
    return rates


def _plan(best: Mapping[str, str]) -> Plan:
    """Every row; ``best``: each function's best single kind for all, and the best overall."""
    plan: list[tuple[str, str | None, Rule | None]] = [
        ("tiny x32: auto", "tiny x32: cpu", t.AUTO_TINY)
    ]
    plan += [("tiny x32: cpu", None, None)]
    for name, kind, rule in (
        ("python 25 ms x8", "cpu", t.AUTO_PYTHON),
        ("sha256 8 MB x4", "blocking", t.AUTO_SHA256),
    ):
        plan += [
            (f"{name}: auto", f"{name}: inline", rule),
            (f"{name}: {kind}", f"{name}: inline", None),
        ]
    plan += [("python 25 ms x8: auto, loop max lag", None, t.AUTO_LAG)]
    plan += [("python 25 ms x8: cpu, loop max lag", None, None)]
    # Each function against its best fixed kind, and against its best single kind for all (for
    # the record: inline for all gives one function the whole loop while the others starve).
    for function in MIXED_WORK:
        mixed = f"mixed {function}: "
        plan.append(
            (mixed + "auto vs best per function", mixed + "best per function", t.AUTO_MIXED)
        )
        plan.append((f"{mixed}auto vs {best[function]}", mixed + best[function], None))
    for strategy in ("best per function", *FIXED):
        judge = t.AUTO_OVERALL if strategy == best["overall"] else None
        plan.append((f"mixed overall: auto vs {strategy}", f"mixed overall: {strategy}", judge))
    return plan


def _unit(name: str) -> str:
    return "s" if "lag" in name else "geomean calls/s" if "overall" in name else "calls/s"


async def _crossover(ctx: BenchContext, loops_per_us: float) -> list[Row]:
    """Pure Python of 20 µs to 5 ms, 8 callers: inline, a process, and auto once it has learned
    (a runtime per size, so that auto learns that size alone)."""
    rows = []
    for micros in ctx.pick((20, 100, 300, 1000, 5000), (20, 100, 300, 1000, 5000), (100,)):
        n, name = max(1, round(micros * loops_per_us)), f"crossover: pure Python {micros} µs x8"
        async with hybridio.Runtime(cpu_workers=2, threads=8) as rt:
            await _rate(rt, spin, n, "cpu", 8, 0.05)  # the workers start
            for _ in range(6):  # auto learns it
                await _rate(rt, spin, n, "auto", 8, 0.02)
            rates = {
                kind: await _rate(rt, spin, n, kind, 8, ctx.pick(1.0, 0.5, 0.1))
                for kind in ("inline", "cpu", "auto")
            }
            chose = rt.stats().auto["hybridio._workloads.spin"].kind
        for kind, rate in rates.items():
            series = Series(
                f"{name}: {kind}", "calls/s", None if kind == "inline" else f"{name}: inline"
            )
            series.add(rate, None if kind == "inline" else rates["inline"])
            rows.append(series.row(SCENARIO, note=f"auto chose {chose}" if kind == "auto" else ""))
    return rows


async def _measure(ctx: BenchContext) -> ScenarioResult:
    seconds = ctx.pick(2.0, 1.0, 0.2)
    loops_per_us = loops_for(1.0) / 1e6
    data = b"\x5a" * ctx.pick(8 << 20, 8 << 20, 1 << 20)
    args = {
        "tiny": 1,
        "python 25 ms": round(25_000 * loops_per_us),
        "sha256 8 MB": data,
        "blocking 20 ms": 0.02,
    }
    measured: dict[str, list[float]] = {}
    start = time.monotonic()
    async with hybridio.Runtime(cpu_workers=2, threads=32) as rt:

        async def rate(fn: Any, name: str, kind: hybridio.Kind, callers: int) -> float:
            return await _rate(rt, fn, args[name], kind, callers, seconds)

        ctx.progress("warming up: the workers start, auto learns the functions")
        for _ in range(4):
            for name, (fn, _, _) in MIXED_WORK.items():
                for kind in ("auto", "cpu"):
                    await _rate(rt, fn, args[name], kind, 4, 0.05)
            await _mixed(rt, dict.fromkeys(MIXED_WORK, "auto"), args, 0.2)
        strategies: dict[str, dict[str, hybridio.Kind]] = {
            "auto": dict.fromkeys(MIXED_WORK, "auto")
        }
        strategies |= {kind: dict.fromkeys(MIXED_WORK, kind) for kind in FIXED}
        strategies["best per function"] = {name: work[2] for name, work in MIXED_WORK.items()}
        for repeat in range(ctx.repeats(10, quick=MIN_REPEATS)):
            ctx.progress(f"repeat {repeat + 1}")
            flip = slice(None, None, -1 if repeat % 2 else 1)  # auto goes first every other time
            got = {"python 25 ms x8: inline": await rate(spin, "python 25 ms", "inline", 8)}
            got["sha256 8 MB x4: inline"] = await rate(sha256_hex, "sha256 8 MB", "inline", 4)
            pairs: tuple[tuple[hybridio.Kind, ...], ...] = (("auto", "cpu"), ("auto", "blocking"))
            for kind in pairs[0][flip]:
                got[f"tiny x32: {kind}"] = await rate(echo, "tiny", kind, 32)
                async with hybridio.LoopMonitor(threshold=0.015, interval=0.003) as monitor:
                    got[f"python 25 ms x8: {kind}"] = await rate(spin, "python 25 ms", kind, 8)
                got[f"python 25 ms x8: {kind}, loop max lag"] = monitor.report().lag.max
            for kind in pairs[1][flip]:
                got[f"sha256 8 MB x4: {kind}"] = await rate(sha256_hex, "sha256 8 MB", kind, 4)
            for strategy in list(strategies)[flip]:
                rates = await _mixed(rt, strategies[strategy], args, seconds)
                got |= {f"mixed {name}: {strategy}": value for name, value in rates.items()}
                got[f"mixed overall: {strategy}"] = statistics.geometric_mean(rates.values())
            for key, value in got.items():
                measured.setdefault(key, []).append(value)
        decisions = {name: dataclasses.asdict(d) for name, d in rt.stats().auto.items()}
    best = {
        function: max(
            FIXED, key=lambda kind: statistics.median(measured[f"mixed {function}: {kind}"])
        )
        for function in (*MIXED_WORK, "overall")
    }
    made = rows(SCENARIO, measured, (start, time.monotonic()), _plan(best), _unit)
    next(row for row in made if "lag" in row.name).target = "< 15 ms"
    ctx.progress("crossover")
    made += await _crossover(ctx, loops_per_us)
    return ScenarioResult(
        SCENARIO,
        'kind="auto": routing learned per function',
        __doc__ or "",
        made,
        extra={"decisions": decisions},
    )


def run(ctx: BenchContext) -> ScenarioResult:
    """Measure ``kind="auto"`` against fixed kinds on tiny, Python, hashing and mixed work."""
    return anyio.run(_measure, ctx, backend="asyncio")
