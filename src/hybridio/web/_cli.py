"""``hybridio serve``: run the demo server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from .._cluster_cli import cluster_option
from ._demo import create_demo_app
from ._serve import DEFAULT_HEADER_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT, LOOPS, run_app

__all__ = ["serve"]

F = TypeVar("F", bound=Callable[..., Any])


def _seconds(name: str, default: float, what: str) -> Callable[[F], F]:
    """A ``--NAME SECONDS`` option: a positive number of seconds."""
    return click.option(
        name,
        default=default,
        show_default=True,
        type=click.FloatRange(0, min_open=True),
        help=f"Seconds {what}.",
    )


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="0: any free."
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes for mode=process [default: CPUs].",
)
@click.option("--threads", type=click.IntRange(1, 1024), default=None, help="Worker threads.")
@click.option(
    "--grace", default=10.0, show_default=True, type=click.FloatRange(0), help="Drain seconds."
)
@click.option(
    "--worker-nice",
    default=0,
    show_default=True,
    type=click.IntRange(0, 19),
    help="Lower the worker processes' priority so the event loop keeps the CPU it needs.",
)
@cluster_option("Run CPU work on this cluster's workers")
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="One line per request on stderr, in aiohttp's format.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1),
    default=None,
    help="Open connections at most; at the cap a new one closes the oldest that has sent no "
    "request yet, else it is answered 503  [default: half the open-file limit, 64-10000].",
)
@_seconds("--header-timeout", DEFAULT_HEADER_TIMEOUT, "a new connection has to send a request head")
@_seconds(
    "--keepalive-timeout", DEFAULT_KEEPALIVE_TIMEOUT, "an idle connection waits for a request"
)
@click.option(
    "--loop",
    type=click.Choice(LOOPS),
    default="auto",
    show_default=True,
    help="Event loop: auto is uvloop when installed.",
)
@click.option("--loops-per-ms", type=click.FloatRange(1), default=None, hidden=True)
def serve(
    host: str,
    port: int,
    workers: int | None,
    threads: int | None,
    grace: float,
    worker_nice: int,
    access_log: bool,
    max_connections: int | None,
    header_timeout: float,
    keepalive_timeout: float,
    loop: str,
    loops_per_ms: float | None,
) -> None:
    """Run the demo server: /io, /blocking, /cpu, /hash, /metrics, /healthz.

    Try: curl 'http://127.0.0.1:8080/cpu?ms=20&mode=process'. SIGTERM or Ctrl-C drains requests
    in flight and exits 0; a second one exits at once. A request whose client disconnects is
    cancelled (its worker process killed, its admission slot freed).
    """
    app = create_demo_app(
        cpu_workers=workers, threads=threads, worker_nice=worker_nice, loops_per_ms=loops_per_ms
    )
    try:
        run_app(
            app,
            host=host,
            port=port,
            grace=grace,
            access_log=access_log,
            loop=loop,
            max_connections=max_connections,
            header_timeout=header_timeout,
            keepalive_timeout=keepalive_timeout,
        )
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc}") from exc
