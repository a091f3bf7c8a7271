"""What users write instead of hybridio.web: the servers ``hybridio bench server`` races.

``python -m hybridio.web._rivals KIND --port 0 --loops-per-ms N`` serves ``/io?ms=`` and
``/cpu?ms=`` (the same spin loop as the demo, with the loop count per millisecond pinned by the
caller so every server does the same work) and prints the demo's "serving on" line:

* ``pool``: a plain aiohttp app with a ``ProcessPoolExecutor`` of one worker per core and no
  admission control, the 30 lines most people write;
* ``threads``: the same app with a ``ThreadPoolExecutor`` (the GIL serialises the work);
* ``multiproc``: one aiohttp process per core on one port (``reuse_port``), CPU work inline in
  each: the pre-fork server (gunicorn-style) with no offloading at all.

Access logs are off in all of them, as in the hybridio server the benchmark starts.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from aiohttp import web

from ._work import spin

__all__ = ["main"]

_LOOPS_PER_MS = web.AppKey("loops_per_ms", float)
_EXECUTOR = web.AppKey("executor", Executor)


async def _io(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("ms", "1")) / 1000)
    return web.json_response({"endpoint": "io"})


async def _cpu_offloaded(request: web.Request) -> web.Response:
    loops = int(float(request.query.get("ms", "20")) * request.app[_LOOPS_PER_MS])
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(request.app[_EXECUTOR], spin, loops)
    return web.json_response({"endpoint": "cpu", "result": result})


async def _cpu_inline(request: web.Request) -> web.Response:
    loops = int(float(request.query.get("ms", "20")) * request.app[_LOOPS_PER_MS])
    return web.json_response({"endpoint": "cpu", "result": spin(loops)})


def _app(loops_per_ms: float, executor: Executor | None) -> web.Application:
    app = web.Application()
    app[_LOOPS_PER_MS] = loops_per_ms
    app.router.add_get("/io", _io)
    if executor is None:
        app.router.add_get("/cpu", _cpu_inline)
    else:
        app[_EXECUTOR] = executor
        app.router.add_get("/cpu", _cpu_offloaded)
    return app


def _announce(port: int) -> None:
    print(f"hybridio: serving on http://127.0.0.1:{port} (Ctrl-C to stop)", flush=True)


async def _serve(app: web.Application, port: int, on_ready: Callable[[int], None] | None) -> None:
    runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_port=True)
    await site.start()
    if on_ready is not None:
        on_ready(runner.addresses[0][1])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def _serve_inline(port: int, loops_per_ms: float) -> None:
    asyncio.run(_serve(_app(loops_per_ms, None), port, None))


def _multiproc(port: int, workers: int, loops_per_ms: float) -> None:
    # Reserve a port for every process to bind with SO_REUSEPORT (the kernel spreads connections).
    reserve = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    reserve.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reserve.bind(("127.0.0.1", port))
    port = reserve.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_serve_inline, args=(port, loops_per_ms)) for _ in range(workers)
    ]
    for process in processes:
        process.start()
    # The first process to accept is listening once it answers; poll the port.
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    _announce(port)
    stopped = asyncio.Event()

    async def wait() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopped.set)
        await stopped.wait()

    asyncio.run(wait())
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(10)
    reserve.close()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m hybridio.web._rivals")
    parser.add_argument("kind", choices=["pool", "threads", "multiproc"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--loops-per-ms", type=float, required=True)
    args = parser.parse_args(argv)
    if args.kind == "multiproc":
        _multiproc(args.port, args.workers, args.loops_per_ms)
        return
    executor: Any
    if args.kind == "pool":
        executor = ProcessPoolExecutor(max_workers=args.workers)
        # Start the workers before the first request, as hybridio does.
        list(executor.map(spin, [1] * args.workers))
    else:
        executor = ThreadPoolExecutor()
    with executor:
        asyncio.run(_serve(_app(args.loops_per_ms, executor), args.port, _announce))


if __name__ == "__main__":
    main()
