"""Claims about isolation: killing runaway work, races on shared memory, copies in processes."""

from __future__ import annotations

import threading
import time

import anyio
import psutil

import hybridio

from .. import _workloads
from . import _work as work
from ._claims_common import claim_rows, one_shot
from ._model import BenchContext, ScenarioResult, fact, gather

#: A process counts as killable when it is gone this soon after its deadline.
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


def killability(ctx: BenchContext, result: ScenarioResult) -> None:
    """Runaway work past its timeout: a process is killed; a thread runs on unless it cooperates."""
    timeout, runtime = ctx.pick(0.5, 0.2, 0.1), ctx.pick(3.0, 1.5, 0.5)
    rest = runtime - timeout

    async def main() -> None:
        async with hybridio.Runtime(cpu_workers=1, threads=2) as rt:
            await rt.run_cpu(_workloads.noop)
            (pid,) = rt.worker_pids()
            start, since = time.perf_counter(), time.monotonic()
            killed = False
            try:
                await rt.run_cpu(_workloads.busy_for, 60.0, timeout=timeout)
            except hybridio.OffloadTimeout:
                killed = True
            gone = time.perf_counter() - start - timeout + await _wait_gone(pid, 5.0)
            name = "runaway work in a process: gone after its deadline"
            dead = killed and gone < KILL_WITHIN
            verdict = one_shot(holds=dead, fails=not dead)
            note = f"timeout={timeout:g} s kills the worker"
            result.rows += claim_rows(
                fact(name, gone, "s", since=since), "killable", verdict=verdict, note=note
            )
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
                ran_on = record["done"] - deadline
                if cooperative:  # it can be interrupted when it cooperates, not killed
                    name = (
                        "cooperative thread (polls cancel_requested()): ran on after its deadline"
                    )
                    row = fact(name, ran_on, "s")
                    verdict = one_shot(holds=ran_on >= 0.2 * rest, fails=False)
                else:  # one that ran (nearly) all of its planned rest could not be stopped
                    name = "runaway work in a thread: ran on after its deadline"
                    row = fact(name, ran_on, "s", "its planned rest", rest)
                    verdict = one_shot(holds=ran_on >= 0.8 * rest, fails=False)
                result.rows += claim_rows(row, "thread_unkillable", verdict=verdict)

    anyio.run(main)


def races(ctx: BenchContext, result: ScenarioResult) -> None:
    """A shared counter incremented from threads: without a lock updates are lost; with one not.

    No loss without a lock is "qualified" (the race exists but did not fire in this run); losses
    even with the lock would refute that the lock is the fix.
    """
    threads, times = 4, ctx.pick(5000, 2000, 200)

    async def lost(lock: threading.Lock | None) -> int:
        box = {"n": 0}
        async with hybridio.Runtime(threads=threads) as rt:
            await gather(
                [lambda: rt.run_blocking(work.racy_add, box, times, lock) for _ in range(threads)]
            )
        return threads * times - box["n"]

    unlocked, locked = anyio.run(lost, None), anyio.run(lost, threading.Lock())
    verdict = one_shot(holds=unlocked > 0, fails=locked > 0)
    for label, count in (("no lock", unlocked), ("with a lock", locked)):
        name = f"{threads} threads x {times} read-modify-writes, {label}: lost updates"
        row = fact(name, count, "updates", "updates made", threads * times)
        result.rows += claim_rows(row, "race", verdict=verdict)


def isolation(ctx: BenchContext, result: ScenarioResult) -> None:
    """A change made in a worker process is not seen by the parent; one made in a thread is."""

    async def main() -> tuple[bool, bool]:
        items = [1, 2, 3]
        async with hybridio.Runtime(cpu_workers=1, threads=1) as rt:
            await rt.run_cpu(work.mutate, 42, items)
            process_sees = work.STATE["value"] == 42 or len(items) != 3
            await rt.run_blocking(work.mutate, 7, items)
            thread_sees = work.STATE["value"] == 7 and len(items) == 4
        work.STATE["value"] = 0
        return process_sees, thread_sees

    process_sees, thread_sees = anyio.run(main)
    name = "changes made in a worker process that the parent sees"
    thread = "changes made in a thread that the parent sees"
    row = fact(name, int(process_sees), "of 1", thread, int(thread_sees))
    verdict = one_shot(holds=thread_sees, fails=process_sees)
    result.rows += claim_rows(row, "separate_memory", verdict=verdict)
