"""The ``claims`` scenario: every claim of the seed notes about processes, threads and the GIL,
measured on this machine and judged by the rules of ``_targets`` (what each measurement means is
in ``claims_notes.md``). This module holds the measurements of cores, threads and the GIL.

Sub-scenarios run one after the other; one that fails becomes an "n/a" row naming the error and
the others still run.
"""

from __future__ import annotations

import inspect
import itertools
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
import traceback
import zlib
from dataclasses import replace
from glob import glob
from pathlib import Path
from typing import Any

import anyio

import hybridio

from .. import _workloads
from . import _claims_cost, _claims_safety
from ._claims_common import NOTES, SCENARIO, Part, claim_rows, rates
from ._load import usable_cpus
from ._model import INCONCLUSIVE, BenchContext, Row, Rule, ScenarioResult, Series, Verdict, fact
from ._plots import Line, line_plot
from ._runner import prefixed
from ._targets import NO_GAIN, PARALLEL


def _busy(series: list[Series]) -> str:
    """A plot title's warning when other processes distorted the speedups it shows."""
    if any((load := s.load()) is not None and load.busy for s in series):
        return "\n(busy machine: other processes distorted these speedups)"
    return ""


def parallel(ctx: BenchContext, result: ScenarioResult) -> None:
    """Pure-Python work: inline vs k worker processes vs k worker threads (speedup vs workers)."""
    cpus = usable_cpus()
    workers = sorted({1, cpus, 2 * cpus} if not ctx.tiny else {1, 2})
    n = _workloads.loops_for(ctx.pick(0.08, 0.04, 0.004))
    tasks = max(4, 2 * max(workers))
    lines = {kind: Line(kind) for kind in ("processes", "threads")}
    ideal = Line("ideal (min(workers, CPUs))", style="--")
    measured: list[Series] = []

    async def main() -> None:
        nonlocal measured
        for k in workers:
            base = f"inline ({tasks} tasks one after the other)"
            name = f"{tasks} pure-Python tasks on {k} worker"
            proc = Series(f"{name} process{'es' * (k > 1)}", "tasks/s", base)
            thr = Series(f"{name} thread{'s' * (k > 1)}", "tasks/s", base)
            judged = k == cpus  # the verdict is judged with as many workers as CPUs
            async with hybridio.Runtime(cpu_workers=k, threads=k) as rt:
                await rates(rt, k, ["cpu"], _workloads.spin, 1000)  # start the workers
                for _ in ctx.rounds(
                    (proc, PARALLEL if judged else None),
                    (thr, NO_GAIN if judged else None),
                    budget=None if judged else ctx.pick(20.0, 6.0, 0.0),
                ):
                    inline, cpu, blocking = await rates(
                        rt, tasks, ["inline", "cpu", "blocking"], _workloads.spin, n
                    )
                    proc.add(cpu, inline)
                    thr.add(blocking, inline)
            ctx.progress(f"{k} workers: processes {proc.ratio:.2f}x, threads {thr.ratio:.2f}x")
            lines["processes"].add(k, proc.ratio, proc.interval())
            lines["threads"].add(k, thr.ratio, thr.interval())
            ideal.add(k, float(min(k, cpus)))
            measured += [proc, thr]
            if judged:
                result.rows += claim_rows(proc, "multicore own_gil cpu_bound", PARALLEL)
                result.rows += claim_rows(thr, "thread_no_cpu gil_single", NO_GAIN)
            else:
                result.rows += claim_rows(proc, "multicore", verdict="n/a")
                result.rows += claim_rows(thr, "thread_no_cpu", verdict="n/a")

    anyio.run(main)
    path = line_plot(
        ctx.out / "claims-speedup-vs-workers.png",
        f"Pure-Python CPU work: speedup over inline ({cpus} usable CPUs){_busy(measured)}",
        "worker processes or threads",
        "speedup over inline (x, median, 95% interval)",
        [*lines.values(), ideal],
        hline=(PARALLEL.confirm, f"'uses the cores' from {PARALLEL.confirm:.2g}x"),
        integer_x=True,
    )
    result.plots.append(path.name)


