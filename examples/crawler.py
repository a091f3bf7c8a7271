"""Crawl the local test site with a custom extraction function that runs in worker processes.

Run it with ``python examples/crawler.py`` (it generates a small site, serves it on 127.0.0.1,
crawls it, prints a few records and stops), or point the same extraction at any site with::

    hybridio crawl https://example.org/ --out pages.jsonl --extract crawler:headings

(from this directory, so that ``crawler`` is importable).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from hybridio.crawl import CrawlConfig, Crawler, Page, TestSiteServer, generate_site


def headings(page: Page) -> dict[str, Any]:
    """A custom record: the page's headings and its longest paragraph, computed in a worker.

    Module-level, so the worker processes can import it; ``page.tree`` is selectolax's parse.
    """
    paragraphs = [p.text(deep=True) for p in page.tree.css("p")]
    return {
        "url": page.url,
        "depth": page.depth,
        "headings": [h.text(strip=True) for h in page.tree.css("h1, h2, h3")],
        "longest_paragraph_words": max((len(p.split()) for p in paragraphs), default=0),
        "links": len(page.links),
        "worker_pid": os.getpid(),
    }


async def main(pages: int = 30) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        generate_site(site, pages=pages, words_per_page=200)
        async with TestSiteServer(site) as server:
            out = Path(tmp) / "pages.jsonl"
            config = CrawlConfig([server.url], out=out, extract=headings, max_pages=pages)
            stats = await Crawler(config).run()
            records = [json.loads(line) for line in out.read_text().splitlines()]
    for record in records[:3]:
        print(json.dumps(record))
    print(stats.summary())
    print(
        f"crawler pid {os.getpid()}, records computed in pids",
        sorted({r["worker_pid"] for r in records}),
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
