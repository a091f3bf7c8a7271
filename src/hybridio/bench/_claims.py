"""Each claim of the seed notes on processes vs threads, measured against a baseline of the same
run, repeat by repeat: 'qualified' holds only under a condition (docs/claims.md), 'n/a': context."""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import multiprocessing
import random
import re
import statistics
import threading
import time
import traceback
import warnings
import zlib
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any

import anyio
import psutil

from .. import Kind, OffloadTimeout, Runtime, RuntimeStats, _workloads
from .._doctor import usable_cpus
from . import _model
from ._harness import burst
from ._model import MIN_REPEATS, BenchContext, Row, Rule, ScenarioResult, Series, Verdict, fact
from ._plots import Line, bar_plot, line_plot
from ._targets import FASTER, FASTER_ACCESS, GAIN, MUCH, NO_GAIN, PARALLEL

SCENARIO = "claims"
#: A kind of call measured against inline, its series, and the rule its repeats must settle.
Judged = tuple[Kind, Series, Rule | None]
_SECTION = re.compile(r"^## (\w+): ([^\n]+)\n(.*?)(?=^## |\Z)", re.MULTILINE | re.DOTALL)
_SECTIONS = _SECTION.findall((resources.files(__package__) / "claims_notes.md").read_text())
#: From claims_notes.md's "## id: quote" sections: id -> quote, quote -> the text under it.
CLAIMS: dict[str, str] = {claim_id: quote for claim_id, quote, _ in _SECTIONS}
NOTES: dict[str, str] = {quote: " ".join(text.split()) for _, quote, text in _SECTIONS}
_SPEEDUP = "speedup over inline (x, median, 95% interval)"


def claim_rows(series: Series, claims: str, rule: Rule | None = None, **more: Any) -> list[Row]:
    """The row of ``series`` for each claim id in ``claims`` (one measurement, several claims)."""
    return [series.row(SCENARIO, rule=rule, claim=CLAIMS[c], **more) for c in claims.split()]


def one_shot(holds: bool, fails: bool) -> Verdict:
    """A claim checked once: refuted when it fails, confirmed when it holds, else qualified."""
    return "refuted" if fails else "confirmed" if holds else "qualified"


async def rates(rt: Runtime, count: int, kinds: Sequence[Kind], fn: Any, *args: Any) -> list[float]:
    """Calls/s of ``count`` calls of ``fn(*args)`` per kind: inline one by one, others at once."""
    calls = [functools.partial(rt.run, fn, *args, kind=kind) for kind in kinds]
    return [count / await burst(count, call) for call in calls]  # inline calls never yield


async def _against_inline(
    ctx: BenchContext,
    runtime: Runtime,
    tasks: int,
    judged: Sequence[Judged],
    *call: Any,
    budget: float | None = None,
) -> RuntimeStats:
    """Per round in ``runtime``: ``tasks`` calls inline, then by each kind (rate vs inline)."""
    kinds = [kind for kind, _, _ in judged]
    async with runtime as rt:
        await rates(rt, tasks, kinds, _workloads.noop)  # start the workers
        for _ in range(3 if "auto" in kinds else 0):  # auto learns the call (up to 3 probes)
            await rates(rt, tasks, ["auto"], *call)
        for _ in ctx.rounds(*[(series, rule) for _, series, rule in judged], budget=budget):
            inline, *offloaded = await rates(rt, tasks, ["inline", *kinds], *call)
            for (_, series, _), rate in zip(judged, offloaded, strict=True):
                series.add(rate, inline)
        return rt.stats()