def gil_release(ctx: BenchContext, result: ScenarioResult) -> None:
    """C code that releases the GIL (hashlib, zlib) on large buffers: inline vs threads."""
    cpus = usable_cpus()
    tasks = max(4, 2 * cpus)
    cases = [
        ("hashlib.sha256", _workloads.sha256_hex, ctx.pick(16_000_000, 8_000_000, 1_000_000)),
        ("zlib.compress", zlib.compress, ctx.pick(4_000_000, 2_000_000, 200_000)),
    ]

    async def main() -> None:
        async with hybridio.Runtime(threads=cpus) as rt:
            for label, fn, size in cases:
                # Half random, half zeros: zlib has real work to do, and it is reproducible.
                data = random.Random(8).randbytes(size // 2) + bytes(size - size // 2)
                name = f"{label} of {size / 1e6:g} MB, {tasks} calls on {cpus} threads"
                series = Series(name, "calls/s", f"inline ({tasks} calls one after the other)")
                await rates(rt, tasks, ["blocking"], fn, data)  # start the threads
                for _ in ctx.rounds((series, NO_GAIN), (series, PARALLEL)):
                    series.add(*(await rates(rt, tasks, ["blocking", "inline"], fn, data)))
                ctx.progress(f"{label}: {series.ratio:.2f}x")
                result.rows += claim_rows(series, "thread_no_cpu gil_single", NO_GAIN)
                result.rows += claim_rows(series, "c_libraries", PARALLEL)

    anyio.run(main)


def io_threads(ctx: BenchContext, result: ScenarioResult) -> None:
    """Blocking I/O (sleep stands in for a socket or disk wait): inline vs one thread per call."""
    calls, wait = ctx.pick(16, 8, 4), ctx.pick(0.05, 0.02, 0.01)
    rule = Rule(max(NO_GAIN.confirm, 0.5 * calls), NO_GAIN.confirm)
    name = f"{calls} blocking waits of {wait * 1000:g} ms on {calls} threads"
    series = Series(name, "waits/s", f"inline ({calls} waits one after the other)")

    async def main() -> None:
        async with hybridio.Runtime(threads=calls) as rt:
            await rates(rt, calls, ["blocking"], _workloads.sleep_for, wait)
            for _ in ctx.rounds((series, rule)):
                series.add(
                    *(await rates(rt, calls, ["blocking", "inline"], _workloads.sleep_for, wait))
                )

    anyio.run(main)
    result.rows += claim_rows(series, "thread_io", rule, note=f"ideal {calls}x")


def crossover_point(points: list[tuple[float, float]], at: float = 1.0) -> float | None:
    """The task duration where the speedup reaches ``at``, interpolated on a log scale: None
    when no measured duration reaches it, the shortest duration when all do."""
    ordered = sorted(points)
    if not ordered or max(s for _, s in ordered) < at:
        return None
    if ordered[0][1] >= at:
        return ordered[0][0]
    for (d0, s0), (d1, s1) in itertools.pairwise(ordered):
        if s0 < at <= s1:
            fraction = (at - s0) / (s1 - s0)
            return math.exp(math.log(d0) + fraction * (math.log(d1) - math.log(d0)))
    return None


def verdict_crossover(
    intervals: list[tuple[float, tuple[float, float] | None]], gain: float
) -> tuple[Verdict, str]:
    """Offloading CPU work, from (task seconds, 95% interval of the speedup) per task length:
    confirmed when even the shortest task clearly gains ``gain``, qualified when only longer
    tasks clearly do, refuted when no task length gains, else inconclusive."""
    known = sorted((d, i) for d, i in intervals if i is not None)
    if not known:
        return INCONCLUSIVE, "too few repeats for an interval"
    if known[0][1][0] >= gain:
        return "confirmed", ""
    if known[0][1][1] < gain and any(lo >= gain for _, (lo, _) in known):
        return "qualified", ""
    if all(hi < gain for _, (_, hi) in known):
        return "refuted", ""
    return INCONCLUSIVE, "the speedup intervals straddle the threshold; rerun without --quick"


def crossover(ctx: BenchContext, result: ScenarioResult) -> None:
    """Tasks of a given duration: inline one after the other vs offloaded to all cores."""
    cpus = usable_cpus()
    durations = ctx.pick([1e-5, 1e-4, 1e-3, 1e-2, 5e-2], [1e-4, 1e-3, 1e-2, 3e-2], [1e-4, 5e-3])
    tasks = max(4, 4 * cpus)
    line = Line("hybridio.run_cpu")
    measured: list[Series] = []
    start = time.monotonic()

    async def main() -> None:
        async with hybridio.Runtime(cpu_workers=cpus) as rt:
            await rates(rt, cpus, ["cpu"], _workloads.spin, 1000)
            for duration in durations:
                name = f"{tasks} tasks of {duration * 1000:g} ms offloaded to {cpus} processes"
                series = Series(name, "tasks/s", "inline, one after the other")
                for _ in ctx.rounds((series, NO_GAIN), budget=ctx.pick(20.0, 8.0, 0.0)):
                    kinds: list[hybridio.Kind] = ["cpu", "inline"]
                    series.add(*(await rates(rt, tasks, kinds, _workloads.busy_for, duration)))
                ctx.progress(f"{duration * 1000:g} ms tasks: {series.ratio:.2f}x")
                line.add(duration, series.ratio, series.interval())
                measured.append(series)

    anyio.run(main)
    point = crossover_point([(d, s.ratio or 0.0) for d, s in zip(durations, measured, strict=True)])
    verdict, reason = verdict_crossover(
        [(d, s.interval()) for d, s in zip(durations, measured, strict=True)], NO_GAIN.confirm
    )
    if _busy(measured):  # other processes distort every speedup: no verdict from them
        verdict, reason = INCONCLUSIVE, "busy machine: rerun when it is quiet"
    for series in measured:
        result.rows += claim_rows(series, "cpu_bound", verdict="n/a")
    note = "no measured duration paid off" if point is None else "interpolated"
    name = "task duration from which offloading pays (speedup >= 1)"
    value = math.nan if point is None else point
    crossing = fact(name, value, "s", since=start)
    result.rows += claim_rows(crossing, "cpu_bound", verdict=verdict, reason=reason, note=note)
    path = line_plot(
        ctx.out / "claims-offload-crossover.png",
        f"Offloading {tasks} tasks to {cpus} processes: speedup vs task length{_busy(measured)}",
        "task duration (s, log scale)",
        "speedup over inline (x, median, 95% interval)",
        [line],
        logx=True,
        hline=(1.0, "break-even"),
        vline=None if point is None else (point, f"crossover ~{point * 1000:.2g} ms"),
    )
    result.plots.append(path.name)


# Runs in another interpreter (stdlib only): k tasks one after the other, in k threads, in k
# subinterpreters; SPIN is the source of ``hybridio._workloads.spin``.
_SCRIPT = r"""
import json, sys, threading, time
n, k, repeats, SPIN = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
exec(SPIN)
def timed(fn):
    start = time.perf_counter(); fn(); return time.perf_counter() - start
def in_threads(targets):
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads: t.start()
    for t in threads: t.join()
out = {"free_threaded": not getattr(sys, "_is_gil_enabled", lambda: True)(), "errors": [],
       "version": sys.version.split()[0]}
out["sequential"] = [timed(lambda: [spin(n) for _ in range(k)]) for _ in range(repeats)]
out["threads"] = [timed(lambda: in_threads([lambda: spin(n)] * k)) for _ in range(repeats)]
try:
    import _interpreters
except ImportError:
    out["subinterpreters"] = []
else:
    ids = [_interpreters.create() for _ in range(k)]
    def run_in(i):
        failure = _interpreters.exec(i, SPIN + f"spin({n})\n")
        if failure is not None: out["errors"].append(str(failure))
    in_threads([lambda i=i: run_in(i) for i in ids])  # warm: each interpreter's first run
    out["subinterpreters"] = [timed(lambda: in_threads([lambda i=i: run_in(i) for i in ids]))
                              for _ in range(repeats)]
    for i in ids: _interpreters.destroy(i)
print(json.dumps(out))
"""


def find_interpreters() -> list[str]:
    """Pythons 3.13+ here: this one, then on PATH and pyenv's (free-threaded "t" builds too)."""
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    found = [sys.executable] if sys.version_info >= (3, 13) else []
    found += [shutil.which(f"python3.{minor}{t}") or "" for minor in (13, 14, 15) for t in "t "]
    found += sorted(glob(f"{root}/versions/3.1[3-9]*/bin/python3.1[3-9]*"))
    return [p for p in dict.fromkeys(found) if p.strip() and not p.endswith("-config")][:8]


def _run(*command: str, timeout: float = 300) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)
    return done.stdout


