"""The loopback server of the test site (aiohttp), with fault injection.

Serves a generated site from memory on 127.0.0.1, follows its manifest's redirects, and on demand
adds latency, answers 503 (always for some pages, or only the first times for others), or
delays some pages past any sensible timeout. Fault choices are a function of the path and the
seed, so a test knows exactly which pages fail. Every request is counted per path.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Self
from urllib.parse import quote

from aiohttp import web

from ._testsite import MANIFEST, SiteManifest, load_manifest

__all__ = ["Faults", "TestSiteServer"]

# HTML without a charset, as nginx and most servers send it: the page's <meta> decides.
_TYPES = {
    ".html": "text/html",
    ".txt": "text/plain; charset=utf-8",
    ".bin": "application/octet-stream",
    ".png": "image/png",
}


_TRAP_PAGE = b"<!doctype html><title>trap</title><p>More pages below.</p>%s"


def _trap_page(path: str, links: int) -> bytes:
    """A page of ``links`` links to pages nobody linked before: ``<path>/<i>``."""
    base = path.rstrip("/").encode()
    return _TRAP_PAGE % b"".join(b'<a href="%s/%d">%d</a>\n' % (base, i, i) for i in range(links))


@dataclass(frozen=True)
class Faults:
    """Faults the server injects.

    Args:
        latency: seconds added to every answer.
        error_rate: fraction of HTML pages that always answer 503.
        flaky_rate: fraction of HTML pages that answer 503 ``flaky_failures`` times, then 200.
        slow_rate: fraction of HTML pages delayed by ``slow_seconds``.
        slow_paths: these paths are delayed by ``slow_seconds`` too (to stage a race).
        throttle_rate: fraction of HTML pages that answer ``429 Too Many Requests`` with
            ``Retry-After: <retry_after>`` the first time, then 200.
        retry_after: the ``Retry-After`` of throttled pages, in whole seconds.
        robots_status: robots.txt answers this HTTP status with an empty body (None: the file).
        bare_redirects: these paths answer ``302 Found`` without a ``Location`` header, with an
            HTML body (a broken server).
        trap_links: when > 0, every path under ``/trap/`` is an HTML page with this many links
            to new ``/trap/`` pages (a wide spider trap: the site never ends).
        seed: picks which pages (a hash of seed and path, stable across runs).
    """

    latency: float = 0.0
    error_rate: float = 0.0
    flaky_rate: float = 0.0
    flaky_failures: int = 1
    slow_rate: float = 0.0
    slow_seconds: float = 30.0
    slow_paths: tuple[str, ...] = ()
    throttle_rate: float = 0.0
    retry_after: int = 1
    robots_status: int | None = None
    bare_redirects: tuple[str, ...] = ()
    trap_links: int = 0
    seed: int = 0

    def _draw(self, kind: str, path: str) -> float:
        digest = hashlib.sha256(f"{self.seed}:{kind}:{path}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def fails(self, path: str) -> bool:
        """Whether ``path`` always answers 503."""
        return path != "/" and self._draw("error", path) < self.error_rate

    def flaky(self, path: str) -> bool:
        """Whether ``path`` answers 503 for its first ``flaky_failures`` requests."""
        return path != "/" and self._draw("flaky", path) < self.flaky_rate

    def slow(self, path: str) -> bool:
        """Whether ``path`` is delayed by ``slow_seconds``."""
        return path in self.slow_paths or (
            path != "/" and self._draw("slow", path) < self.slow_rate
        )

    def throttled(self, path: str) -> bool:
        """Whether ``path`` answers 429 with ``Retry-After`` the first time it is requested."""
        return path != "/" and self._draw("throttle", path) < self.throttle_rate


class TestSiteServer:
    """Serve a generated site on 127.0.0.1 (port 0: an ephemeral port, see ``url``).

    Example::

        async with TestSiteServer(site_dir, Faults(error_rate=0.1)) as server:
            print(server.url, server.requests["/"])
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, directory: Path | str, faults: Faults | None = None) -> None:
        self.root = Path(directory).resolve()
        self.manifest: SiteManifest = load_manifest(self.root)
        self.faults = faults or Faults()
        self.requests: Counter[str] = Counter()
        self.request_times: dict[str, list[float]] = {}  # path -> time.monotonic() of each
        self._cache: dict[str, bytes] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The home page's URL."""
        return f"http://127.0.0.1:{self.port}/"

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        # Slow pages sleep in their handlers: do not wait for them on close.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.2
        )
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _file(self, path: str) -> bytes | None:
        if path in self._cache:
            return self._cache[path]
        target = (self.root / ("index.html" if path == "/" else path.lstrip("/"))).resolve()
        if not target.is_relative_to(self.root) or target.name == MANIFEST or not target.is_file():
            return None
        self._cache[path] = body = target.read_bytes()
        return body

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.requests[path] += 1
        self.request_times.setdefault(path, []).append(time.monotonic())
        faults = self.faults
        if faults.latency:
            await asyncio.sleep(faults.latency)
        if path == "/robots.txt" and faults.robots_status is not None:
            return web.Response(status=faults.robots_status)
        if path in self.manifest.redirects:
            raise web.HTTPFound(quote(self.manifest.redirects[path], safe="/%"))
        if path in faults.bare_redirects:
            return web.Response(status=302, body=_TRAP_PAGE % b"", content_type="text/html")
        if faults.trap_links and path.startswith("/trap/"):
            return web.Response(body=_trap_page(path, faults.trap_links), content_type="text/html")
        body = self._file(path)
        if body is None:
            raise web.HTTPNotFound()
        if path.endswith(".html") or path == "/":
            if faults.fails(path) or (
                faults.flaky(path) and self.requests[path] <= faults.flaky_failures
            ):
                raise web.HTTPServiceUnavailable()
            if faults.throttled(path) and self.requests[path] == 1:
                raise web.HTTPTooManyRequests(headers={"Retry-After": str(faults.retry_after)})
            if faults.slow(path):
                await asyncio.sleep(faults.slow_seconds)
        content_type = self.manifest.content_types.get(path) or _TYPES.get(
            Path(path).suffix, "text/html"
        )
        return web.Response(body=body, headers={"Content-Type": content_type})
