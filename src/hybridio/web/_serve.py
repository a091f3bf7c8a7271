"""Running an app: listen, wait for SIGTERM/SIGINT, drain in-flight requests, stop the workers.

The first signal starts a graceful shutdown: the listening socket closes, requests in flight get
``grace`` seconds to finish, then the Runtime stops its worker processes and ``run_app`` returns
(exit status 0). A second signal means "now": the workers are killed and the process exits at once
with status 128 + signal number, as a shell reports a process killed by that signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable

from aiohttp import web
from aiohttp.log import access_logger

from ._app import RUNTIME, require_asyncio

__all__ = ["run_app", "serve"]

Ready = Callable[[str, int], None]


def _announce(host: str, port: int) -> None:
    # Tools (tests, the benchmark) read the bound port from this line: keep its shape.
    print(f"hybridio: serving on http://{host}:{port} (Ctrl-C to stop)", flush=True)


async def serve(
    app: web.Application,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    grace: float = 10.0,
    on_ready: Ready | None = _announce,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
    access_log: bool = True,
) -> None:
    """Serve ``app`` until ``stop`` is set or SIGTERM/SIGINT arrives, then shut down gracefully.

    ``port=0`` picks a free port; ``on_ready(host, port)`` is told the bound one (by default it
    prints it). Requests in flight at shutdown get ``grace`` seconds to finish. ``access_log``:
    one line per request on the ``aiohttp.access`` logger in aiohttp's format (to stderr when
    logging is not configured); False turns it off.

    Raises:
        AsyncioRequired: not running on an asyncio event loop (aiohttp needs asyncio).
        OSError: the address cannot be bound (in use, not permitted).
    """
    require_asyncio()
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    if access_log:
        _show_access_log()
    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=grace,
        access_log=access_logger if access_log else None,
    )
    await runner.setup()
    installed: list[signal.Signals] = []
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        if handle_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(signum, _on_signal, app, stop, signum)
                    installed.append(signum)
        if on_ready is not None:
            on_ready(host, bound)
        await stop.wait()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
            # A second signal during the drain still means "exit now".
            loop.add_signal_handler(signum, _exit_now, app, signum)
        try:
            await runner.cleanup()
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)


def _show_access_log() -> None:
    # aiohttp logs each request at INFO on "aiohttp.access", which nothing shows unless logging
    # is configured: show it on stderr then, as ``aiohttp.web.run_app`` does in debug mode.
    if not access_logger.hasHandlers():
        access_logger.addHandler(logging.StreamHandler())
    if access_logger.getEffectiveLevel() > logging.INFO:
        access_logger.setLevel(logging.INFO)


def _on_signal(app: web.Application, stop: asyncio.Event, signum: int) -> None:
    if stop.is_set():
        _exit_now(app, signum)
    print(
        f"hybridio: {signal.Signals(signum).name}: draining requests in flight "
        "(send it again to exit at once)",
        file=sys.stderr,
        flush=True,
    )
    stop.set()


def _exit_now(app: web.Application, signum: int) -> None:
    runtime = app.get(RUNTIME)
    for pid in runtime.worker_pids() if runtime is not None else ():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    os._exit(128 + signum)


def run_app(
    app: web.Application,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    grace: float = 10.0,
    on_ready: Ready | None = _announce,
    access_log: bool = True,
) -> None:
    """Run ``serve(app, ...)`` in a new event loop (uvloop when installed) until shut down.

    Example::

        hybridio.web.run_app(create_demo_app(), port=8080)
    """
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop
    except ImportError:
        pass
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(
            serve(app, host=host, port=port, grace=grace, on_ready=on_ready, access_log=access_log)
        )
