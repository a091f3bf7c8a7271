"""HTTP fetching with aiohttp: connection limits, size and type filters, one attempt per call.

Retries (and how long to wait before them) are the crawler's business: see ``retry_delay``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Self

import aiohttp
from yarl import URL

from ._config import CrawlConfig

__all__ = ["RETRYABLE", "FetchResult", "Fetcher", "parse_retry_after", "retry_delay"]

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: Outcomes worth another attempt: the server or the network may do better later.
RETRYABLE = frozenset({"http_5xx", "http_429", "timeout", "connection"})
#: The most of a robots.txt that is read (RFC 9309 asks crawlers to parse at least 500 KiB).
_ROBOTS_BYTES = 512 * 1024


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def retry_delay(backoff: float, attempt: int) -> float:
    """Exponential backoff with jitter: ``backoff * 2**attempt``, times a random 0.5 to 1.5.

    The jitter keeps many URLs that failed together from all coming back at the same instant.
    """
    return backoff * 2.0**attempt * random.uniform(0.5, 1.5)


@dataclass
class FetchResult:
    """One request's outcome (after retries).

    ``outcome`` is ``"ok"`` (``body`` holds the HTML, ``content_type`` the Content-Type
    header), ``"redirect"`` (``location``), or why the page gives no record: ``"not_html"``,
    ``"too_large"``, ``"bad_redirect"`` (a 3xx redirect without ``Location``), ``"http_4xx"``,
    ``"http_429"``, ``"http_5xx"``, ``"timeout"``, ``"connection"``. ``nbytes`` counts the body
    bytes actually read (0 for a body never read). ``retry_after`` is the ``Retry-After`` of a
    429 or 503 answer, in seconds; ``detail`` says what went wrong, for people.
    """

    outcome: str
    status: int = 0
    body: bytes | None = None
    location: str | None = None
    nbytes: int = 0
    content_type: str | None = None
    retry_after: float | None = None
    detail: str = ""


class Fetcher:
    """An aiohttp session with global and per-host connection limits, used for every request."""

    def __init__(self, config: CrawlConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        config = self.config
        connector = aiohttp.TCPConnector(limit=config.concurrency, limit_per_host=config.per_host)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=config.timeout),
            headers={"User-Agent": config.user_agent},
            # Cookies are not needed to crawl and would make runs depend on each other.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def fetch(self, url: str) -> FetchResult:
        """GET ``url`` once, without following redirects."""
        return await self._guarded(self._fetch(url))

    async def fetch_text(self, url: str, limit: int = _ROBOTS_BYTES) -> FetchResult:
        """GET robots.txt or a sitemap, following redirects; ``body`` holds the bytes.

        ``outcome`` is ``"ok"`` for any answer below 400 (``status`` tells which), else as for
        ``fetch``. At most ``limit`` bytes (and ``max_bytes``) are read: the rest is ignored.
        """
        return await self._guarded(self._fetch_text(url, min(self.config.max_bytes, limit)))

    async def _guarded(self, attempt: Awaitable[FetchResult]) -> FetchResult:
        try:
            return await attempt
        except TimeoutError:
            return FetchResult("timeout", detail=f"no answer within {self.config.timeout:g} s")
        except aiohttp.ClientError as exc:
            return FetchResult("connection", detail=str(exc) or type(exc).__name__)

    async def _fetch(self, url: str) -> FetchResult:
        assert self._session is not None, "use the Fetcher in `async with`"
        # encoded=True: the URL is already in its WHATWG form; send it byte for byte.
        async with self._session.get(URL(url, encoded=True), allow_redirects=False) as response:
            status = response.status
            if status in _REDIRECTS:
                if "Location" not in response.headers:  # RFC 9110: a redirect names its target
                    detail = f"HTTP {status} without a Location header"
                    return FetchResult("bad_redirect", status, detail=detail)
                return FetchResult("redirect", status, location=response.headers["Location"])
            if status >= 400:
                return _http_error(response)
            if response.content_type not in _HTML_TYPES:
                return FetchResult("not_html", status, detail=response.content_type)
            limit = self.config.max_bytes
            if response.content_length is not None and response.content_length > limit:
                # Not read: nbytes (the bytes received) stays 0; the size is in the detail.
                return FetchResult("too_large", status, detail=f"{response.content_length} bytes")
            body = await _read(response, limit + 1)
            if len(body) > limit:  # no (or a lying) Content-Length: stopped at the limit
                return FetchResult("too_large", status, nbytes=len(body))
            content_type = response.headers.get("Content-Type")
            return FetchResult("ok", status, body=body, nbytes=len(body), content_type=content_type)

    async def _fetch_text(self, url: str, limit: int) -> FetchResult:
        assert self._session is not None, "use the Fetcher in `async with`"
        async with self._session.get(URL(url, encoded=True)) as response:
            if response.status >= 400:
                return _http_error(response)
            body = await _read(response, limit)
            return FetchResult("ok", response.status, body=body[:limit], nbytes=len(body))


async def _read(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, read until its end or until at least ``limit`` bytes have come."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)


def _http_error(response: aiohttp.ClientResponse) -> FetchResult:
    status = response.status
    outcome = "http_429" if status == 429 else f"http_{status // 100}xx"
    after = None
    if status in (429, 503):
        after = parse_retry_after(response.headers.get("Retry-After"))
    detail = f"HTTP {status} {response.reason or ''}".strip()
    return FetchResult(outcome, status, retry_after=after, detail=detail)
