"""The auto scenario: does ``kind="auto"`` put each function where it runs best?

In one run, on one asyncio loop, with repeats interleaved so that drift hits every strategy alike:

* tiny calls (a function returning its argument), 32 callers: auto against ``kind="cpu"``;
* 25 ms of pure Python, 8 at once: auto against inline, and the event loop's worst lag under
  auto once it has learned the function (``hybridio.LoopMonitor``);
* sha256 of 8 MB (C code that releases the GIL), 4 at once: auto against inline;
* crossover: pure Python of 20 us to 5 ms, 8 callers, inline against a process, and where auto
  sends it;
* a mixed workload (tiny calls, 25 ms of Python, sha256 of 8 MB, 20 ms blocking waits, all at
  once) under every fixed kind, under the best fixed kind per function (chosen by hand), and
  under auto: per function, auto against the best fixed choice; overall (the geometric mean of
  the functions' throughputs), auto against the best single kind for all.

Self-contained: ``run(ctx)`` returns a ``ScenarioResult``; ``python -m hybridio.bench._auto``
prints the rows. Workloads are module-level so that worker processes import them by name.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import statistics
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

import hybridio

from ._dispatch import throughput
from ._model import BenchContext, Row, ScenarioResult, paired_ratio, spread_of

__all__ = ["crunch", "digest", "echo", "run", "wait_io"]

SCENARIO = "auto"

Call = Callable[[Any], Coroutine[Any, Any, Any]]


def echo(x: Any) -> Any:
    """A tiny call: its cost is all dispatch."""
    return x


def crunch(n: int) -> int:
    """Pure Python: holds the GIL for its whole run."""
    total = 0
    for i in range(n):
        total += i
    return total


def digest(data: bytes) -> str:
    """sha256: C code that releases the GIL while it hashes."""
    return hashlib.sha256(data).hexdigest()


def wait_io(seconds: float) -> float:
    """A blocking wait, like a synchronous client call: releases the GIL."""
    time.sleep(seconds)
    return seconds


def _calibrate(seconds: float) -> int:
    """The ``n`` for which ``crunch(n)`` takes about ``seconds`` here (best of three)."""
    n = 200_000
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        crunch(n)
        best = min(best, time.perf_counter() - start)
    return max(1, int(n * seconds / best))


async def _closed_loop(call: Call, callers: int, seconds: float) -> float:
    """Calls per second of ``callers`` tasks calling back to back (yielding every 32 calls)."""
    return await throughput(call, callers, seconds, yield_every=32)


async def _closed_loop_arg(call: Call, arg: Any, callers: int, seconds: float) -> float:
    """``_closed_loop`` of ``call(arg)``."""

    async def with_arg(_: Any) -> Any:
        return await call(arg)

    return await _closed_loop(with_arg, callers, seconds)


async def _batch(call: Call, arg: Any, callers: int, each: int) -> float:
    """Calls per second of ``callers`` tasks making ``each`` calls of ``call(arg)``."""

    async def caller() -> None:
        for _ in range(each):
            await call(arg)

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(callers):
            tg.start_soon(caller)
    return callers * each / (time.perf_counter() - start)


@dataclass
class _Samples:
    """Every repeat's value per measurement name, in the order measured."""

    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.values.setdefault(name, []).append(value)

    def median(self, name: str) -> float:
        return statistics.median(self.values[name])


def _verdict(ratios: list[float], target: float) -> tuple[str, str]:
    """met / not met when every repeat agrees; else "n/a" (inconclusive on a noisy machine)."""
    if not ratios:
        return "n/a", "not measured"
    if min(ratios) >= target:
        return "met", ""
    if max(ratios) < target:
        return "not met", ""
    low, high = min(ratios), max(ratios)
    return "n/a", f"inconclusive: repeats ranged {low:.2f}x..{high:.2f}x around the target"


