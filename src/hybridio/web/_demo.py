"""The demo server: one endpoint per kind of work, each runnable inline, in a thread or a process.

Load ``/cpu?mode=inline`` and watch ``/io`` slow down; switch to ``mode=process`` and watch it
recover. ``hybridio serve`` runs this app and ``hybridio bench server`` measures it.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .._runtime._runtime import Kind
from ._app import create_app, offload
from ._work import calibrate, hash_buffer, sleep_ms, spin

__all__ = ["MAX_MB", "MAX_MS", "create_demo_app"]

#: Bounds of the ``ms`` and ``mb`` parameters: a demo must not be a way to hang the server.
MAX_MS = 10_000.0
MAX_MB = 64.0
_MODES: dict[str, Kind] = {
    "inline": "inline",
    "thread": "blocking",
    "process": "cpu",
    "auto": "auto",  # hybridio measures the function and picks (see /metrics, stats().auto)
}
_LOOPS_PER_MS = web.AppKey("hybridio.demo.loops_per_ms", list)


def _number(request: web.Request, name: str, default: float, maximum: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= maximum:
        raise web.HTTPBadRequest(
            text=f"{name} must be a number between 0 and {maximum:g}, got {raw!r}"
        )
    return value


def _mode(request: web.Request, allowed: tuple[str, ...], default: str) -> str:
    mode = request.query.get("mode", default)
    if mode not in allowed:
        raise web.HTTPBadRequest(text=f"mode must be one of {', '.join(allowed)}, got {mode!r}")
    return mode


def _reply(endpoint: str, mode: str, result: Any, **fields: Any) -> web.Response:
    return web.json_response({"endpoint": endpoint, "mode": mode, "result": result, **fields})


async def io(request: web.Request) -> web.Response:
    """``/io?ms=``: wait ``ms`` milliseconds of simulated I/O on the event loop."""
    ms = _number(request, "ms", 1.0, MAX_MS)
    await asyncio.sleep(ms / 1000.0)
    return _reply("io", "loop", ms, ms=ms)


async def blocking(request: web.Request) -> web.Response:
    """``/blocking?ms=&mode=inline|thread``: a blocking sleep, on the loop or in a thread."""
    ms = _number(request, "ms", 10.0, MAX_MS)
    mode = _mode(request, ("inline", "thread"), "thread")
    result = await offload(request, sleep_ms, ms, kind=_MODES[mode])
    return _reply("blocking", mode, result, ms=ms)


async def cpu(request: web.Request) -> web.Response:
    """``/cpu?ms=&mode=inline|thread|process|auto``: about ``ms`` ms of pure-Python CPU work."""
    ms = _number(request, "ms", 20.0, MAX_MS)
    mode = _mode(request, tuple(_MODES), "process")
    loops = int(request.app[_LOOPS_PER_MS][0] * ms)
    result = await offload(request, spin, loops, kind=_MODES[mode])
    return _reply("cpu", mode, result, ms=ms, loops=loops)


async def hash_(request: web.Request) -> web.Response:
    """``/hash?mb=&mode=inline|thread|process|auto``: SHA-256 of ``mb`` MiB (releases the GIL)."""
    mb = _number(request, "mb", 16.0, MAX_MB)
    mode = _mode(request, tuple(_MODES), "thread")
    digest = await offload(request, hash_buffer, int(mb * 1024 * 1024), kind=_MODES[mode])
    return _reply("hash", mode, digest, mb=mb)


async def _calibrate(app: web.Application) -> None:
    app[_LOOPS_PER_MS].append(calibrate())


def create_demo_app(*, loops_per_ms: float | None = None, **options: Any) -> web.Application:
    """The demo app: ``/io``, ``/blocking``, ``/cpu``, ``/hash``, ``/metrics``, ``/healthz``.

    ``options`` go to ``create_app`` (``cpu_workers``, ``limits``, ``timeout``...). The CPU
    endpoint's loop count per millisecond is ``loops_per_ms``, else measured once when the app
    starts (a benchmark pins it, so that every server it compares does the same work).
    """
    options.setdefault("cpu_workers", os.cpu_count() or 2)
    app = create_app(**options)
    if loops_per_ms is None:
        app[_LOOPS_PER_MS] = []
        app.on_startup.append(_calibrate)
    else:
        app[_LOOPS_PER_MS] = [loops_per_ms]
    handlers: dict[str, Callable[[web.Request], Any]] = {
        "/io": io,
        "/blocking": blocking,
        "/cpu": cpu,
        "/hash": hash_,
    }
    for path, handler in handlers.items():
        app.router.add_get(path, handler)
    return app
