"""The Scrapy side of the crawl benchmark: a breadth-first spider computing hybridio's records.

Run as ``python -m hybridio.bench._crawl_spider URL OUT.jsonl``: Scrapy's default concurrency,
robots.txt obeyed, breadth-first as Scrapy's FAQ says, its own seen-set, and each page's
breadth-first depth computed over the link graph once the crawl is over (docs/crawl.md says why).
Records come from the very functions hybridio's workers run (``hybridio.crawl._parse``).
"""

from __future__ import annotations

import json
import sys
from collections import deque
from collections.abc import Iterator
from typing import Any

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.http import HtmlResponse, Response

from ..crawl._frontier import Scope, normalize_url
from ..crawl._parse import Page, default_extract, extract_links

__all__ = ["RecordSpider", "breadth_first_depths", "main"]


def breadth_first_depths(
    seed: str, links: dict[str, list[str]], redirects: dict[str, str]
) -> dict[str, int]:
    """Depth of every URL reachable from ``seed``: links are one hop, redirects none (0-1 BFS)."""
    depth = {seed: 0}
    queue = deque([seed])
    while queue:
        url = queue.popleft()
        steps = [(redirects[url], 0)] if url in redirects else []
        steps += [(link, 1) for link in links.get(url, [])]
        for target, hop in steps:
            if target not in depth or depth[url] + hop < depth[target]:
                depth[target] = depth[url] + hop
                if hop:
                    queue.append(target)
                else:
                    queue.appendleft(target)
    return depth


class RecordSpider(scrapy.Spider):
    """Follows in-scope links from the start URL and records one default record per HTML page."""

    name = "hybridio-records"

    def __init__(self, start: str, out: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        seed = normalize_url(start)
        assert seed is not None, f"not an http(s) URL: {start!r}"
        self.seed = seed
        self.out = out
        self.scope = Scope.for_seeds([seed])
        self.seen = {seed}
        self.records: dict[str, dict[str, Any]] = {}
        self.links: dict[str, list[str]] = {}
        self.redirects: dict[str, str] = {}

    async def start(self) -> Any:  # Scrapy >= 2.13
        for request in self.start_requests():
            yield request

    def start_requests(self) -> Iterator[scrapy.Request]:
        yield self._request(self.seed)

    def _request(self, url: str) -> scrapy.Request:
        # The spider's own seen-set decides what is fetched: the dupe filter is not consulted.
        return scrapy.Request(url, callback=self.parse, dont_filter=True, meta={"url": url})

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        if not isinstance(response, HtmlResponse):
            return
        asked = response.meta["url"]
        url = asked
        if response.meta.get("redirect_urls"):
            url = normalize_url(response.url) or response.url
            self.redirects[asked] = url
            self.seen.add(url)
        if url in self.links:
            return  # reached twice (a link and a redirect): recorded once, as hybridio does
        content_type = response.headers.get("Content-Type")
        page = Page(
            url,
            response.status,
            0,  # replaced by the breadth-first depth when the crawl is over
            response.body,
            content_type=content_type.decode("latin-1") if content_type else None,
        )
        page.links = extract_links(page.tree, url, self.scope)
        self.records[url] = default_extract(page)
        self.links[url] = page.links
        for link in page.links:
            if link not in self.seen:
                self.seen.add(link)
                yield self._request(link)

    def closed(self, reason: str) -> None:
        depths = breadth_first_depths(self.seed, self.links, self.redirects)
        with open(self.out, "w", encoding="utf-8") as handle:
            for url, record in self.records.items():
                record["depth"] = depths[url]
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def main(argv: list[str]) -> None:
    start, out = argv
    process = CrawlerProcess(
        settings={
            "ROBOTSTXT_OBEY": True,
            "LOG_LEVEL": "WARNING",
            "TELNETCONSOLE_ENABLED": False,
            # Breadth-first, as Scrapy's FAQ says.
            "DEPTH_PRIORITY": 1,
            "SCHEDULER_DISK_QUEUE": "scrapy.squeues.PickleFifoDiskQueue",
            "SCHEDULER_MEMORY_QUEUE": "scrapy.squeues.FifoMemoryQueue",
            # The limits hybridio crawl has by default, so that both skip the same pages.
            "DOWNLOAD_MAXSIZE": 5 * 1024 * 1024,
            "REDIRECT_MAX_TIMES": 5,
            "DOWNLOAD_TIMEOUT": 10,
        }
    )
    process.crawl(RecordSpider, start=start, out=out)
    process.start()


if __name__ == "__main__":
    main(sys.argv[1:])
