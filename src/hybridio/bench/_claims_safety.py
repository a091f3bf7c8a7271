"""Claims about isolation: killing runaway work, races on shared memory, copies between processes."""

from __future__ import annotations

import threading
import time

import anyio
import psutil

import hybridio

from . import _claims_work as work
from ._claims_common import Part, Timing, measure_async, row
from ._claims_cpu import gather
from ._claims_verdicts import verdict_at_least, verdict_at_most, verdict_isolated, verdict_race
from ._model import BenchContext

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
            start = time.perf_counter()
            with_timeout = False
            try:
                await rt.run_cpu(work.busy_for, 60.0, timeout=timeout)
            except hybridio.OffloadTimeout:
                with_timeout = True
            raised = time.perf_counter() - start - timeout
            gone = raised + await _wait_gone(pid, 5.0)
            await rt.run_cpu(work.noop)  # the pool replaced the worker
            ready = time.perf_counter() - start - timeout
            thread_runs: dict[str, float] = {}
            for cooperative in (False, True):
                record: dict[str, float] = {}
                begin = time.perf_counter()
                try:
                    await rt.run_blocking(
                        work.runaway, runtime, cooperative, record, timeout=timeout
                    )
                except hybridio.OffloadTimeout:
                    pass
                deadline = begin + timeout
                with anyio.fail_after(runtime + 5):
                    # The thread reports through shared memory; polling is what can see it.
                    while "done" not in record:  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                thread_runs["cooperative" if cooperative else "plain"] = record["done"] - deadline
            abandoned = rt.stats()["blocking"].abandoned
        plain, coop = thread_runs["plain"], thread_runs["cooperative"]
        part.rows += [
            row(
                "runaway work in a process: dead after its deadline",
                gone,
                "s",
                claim="killable",
                verdict="confirmed" if with_timeout and gone < KILL_WITHIN else "refuted",
                baseline="a plain thread: runs on after its deadline",
                baseline_value=plain,
                note=f"hybridio timeout={timeout:g} s kills the worker: OffloadTimeout after "
                f"{raised * 1000:.0f} ms past the deadline, process gone after {gone * 1000:.0f} ms, "
                f"pool ready again after {ready * 1000:.0f} ms; confirmed within {KILL_WITHIN:g} s",
            ),
            row(
                "runaway work in a thread: time it ran on after its deadline",
                plain,
                "s",
                claim="thread_unkillable",
                # Not killable: it ran (nearly) all of its remaining time after the caller left.
                verdict=verdict_at_least(plain / (runtime - timeout), 0.8, 0.2),
                baseline="its remaining planned run time",
                baseline_value=runtime - timeout,
                note="the caller got OffloadTimeout at the deadline, but nothing can stop the "
                f"thread; hybridio counts it as abandoned ({abandoned} so far). It holds its "
                "memory until it returns: a leak only if it never does",
            ),
            row(
                "cooperative thread (polls hybridio.cancel_requested()): stop after deadline",
                coop,
                "s",
                claim="thread_unkillable",
                # Stopping soon after the deadline shows cooperation works: "not killable" then
                # holds only for code that does not poll.
                verdict="qualified" if coop < 0.2 * (runtime - timeout) else "confirmed",
                baseline="a plain thread: runs on after its deadline",
                baseline_value=plain,
                note="qualified: a thread can be interrupted when its code cooperates "
                "(cancel_requested() turns true at the deadline); it still cannot be killed",
            ),
        ]

    anyio.run(main)
    return part


