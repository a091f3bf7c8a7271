"""Claims about isolation: killing runaway work, races on shared memory, copies between processes."""

from __future__ import annotations

import threading
import time

import anyio
import psutil

import hybridio

from .. import _workloads
from . import _load
from . import _work as work
from ._claims_common import SCENARIO, Part, fact, gather, guard, verdict_isolated, verdict_race
from ._model import BenchContext, Series
from ._targets import FASTER_ACCESS as FASTER

__all__ = ["faster_access", "isolation", "killability", "races"]

# A process counts as killable when it is gone this soon after its deadline.
KILL_WITHIN = 1.0


async def _wait_gone(pid: int, limit: float) -> float:
    """Seconds until process ``pid`` no longer runs (gone or a zombie), at most ``limit``."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        await anyio.sleep(0.005)
    return time.perf_counter() - start


def killability(ctx: BenchContext) -> Part:
    """Runaway work past its timeout: a process is killed; a thread runs on unless it cooperates."""
    timeout = ctx.pick(0.5, 0.2, 0.1)
    runtime = ctx.pick(3.0, 1.5, 0.5)
    part = Part()

    async def main() -> None:
        async with hybridio.Runtime(cpu_workers=1, threads=2) as rt:
            await rt.run_cpu(work.noop)
            (pid,) = rt.worker_pids()
            start, clock = time.perf_counter(), time.monotonic()
            killed = False
            try:
                await rt.run_cpu(_workloads.busy_for, 60.0, timeout=timeout)
            except hybridio.OffloadTimeout:
                killed = True
            raised = time.perf_counter() - start - timeout
            gone = raised + await _wait_gone(pid, 5.0)
            load = _load.during(clock, time.monotonic())
            thread_runs: dict[bool, float] = {}
            for cooperative in (False, True):
                record: dict[str, float] = {}
                deadline = time.perf_counter() + timeout
                try:
                    await rt.run_blocking(
                        work.runaway, runtime, cooperative, record, timeout=timeout
                    )
                except hybridio.OffloadTimeout:
                    pass
                with anyio.fail_after(runtime + 5):
                    # The thread reports through shared memory; polling is what can see it.
                    while "done" not in record:  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                thread_runs[cooperative] = record["done"] - deadline
        plain, coop = thread_runs[False], thread_runs[True]
        rest = runtime - timeout
        verdict, reason = guard("confirmed" if killed and gone < KILL_WITHIN else "refuted", load)
        part.rows += [
            fact("runaway work in a process: gone after its deadline", gone, "s", "killable",
                  verdict, reason=reason, note=f"timeout={timeout:g} s kills the worker"),
            # A thread that ran (nearly) all of its planned rest could not be stopped.
            fact("runaway work in a thread: ran on after its deadline", plain, "s",
                  "thread_unkillable", "confirmed" if plain / rest >= 0.8 else "qualified",
                  baseline="its planned rest", baseline_value=rest),
            fact("cooperative thread (polls cancel_requested()): ran on after its deadline",
                  coop, "s", "thread_unkillable", "qualified" if coop < 0.2 * rest else "confirmed"),
        ]  # fmt: skip

    anyio.run(main)
    return part


def races(ctx: BenchContext) -> Part:
    """A shared counter incremented from threads: without a lock updates are lost; with one not."""
    threads = 4
    times = ctx.pick(5000, 2000, 200)
    expected = threads * times

    async def count(lock: threading.Lock | None) -> int:
        box = {"n": 0}
        async with hybridio.Runtime(threads=threads) as rt:
            await gather(
                [lambda: rt.run_blocking(work.racy_add, box, times, lock) for _ in range(threads)]
            )
        return expected - box["n"]

    lost = anyio.run(count, None)
    lost_locked = anyio.run(count, threading.Lock())
    verdict = verdict_race(lost, lost_locked)
    name = f"{threads} threads x {times} read-modify-writes"
    made = {"baseline": "updates made", "baseline_value": expected, "baseline_unit": "updates"}
    return Part(rows=[
        fact(f"{name}, no lock: lost updates", lost, "updates", "race", verdict, **made),
        fact(f"{name}, with a lock: lost updates", lost_locked, "updates", "race", verdict, **made),
    ])  # fmt: skip


def isolation(ctx: BenchContext) -> Part:
    """A change made in a worker process is not seen by the parent; one made in a thread is."""

    async def main() -> tuple[bool, bool]:
        items = [1, 2, 3]
        async with hybridio.Runtime(cpu_workers=1, threads=1) as rt:
            await rt.run_cpu(work.set_shared, 42)
            await rt.run_cpu(work.append_and_len, items)
            process_sees = work.SHARED["value"] == 42 or len(items) != 3
            await rt.run_blocking(work.set_shared, 7)
            await rt.run_blocking(work.append_and_len, items)
            thread_sees = work.SHARED["value"] == 7 and len(items) == 4
        work.SHARED["value"] = 0
        return process_sees, thread_sees

    process_sees, thread_sees = anyio.run(main)
    row = fact("changes made in a worker process that the parent sees", process_sees, "of 1",
                "separate_memory", verdict_isolated(process_sees, thread_sees),
                baseline="changes made in a thread that the parent sees",
                baseline_value=thread_sees)  # fmt: skip
    return Part(rows=[row])


def faster_access(ctx: BenchContext) -> Part:
    """Reading a large structure: in the parent vs a worker's own copy vs sent with each call."""
    size = ctx.pick(3_000_000, 1_000_000, 100_000)
    table = list(range(size))
    base = "the same sum in the parent process"
    own = Series(f"sum of a {size:,}-item list: the worker's own copy", "s", base)
    sent = Series(f"sum of a {size:,}-item list sent with each call", "s", base)

    async def main() -> None:
        async with hybridio.Runtime(
            cpu_workers=1, initializer=work.build_table, initargs=(size,)
        ) as rt:
            await rt.run_cpu(work.sum_table)
            for _ in ctx.rounds((own, FASTER), (sent, FASTER), budget=ctx.pick(20.0, 8.0, 0.0)):
                for series in (own, sent):
                    start = time.perf_counter()
                    sum(table)
                    middle = time.perf_counter()
                    if series is own:
                        await rt.run_cpu(work.sum_table)
                    else:
                        await rt.run_cpu(work.sum_list, table)
                    series.add(time.perf_counter() - middle, middle - start)

    anyio.run(main)
    return Part(rows=[s.row(SCENARIO, rule=FASTER, claim="faster_access") for s in (own, sent)])
