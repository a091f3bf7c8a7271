"""``hybridio serve``: run the demo server."""

from __future__ import annotations

import click

from .._cluster_cli import cluster_option
from ._demo import create_demo_app
from ._serve import run_app

__all__ = ["serve"]


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
@click.option("--loops-per-ms", type=click.FloatRange(1), default=None, hidden=True)
def serve(
    host: str,
    port: int,
    workers: int | None,
    threads: int | None,
    grace: float,
    worker_nice: int,
    access_log: bool,
    loops_per_ms: float | None,
) -> None:
    """Run the demo server: /io, /blocking, /cpu, /hash, /metrics, /healthz.

    Try: curl 'http://127.0.0.1:8080/cpu?ms=20&mode=process'. SIGTERM or Ctrl-C drains requests
    in flight and exits 0; a second one exits at once.
    """
    app = create_demo_app(
        cpu_workers=workers, threads=threads, worker_nice=worker_nice, loops_per_ms=loops_per_ms
    )
    try:
        run_app(app, host=host, port=port, grace=grace, access_log=access_log)
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc}") from exc