# -- The cores, threads and the GIL ------------------------------------------------------------
async def parallel(ctx: BenchContext, result: ScenarioResult) -> None:
    """Pure-Python work: inline vs k worker processes vs k threads, judged with k = CPUs."""
    cpus = usable_cpus()
    workers = sorted({1, 2} if ctx.tiny else {1, cpus, 2 * cpus})
    tasks, n = max(4, 2 * max(workers)), _workloads.loops_for(ctx.pick(0.08, 0.04, 0.004))
    base = f"inline ({tasks} tasks one after the other)"
    lines = {"cpu": Line("processes"), "blocking": Line("threads")}
    ideal = Line("ideal (min(workers, CPUs))", style="--")
    claims = {"cpu": "multicore own_gil cpu_bound", "blocking": "thread_no_cpu gil_single"}
    for k in workers:
        name, judged = f"{tasks} pure-Python tasks on {k} worker", k == cpus
        proc = Series(f"{name} process{'es' * (k > 1)}", "tasks/s", base)
        thr = Series(f"{name} thread{'s' * (k > 1)}", "tasks/s", base)
        rules = (PARALLEL, NO_GAIN) if judged else (None, None)  # else: context
        cases: list[Judged] = [("cpu", proc, rules[0]), ("blocking", thr, rules[1])]
        runtime = Runtime(cpu_workers=k, threads=k, cpu_backend="process")
        budget = None if judged else ctx.pick(20.0, 6.0, 0.0)
        await _against_inline(ctx, runtime, tasks, cases, _workloads.spin, n, budget=budget)
        ctx.progress(f"{k} workers: processes {proc.ratio:.2f}x, threads {thr.ratio:.2f}x")
        ideal.add(k, float(min(k, cpus)))
        for kind, series, rule in cases:
            lines[kind].add(k, series.ratio, series.interval())
            ids = claims[kind] if judged else claims[kind].split()[0]
            result.rows += claim_rows(series, ids, rule, verdict=None if judged else "n/a")
    title = f"Pure-Python CPU work: speedup over inline ({cpus} usable CPUs)"
    target = (PARALLEL.confirm, f"'uses the cores' from {PARALLEL.confirm:.2g}x")
    path, x = ctx.out / "claims-speedup-vs-workers.png", "worker processes or threads"
    line_plot(path, title, x, _SPEEDUP, [*lines.values(), ideal], hline=target)
    result.plots.append(path.name)


