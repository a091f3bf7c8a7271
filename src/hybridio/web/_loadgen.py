"""A small HTTP load generator for ``hybridio bench server``, run in its own process.

``python -m hybridio.web._loadgen MODE URL [options]`` prints one JSON object on stdout:

* ``closed``: ``--connections`` clients each send the next request when the last one answered
  (a saturating load, like wrk);
* ``open``: requests start at ``--rate`` per second whatever the answers (an overload that does
  not slow down when the server does);
* ``probe``: one request at a time, ``--interval`` apart: the latency a light user sees.

Each run starts at ``--start-at`` (a ``time.time()``) so that a probe and a load run together,
and only loopback URLs are accepted: this is a benchmark tool, not a way to load other hosts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp

__all__ = ["main"]

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class _Recorder:
    def __init__(self, headers: dict[str, str]) -> None:
        self.started = time.perf_counter()
        self.headers = headers
        self.statuses: dict[str, int] = {}
        self.latencies: dict[str, list[float]] = {}
        self.timeline: list[tuple[float, float]] = []

    async def fetch(self, session: aiohttp.ClientSession, url: str) -> None:
        start = time.perf_counter()
        try:
            async with session.get(url, headers=self.headers) as response:
                await response.read()
                status = str(response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            status = type(exc).__name__
        elapsed_ms = (time.perf_counter() - start) * 1000
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latencies.setdefault(status, []).append(round(elapsed_ms, 3))
        self.timeline.append((round(start - self.started, 4), round(elapsed_ms, 3)))

    def result(self, seconds: float) -> dict[str, Any]:
        return {
            "seconds": seconds,
            "statuses": self.statuses,
            "latencies_ms": self.latencies,
            "timeline": self.timeline,
        }


async def _closed(session: aiohttp.ClientSession, url: str, rec: _Recorder, args: Any) -> None:
    deadline = time.perf_counter() + args.duration

    async def client() -> None:
        while time.perf_counter() < deadline:
            await rec.fetch(session, url)

    await asyncio.gather(*(client() for _ in range(args.connections)))


async def _open(session: aiohttp.ClientSession, url: str, rec: _Recorder, args: Any) -> None:
    start = time.perf_counter()
    tasks: set[asyncio.Task[None]] = set()
    for n in range(int(args.rate * args.duration)):
        await asyncio.sleep(max(0.0, start + n / args.rate - time.perf_counter()))
        task = asyncio.create_task(rec.fetch(session, url))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)


async def _probe(session: aiohttp.ClientSession, url: str, rec: _Recorder, args: Any) -> None:
    deadline = time.perf_counter() + args.duration
    while time.perf_counter() < deadline:
        await rec.fetch(session, url)
        await asyncio.sleep(args.interval)


async def _run(args: Any) -> dict[str, Any]:
    host = urlsplit(args.url).hostname
    if host not in _LOOPBACK:
        raise SystemExit(f"refusing to load {host!r}: only loopback URLs are allowed")
    await asyncio.sleep(max(0.0, args.start_at - time.time()))
    connector = aiohttp.TCPConnector(limit=args.connections if args.mode == "closed" else 512)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        rec = _Recorder(dict(header.split(": ", 1) for header in args.header))
        run = {"closed": _closed, "open": _open, "probe": _probe}[args.mode]
        await run(session, args.url, rec, args)
        return rec.result(time.perf_counter() - rec.started)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, run the load, print the JSON result."""
    parser = argparse.ArgumentParser(prog="python -m hybridio.web._loadgen")
    parser.add_argument("mode", choices=["closed", "open", "probe"])
    parser.add_argument("url")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(_run(args))), flush=True)


if __name__ == "__main__":
    main()
