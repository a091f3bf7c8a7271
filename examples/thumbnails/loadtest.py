"""Load the thumbnail service before and after hybridio, side by side, and print the numbers.

Starts both apps of ``thumbnail_service.py`` on 127.0.0.1 (one after the other), then for
``--seconds`` runs three clients at once: 4 connections asking for thumbnails, 4 asking for
rendered documents, and 1 timing ``/io`` (the request everyone else makes). Uses ``wrk`` when it
is installed (``apt-get install wrk``), else a small aiohttp client in this process::

    python examples/thumbnails/loadtest.py --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

SERVICE = Path(__file__).with_name("thumbnail_service.py")
LOADS = {"thumbnails": ("/thumbnail?id=1&size=128", 4), "docs": ("/doc?id=2", 4), "io": ("/io", 1)}
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def start(before: bool) -> tuple[subprocess.Popen[str], str]:
    """Start the service; return the process and its base URL."""
    command = [sys.executable, str(SERVICE), "--port", "0", "--no-access-log"]
    process = subprocess.Popen([*command, *(["--before"] if before else [])],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+", line)
    if match is None:
        process.kill()
        raise RuntimeError(f"the service did not start: {line!r}")
    return process, match.group(0)


def with_wrk(base: str, seconds: int) -> dict[str, tuple[float, float]]:
    """Per load: (ok requests/s, p99 ms), measured by wrk."""
    procs = {name: subprocess.Popen(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency",
                                     base + path], stdout=subprocess.PIPE, text=True)
             for name, (path, conns) in LOADS.items()}  # fmt: skip
    results = {}
    for name, proc in procs.items():
        out, _ = proc.communicate()
        done = re.search(r"(\d+) requests in ([\d.]+)s", out)
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        p99 = re.search(r"99%\s+([\d.]+)(\w+)", out)
        if done is None or p99 is None:
            raise RuntimeError(f"cannot read wrk's output: {out!r}")
        ok = int(done.group(1)) - (int(bad.group(1)) if bad else 0)
        results[name] = (ok / float(done.group(2)), float(p99.group(1)) * _UNITS[p99.group(2)])
    return results


async def with_aiohttp(base: str, seconds: int) -> dict[str, tuple[float, float]]:
    """The same with an aiohttp client in this process (when wrk is missing)."""
    end = time.perf_counter() + seconds
    latencies: dict[str, list[float]] = {name: [] for name in LOADS}

    async def client(session: aiohttp.ClientSession, name: str, url: str) -> None:
        while time.perf_counter() < end:
            start = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
                if response.status == 200:
                    latencies[name].append((time.perf_counter() - start) * 1000)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session, name, base + path)
                               for name, (path, conns) in LOADS.items() for _ in range(conns)))  # fmt: skip
    return {name: (len(v) / seconds, sorted(v)[int(0.99 * (len(v) - 1))] if v else float("nan"))
            for name, v in latencies.items()}  # fmt: skip


def measure(before: bool, seconds: int) -> dict[str, tuple[float, float]]:
    process, base = start(before)
    try:
        if shutil.which("wrk"):
            return with_wrk(base, seconds)
        return asyncio.run(with_aiohttp(base, seconds))
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    client = "wrk" if shutil.which("wrk") else "aiohttp client (wrk not installed)"
    results = {"before": measure(True, args.seconds), "after": measure(False, args.seconds)}
    print(f"| {args.seconds} s per app, {client} | thumbnails/s | docs/s | /io p99 |")
    print("|---|---|---|---|")
    for label, r in results.items():
        print(f"| {label} | {r['thumbnails'][0]:.1f} | {r['docs'][0]:.1f} | {r['io'][1]:.1f} ms |")


if __name__ == "__main__":
    main()
