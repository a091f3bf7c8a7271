"""Crawl settings: one frozen dataclass, validated once, with a clear error for each bad value."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._parse import Page

__all__ = ["DEFAULT_USER_AGENT", "CrawlConfig", "Extractor"]

DEFAULT_USER_AGENT = "hybridio-crawler/0.1 (+https://github.com/hybridio/hybridio)"

#: A record extraction: ``fn(page: Page) -> dict`` (JSON-serialisable), run in a worker process,
#: so it must be a module-level function (picklable by reference).
Extractor = Callable[["Page"], dict[str, Any]]


def _check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_number(name: str, value: object, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not (value >= 0 if allow_zero else value > 0):  # type: ignore[operator]
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a number {bound}, got {value!r}")


@dataclass(frozen=True)
class CrawlConfig:
    """What to crawl and how politely.

    Args:
        seeds: start URLs (http or https). Their hosts (host:port) form the default scope.
        allowed_domains: widen the scope: a link is in scope when its host is one of these domains
            or a subdomain of one (any port). Empty: the seeds' exact hosts only.
        max_pages: stop once this many pages have been recorded (exact: never more, and fewer
            only when the site has fewer). Pages are handed out breadth-first, so the records
            are the shallowest pages, and within the deepest level reached, whichever answered
            first. A resumed crawl counts the records already written. None: no limit.
        max_depth: record pages at most this many links from a seed: a seed has depth 0, a page
            linked from it depth 1, and so on; a redirect adds no depth. A page's depth is its
            breadth-first distance (the shortest path), the same on every run. Links of pages at
            ``max_depth`` are not followed. None: no limit.
        concurrency: requests in flight in total; ``per_host``: per host.
        timeout: seconds for one request (connect + headers + body).
        retries: extra attempts on a connection error, a timeout, a 5xx or a 429 answer. Before
            each: the answer's ``Retry-After`` when it has one (429, 503; every request to that
            host waits), else ``backoff * 2**attempt`` seconds times a random 0.5 to 1.5.
        max_retry_after: a ``Retry-After`` longer than this many seconds is not waited for: the
            URL fails (and is fetched again by a resumed crawl).
        max_redirects: redirects followed for one URL; a longer chain (or a loop) is an error.
        max_bytes: a larger body is skipped (and counted), never held in memory whole.
        user_agent: sent with every request and matched against robots.txt rules.
        obey_robots: fetch each host's robots.txt and skip what it disallows; its Crawl-delay is
            honoured per host.
        sitemaps: also start from the URLs listed by the sitemaps of the seeds' hosts (the
            ``Sitemap:`` lines of robots.txt, else ``/sitemap.xml``; indexes are followed, gzip
            is read). Those in scope are seeds too: depth 0.
        extract: a module-level function ``fn(page: Page) -> dict`` run in the worker processes;
            None: the default record (see ``default_extract``).
        batch_size: pages sent to a worker process in one round trip.
        parse_timeout: seconds one page may take in a worker (decoding, parsing, links and
            ``extract``). A batch that takes longer is parsed again page by page; a page that
            alone takes longer fails as ``parse_timeout`` (not retried on resume) and its worker
            process is killed and replaced. None: no limit.
        max_crawl_delay: a robots.txt ``Crawl-delay`` longer than this many seconds is capped
            to it (the host is listed in ``CrawlStats.crawl_delay_capped``).
        max_links_per_page: links read from one page, at most (in document order): the
            ``<a href>`` elements after the one that reached it are not read (counted in
            ``CrawlStats.links_dropped``). With ``max_bytes`` and the pipeline's size, this
            bounds the URLs in transit between the workers and the frontier.
        max_queued: URLs the frontier may hold waiting to be fetched. Links found while it is
            full are refused and counted (``CrawlStats.links_refused``): neither queued, nor
            logged, nor remembered (a later page may offer them again). This bounds the
            crawler's memory and its state log on a spider trap (pages of endless new links).
        cpu_workers: parse processes (None: the number of CPUs).
        out: JSONL output file; ``state``: resume log (default ``<out>.state``).
    """

    seeds: Sequence[str]
    out: Path | None = None
    state: Path | None = None
    allowed_domains: Sequence[str] = ()
    max_pages: int | None = None
    max_depth: int | None = None
    concurrency: int = 32
    per_host: int = 16
    timeout: float = 10.0
    retries: int = 2
    backoff: float = 0.2
    max_retry_after: float = 60.0
    max_redirects: int = 5
    max_bytes: int = 5 * 1024 * 1024
    user_agent: str = DEFAULT_USER_AGENT
    obey_robots: bool = True
    sitemaps: bool = False
    extract: Extractor | None = None
    batch_size: int = 16
    cpu_workers: int | None = None
    parse_timeout: float | None = 30.0
    max_crawl_delay: float = 30.0
    max_links_per_page: int = 10_000
    max_queued: int = 1_000_000
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.seeds, str):
            object.__setattr__(self, "seeds", (self.seeds,))
        if not self.seeds:
            raise ValueError("give at least one seed URL to start the crawl from")
        for name in ("concurrency", "per_host", "batch_size", "max_queued", "max_links_per_page"):
            _check_int(name, getattr(self, name), 1)
        for name in ("retries", "max_redirects"):
            _check_int(name, getattr(self, name), 0)
        _check_int("max_bytes", self.max_bytes, 1)
        if self.max_pages is not None:
            _check_int("max_pages", self.max_pages, 0)
        if self.max_depth is not None:
            _check_int("max_depth", self.max_depth, 0)
        if self.cpu_workers is not None:
            _check_int("cpu_workers", self.cpu_workers, 1)
        _check_number("timeout", self.timeout)
        _check_number("backoff", self.backoff, allow_zero=True)
        _check_number("max_retry_after", self.max_retry_after, allow_zero=True)
        _check_number("max_crawl_delay", self.max_crawl_delay, allow_zero=True)
        if self.parse_timeout is not None:
            _check_number("parse_timeout", self.parse_timeout)
        if self.extract is not None and not callable(self.extract):
            raise TypeError(f"extract must be a callable, got {self.extract!r}")
        if self.out is not None:
            object.__setattr__(self, "out", Path(self.out))
        if self.state is not None:
            object.__setattr__(self, "state", Path(self.state))

    @property
    def state_path(self) -> Path | None:
        """Where the resume log lives: ``state``, else ``<out>.state``, else nowhere."""
        if self.state is not None:
            return self.state
        return None if self.out is None else self.out.with_name(self.out.name + ".state")
