"""A tour of hybridio: the same work inline, in a thread and in a process, while the loop ticks.

For each choice it runs a batch of CPU-bound tasks (pure Python: holds the GIL) and a batch of
blocking calls (time.sleep: releases the GIL), while a ticker task on the event loop wakes every
10 ms and records how late it was. The table shows the wall time, the speedup against running the
batch inline, and the ticker's worst delay: what the rest of your service would have felt.

Run it with ``python examples/tour.py`` (``--quick`` for a shorter run, ``--backend trio`` or
``--backend uvloop`` to try another event loop).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from functools import partial

import anyio

import hybridio

TICK = 0.01


def crunch(n: int) -> int:
    """Pure-Python CPU work: holds the GIL the whole time."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def wait_on_disk(seconds: float) -> float:
    """A blocking call (a stand-in for a driver without async support): releases the GIL."""
    time.sleep(seconds)
    return seconds


def calibrate(seconds: float) -> int:
    n = 20_000
    while True:
        start = time.perf_counter()
        crunch(n)
        elapsed = time.perf_counter() - start
        if elapsed > 0.02:
            return max(1, int(n * seconds / elapsed))
        n *= 4


@dataclass
class Result:
    work: str
    kind: str
    wall: float
    worst_tick: float
    speedup: float = 1.0


async def ticker(worst: list[float], stop: anyio.Event) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        await anyio.sleep(TICK)
        worst[0] = max(worst[0], time.perf_counter() - start - TICK)


async def run_batch(work: str, kind: hybridio.Kind, tasks: int, size: float, n: int) -> Result:
    worst = [0.0]
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker, worst, stop)
        await anyio.sleep(2 * TICK)  # let the ticker settle
        start = time.perf_counter()
        async with anyio.create_task_group() as batch:
            for _ in range(tasks):
                if work == "cpu":
                    batch.start_soon(partial(hybridio.run, crunch, n, kind=kind))
                else:
                    batch.start_soon(partial(hybridio.run, wait_on_disk, size, kind=kind))
        wall = time.perf_counter() - start
        stop.set()
    return Result(work, kind, wall, worst[0])


async def tour(quick: bool) -> list[Result]:
    tasks = 4
    size = 0.05 if quick else 0.25
    n = calibrate(size)
    results: list[Result] = []
    async with hybridio.Runtime(cpu_workers=2, threads=tasks):
        await hybridio.run_cpu(abs, 1)  # start the worker processes before timing
        await hybridio.run_blocking(abs, 1)
        for work in ("cpu", "blocking"):
            batch = [
                await run_batch(work, kind, tasks, size, n)
                for kind in ("inline", "blocking", "cpu")
            ]
            for result in batch:
                result.speedup = batch[0].wall / result.wall
            results += batch
    return results


def conclusions(results: list[Result]) -> list[str]:
    """What these numbers say, from these numbers: a run on a busy machine says so."""
    by = {(r.work, r.kind): r for r in results}
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    process, thread = by["cpu", "cpu"].speedup, by["cpu", "blocking"].speedup
    lines = []
    if process >= 1.3:
        lines.append(
            f"CPU-bound work: processes ran it {process:.2f}x faster than inline: several cores at work."
        )
    else:
        lines.append(
            f"CPU-bound work: processes gained only {process:.2f}x here ({cpus} usable CPUs, load "
            f"average {os.getloadavg()[0] if hasattr(os, 'getloadavg') else 0:.1f}): other work "
            "on the cores, or too few cores."
        )
    lines.append(
        f"Threads ran it at {thread:.2f}x: "
        + ("no gain, the GIL lets one thread run Python at a time." if thread < 1.15 else "a gain.")
    )
    stall, calm = by["cpu", "inline"].worst_tick, by["cpu", "cpu"].worst_tick
    lines.append(
        f"The loop stalled up to {stall * 1000:.0f} ms with the work inline, "
        f"{calm * 1000:.0f} ms with it in processes."
    )
    waits = by["blocking", "blocking"].speedup
    lines.append(
        f"Blocking calls: threads overlapped them ({waits:.1f}x); inline they stalled the loop "
        f"up to {by['blocking', 'inline'].worst_tick * 1000:.0f} ms."
    )
    return lines


def print_table(results: list[Result]) -> None:
    labels = {"inline": "inline (loop)", "blocking": "thread", "cpu": "process"}
    works = {"cpu": "CPU-bound (pure Python)", "blocking": "blocking call (sleep)"}
    print(f"{'work':<26}{'where':<15}{'wall':>9}{'speedup':>9}{'worst tick delay':>18}")
    for r in results:
        print(
            f"{works[r.work]:<26}{labels[r.kind]:<15}{r.wall * 1000:>7.0f}ms"
            f"{r.speedup:>8.2f}x{r.worst_tick * 1000:>16.1f}ms"
        )
    print()
    print("\n".join(conclusions(results)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller tasks (a few seconds)")
    parser.add_argument("--backend", choices=["asyncio", "uvloop", "trio"], default="asyncio")
    args = parser.parse_args()
    backend = "trio" if args.backend == "trio" else "asyncio"
    options = {"use_uvloop": True} if args.backend == "uvloop" else {}
    results = anyio.run(tour, args.quick, backend=backend, backend_options=options)
    print_table(results)


if __name__ == "__main__":
    main()