def _row(
    s: _Samples,
    name: str,
    unit: str,
    *,
    baseline: str | None = None,
    target: float | None = None,
    note: str = "",
) -> Row:
    values = s.values[name]
    ratio = verdict = None
    if baseline is not None:
        base = s.values[baseline]
        ratio = paired_ratio(values, base)
        if target is not None:
            verdict, why = _verdict([v / b for v, b in zip(values, base, strict=True) if b], target)
            note = "; ".join(part for part in (note, why) if part)
    return Row(
        scenario=SCENARIO,
        name=name,
        value=s.median(name),
        unit=unit,
        repeats=len(values),
        spread=spread_of(values),
        baseline=baseline,
        baseline_value=s.median(baseline) if baseline else None,
        ratio=ratio,
        target=f">= {target:g}x" if target is not None else None,
        verdict=verdict,
        note=note,
    )


# -- the mixed workload ------------------------------------------------------------------------

_FUNCTIONS = ("tiny", "python 25 ms", "sha256 8 MB", "blocking 20 ms")
_FIXED: tuple[hybridio.Kind, ...] = ("inline", "blocking", "cpu")
#: The best fixed kind of each function, chosen by hand (what auto should find by itself).
_HAND: dict[str, hybridio.Kind] = {
    "tiny": "inline",
    "python 25 ms": "cpu",
    "sha256 8 MB": "blocking",
    "blocking 20 ms": "blocking",
}
_CALLERS = {"tiny": 8, "python 25 ms": 4, "sha256 8 MB": 2, "blocking 20 ms": 8}


async def _mixed(
    rt: hybridio.Runtime, kinds: dict[str, hybridio.Kind], work: dict[str, Any], seconds: float
) -> dict[str, float]:
    """Run every function's callers at once for ``seconds``: calls per second per function."""
    fns: dict[str, Callable[[Any], Any]] = {
        "tiny": echo,
        "python 25 ms": crunch,
        "sha256 8 MB": digest,
        "blocking 20 ms": wait_io,
    }
    done = dict.fromkeys(_FUNCTIONS, 0)
    deadline = time.perf_counter() + seconds

    async def caller(name: str) -> None:
        fn, arg, kind = fns[name], work[name], kinds[name]
        i = 0
        while time.perf_counter() < deadline:
            await rt.run(fn, arg, kind=kind)
            i += 1
            if name == "tiny" and i % 32 == 0:
                await anyio.lowlevel.checkpoint()
        done[name] += i

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for name in _FUNCTIONS:
            for _ in range(_CALLERS[name]):
                tg.start_soon(caller, name)
    elapsed = time.perf_counter() - start
    return {name: done[name] / elapsed for name in _FUNCTIONS}


def _ordered(names: tuple[str, ...], flip: bool) -> tuple[str, ...]:
    return names[::-1] if flip else names


def _geomean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(max(v, 1e-9)) for v in values))


# -- measuring -----------------------------------------------------------------------------------


async def _crossover_point(micros: int, n: int, seconds: float) -> dict[str, Any]:
    """``crunch(n)`` (about ``micros`` us), 8 callers: inline, a process, and auto once learned.

    A runtime of its own, so that auto learns this size alone.
    """
    point: dict[str, Any] = {"micros": micros}
    async with hybridio.Runtime(cpu_workers=2, threads=8) as rt:

        def via(kind: hybridio.Kind) -> Call:
            async def call(x: Any) -> Any:
                return await rt.run(crunch, x, kind=kind)

            return call

        await _batch(via("cpu"), n, 8, 2)  # the workers start
        for _ in range(6):  # auto learns it
            await _batch(via("auto"), n, 8, 1)
        for kind in ("inline", "cpu", "auto"):
            point[kind] = await _closed_loop_arg(via(kind), n, 8, seconds)
        decision = rt.stats().auto[f"{__name__}.crunch"]
        point["auto kind"] = decision.kind
        point["auto reason"] = decision.reason
    return point


