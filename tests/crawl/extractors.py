"""Extraction functions for the tests: module-level, so worker processes can import them."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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


def _number(page: Page) -> int | None:
    """``i`` of a page ``/p/<i>.html``, None for other pages."""
    name = page.url.rsplit("/", 1)[-1]
    return int(name.removesuffix(".html")) if name.endswith(".html") else None


#: What ``hostile`` returns (or does) for pages 1 to 5: nothing JSON can hold, or an exit.
HOSTILE: dict[int, Any] = {
    1: {"tags": {"a", "b"}},  # a set
    2: {"body": b"bytes"},
    3: {"text": "lone \ud800 surrogate"},
    4: {"score": float("nan")},
}


def hostile(page: Page) -> dict[str, Any]:
    """Pages 1-4 give records JSON cannot hold, page 5 calls sys.exit; others the default."""
    number = _number(page)
    if number == 5:
        sys.exit(3)
    if number in HOSTILE:
        return {"url": page.url, **HOSTILE[number]}
    return default_extract(page)


def loop_on_page_3(page: Page) -> dict[str, Any]:
    """Loops forever on page 3 (after writing its pid to $HYBRIDIO_TEST_PIDFILE)."""
    if _number(page) == 3:
        Path(os.environ["HYBRIDIO_TEST_PIDFILE"]).write_text(str(os.getpid()))
        while True:
            pass
    return default_extract(page)


def without_url(page: Page) -> dict[str, Any]:
    """A record without a "url" key: the page's path is under another name."""
    return {"where": urlsplit(page.url).path, "words": default_extract(page)["words"]}