def alternatives(ctx: BenchContext, result: ScenarioResult) -> None:
    """Free-threaded CPython threads and subinterpreters (k CPU tasks against sequential), in the
    first such Python found here; hybridio's own kind="interpreter" in a 3.13 environment."""
    k = max(2, usable_cpus())
    args = [str(_workloads.loops_for(ctx.pick(0.1, 0.05, 0.005))), str(k), str(ctx.pick(12, 8, 1))]
    runs: dict[str, tuple[str, dict[str, Any]]] = {}
    for path in find_interpreters():
        if "subinterpreters" in runs and not path.endswith("t"):
            continue  # only a free-threaded build ("python3.13t") can add something now
        try:
            data = json.loads(_run(path, "-c", _SCRIPT, *args, inspect.getsource(_workloads.spin)))
        except (OSError, subprocess.SubprocessError, ValueError):
            continue  # a pyenv shim for a version not selected, a broken install...
        if data["free_threaded"]:
            runs.setdefault("threads", (f"Python {data['version']}: {path}", data))
        if data["subinterpreters"] and not data["errors"]:
            runs.setdefault("subinterpreters", (f"Python {data['version']}: {path}", data))
    ctx.progress(f"found {', '.join(f'{kind}: {p}' for kind, (p, _) in runs.items()) or 'none'}")
    for kind, title in (
        ("threads", f"free-threaded CPython: {k} CPU tasks on {k} threads"),
        ("subinterpreters", f"subinterpreters: {k} CPU tasks in {k} interpreters"),
    ):
        series = Series(title, "tasks/s", f"the same {k} tasks one after the other")
        where, data = runs.get(
            kind, ("not available here: see docs/claims.md for how to get it", {})
        )
        for seq, par in zip(data.get("sequential", []), data.get(kind, []), strict=True):
            series.add(k / par, k / seq)
        rule, verdict = (PARALLEL, None) if series.n else (None, "n/a")
        result.rows += claim_rows(
            series, "other_implementations", rule, verdict=verdict, note=where
        )
    result.rows.append(_hybridio_interpreters(ctx))
    for name, claim in (
        ("Jython / IronPython as the way around the GIL", "other_implementations"),
        ("is the GIL required? (free-threaded CPython 3.13t runs without it)", "gil_required"),
    ):
        unmeasured = fact(name, math.nan, "")
        result.rows += claim_rows(unmeasured, claim, verdict="qualified", note="see docs/claims.md")


