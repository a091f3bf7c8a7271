"""Crawl statistics: counters updated on the event loop, summarised at the end."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CrawlStats"]


@dataclass
class CrawlStats:
    """What a crawl did.

    ``pages`` counts records written (this run); ``errors`` counts pages given up on, by kind
    (``http_5xx``, ``http_429``, ``http_4xx``, ``timeout``, ``connection``,
    ``robots_unreachable``, ``worker_crashed``, ``redirect_loop``, ``too_many_redirects``,
    ``bad_redirect`` (a redirect without ``Location``), ``parse`` (no links could be read),
    ``parse_timeout`` (the page took over ``parse_timeout`` in a worker), ``extract`` (the
    extraction raised, or returned what JSON cannot hold)); ``failed`` names each of those URLs
    with what went wrong; ``retry_on_resume`` counts the URLs among them that a later run with
    the same ``out`` fetches again (the transient kinds: ``http_5xx``, ``http_429``,
    ``timeout``, ``connection``, ``robots_unreachable``, ``worker_crashed``). ``skipped``
    counts pages deliberately not recorded, by kind (``not_html``, ``too_large``,
    ``offsite_redirect``, ``duplicate_redirect``); ``hosts`` counts requests per host:port,
    robots.txt included; ``bytes`` counts the body bytes read (a body skipped unread counts 0).
    ``links_refused`` counts new links turned away because the frontier held ``max_queued``
    URLs; ``links_dropped`` the ``<a href>`` elements not read on pages that had
    ``max_links_per_page`` links before them; ``crawl_delay_capped`` maps each origin whose robots.txt Crawl-delay was over
    ``max_crawl_delay`` to the delay it asked for.
    """

    pages: int = 0
    resumed_pages: int = 0
    requests: int = 0
    bytes: int = 0
    retries: int = 0
    robots_blocked: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    hosts: Counter[str] = field(default_factory=Counter)
    failed: dict[str, str] = field(default_factory=dict)
    retry_on_resume: int = 0
    links_refused: int = 0
    links_dropped: int = 0
    crawl_delay_capped: dict[str, float] = field(default_factory=dict)
    duration: float = 0.0

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.duration if self.duration > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view."""
        data = dict(self.__dict__)
        for name in ("errors", "skipped", "hosts"):
            data[name] = dict(sorted(data[name].items()))
        data["failed"] = [{"url": url, "error": error} for url, error in self.failed.items()]
        data["pages_per_second"] = round(self.pages_per_second, 2)
        return data

    def summary(self) -> str:
        """A few lines for people: pages, bytes, errors by kind, retries, robots, duration."""

        def kinds(counter: Counter[str]) -> str:
            total = sum(counter.values())
            detail = ", ".join(f"{k} {v}" for k, v in sorted(counter.items()))
            return f"{total}" + (f" ({detail})" if detail else "")

        resumed = f" (+{self.resumed_pages} from before the resume)" if self.resumed_pages else ""
        return "\n".join(
            [
                (
                    f"pages     {self.pages}{resumed} in {self.duration:.1f} s "
                    f"({self.pages_per_second:.1f} pages/s)"
                ),
                (
                    f"requests  {self.requests}, {self.bytes / 1e6:.1f} MB received, "
                    f"{self.retries} retries"
                ),
                f"errors    {kinds(self.errors)}",
                f"skipped   {kinds(self.skipped)}, robots-blocked {self.robots_blocked}",
                *self._limit_lines(),
                *self._failed_lines(),
            ]
        )

    def _limit_lines(self) -> list[str]:
        lines = []
        if self.links_dropped:
            lines.append(f"dropped   {self.links_dropped} links of pages over max_links_per_page")
        if self.links_refused:
            lines.append(
                f"refused   {self.links_refused} new links: the queue was full (max_queued)"
            )
        for site, delay in self.crawl_delay_capped.items():
            lines.append(f"capped    {site} asked for Crawl-delay {delay:g} s (max_crawl_delay)")
        return lines

    def _failed_lines(self, shown: int = 5) -> list[str]:
        if not self.failed:
            return []
        again = (
            f", {self.retry_on_resume} retried when the same command runs again"
            if self.retry_on_resume
            else ""
        )
        lines = [f"failed    {len(self.failed)} URLs{again}:"]
        lines += [f"  {url}: {error}" for url, error in list(self.failed.items())[:shown]]
        if len(self.failed) > shown:
            lines.append(f"  ... and {len(self.failed) - shown} more (all in --stats-json)")
        return lines
