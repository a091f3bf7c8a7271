"""The Scrapy side of the crawl benchmark: a spider computing hybridio's default record.

Run as ``python -m hybridio.bench._crawl_spider URL OUT.jsonl STATS.json``. Scrapy runs with its
default settings (16 concurrent requests, 8 per domain, robots.txt obeyed as in a new Scrapy
project), logging quiet. Records come from the very functions hybridio's workers run
(``hybridio.crawl._parse``), so both crawlers must write the same records.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.http import HtmlResponse, Response

from ..crawl._frontier import Scope, normalize_url
from ..crawl._parse import Page, default_extract, extract_links

__all__ = ["RecordSpider", "main"]


class RecordSpider(scrapy.Spider):
    """Follows in-scope links from the start URL and yields one default record per HTML page."""

    name = "hybridio-records"

    def __init__(self, start: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_urls = [start]
        self.scope = Scope.for_seeds([start])

    async def start(self) -> Any:  # Scrapy >= 2.13
        for request in self.start_requests():
            yield request

    def start_requests(self) -> Iterator[scrapy.Request]:
        # Start URLs skip the duplicate filter by default: the home page, linked from every
        # page, would then be crawled (and recorded) twice.
        yield scrapy.Request(self.start_urls[0], callback=self.parse, dont_filter=False)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        if not isinstance(response, HtmlResponse):
            return
        url = normalize_url(response.url) or response.url
        page = Page(url, response.status, int(response.meta.get("depth", 0)), response.body)
        page.links = extract_links(page.tree, url, self.scope)
        yield default_extract(page)
        for link in page.links:
            yield scrapy.Request(link, callback=self.parse)


def main(argv: list[str]) -> None:
    start, out, stats_path = argv
    process = CrawlerProcess(
        settings={
            "ROBOTSTXT_OBEY": True,
            "LOG_LEVEL": "WARNING",
            "TELNETCONSOLE_ENABLED": False,
            "FEEDS": {out: {"format": "jsonlines", "encoding": "utf8"}},
        }
    )
    crawler = process.create_crawler(RecordSpider)
    process.crawl(crawler, start=start)
    process.start()
    assert crawler.stats is not None
    stats = crawler.stats.get_stats()
    with open(stats_path, "w") as handle:
        json.dump(
            {key: value for key, value in stats.items() if isinstance(value, int | float)}, handle
        )


if __name__ == "__main__":
    main(sys.argv[1:])
