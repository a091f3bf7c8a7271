"""Extraction functions for the tests: module-level, so worker processes can import them."""

from __future__ import annotations

import os
from typing import Any

from hybridio.crawl import Page, default_extract


def with_pid(page: Page) -> dict[str, Any]:
    """The default record plus the pid of the process that computed it."""
    return {**default_extract(page), "pid": os.getpid()}


def fail_on_odd_pages(page: Page) -> dict[str, Any]:
    """Raises for pages whose number is odd, to check that errors are counted per page."""
    name = page.url.rsplit("/", 1)[-1]
    if name.endswith(".html") and int(name.removesuffix(".html")) % 2:
        raise ValueError(f"odd page {page.url}")
    return {"url": page.url}


def paragraphs(page: Page) -> dict[str, Any]:
    """The text of each <p>, as the extraction function reads it from the tree."""
    return {"url": page.url, "paragraphs": [p.text() for p in page.tree.css("p")]}
