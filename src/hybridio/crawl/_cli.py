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
from ._sink import CrawlFileError
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
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    help="JSONL file the records are appended to (one JSON object per page).",
)
@click.option(
    "--state",
    type=click.Path(path_type=Path),
    help="Resume log (default: <out>.state). Run the same command again to resume.",
)
@click.option(
    "--max-pages",
    type=click.IntRange(min=0),
    help="Stop once this many pages are recorded (exact; records already in --out count). "
    "Pages are taken breadth-first.  [default: no limit]",
)
@click.option(
    "--max-depth",
    type=click.IntRange(min=0),
    help="Record pages at most this many links from a seed (seeds: 0; a redirect adds "
    "nothing); depth is the shortest path, the same on every run.  [default: no limit]",
)
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Requests in flight at once, in total.",
)
@click.option(
    "--per-host",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Requests in flight at once to one host.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds allowed for one request (connect, headers and body).",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Extra attempts after a connection error, a timeout, a 5xx or a 429 answer "
    "(waiting for its Retry-After, else an exponential backoff with jitter).",
)
@click.option(
    "--max-retry-after",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds: a longer Retry-After is not waited for (the URL fails, retried on resume).",
)
@click.option(
    "--max-redirects",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Redirects followed for one URL; a longer chain is an error.",
)
@click.option(
    "--max-bytes",
    type=click.IntRange(min=1),
    default=5 * 1024 * 1024,
    show_default=True,
    help="Bytes: a larger page is skipped (never held in memory whole).",
)
@click.option(
    "--user-agent",
    default=DEFAULT_USER_AGENT,
    show_default=True,
    help="Sent with every request, and matched against robots.txt rules.",
)
@click.option(
    "--allow-domain",
    multiple=True,
    help="Also crawl this domain and its subdomains (any port); repeatable.",
)
@click.option(
    "--ignore-robots",
    is_flag=True,
    help="Do not read robots.txt (its rules and Crawl-delay). Be careful.",
)
@click.option(
    "--sitemaps",
    is_flag=True,
    help="Also start from the URLs of the seeds' sitemaps (robots.txt Sitemap: lines, else "
    "/sitemap.xml); they get depth 0.",
)
@click.option(
    "--extract",
    "extract_spec",
    help="module:function taking a Page, returning a dict: the record (run in the workers).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Parse processes.  [default: the number of CPUs]",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Pages sent to a parse process in one round trip (at most).",
)
@click.option(
    "--parse-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds one page may take in a parse process (parsing and --extract); a page that "
    "takes longer fails as parse_timeout and its process is killed and replaced.",
)
@click.option(
    "--max-crawl-delay",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds: a longer robots.txt Crawl-delay is capped to this.",
)
@click.option(
    "--max-links-per-page",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Links read from one page, at most (in document order); the rest are counted.",
)
@click.option(
    "--max-queued",
    type=click.IntRange(min=1),
    default=1_000_000,
    show_default=True,
    help="URLs waiting to be fetched, at most; new links found while the queue is full are "
    "refused and counted (bounds memory on a spider trap).",
)
@click.option(
    "--stats-json",
    type=click.Path(path_type=Path),
    help="Write the statistics (failed URLs included) to this JSON file.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress line, no summary.")
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
    max_retry_after: float,
    max_redirects: int,
    max_bytes: int,
    user_agent: str,
    allow_domain: tuple[str, ...],
    ignore_robots: bool,
    sitemaps: bool,
    extract_spec: str | None,
    workers: int | None,
    batch_size: int,
    parse_timeout: float,
    max_crawl_delay: float,
    max_links_per_page: int,
    max_queued: int,
    stats_json: Path | None,
    quiet: bool,
) -> None:
    """Crawl from URLS, parse pages on all cores, append one JSON record per page to --out.

    Run it again with the same --out to resume an interrupted crawl: URLs that failed for a
    reason that may go away (5xx, 429, timeouts, connection errors, robots.txt unreachable)
    are fetched again. The exit status is 1 when URLs failed and no page could be recorded.
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
            max_retry_after=max_retry_after,
            max_redirects=max_redirects,
            max_bytes=max_bytes,
            user_agent=user_agent,
            allowed_domains=allow_domain,
            obey_robots=not ignore_robots,
            sitemaps=sitemaps,
            extract=load_extractor(extract_spec) if extract_spec else None,
            batch_size=batch_size,
            cpu_workers=workers,
            parse_timeout=parse_timeout,
            max_crawl_delay=max_crawl_delay,
            max_links_per_page=max_links_per_page,
            max_queued=max_queued,
        )
        crawler = Crawler(config, progress=Progress(enabled=False if quiet else None))
    except (ValueError, TypeError) as exc:
        raise click.UsageError(str(exc)) from exc
    if stats_json is not None and (stats_json.is_dir() or not stats_json.parent.is_dir()):
        raise click.BadParameter(
            f"{stats_json} cannot be written: give a file in an existing directory",
            param_hint="--stats-json",
        )
    try:
        stats: CrawlStats = _run_asyncio(crawler.run)
    except (FileExistsError, CrawlFileError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        saved = crawler.stats.pages + crawler.stats.resumed_pages
        click.echo(
            f"\ninterrupted: {saved} pages are saved in {out}; run the same command again "
            "to resume where it stopped",
            err=True,
        )
        sys.exit(130)
    if stats_json is not None:
        try:
            stats_json.write_text(json.dumps(stats.to_dict(), indent=1))
        except OSError as exc:
            click.echo(f"error: cannot write --stats-json {stats_json}: {exc.strerror}", err=True)
    if not quiet:
        click.echo(stats.summary(), err=True)
    if stats.failed and stats.pages == 0:
        first, error = next(iter(stats.failed.items()))
        click.echo(f"error: nothing could be crawled: {first}: {error}", err=True)
        sys.exit(1)


@click.group()
def testsite() -> None:
    """Generate and serve a deterministic local test site (for tests and benchmarks)."""


@testsite.command("generate")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--pages",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="HTML pages in the site's tree.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Random seed: the same seed and options give the same bytes.",
)
@click.option(
    "--branching",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Children per page in the tree.",
)
@click.option(
    "--words",
    type=click.IntRange(min=1),
    default=1500,
    show_default=True,
    help="Words of text per page (about 6 bytes each).",
)
@click.option(
    "--offsite-links",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Links per page to other hosts (never followed).",
)
@click.option(
    "--robots-disallow",
    multiple=True,
    help="Path prefix robots.txt disallows (a page is put under it); repeatable.",
)
@click.option(
    "--crawl-delay", type=click.FloatRange(min=0), help="robots.txt Crawl-delay, seconds."
)
@click.option(
    "--huge-pages",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Pages of --huge-size bytes linked from the home page.",
)
@click.option(
    "--huge-size",
    type=click.IntRange(min=1),
    default=6 * 1024 * 1024,
    show_default=True,
    help="Bytes per huge page.",
)
@click.option(
    "--binary-files",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="application/octet-stream files linked from the home page.",
)
@click.option(
    "--malformed-pages",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Pages of broken HTML linked from the home page.",
)
@click.option(
    "--redirect-loops",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Pairs of URLs redirecting to each other.",
)
@click.option(
    "--redirects",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="URLs redirecting to a page.",
)
@click.option(
    "--quirks",
    is_flag=True,
    help="Add pages in latin-1, windows-1252 and UTF-16, and links with backslashes.",
)
def generate(directory: Path, words: int, **options: Any) -> None:
    """Write a site of --pages HTML pages (same seed, same bytes) into DIRECTORY."""
    options["robots_disallow"] = tuple(options["robots_disallow"])
    manifest = generate_site(directory, words_per_page=words, **options)
    click.echo(f"{directory}: {manifest.pages} pages, {len(manifest.reachable())} reachable")


@testsite.command("serve")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=8000,
    show_default=True,
    help="TCP port on 127.0.0.1 (0: any free port).",
)
@click.option(
    "--latency",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds added to every answer.",
)
@click.option(
    "--error-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Fraction of pages that always answer 503.",
)
@click.option(
    "--flaky-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Fraction of pages that answer 503 --flaky-failures times, then 200.",
)
@click.option(
    "--flaky-failures",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Failed answers of a flaky page before it works.",
)
@click.option(
    "--slow-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Fraction of pages delayed by --slow-seconds.",
)
@click.option(
    "--slow-seconds",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds a slow page is delayed.",
)
@click.option(
    "--throttle-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Fraction of pages that answer 429 with Retry-After once, then 200.",
)
@click.option(
    "--retry-after",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Seconds in the Retry-After of throttled pages.",
)
@click.option(
    "--robots-status",
    type=click.IntRange(100, 599),
    help="robots.txt answers this HTTP status instead of the file.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Chooses which pages get faults.",
)
@click.option(
    "--exit-after",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop serving after this many seconds.  [default: serve until Ctrl-C]",
)
def serve(directory: Path, port: int, exit_after: float | None, **options: Any) -> None:
    """Serve DIRECTORY (a generated site) on 127.0.0.1:PORT (0: any free port)."""
    try:
        server = TestSiteServer(directory, Faults(**options))
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None

    async def main() -> None:
        try:
            await server.start(port)
        except OSError as exc:
            raise click.ClickException(
                f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc} "
                "(pick another --port, or 0 for any free port)"
            ) from None
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
