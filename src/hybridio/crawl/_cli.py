"""The ``hybridio crawl`` and ``hybridio testsite`` commands."""

from __future__ import annotations

import importlib
import json
import os
import sys
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import click

from .._cluster_cli import cluster_option
from ._config import DEFAULT_USER_AGENT, CrawlConfig, Extractor
from ._crawler import Crawler
from ._progress import Progress
from ._stats import CrawlStats
from ._testserver import Faults, TestSiteServer
from ._testsite import generate_site

__all__ = ["crawl", "load_extractor", "testsite"]


def load_extractor(spec: str) -> Extractor:
    """Import ``module:function``; the current directory is importable, as for ``python -m``.

    Raises:
        click.BadParameter: the spec is malformed, the module or the attribute is missing.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise click.BadParameter(f"expected module:function, got {spec!r}", param_hint="--extract")
    if os.getcwd() not in sys.path:
        # Worker processes get this sys.path too, so they can import the same module.
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.BadParameter(
            f"cannot import {module_name!r}: {exc}", param_hint="--extract"
        ) from exc
    function = getattr(module, attribute, None)
    if not callable(function):
        raise click.BadParameter(
            f"{module_name} has no function {attribute!r}", param_hint="--extract"
        )
    return function  # type: ignore[no-any-return]


def _run_asyncio(fn: Any) -> Any:
    """Run on asyncio, with uvloop when it is installed (aiohttp is asyncio-only)."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return anyio.run(fn, backend="asyncio")
    return anyio.run(fn, backend="asyncio", backend_options={"use_uvloop": True})


@click.command()
@click.argument("urls", nargs=-1, required=True)
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True, help="JSONL output.")
@click.option("--state", type=click.Path(path_type=Path), help="Resume log [<out>.state].")
@click.option("--max-pages", type=click.IntRange(min=0), help="Stop after this many records.")
@click.option("--max-depth", type=click.IntRange(min=0), help="Links followed from a seed.")
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--per-host", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0)
@click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True)
@click.option("--max-redirects", type=click.IntRange(min=0), default=5, show_default=True)
@click.option("--max-bytes", type=click.IntRange(min=1), default=5 * 1024 * 1024)
@click.option("--user-agent", default=DEFAULT_USER_AGENT, show_default=True)
@click.option("--allow-domain", multiple=True, help="Also crawl this domain and subdomains.")
@click.option("--ignore-robots", is_flag=True, help="Do not read robots.txt (be careful).")
@click.option("--extract", "extract_spec", help="module:function(page) -> dict, run in workers.")
@click.option("--workers", type=click.IntRange(min=1), help="Parse processes [CPUs].")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--stats-json", type=click.Path(path_type=Path), help="Write the stats as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress, no summary.")
@cluster_option("Parse on this cluster's workers")
def crawl(
    urls: tuple[str, ...],
    out: Path,
    state: Path | None,
    max_pages: int | None,
    max_depth: int | None,
    concurrency: int,
    per_host: int,
    timeout: float,
    retries: int,
    max_redirects: int,
    max_bytes: int,
    user_agent: str,
    allow_domain: tuple[str, ...],
    ignore_robots: bool,
    extract_spec: str | None,
    workers: int | None,
    batch_size: int,
    stats_json: Path | None,
    quiet: bool,
) -> None:
    """Crawl from URLS, parse pages on all cores, append one JSON record per page to --out.

    Run it again with the same --out to resume an interrupted crawl.
    """
    try:
        config = CrawlConfig(
            seeds=urls,
            out=out,
            state=state,
            max_pages=max_pages,
            max_depth=max_depth,
            concurrency=concurrency,
            per_host=per_host,
            timeout=timeout,
            retries=retries,
            max_redirects=max_redirects,
            max_bytes=max_bytes,
            user_agent=user_agent,
            allowed_domains=allow_domain,
            obey_robots=not ignore_robots,
            extract=load_extractor(extract_spec) if extract_spec else None,
            batch_size=batch_size,
            cpu_workers=workers,
        )
        crawler = Crawler(config, progress=Progress(enabled=False if quiet else None))
    except (ValueError, TypeError) as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        stats: CrawlStats = _run_asyncio(crawler.run)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from exc
    if stats_json is not None:
        stats_json.write_text(json.dumps(stats.to_dict(), indent=1))
    if not quiet:
        click.echo(stats.summary(), err=True)


@click.group()
def testsite() -> None:
    """Generate and serve a deterministic local test site (for tests and benchmarks)."""


@testsite.command("generate")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--pages", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--branching", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--words", type=click.IntRange(min=1), default=1500, show_default=True)
@click.option("--offsite-links", type=click.IntRange(min=0), default=2, show_default=True)
@click.option("--robots-disallow", multiple=True, help="Path prefix robots.txt disallows.")
@click.option("--crawl-delay", type=click.FloatRange(min=0), help="robots.txt Crawl-delay.")
@click.option("--huge-pages", type=click.IntRange(min=0), default=0)
@click.option("--huge-size", type=click.IntRange(min=1), default=6 * 1024 * 1024)
@click.option("--binary-files", type=click.IntRange(min=0), default=0)
@click.option("--malformed-pages", type=click.IntRange(min=0), default=0)
@click.option("--redirect-loops", type=click.IntRange(min=0), default=0)
@click.option("--redirects", type=click.IntRange(min=0), default=0)
def generate(directory: Path, words: int, **options: Any) -> None:
    """Write a site of --pages HTML pages (same seed, same bytes) into DIRECTORY."""
    options["robots_disallow"] = tuple(options["robots_disallow"])
    manifest = generate_site(directory, words_per_page=words, **options)
    click.echo(f"{directory}: {manifest.pages} pages, {len(manifest.reachable())} reachable")


@testsite.command("serve")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8000, show_default=True)
@click.option("--latency", type=click.FloatRange(min=0), default=0.0, help="Seconds per answer.")
@click.option("--error-rate", type=click.FloatRange(0, 1), default=0.0, help="Pages always 503.")
@click.option("--flaky-rate", type=click.FloatRange(0, 1), default=0.0, help="Pages 503 at first.")
@click.option("--flaky-failures", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--slow-rate", type=click.FloatRange(0, 1), default=0.0, help="Pages delayed.")
@click.option("--slow-seconds", type=click.FloatRange(min=0), default=30.0, show_default=True)
@click.option("--seed", type=int, default=0, help="Chooses which pages get faults.")
@click.option("--exit-after", type=click.FloatRange(min=0, min_open=True), help="Stop after S s.")
def serve(directory: Path, port: int, exit_after: float | None, **options: Any) -> None:
    """Serve DIRECTORY (a generated site) on 127.0.0.1:PORT (0: any free port)."""
    server = TestSiteServer(directory, Faults(**options))

    async def main() -> None:
        await server.start(port)
        click.echo(f"serving {directory} on {server.url}")
        sys.stdout.flush()
        try:
            with anyio.move_on_after(exit_after):
                await anyio.sleep_forever()
        finally:
            await server.close()

    try:
        _run_asyncio(partial(main))
    except KeyboardInterrupt:
        pass
