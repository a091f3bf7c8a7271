"""Running an app: listen, wait for SIGTERM/SIGINT, drain in-flight requests, stop the workers.

The first signal starts a graceful shutdown: the listening socket closes, requests in flight get
``grace`` seconds to finish, then the Runtime stops its worker processes and ``run_app`` returns
(exit status 0). A second signal means "now": the workers are killed and the process exits at once
with status 128 + signal number, as a shell reports a process killed by that signal. Shutdown never
depends on writing a log line: with stderr gone (a broken pipe to a restarted log collector) the
signal still stops the server.

Connections are bounded (``_guard``): a cap on open connections, a deadline for the request head,
an idle timeout between requests; a request whose client disconnects has its handler cancelled,
which kills its process call and frees its admission slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.handlers
import os
import queue
import select
import signal
import sys
import threading
from collections.abc import Callable
from typing import TextIO, TypedDict, Unpack

from aiohttp import web
from aiohttp.log import access_logger

from ._app import HYBRID, RUNTIME, require_asyncio
from ._guard import ConnectionGuard, GuardedSite, default_max_connections
from ._hybrid import positive

__all__ = [
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_KEEPALIVE_TIMEOUT",
    "LOOPS",
    "ConnectionLimits",
    "run_app",
    "serve",
]

#: Seconds a new connection has to deliver a complete request head (``header_timeout``).
DEFAULT_HEADER_TIMEOUT = 10.0
#: Seconds an idle keep-alive connection waits for its next request head (``keepalive_timeout``).
DEFAULT_KEEPALIVE_TIMEOUT = 15.0


class ConnectionLimits(TypedDict, total=False):
    """``serve``'s bounds on connections, which ``run_app`` passes on (see ``serve``)."""

    max_connections: int | None
    header_timeout: float
    keepalive_timeout: float
    cancel_on_disconnect: bool


#: ``run_app(loop=...)``: "auto" is uvloop when installed, else asyncio's own loop.
LOOPS = ("auto", "asyncio", "uvloop")

Ready = Callable[[str, int], None]


def _say(message: str, stream: TextIO | None) -> None:
    """Write a status line if it can be written now; a stream that cannot take it is ignored.

    A log collector that is gone (a broken pipe) or stalled (a full pipe) must not stop the
    server: the line is written only when the stream can take it without blocking the loop.
    """
    if stream is None or not _can_write(stream):
        return
    try:
        stream.write(message + "\n")
        stream.flush()
    except BrokenPipeError:
        # Nobody reads the stream any more: point its descriptor at /dev/null (what Python's
        # documentation on SIGPIPE advises), so that later lines, log records and the
        # interpreter's flush at exit (status 120 when it fails) all succeed, unread.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, stream.fileno())
            finally:
                os.close(devnull)
    except (OSError, ValueError):
        pass  # a closed stream, a full disk: the line is lost, the server goes on


