"""URLs: normalisation, scope, and the frontier (seen set + FIFO queue of URLs, never bodies)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from yarl import URL

__all__ = ["Frontier", "Scope", "normalize_url"]


def normalize_url(href: str, base: str | None = None) -> str | None:
    """The canonical form of ``href`` (resolved against ``base``), or None when not crawlable.

    Canonical: scheme and host lowercased, default port dropped, dot segments removed, an empty
    path made ``/``, the fragment dropped, percent-encoding as yarl writes it. Only http(s).
    """
    href = href.strip()
    if not href or href.startswith(("#", "javascript:", "mailto:", "tel:", "data:")):
        return None
    try:
        url = URL(href)
        if base is not None and not url.scheme:
            url = URL(base).join(url)
    except (ValueError, TypeError):
        return None
    if url.scheme not in ("http", "https") or not url.host:
        return None
    url = url.with_fragment(None)
    if url.raw_path in ("", "/") and not url.raw_query_string:
        url = url.with_path("/")  # yarl prints a bare origin without its "/"
    return str(url)


@dataclass(frozen=True)
class Scope:
    """Which URLs may be fetched: the seeds' exact hosts, or the allowed domains and subdomains.

    Picklable on purpose: it travels to the parse workers, which drop off-site links there.
    """

    hosts: frozenset[str]
    domains: tuple[str, ...] = ()

    @classmethod
    def for_seeds(cls, seeds: Iterable[str], domains: Sequence[str] = ()) -> Scope:
        hosts = set()
        for seed in seeds:
            url = URL(seed)
            if url.scheme not in ("http", "https") or not url.host:
                raise ValueError(f"a seed must be an absolute http(s) URL, got {seed!r}")
            hosts.add(f"{url.host}:{url.port}")
        cleaned = tuple(d.strip().lower().lstrip(".") for d in domains if d.strip())
        return cls(frozenset(hosts), cleaned)

    def __contains__(self, url: str) -> bool:
        parsed = URL(url)
        host = (parsed.host or "").lower()
        if self.domains:
            return any(host == d or host.endswith("." + d) for d in self.domains)
        return f"{host}:{parsed.port}" in self.hosts


class Frontier:
    """URLs waiting to be fetched, in discovery (breadth-first) order, and every URL ever seen.

    Holds URL strings and depths only; page bodies live in the fetch/parse pipeline, whose size
    is bounded by the concurrency and batch size.
    """

    def __init__(self, max_depth: int | None = None) -> None:
        self.max_depth = max_depth
        self._queue: deque[str] = deque()
        self._depth: dict[str, int] = {}  # pending URL -> depth (lowered if found shallower)
        self._seen: set[str] = set()

    def __len__(self) -> int:
        return len(self._queue)

    def seen(self, url: str) -> bool:
        return url in self._seen

    def mark_seen(self, url: str) -> bool:
        """Record ``url`` as seen without queueing it; False when it was already seen."""
        if url in self._seen:
            return False
        self._seen.add(url)
        return True

    def claim_redirect(self, url: str, depth: int) -> bool:
        """A redirect at ``depth`` leads to ``url``: True when the redirect chain should fetch it.

        When ``url`` was already seen it is not fetched twice; if it still waits in the queue, it
        keeps the shorter of the two depths (the redirect may have found it by a shorter path).
        """
        if self.mark_seen(url):
            return True
        self._lower(url, depth)
        return False

    def _lower(self, url: str, depth: int) -> None:
        # Found again by a shorter path before it was fetched: keep the shorter depth.
        if url in self._depth and depth < self._depth[url]:
            self._depth[url] = depth

    def add(self, url: str, depth: int) -> bool:
        """Queue ``url`` unless seen before or too deep; True when newly queued."""
        if self.max_depth is not None and depth > self.max_depth:
            return False
        if url in self._seen:
            self._lower(url, depth)
            return False
        self._seen.add(url)
        self._queue.append(url)
        self._depth[url] = depth
        return True

    def pop(self) -> tuple[str, int]:
        url = self._queue.popleft()
        return url, self._depth.pop(url)