def _hybridio_interpreters(ctx: BenchContext) -> Row:
    """hybridio's own ``kind="interpreter"`` (context): 4 x ~50 ms calls against inline, run by
    ``_interpreters`` in a Python 3.13 environment (``make test`` builds ``.venv313``)."""
    name = 'hybridio kind="interpreter": 4 x ~50 ms calls on 2 interpreters, vs inline'
    venvs = sorted(glob(str(Path(sys.prefix).parent / ".venv31[3-9]*/bin/python")))
    speedup, note = math.nan, "no Python 3.13 environment with hybridio here (`make test`)"
    if venvs and not ctx.tiny:
        command = [venvs[0], "-m", "hybridio.bench._interpreters"] + ["--full"] * (not ctx.quick)
        try:
            rows = {row["name"]: row for row in json.loads(_run(*command, timeout=600))}
            speedup = float(rows["parallel/interpreter/speed-up"]["value"])
            note = f"best of several rounds (context, not judged); {venvs[0]}"
        except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
            note = f"failed: {exc!r}"
    (row,) = claim_rows(fact(name, speedup, "x"), "other_implementations", verdict="n/a", note=note)
    return row


#: Name -> measurement, in the order they run (cheap and robust first).
SUB_SCENARIOS: dict[str, Part] = {
    "parallel": parallel,
    "gil-release": gil_release,
    "io-threads": io_threads,
    "startup": _claims_cost.startup,
    "memory": _claims_cost.memory,
    "ipc": _claims_cost.ipc,
    "crossover": crossover,
    "killability": _claims_safety.killability,
    "races": _claims_safety.races,
    "isolation": _claims_safety.isolation,
    "faster-access": _claims_cost.faster_access,
    "alternatives": alternatives,
}


def run(ctx: BenchContext) -> ScenarioResult:
    """Measure every claim; return one result with all rows and plots."""
    result = ScenarioResult(
        SCENARIO,
        "The seed notes' claims",
        "Each claim of the seed notes on processes vs threads, measured here against a baseline "
        "measured in the same run, repeat by repeat. 'qualified' holds only under a condition "
        "(docs/claims.md), 'n/a' rows give context.",
        extra={"notes": NOTES},
    )
    for name, measure in SUB_SCENARIOS.items():
        ctx.progress(f"{name}...")
        start = time.perf_counter()
        try:
            measure(replace(ctx, progress=prefixed(ctx.progress, name)), result)
        except Exception as exc:  # noqa: BLE001 - one broken measurement must not hide the rest
            result.extra.setdefault("errors", {})[name] = traceback.format_exc()
            failed = fact(f"{name}: measurement failed", math.nan, "")
            result.rows.append(
                failed.row(SCENARIO, verdict="n/a", note=f"{type(exc).__name__}: {exc}")
            )
        result.extra.setdefault("sub_scenario_seconds", {})[name] = time.perf_counter() - start
    return result