async def gil_release(ctx: BenchContext, result: ScenarioResult) -> None:
    """C code that releases the GIL (zlib on large buffers): inline vs threads."""
    cpus = usable_cpus()
    tasks, size = max(4, 2 * cpus), ctx.pick(4_000_000, 2_000_000, 200_000)
    # Half random, half zeros: zlib has real work to do, and it is reproducible.
    data = random.Random(8).randbytes(size // 2) + bytes(size - size // 2)
    name = f"zlib.compress of {size / 1e6:g} MB, {tasks} calls on {cpus} threads"
    series = Series(name, "calls/s", f"inline ({tasks} calls one after the other)")
    # NO_GAIN's thresholds are PARALLEL's, mirrored: settled for one, settled for both.
    judged: list[Judged] = [("blocking", series, PARALLEL)]
    await _against_inline(ctx, Runtime(threads=cpus), tasks, judged, zlib.compress, data)
    result.rows += claim_rows(series, "thread_no_cpu gil_single", NO_GAIN)
    result.rows += claim_rows(series, "c_libraries", PARALLEL)


async def io_threads(ctx: BenchContext, result: ScenarioResult) -> None:
    """Blocking I/O (sleep stands in for a socket or disk wait): inline vs one thread per call."""
    calls, wait = ctx.pick(16, 8, 4), ctx.pick(0.05, 0.02, 0.01)
    rule = Rule(max(NO_GAIN.confirm, 0.5 * calls), NO_GAIN.confirm)
    name = f"{calls} blocking waits of {wait * 1000:g} ms on {calls} threads"
    series = Series(name, "waits/s", f"inline ({calls} waits one after the other)")
    judged: list[Judged] = [("blocking", series, rule)]
    await _against_inline(ctx, Runtime(threads=calls), calls, judged, _workloads.sleep_for, wait)
    result.rows += claim_rows(series, "thread_io", rule, note=f"ideal {calls}x")


def crossover_point(points: list[tuple[float, float]], at: float = 1.0) -> float | None:
    """The task duration where the speedup first reaches ``at`` (log-interpolated), or None."""
    ordered = sorted(points)
    if ordered and ordered[0][1] >= at:
        return ordered[0][0]
    for (d0, s0), (d1, s1) in itertools.pairwise(ordered):
        if s0 < at <= s1:
            return math.exp(math.log(d0) + (at - s0) / (s1 - s0) * math.log(d1 / d0))
    return None


async def crossover(ctx: BenchContext, result: ScenarioResult) -> None:
    """Tasks of a given duration: inline vs ``run_cpu`` on all cores, and ``kind="auto"``."""
    cpus = usable_cpus()
    durations = ctx.pick([1e-5, 1e-4, 1e-3, 1e-2, 5e-2], [1e-4, 1e-3, 1e-2, 3e-2], [1e-4, 5e-3])
    tasks, base = max(4, 4 * cpus), "inline, one after the other"
    lines = [Line("hybridio.run_cpu"), Line('kind="auto"')]
    pays = Rule(GAIN, GAIN, load_sensitive=True)  # offloading pays from 1.15x, and not below
    for duration in durations:
        name = f"{tasks} tasks of {duration * 1000:g} ms"
        cpu = Series(f"{name} offloaded to {cpus} processes", "tasks/s", base)
        auto = Series(f'{name} with kind="auto"', "tasks/s", base)
        judged: list[Judged] = [("cpu", cpu, pays), ("auto", auto, None)]
        runtime = Runtime(cpu_workers=cpus, cpu_backend="process")
        call, budget = (_workloads.busy_for, duration), ctx.pick(20.0, 8.0, 0.0)
        stats = await _against_inline(ctx, runtime, tasks, judged, *call, budget=budget)
        chose = f"auto chose {stats.auto['hybridio._workloads.busy_for'].kind}"
        ctx.progress(f"{name}: run_cpu {cpu.ratio:.2f}x, auto {auto.ratio:.2f}x ({chose})")
        for line, series in zip(lines, (cpu, auto), strict=True):
            line.add(duration, series.ratio, series.interval())
        result.rows += claim_rows(cpu, "cpu_bound", pays)
        result.rows += claim_rows(auto, "cpu_bound", verdict="n/a", note=chose)
    point = crossover_point([(d, speedup) for d, speedup, _ in lines[0].points], at=GAIN)
    name = f"task duration from which offloading pays (speedup >= {GAIN:g}x)"
    crossing = fact(name, math.nan if point is None else point, "s")
    note = "no measured duration paid off" if point is None else "interpolated"
    result.rows += claim_rows(crossing, "cpu_bound", verdict="n/a", note=note)
    title = f"{tasks} tasks offloaded to {cpus} processes: speedup vs task length"
    mark = None if point is None else (point, f"run_cpu crossover ~{point * 1000:.2g} ms")
    path, x = ctx.out / "claims-offload-crossover.png", "task duration (s, log scale)"
    line_plot(path, title, x, _SPEEDUP, lines, logx=True, hline=(GAIN, "pays"), vline=mark)
    result.plots.append(path.name)


# -- What a process costs ----------------------------------------------------------------------
def _start_join(worker: threading.Thread | multiprocessing.process.BaseProcess) -> float:
    """Seconds to start and join a thread or a process."""
    start = time.perf_counter()
    worker.start()
    worker.join()
    return time.perf_counter() - start


async def startup(ctx: BenchContext, result: ScenarioResult) -> None:
    """Start and join a thread vs a process per start method; which children inherit state."""
    wanted = {"fork", "spawn"} if ctx.tiny else {"fork", "forkserver", "spawn"}
    bars: dict[str, Series] = {}
    inherits: dict[str, bool] = {}
    # Each child exits 1 if it sees the mark: fork copies the parent, spawn starts afresh.
    _workloads.STATE["mark"] = True
    with warnings.catch_warnings(action="ignore", category=DeprecationWarning):  # 3.12+: fork
        for method in sorted(wanted.intersection(multiprocessing.get_all_start_methods())):
            context: Any = multiprocessing.get_context(method)
            if method == "forkserver":
                _start_join(context.Process())  # its first start starts the fork server
            name = f"start + join a process ({method})"
            series = bars[method] = Series(name, "s", "start + join a thread")
            for _ in ctx.rounds((series, MUCH), (series, FASTER)):
                child = context.Process(target=_workloads.exit_with_mark)
                a_thread = statistics.median(_start_join(threading.Thread()) for _ in range(5))
                series.add(_start_join(child), a_thread)
            inherits[method] = child.exitcode == 1
            result.rows += claim_rows(series, "slow_start heavyweight", MUCH)
            result.rows += claim_rows(series, "thread_fast_start", FASTER)
    _workloads.STATE["mark"] = False
    name = "start methods whose children inherit the parent's state"
    count = fact(name, sum(inherits.values()), f"of {len(inherits)}")
    verdict = one_shot(holds=not any(inherits.values()), fails=all(inherits.values()))
    summary = ", ".join(f"{m}: {'inherits' if v else 'fresh'}" for m, v in inherits.items())
    result.rows += claim_rows(count, "independent", verdict=verdict, note=summary)
    thread = Series("thread", "s", values=[v for s in bars.values() for v in s.baseline_values])
    path, title = ctx.out / "claims-startup.png", "Start-up: start + join (median, 95% interval)"
    bars = {"thread": thread, **bars}
    bar_plot(path, title, "milliseconds (log scale)", bars, scale=1000, logy=True)
    result.plots.append(path.name)


async def memory(ctx: BenchContext, result: ScenarioResult) -> None:
    """Memory per worker process (RSS, USS) vs per extra thread, judged on min and max workers."""
    workers, thread_count = ctx.pick(4, 2, 1), ctx.pick(64, 32, 8)
    async with Runtime(cpu_workers=workers, cpu_backend="process") as rt:
        await rates(rt, workers, ["cpu"], _workloads.spin, 1000)
        infos = [psutil.Process(pid).memory_full_info() for pid in rt.worker_pids()]
    stop, before = threading.Event(), psutil.Process().memory_info().rss
    with ThreadPoolExecutor(thread_count) as pool:
        pool.map(stop.wait, [None] * thread_count)  # each blocked call gets a new thread
        after = psutil.Process().memory_info().rss
        stop.set()
    # RSS moves by whole pages and other threads allocate too: floor at one page per thread.
    per_thread = max(4096.0, (after - before) / thread_count)
    base = f"RSS growth per thread ({thread_count} idle threads)"
    for label, field in (("RSS", "rss"), ("USS (memory only it uses)", "uss")):
        series = Series(f"{label} per worker process", "bytes", base)
        for info in infos:
            series.add(float(getattr(info, field)), per_thread)
        verdict, _ = _model.judge(MUCH, (min(series.ratios()), max(series.ratios())), MIN_REPEATS)
        result.rows += claim_rows(series, "more_memory thread_memory heavyweight", verdict=verdict)


async def ipc(ctx: BenchContext, result: ScenarioResult) -> None:
    """Round trip of a payload to a worker process vs the same call to a thread."""
    sizes = [100, 10**4, 10**6, 10**7, 5 * 10**7]
    sizes = ctx.pick(sizes, sizes[:-1], [100, 10**5])
    process, thread = Line("process"), Line("thread")
    async with Runtime(cpu_workers=1, threads=1, cpu_backend="process") as rt:
        await rates(rt, 1, ["cpu", "blocking"], _workloads.noop)
        for size in sizes:
            name = f"round trip of {size:,} bytes to a worker process"
            series = Series(name, "s", "the same call to a worker thread")
            for _ in ctx.rounds((series, MUCH), budget=ctx.pick(20.0, 6.0, 0.0)):
                cpu, blocking = await rates(rt, 1, ["cpu", "blocking"], len, bytes(size))
                series.add(1 / cpu, 1 / blocking)
            for line, values in ((process, series.values), (thread, series.baseline_values)):
                line.add(size, statistics.median(values), _model.median_interval(values))
            ctx.progress(f"{size:,} B: {series.median * 1000:.2f} ms")
            result.rows += claim_rows(series, "ipc", MUCH)
    path, title = ctx.out / "claims-ipc-vs-payload.png", "Round trip vs payload size (median, 95%)"
    x, y = "payload (bytes, log scale)", "seconds (log scale)"
    line_plot(path, title, x, y, [process, thread], logx=True, logy=True)
    result.plots.append(path.name)


async def faster_access(ctx: BenchContext, result: ScenarioResult) -> None:
    """Reading a large structure: in the parent vs a worker's own copy vs sent with each call."""
    size = ctx.pick(3_000_000, 1_000_000, 100_000)
    table, base = list(range(size)), "the same sum in the parent process"
    own = Series(f"sum of a {size:,}-item list: the worker's own copy", "s", base)
    sent = Series(f"sum of a {size:,}-item list sent with each call", "s", base)
    async with Runtime(
        cpu_workers=1, cpu_backend="process", initializer=_workloads.build_table, initargs=(size,)
    ) as rt:
        await rt.run_cpu(_workloads.sum_table)
        judged = ((own, FASTER_ACCESS), (sent, FASTER_ACCESS))
        for _ in ctx.rounds(*judged, budget=ctx.pick(20.0, 8.0, 0.0)):
            for series, fn, args in ((own, _workloads.sum_table, ()), (sent, sum, (table,))):
                (inline,) = await rates(rt, 1, ["inline"], sum, table)
                (offloaded,) = await rates(rt, 1, ["cpu"], fn, *args)
                series.add(1 / offloaded, 1 / inline)
    for series in (own, sent):
        result.rows += claim_rows(series, "faster_access", FASTER_ACCESS)


# -- What isolation buys -----------------------------------------------------------------------
async def killability(ctx: BenchContext, result: ScenarioResult) -> None:
    """Runaway work past its timeout: a worker process is killed, a thread runs on."""
    timeout, runtime = ctx.pick(0.5, 0.2, 0.1), ctx.pick(3.0, 1.5, 0.5)
    async with Runtime(cpu_workers=1, threads=2, cpu_backend="process") as rt:
        await rt.run_cpu(_workloads.noop)
        (pid,), start = rt.worker_pids(), time.monotonic()
        with contextlib.suppress(OffloadTimeout):  # not raised: it ran its 60 s
            await rt.run_cpu(_workloads.busy_for, 60.0, timeout=timeout)
        with anyio.move_on_after(5), contextlib.suppress(psutil.NoSuchProcess):  # or a zombie
            while psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:  # noqa: ASYNC110
                await anyio.sleep(0.005)
        gone = time.monotonic() - start - timeout
        row = fact("runaway work in a process: gone after its deadline", gone, "s", since=start)
        note = f"timeout={timeout:g} s kills the worker; killable: gone within 1 s"
        result.rows += claim_rows(row, "killable", verdict=one_shot(gone < 1, gone >= 1), note=note)
        rest = runtime - timeout
        # A runaway thread runs on (most of its rest); one that polls cancel_requested() stops.
        for cooperative, label, share in ((False, "runaway work", 0.8), (True, "cooperative", 0.2)):
            record: dict[str, float] = {}
            deadline = time.perf_counter() + timeout
            with contextlib.suppress(OffloadTimeout):
                work = _workloads.runaway
                await rt.run_blocking(work, runtime, cooperative, record, timeout=timeout)
            with anyio.fail_after(runtime + 5):
                while "done" not in record:  # noqa: ASYNC110 - the thread reports in memory
                    await anyio.sleep(0.01)
            name = f"{label} in a thread: ran on after its deadline"
            row = fact(name, record["done"] - deadline, "s", "its planned rest", rest)
            verdict = one_shot(holds=row.median >= share * rest, fails=False)
            result.rows += claim_rows(row, "thread_unkillable", verdict=verdict)


async def races(ctx: BenchContext, result: ScenarioResult) -> None:
    """A counter incremented from threads: updates are lost without a lock, not with one."""
    threads, times = 4, ctx.pick(5000, 2000, 200)
    lost = {}
    for label, lock in (("no lock", None), ("with a lock", threading.Lock())):
        box = {"n": 0}
        async with Runtime(threads=threads) as rt:
            await burst(threads, rt.run_blocking, _workloads.racy_add, box, times, lock)
        lost[label] = threads * times - box["n"]
    verdict = one_shot(holds=lost["no lock"] > 0, fails=lost["with a lock"] > 0)
    for label, count in lost.items():
        name = f"{threads} threads x {times} read-modify-writes, {label}: lost updates"
        row = fact(name, count, "updates", "updates made", threads * times)
        result.rows += claim_rows(row, "race", verdict=verdict)


async def isolation(ctx: BenchContext, result: ScenarioResult) -> None:
    """A change made in a worker process is not seen by the parent; one made in a thread is."""
    items = [1, 2, 3]
    async with Runtime(cpu_workers=1, threads=1, cpu_backend="process") as rt:
        await rt.run_cpu(_workloads.mutate, 42, items)
        process_sees = _workloads.STATE["value"] == 42 or len(items) != 3
        await rt.run_blocking(_workloads.mutate, 7, items)
        thread_sees = _workloads.STATE["value"] == 7 and len(items) == 4
    _workloads.STATE["value"] = 0
    name = "changes made in a worker process that the parent sees"
    row = fact(name, int(process_sees), "of 1", "the same in a thread", int(thread_sees))
    result.rows += claim_rows(row, "separate_memory", verdict=one_shot(thread_sees, process_sees))


# -- Ways around the GIL -----------------------------------------------------------------------
async def alternatives(ctx: BenchContext, result: ScenarioResult) -> None:
    """Judged from docs; `hybridio bench interpreters` measures CPython's ways around the GIL."""
    ways = {"in subinterpreters": "Python 3.13+", "on threads, GIL off": "a free-threaded 3.13t"}
    for way, needs in ways.items():
        row = fact(f"pure-Python tasks {way}: speedup over inline", math.nan, "")
        note = f'see `hybridio bench interpreters` with {needs}: docs/benchmarks.md, "interpreters"'
        result.rows += claim_rows(row, "other_implementations", verdict="n/a", note=note)
    jython = fact("Jython / IronPython as the way around the GIL", math.nan, "")
    gil = fact("is the GIL required? (free-threaded CPython 3.13t runs without it)", math.nan, "")
    for row, claim in ((jython, "other_implementations"), (gil, "gil_required")):
        result.rows += claim_rows(row, claim, verdict="qualified", note="see docs/claims.md")


#: Name -> measurement, in the order they run (cheap and robust first).
SUB_SCENARIOS: dict[str, Callable[[BenchContext, ScenarioResult], Awaitable[None]]] = {
    part.__name__.replace("_", "-"): part
    for part in itertools.chain(
        (parallel, gil_release, io_threads, startup, memory, ipc, crossover),
        (killability, races, isolation, faster_access, alternatives),
    )
}


def run(ctx: BenchContext) -> ScenarioResult:
    """Measure every claim; a sub-scenario that fails is an "n/a" row naming the error."""
    result = ScenarioResult(SCENARIO, "The seed notes' claims", __doc__ or "")
    result.extra["notes"] = NOTES
    for name, measure in SUB_SCENARIOS.items():
        ctx.progress(f"{name}...")
        try:
            anyio.run(measure, ctx.under(name), result)
        except Exception as exc:  # noqa: BLE001 - one broken measurement must not hide the rest
            result.extra.setdefault("errors", {})[name] = traceback.format_exc()
            failed = fact(f"{name}: measurement failed", math.nan, "")
            result.rows.append(failed.row(SCENARIO, verdict="n/a", note=repr(exc)))
    return result
