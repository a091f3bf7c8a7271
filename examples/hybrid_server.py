"""A hybrid aiohttp server in user code: I/O on the event loop, CPU work in processes.

Run it and load it::

    python examples/hybrid_server.py --port 8080
    curl 'http://127.0.0.1:8080/cpu?ms=20&mode=process'
    curl -H 'X-Request-Timeout: 0.5' 'http://127.0.0.1:8080/cpu?ms=2000'   # 504, worker killed
    curl http://127.0.0.1:8080/metrics

``--port 0`` picks a free port (printed on stdout); ``--duration S`` stops by itself after S
seconds, draining as on SIGTERM. Ctrl-C / SIGTERM drain requests in flight and exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import time

from aiohttp import web

import hybridio
import hybridio.web

MODES: dict[str, hybridio.Kind] = {
    "inline": "inline",
    "thread": "blocking",
    "process": "cpu",
    "auto": "auto",  # measured per function: inline, a thread or a process
}


# Work sent to processes must be module-level functions (they are pickled by name).
def crunch(loops: int) -> int:
    """Pure-Python CPU work: holds the GIL, so only a process runs it in parallel."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def digest(nbytes: int) -> str:
    """hashlib releases the GIL: threads run it in parallel too."""
    return hashlib.sha256(bytes(nbytes)).hexdigest()


def _query_number(request: web.Request, name: str, default: float, maximum: float) -> float:
    try:
        value = float(request.query.get(name, default))
    except ValueError:
        value = -1.0
    if not 0 <= value <= maximum:
        raise web.HTTPBadRequest(text=f"{name} must be a number between 0 and {maximum:g}")
    return value


def _query_mode(request: web.Request) -> hybridio.Kind:
    mode = request.query.get("mode", "process")
    if mode not in MODES:
        raise web.HTTPBadRequest(text=f"mode must be one of {', '.join(MODES)}")
    return MODES[mode]


async def io(request: web.Request) -> web.Response:
    await asyncio.sleep(_query_number(request, "ms", 1, 10_000) / 1000)
    return web.json_response({"ok": True})


async def cpu(request: web.Request) -> web.Response:
    ms = _query_number(request, "ms", 20, 10_000)
    loops = int(ms * request.app[LOOPS_PER_MS])
    # Admitted as the chosen kind (503 when full) and bounded by the request's deadline.
    result = await hybridio.web.offload(request, crunch, loops, kind=_query_mode(request))
    return web.json_response({"result": result})


async def hash_(request: web.Request) -> web.Response:
    nbytes = int(_query_number(request, "mb", 8, 64) * 2**20)
    result = await hybridio.web.offload(request, digest, nbytes, kind=_query_mode(request))
    return web.json_response({"sha256": result})


@hybridio.web.offload_route(kind="cpu", timeout=5.0)
async def report(request: web.Request) -> web.Response:
    # The route holds a "cpu" slot; plain hybridio calls inside use the server's runtime.
    sizes = [int(request.app[LOOPS_PER_MS])] * 4
    totals = [total async for total in hybridio.map_cpu(crunch, sizes)]
    return web.json_response({"totals": totals})


LOOPS_PER_MS = web.AppKey("loops_per_ms", float)


def make_app(workers: int | None = None) -> web.Application:
    """The example's app (tests import it)."""
    app = hybridio.web.create_app(cpu_workers=workers, timeout=10.0, worker_nice=5)
    start = time.perf_counter()
    crunch(100_000)
    app[LOOPS_PER_MS] = 100_000 / ((time.perf_counter() - start) * 1000)
    app.router.add_get("/io", io)
    app.router.add_get("/cpu", cpu)
    app.router.add_get("/hash", hash_)
    app.router.add_get("/report", report)
    return app


async def main(host: str, port: int, workers: int | None, duration: float | None) -> None:
    stop = asyncio.Event()
    if duration is not None:
        asyncio.get_running_loop().call_later(duration, stop.set)
    await hybridio.web.serve(make_app(workers), host=host, port=port, stop=stop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--duration", type=float, default=None, help="stop after this long")
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port, args.workers, args.duration))