async def _measure(ctx: BenchContext) -> tuple[_Samples, dict[str, Any]]:
    s = _Samples()
    repeats = ctx.repeats(5, quick=3, tiny=1)
    seconds = ctx.pick(2.0, 1.0, 0.2)
    each = ctx.pick(4, 2, 1)
    n25 = _calibrate(0.025)
    data = b"\x5a" * (8 << 20) if not ctx.tiny else b"\x5a" * (1 << 20)
    work = {"tiny": 1, "python 25 ms": n25, "sha256 8 MB": data, "blocking 20 ms": 0.02}
    lags: dict[str, list[float]] = {}
    async with hybridio.Runtime(cpu_workers=2, threads=32) as rt:

        def via(fn: Callable[[Any], Any], kind: hybridio.Kind) -> Call:
            async def call(x: Any) -> Any:
                return await rt.run(fn, x, kind=kind)

            return call

        tiny_auto, tiny_cpu = via(echo, "auto"), via(echo, "cpu")
        py_auto, py_inline = via(crunch, "auto"), via(crunch, "inline")
        sha_auto, sha_inline = via(digest, "auto"), via(digest, "inline")
        py_cpu, sha_thread = via(crunch, "cpu"), via(digest, "blocking")
        # Warm-up: worker processes start, and auto learns each function (several probes).
        ctx.progress("auto: warming up (workers start, auto learns the functions)")
        for _ in range(4):
            await _batch(tiny_cpu, 0, 4, 2)
            await _batch(tiny_auto, 0, 4, 2)
            await _batch(py_auto, n25, 8, 1)
            await _batch(sha_auto, data, 4, 1)
            await _mixed(rt, dict.fromkeys(_FUNCTIONS, "auto"), work, 0.2)
        strategies: dict[str, dict[str, hybridio.Kind]] = {
            kind: dict.fromkeys(_FUNCTIONS, kind) for kind in _FIXED
        }
        strategies["best per function"] = _HAND
        strategies["auto"] = dict.fromkeys(_FUNCTIONS, "auto")
        for repeat in range(repeats):
            ctx.progress(f"auto: repeat {repeat + 1}/{repeats}")
            # Auto and the fixed kind it should match take turns going first: drift of a shared
            # machine then hits both alike.
            flip = repeat % 2 == 1
            for which in _ordered(("auto", "cpu"), flip):
                call = tiny_auto if which == "auto" else tiny_cpu
                s.add(f"tiny x32: {which}", await _closed_loop(call, 32, seconds))
            s.add("python 25 ms x8: inline", await _batch(py_inline, n25, 8, each))
            for which in _ordered(("auto", "cpu"), flip):
                call = py_auto if which == "auto" else py_cpu
                async with hybridio.LoopMonitor(threshold=0.015, interval=0.003) as monitor:
                    s.add(f"python 25 ms x8: {which}", await _batch(call, n25, 8, each))
                lags.setdefault(which, []).append(monitor.report().lag.max)
            s.add("sha256 8 MB x4: inline", await _batch(sha_inline, data, 4, each))
            for which in _ordered(("auto", "blocking"), flip):
                call = sha_auto if which == "auto" else sha_thread
                s.add(f"sha256 8 MB x4: {which}", await _batch(call, data, 4, each))
            for strategy in _ordered(tuple(strategies), flip):
                rates = await _mixed(rt, strategies[strategy], work, seconds)
                for name, rate in rates.items():
                    s.add(f"mixed {name}: {strategy}", rate)
                s.add(f"mixed overall: {strategy}", _geomean(list(rates.values())))
        # Crossover: where a process starts to beat the loop for pure Python, and auto's choice.
        ctx.progress("auto: crossover")
        crossover: list[dict[str, Any]] = []
        for micros in ctx.pick((20, 100, 300, 1000, 5000), (20, 100, 300, 1000, 5000), (100,)):
            n = max(1, n25 * micros // 25_000)
            crossover.append(await _crossover_point(micros, n, ctx.pick(1.0, 0.5, 0.1)))
        decisions = {
            name: {
                "kind": d.kind,
                "reason": d.reason,
                "run_time": d.run_time,
                "offload_cost": d.offload_cost,
                "cpu_ratio": d.cpu_ratio,
                "gil_ratio": d.gil_ratio,
                "probes": d.probes,
                "calls": d.calls,
                "changes": d.changes,
            }
            for name, d in rt.stats().auto.items()
        }
    return s, {"lags": lags, "decisions": decisions, "n25": n25, "crossover": crossover}


def run(ctx: BenchContext) -> ScenarioResult:
    """Measure ``kind="auto"`` against fixed kinds on tiny, Python, hashing and mixed work."""
    started = time.perf_counter()
    s, info = anyio.run(_measure, ctx, backend="asyncio")
    calls = "calls/s"
    rows = [
        _row(s, "tiny x32: auto", calls, baseline="tiny x32: cpu", target=3.0),
        _row(s, "tiny x32: cpu", calls),
        _row(s, "python 25 ms x8: auto", calls, baseline="python 25 ms x8: inline", target=1.5),
        _row(
            s,
            "python 25 ms x8: cpu",
            calls,
            baseline="python 25 ms x8: inline",
            note="the fixed choice auto should find: what processes allow here",
        ),
        _row(s, "sha256 8 MB x4: auto", calls, baseline="sha256 8 MB x4: inline", target=1.2),
        _row(
            s,
            "sha256 8 MB x4: blocking",
            calls,
            baseline="sha256 8 MB x4: inline",
            note="the fixed choice auto should find: what threads allow here",
        ),
    ]
    lags: dict[str, list[float]] = info["lags"]
    for which in ("auto", "cpu"):
        worst = max(lags[which])
        rows.append(
            Row(
                scenario=SCENARIO,
                name=f"python 25 ms x8: {which}, loop max lag after warm-up",
                value=worst,
                unit="s",
                repeats=len(lags[which]),
                spread=spread_of(lags[which]),
                target="<= 0.015 s" if which == "auto" else None,
                verdict=("met" if worst <= 0.015 else "not met") if which == "auto" else None,
                note=", ".join(f"{lag * 1e3:.1f} ms" for lag in lags[which])
                + ("" if which == "auto" else " (the same work on kind=cpu: the machine's noise)"),
            )
        )
    for name in _FUNCTIONS:
        rows.append(
            _row(
                s,
                f"mixed {name}: auto",
                calls,
                baseline=f"mixed {name}: best per function",
                target=0.9,
                note=f"against its best fixed kind ({_HAND[name]}), the others at theirs",
            )
        )
        # For the record: the best this function did under any single kind for all. Inline for
        # all gives a function the whole loop while the others starve: not a choice to match.
        rates = {kind: s.median(f"mixed {name}: {kind}") for kind in _FIXED}
        best = max(rates, key=rates.__getitem__)
        rows.append(
            _row(
                s,
                f"mixed {name}: {best}",
                calls,
                baseline=f"mixed {name}: auto",
                note=f"its best under one kind for all ({best}), against auto: informative",
            )
        )
    best_single = max(_FIXED, key=lambda k: s.median(f"mixed overall: {k}"))
    rows.append(
        _row(
            s,
            "mixed overall: auto",
            "geomean calls/s",
            baseline=f"mixed overall: {best_single}",
            target=1.3,
            note=f"against the best single kind for all ({best_single})",
        )
    )
    rows.extend(
        _row(s, f"mixed overall: {strategy}", "geomean calls/s")
        for strategy in (*_FIXED, "best per function")
    )
    return ScenarioResult(
        name=SCENARIO,
        title='kind="auto": routing learned per function',
        description=__doc__ or "",
        rows=rows,
        seconds=time.perf_counter() - started,
        extra={
            "decisions": info["decisions"],
            "crunch_n_25ms": info["n25"],
            "crossover": info["crossover"],
        },
    )


def main() -> None:
    """Run the scenario alone and print its rows (the lead hooks it into ``hybridio bench``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    ctx = BenchContext(out=Path("."), quick=args.quick, tiny=args.tiny, progress=print)
    result = run(ctx)
    for row in result.rows:
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
        print(
            f"{row.name:52} {row.value:12.4g} {row.unit:16} {ratio:>7} {row.target or '':>10} "
            f"{row.verdict or '':8} {row.note}"
        )
    for name, decision in result.extra["decisions"].items():
        print(
            f"{name}: {decision['kind']} ({decision['probes']} probes, {decision['calls']} calls, "
            f"{decision['changes']} changes): {decision['reason']}"
        )
    print("crossover (pure Python, 8 callers, calls/s): run time, inline, cpu, auto -> auto's kind")
    for point in result.extra["crossover"]:
        print(
            f"  {point['micros']:>5} us  {point['inline']:10.0f} {point['cpu']:10.0f} "
            f"{point['auto']:10.0f}  -> {point['auto kind']}"
        )


if __name__ == "__main__":
    main()