def races(ctx: BenchContext) -> Part:
    """A shared counter incremented from threads: without a lock updates are lost; with one not."""
    threads = 4
    times = ctx.pick(5000, 2000, 200)
    expected = threads * times
    part = Part()

    async def count(lock: threading.Lock | None) -> tuple[int, Timing]:
        box = {"n": 0}
        async with hybridio.Runtime(threads=threads) as rt:
            timing = await measure_async(
                lambda: gather(
                    [
                        lambda: rt.run_blocking(work.racy_add, box, times, lock)
                        for _ in range(threads)
                    ]
                ),
                1,
            )
        return expected - box["n"], timing

    async def main() -> None:
        lost, unlocked = await count(None)
        lost_locked, locked = await count(threading.Lock())
        verdict = verdict_race(lost, lost_locked)
        part.rows += [
            row(
                f"{threads} threads x {times} read-modify-writes, no lock: lost updates",
                float(lost),
                "updates",
                claim="race",
                verdict=verdict,
                baseline="updates made",
                baseline_value=float(expected),
                note=f"{lost / expected:.0%} of the updates lost: each thread reads the counter, "
                "yields (time.sleep(0), as any I/O would) and writes back a stale value",
            ),
            row(
                f"{threads} threads x {times} read-modify-writes, with a lock: lost updates",
                float(lost_locked),
                "updates",
                claim="race",
                verdict=verdict,
                timing=locked,
                baseline="updates made",
                baseline_value=float(expected),
                note=f"the fix: a threading.Lock around the read-modify-write "
                f"({locked.median / unlocked.median:.1f}x the time of the racy version)",
            ),
        ]

    anyio.run(main)
    return part


def isolation(ctx: BenchContext) -> Part:
    """A change made in a worker process is not seen by the parent; one made in a thread is."""
    part = Part()

    async def main() -> None:
        items = [1, 2, 3]
        async with hybridio.Runtime(cpu_workers=1, threads=1) as rt:
            in_worker = await rt.run_cpu(work.set_shared, 42)
            worker_len = await rt.run_cpu(work.append_and_len, items)
            process_sees = work.SHARED["value"] == 42 or len(items) != 3
            await rt.run_blocking(work.set_shared, 7)
            await rt.run_blocking(work.append_and_len, items)
            thread_sees = work.SHARED["value"] == 7 and len(items) == 4
        work.SHARED["value"] = 0
        part.rows.append(
            row(
                "changes made in a worker process that the parent sees",
                float(process_sees),
                "of 1",
                claim="separate_memory",
                verdict=verdict_isolated(process_sees, thread_sees),
                baseline="changes made in a thread that the parent sees",
                baseline_value=float(thread_sees),
                note=f"the worker set a global to {in_worker} and grew its copy of a list to "
                f"{worker_len} items; the parent's global and list did not change (arguments "
                "and results are copies); a thread changed both in place",
            )
        )

    anyio.run(main)
    return part


def faster_access(ctx: BenchContext) -> Part:
    """Reading a large structure: in the parent vs a worker's own copy vs sent with each call."""
    size = ctx.pick(3_000_000, 1_000_000, 100_000)
    repeats = ctx.repeats(7, 5, 1)
    table = list(range(size))
    part = Part()

    async def main() -> None:
        inline = Timing.of([_timed_sum(table) for _ in range(repeats)])
        async with hybridio.Runtime(
            cpu_workers=1, initializer=work.build_table, initargs=(size,)
        ) as rt:
            await rt.run_cpu(work.sum_table)
            own = await measure_async(lambda: rt.run_cpu(work.sum_table), repeats)
            sent = await measure_async(lambda: rt.run_cpu(work.sum_list, table), repeats)
        x = own.median / inline.median
        part.rows += [
            row(
                f"sum of a {size:,}-item list: the worker's own copy",
                own.median,
                "s",
                claim="faster_access",
                # Faster would need ratio <= 0.8; the same memory speed (plus one round trip) is
                # qualified; clearly slower refutes it.
                verdict=verdict_at_most(x, 0.8, 1.25) if x < 1.25 else "refuted",
                timing=own,
                baseline="the same sum in the parent process",
                baseline_value=inline.median,
                note=f"ratio {x:.2f}: memory is not faster in another process. Separate memory "
                "avoids sharing (no locks, no GIL contention), and only if the data is already "
                "there (here built by Runtime(initializer=...))",
            ),
            row(
                f"sum of a {size:,}-item list sent with each call",
                sent.median,
                "s",
                claim="faster_access",
                verdict="refuted" if sent.median > 1.25 * inline.median else "qualified",
                timing=sent,
                baseline="the same sum in the parent process",
                baseline_value=inline.median,
                note="sending the data each call pays its pickling and copying: "
                f"{sent.median / inline.median:.1f}x the in-place access",
            ),
        ]

    anyio.run(main)
    return part


def _timed_sum(table: list[int]) -> float:
    start = time.perf_counter()
    sum(table)
    return time.perf_counter() - start
