"""What users write instead of hybridio.crawl: the Scrapy spider ``hybridio bench crawl`` races.

``python -m hybridio.crawl._scrapy_rival OUT URL``: breadth-first, writing hybridio's records with
hybridio's own parsing functions (beside the crawler, as the rival servers are beside the web
kit); docs/crawl.md says why it is built this way."""

from __future__ import annotations

import json
import sys
from collections import deque
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.http import HtmlResponse, Response

from ..crawl._frontier import Scope, normalize_url
from ..crawl._parse import Page, default_extract, extract_links

__all__ = ["SETTINGS", "RecordSpider", "breadth_first_depths"]

#: Breadth-first as Scrapy's FAQ says, with the limits hybridio crawl has by default.
SETTINGS = {
    "ROBOTSTXT_OBEY": True,
    "LOG_LEVEL": "WARNING",
    "TELNETCONSOLE_ENABLED": False,
    "DEPTH_PRIORITY": 1,
    "SCHEDULER_DISK_QUEUE": "scrapy.squeues.PickleFifoDiskQueue",
    "SCHEDULER_MEMORY_QUEUE": "scrapy.squeues.FifoMemoryQueue",
    "DOWNLOAD_MAXSIZE": 5 * 1024 * 1024,
    "REDIRECT_MAX_TIMES": 5,
    "DOWNLOAD_TIMEOUT": 10,
}


def breadth_first_depths(
    seed: str, links: dict[str, list[str]], redirects: dict[str, str]
) -> dict[str, int]:
    """Depth of every URL reachable from ``seed``: links are one hop, redirects none (0-1 BFS)."""
    depth, queue = {seed: 0}, deque([seed])
    while queue:
        url = queue.popleft()
        steps = [(redirects[url], 0)] if url in redirects else []
        for target, hop in steps + [(link, 1) for link in links.get(url, [])]:
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
        self.seed, self.out = seed, out
        self.scope, self.seen = Scope.for_seeds([seed]), {seed}
        self.records: dict[str, dict[str, Any]] = {}
        self.links: dict[str, list[str]] = {}
        self.redirects: dict[str, str] = {}

    async def start(self) -> AsyncIterator[scrapy.Request]:
        yield self._request(self.seed)

    def _request(self, url: str) -> scrapy.Request:
        # The spider's own seen-set decides what is fetched: the dupe filter is not consulted.
        return scrapy.Request(url, callback=self.parse, dont_filter=True, meta={"url": url})

    def parse(self, response: Response, **kwargs: Any) -> Iterator[scrapy.Request]:
        if not isinstance(response, HtmlResponse):
            return
        url = asked = response.meta["url"]
        if response.meta.get("redirect_urls"):
            url = self.redirects[asked] = normalize_url(response.url) or response.url
            self.seen.add(url)
        if url in self.links:
            return  # reached twice (a link and a redirect): recorded once, as hybridio does
        header = response.headers.get("Content-Type")
        content_type = header.decode("latin-1") if header else None
        # Depth 0 for now: the breadth-first depth replaces it once the crawl is over.
        page = Page(url, response.status, 0, response.body, content_type=content_type)
        self.links[url] = page.links = extract_links(page.tree, url, self.scope)
        self.records[url] = default_extract(page)
        new = [link for link in page.links if link not in self.seen]  # links are distinct
        self.seen.update(new)
        yield from map(self._request, new)

    def closed(self, reason: str) -> None:
        depths = breadth_first_depths(self.seed, self.links, self.redirects)
        records = [{**record, "depth": depths[url]} for url, record in self.records.items()]
        text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        Path(self.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    process = CrawlerProcess(settings=SETTINGS)
    process.crawl(RecordSpider, out=sys.argv[1], start=sys.argv[2])
    process.start()
