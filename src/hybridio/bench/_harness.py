"""What several scenarios share: closed-loop measurements, rows from quantities measured in each
repeat, and helper processes (servers, load generators, crawlers, a Dask cluster) on 127.0.0.1."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import anyio.lowlevel
import psutil

import hybridio

from ._model import Row, Rule, Series

Call = Callable[[], Awaitable[Any]]

#: (row, baseline, rule): a row reports the quantity its name starts with (up to " vs "),
#: paired repeat by repeat with the baseline quantity when there is one.
Plan = Iterable[tuple[str, str | None, Rule | None]]


def rows(
    scenario: str,
    measured: dict[str, list[float]],
    window: tuple[float, float],
    plan: Plan,
    unit: Callable[[str], str],
) -> list[Row]:
    """The rows of ``plan`` from the quantities ``measured`` in each repeat during ``window``
    (``time.monotonic()`` readings: the load then decides whether a verdict may be given)."""
    made = []
    for name, base, rule in plan:
        values, paired = measured[name.split(" vs ")[0]], measured[base] if base else []
        series, lost = Series(name, unit(name), base), 0
        for i, value in enumerate(values):
            baseline = paired[i] if paired else None
            if math.isnan(value) or (baseline is not None and math.isnan(baseline)):
                lost += 1  # nothing measured in that repeat (say, no answer in time)
            else:
                series.add(value, baseline)
        series.window = window  # the whole run, not the moment the rows are built
        note = f"{lost} repeat(s) without a measurement left out" if lost else ""
        made.append(series.row(scenario, rule=rule, note=note))
    return made


async def throughput(call: Call, callers: int, seconds: float, *, yield_every: int = 0) -> float:
    """Calls per second of ``callers`` tasks calling back to back for ``seconds``; with
    ``yield_every``, each lets the others run every that many calls (inline calls never yield)."""
    done, start = 0, time.perf_counter()
    deadline = start + seconds

    async def caller() -> None:
        nonlocal done
        i = 0
        while not i or time.perf_counter() < deadline:  # one call at least, however late
            await call()
            i += 1
            if yield_every and i % yield_every == 0:
                await anyio.lowlevel.checkpoint()
        done += i

    await burst(callers, caller)
    return done / (time.perf_counter() - start)


async def map_rate(rt: hybridio.Runtime, fn: Callable[[Any], Any], items: Sequence[Any]) -> float:
    """Items per second of ``rt.map_cpu(fn, items)``."""
    start = time.perf_counter()
    async with rt.map_cpu(fn, items) as results:
        async for _ in results:
            pass
    return len(items) / (time.perf_counter() - start)


async def burst(calls: int, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> float:
    """Seconds for ``calls`` concurrent calls of ``fn(*args)``."""
    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(calls):
            tg.start_soon(fn, *args)
    return time.perf_counter() - start


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(
    command: Sequence[str], *, listen: int | None = None, **popen: Any
) -> Iterator[subprocess.Popen[Any]]:
    """Run ``command`` for the block (once it accepts connections on ``listen``, if given), then
    terminate it, and kill it if it does not exit within 10 s."""
    popen.setdefault("stderr", subprocess.DEVNULL)
    with subprocess.Popen(command, **popen) as process:  # closes its pipes, waits at the end
        try:
            deadline = time.monotonic() + 30
            while listen is not None and not _accepts(listen):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command[0]} did not listen on port {listen}")
                time.sleep(0.05)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _accepts(port: int) -> bool:
    with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


def tree_rss(process: psutil.Process) -> float:
    """Resident memory of a process and its descendants, in MiB."""
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for member in members:
        with suppress(psutil.NoSuchProcess):  # it exited meanwhile
            total += member.memory_info().rss
    return total / 2**20


def measure_tree(command: Sequence[str]) -> tuple[float, float, float]:
    """Run ``command`` to its end: wall seconds, CPU seconds of it and the children it waited
    for, and the peak RSS of its process tree in MiB (sampled every 50 ms)."""
    started, peak = time.perf_counter(), 0.0
    with tempfile.TemporaryFile() as errors:  # a file: a chatty child never blocks on a pipe
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        tree = psutil.Process(process.pid)
        while not (ended := os.wait4(process.pid, os.WNOHANG))[0]:
            peak = max(peak, tree_rss(tree))
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(ended[1])
        if process.returncode != 0:
            errors.seek(0)
            raise RuntimeError(
                f"{command} failed:\n{errors.read().decode(errors='replace')[-2000:]}"
            )
    usage = ended[2]
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime, peak
