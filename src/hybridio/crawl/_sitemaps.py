"""Sitemaps (sitemaps.org protocol) as extra seeds: ``<urlset>`` and ``<sitemapindex>``, gzipped
or not, found through robots.txt ``Sitemap:`` lines or at ``/sitemap.xml``."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Awaitable, Callable
from xml.etree import ElementTree

from ._fetcher import FetchResult
from ._frontier import normalize_url

__all__ = ["parse_sitemap", "sitemap_urls"]

#: Sitemaps read for one crawl at most (an index may list many; each holds up to 50,000 URLs).
MAX_SITEMAPS = 50


def parse_sitemap(data: bytes) -> tuple[list[str], list[str]]:
    """``(page URLs, sitemap URLs)`` listed by a sitemap (``urlset``) or an index of sitemaps.

    Malformed XML gives nothing.
    """
    if data.startswith(b"\x1f\x8b"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            return [], []
    pages: list[str] = []
    sitemaps: list[str] = []
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError:
        return [], []
    for entry in root:
        kind = entry.tag.rpartition("}")[2]
        for child in entry:
            if child.tag.rpartition("}")[2] == "loc" and child.text and child.text.strip():
                (sitemaps if kind == "sitemap" else pages).append(child.text.strip())
    return pages, sitemaps


async def sitemap_urls(
    fetch: Callable[[str], Awaitable[FetchResult]], start: list[str]
) -> list[str]:
    """Page URLs (normalised) of the sitemaps at ``start`` and of the sitemaps they list."""
    pending, seen, found = list(start), set(start), []
    while pending and len(seen) - len(pending) < MAX_SITEMAPS:
        current = pending.pop(0)
        answer = await fetch(current)
        if answer.outcome != "ok" or answer.status >= 300 or answer.body is None:
            continue
        pages, nested = parse_sitemap(answer.body)
        found += [url for url in (normalize_url(u, current) for u in pages) if url is not None]
        for url in (normalize_url(u, current) for u in nested):
            if url is not None and url not in seen:
                seen.add(url)
                pending.append(url)
    return found
