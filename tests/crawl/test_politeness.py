"""Retry-After, backoff with jitter, and sitemaps: the pieces, without a server."""

from __future__ import annotations

import gzip

import pytest

from hybridio.crawl._fetcher import parse_retry_after, retry_delay
from hybridio.crawl._sitemaps import parse_sitemap


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 30.0),  # 30 s after "now" below
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: no wait
        ("soon", None),
        ("-5", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = 1445412450.0  # 2015-10-21 07:27:30 UTC
    assert parse_retry_after(value, now=now) == expected


def test_backoff_doubles_with_jitter() -> None:
    for attempt in range(5):
        delays = [retry_delay(0.2, attempt) for _ in range(200)]
        assert all(0.1 * 2**attempt <= d <= 0.3 * 2**attempt for d in delays)
        assert len(set(delays)) > 100  # jittered, not one fixed value
    assert retry_delay(0.0, 3) == 0.0


def test_parse_sitemap_urlset_index_and_gzip() -> None:
    ns = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
    urlset = (
        f"<urlset {ns}><url><loc> http://h.test/a </loc></url><url><loc>/b</loc></url></urlset>"
    )
    assert parse_sitemap(urlset.encode()) == (["http://h.test/a", "/b"], [])
    index = f"<sitemapindex {ns}><sitemap><loc>http://h.test/s.xml</loc></sitemap></sitemapindex>"
    assert parse_sitemap(gzip.compress(index.encode())) == ([], ["http://h.test/s.xml"])
    assert parse_sitemap(b"<urlset><url><loc>x") == ([], [])
    assert parse_sitemap(b"\x1f\x8bnot gzip") == ([], [])