def _can_write(stream: TextIO) -> bool:
    """False when writing a line to ``stream`` would block: a full pipe nobody reads."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return True  # not a file descriptor (a StringIO in tests): writing cannot block
    try:
        _, writable, _ = select.select([], [fd], [], 0)
    except (OSError, ValueError):
        return True  # let the write itself fail, where it is handled
    # A pipe is writable when at least PIPE_BUF (4096+) bytes are free: a line fits.
    return bool(writable)


def _announce(host: str, port: int) -> None:
    # Tools (tests, the benchmark) read the bound port from this line: keep its shape.
    _say(f"hybridio: serving on http://{host}:{port} (Ctrl-C to stop)", sys.stdout)


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
    max_connections: int | None = None,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT,
    cancel_on_disconnect: bool = True,
) -> None:
    """Serve ``app`` until ``stop`` is set or SIGTERM/SIGINT arrives, then shut down gracefully.

    ``port=0`` picks a free port; ``on_ready(host, port)`` is told the bound one (by default it
    prints it). Requests in flight at shutdown get ``grace`` seconds to finish. ``access_log``:
    one line per request on the ``aiohttp.access`` logger in aiohttp's format (to stderr when
    logging is not configured); False turns it off.

    Connections are bounded (docs/web.md, "Connections"):

    Args:
        max_connections: open connections at most (default: half the open-file limit, between
            64 and 10,000; 512 under a limit of 1024). At the cap, a new connection closes the
            oldest one that has not sent a complete request head yet, or is answered 503 and
            closed when every connection is serving or idling between requests.
        header_timeout: seconds a new connection has to send a complete request head (default
            10), else it is closed: a slowloris client holds a connection no longer than that.
        keepalive_timeout: seconds an idle keep-alive connection is kept waiting for its next
            request head (default 15; aiohttp's own default is an hour).
        cancel_on_disconnect: cancel a request's handler when its client disconnects (default
            True; aiohttp's ``handler_cancellation``): its process call is killed, its thread
            call abandoned, and its admission slot freed at once instead of when the work ends.

    Raises:
        AsyncioRequired: not running on an asyncio event loop (aiohttp needs asyncio).
        OSError: the address cannot be bound (in use, not permitted).
        ValueError: a bad ``max_connections``, ``header_timeout`` or ``keepalive_timeout``
            (``TypeError`` when ``max_connections`` is not an int).
    """
    require_asyncio()
    guard = ConnectionGuard(
        default_max_connections() if max_connections is None else max_connections,
        positive("header_timeout", header_timeout),
    )
    keepalive_timeout = positive("keepalive_timeout", keepalive_timeout)
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    if access_log:
        _show_access_log()
    hybrid = app.get(HYBRID)
    if hybrid is not None:
        hybrid.connections = guard  # its counters go on /metrics
    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=grace,
        access_log=access_logger if access_log else None,
        keepalive_timeout=keepalive_timeout,
        handler_cancellation=cancel_on_disconnect,
    )
    await runner.setup()
    installed: list[signal.Signals] = []
    try:
        site = GuardedSite(runner, host, port, guard)
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
            await _drain_access_log()
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)


#: Access-log lines waiting for their writer thread at most; past that, new lines are dropped.
ACCESS_LOG_BACKLOG = 10_000


class _OffLoopHandler(logging.handlers.QueueHandler):
    """Hands each record to a daemon thread that writes it to stderr's file descriptor: a stalled
    stderr (a log collector that stopped reading) blocks that thread, never the event loop, and
    holds no lock that the interpreter needs at exit. Records that find ``ACCESS_LOG_BACKLOG``
    others waiting, or a stderr that is closed or broken, are dropped."""

    def __init__(self) -> None:
        self.backlog: queue.Queue[logging.LogRecord] = queue.Queue(ACCESS_LOG_BACKLOG)
        super().__init__(self.backlog)
        threading.Thread(target=self._write, name="hybridio-access-log", daemon=True).start()

    def enqueue(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(queue.Full):
            self.backlog.put_nowait(record)

    def _write(self) -> None:
        while True:
            line = f"{self.backlog.get().getMessage()}\n".encode(errors="replace")
            with contextlib.suppress(OSError, ValueError):  # no stderr to write to: line lost
                fd = sys.stderr.fileno()
                while line:
                    line = line[os.write(fd, line) :]

    async def drain(self, limit: float) -> None:
        """Wait up to ``limit`` seconds for the waiting records to be handed to the writer."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while not self.backlog.empty() and loop.time() < deadline:  # noqa: ASYNC110 - a thread's
            await asyncio.sleep(0.01)  # queue: there is no event the loop could await


def _show_access_log() -> None:
    # aiohttp logs each request at INFO on "aiohttp.access", which nothing shows unless logging
    # is configured: show it on stderr then, as ``aiohttp.web.run_app`` does in debug mode, but
    # written by a thread, since aiohttp logs from the event loop.
    if not access_logger.hasHandlers():
        access_logger.addHandler(_OffLoopHandler())
    if access_logger.getEffectiveLevel() > logging.INFO:
        access_logger.setLevel(logging.INFO)


async def _drain_access_log() -> None:
    """Give the access log's writer a second to catch up before the program may exit."""
    for handler in access_logger.handlers:
        if isinstance(handler, _OffLoopHandler):
            await handler.drain(1.0)


def _on_signal(app: web.Application, stop: asyncio.Event, signum: int) -> None:
    if stop.is_set():
        _exit_now(app, signum)
    # Stop first, say so after: shutdown must not depend on a log line being written.
    stop.set()
    _say(
        f"hybridio: {signal.Signals(signum).name}: draining requests in flight "
        "(send it again to exit at once)",
        sys.stderr,
    )


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
    loop: str = "auto",
    **limits: Unpack[ConnectionLimits],
) -> None:
    """Run ``serve(app, ...)`` in a new event loop until shut down.

    ``loop``: ``"auto"`` (uvloop when installed, else asyncio's), ``"asyncio"`` or ``"uvloop"``.
    ``limits``: ``serve``'s ``max_connections``, ``header_timeout``, ``keepalive_timeout`` and
    ``cancel_on_disconnect``.

    Example::

        hybridio.web.run_app(create_demo_app(), port=8080)
    """
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {', '.join(LOOPS)}, got {loop!r}")
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                raise
        else:
            loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(
            serve(
                app,
                host=host,
                port=port,
                grace=grace,
                on_ready=on_ready,
                access_log=access_log,
                **limits,
            )
        )
