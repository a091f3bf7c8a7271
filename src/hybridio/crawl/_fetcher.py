"""HTTP fetching with aiohttp: limits, retries with exponential backoff, size and type filters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import aiohttp
import anyio

from ._config import CrawlConfig

__all__ = ["FetchResult", "Fetcher"]

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass
class FetchResult:
    """One request's outcome (after retries).

    ``outcome`` is ``"ok"`` (``body`` holds the HTML), ``"redirect"`` (``location``), or why
    the page gives no record: ``"not_html"``, ``"too_large"``, ``"http_4xx"``, ``"http_5xx"``,
    ``"timeout"``, ``"connection"``.
    """

    outcome: str
    status: int = 0
    body: bytes | None = None
    location: str | None = None
    nbytes: int = 0
    retries: int = 0


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
        """GET ``url`` without following redirects, retrying transient failures."""
        config = self.config
        retries = 0
        while True:
            result = await self._attempt(url)
            if result.outcome not in ("http_5xx", "timeout", "connection"):
                break
            if retries >= config.retries:
                break
            await anyio.sleep(config.backoff * 2**retries)
            retries += 1
        result.retries = retries
        return result

    async def _attempt(self, url: str) -> FetchResult:
        assert self._session is not None, "use the Fetcher in `async with`"
        try:
            async with self._session.get(url, allow_redirects=False) as response:
                status = response.status
                if status in _REDIRECTS and "Location" in response.headers:
                    return FetchResult("redirect", status, location=response.headers["Location"])
                if status >= 500:
                    return FetchResult("http_5xx", status)
                if status >= 400:
                    return FetchResult("http_4xx", status)
                if response.content_type not in _HTML_TYPES:
                    return FetchResult("not_html", status)
                limit = self.config.max_bytes
                if response.content_length is not None and response.content_length > limit:
                    return FetchResult("too_large", status, nbytes=response.content_length)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > limit:  # no (or a lying) Content-Length: stop reading at the limit
                        return FetchResult("too_large", status, nbytes=size)
                    chunks.append(chunk)
                return FetchResult("ok", status, body=b"".join(chunks), nbytes=size)
        except TimeoutError:
            return FetchResult("timeout")
        except aiohttp.ClientError:
            return FetchResult("connection")

    async def fetch_text(self, url: str) -> tuple[int, str] | None:
        """GET a small text resource (robots.txt): ``(status, text)`` or None when unreachable."""
        assert self._session is not None, "use the Fetcher in `async with`"
        try:
            async with self._session.get(url) as response:
                raw = await response.content.read(self.config.max_bytes)
                return response.status, raw.decode("utf-8", errors="replace")
        except (TimeoutError, aiohttp.ClientError):
            return None
