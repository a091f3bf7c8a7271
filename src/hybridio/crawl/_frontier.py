"""URLs: resolution and normalisation (WHATWG), scope, and the breadth-first frontier."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import ada_url

__all__ = ["Frontier", "Scope", "host_port", "normalize_url", "origin"]

_DEFAULT_PORTS = {"http:": "80", "https:": "443"}


def normalize_url(href: str, base: str | None = None) -> str | None:
    """The canonical form of ``href`` (resolved against ``base``), or None when not crawlable.

    Resolution and serialisation follow the WHATWG URL standard, as browsers do (with the ada
    library): a backslash is a slash in http(s) URLs, tabs and newlines inside are removed,
    scheme and host are lowercased, the default port and dot segments are dropped, an empty
    path is ``/``, non-ASCII characters are percent-encoded as UTF-8. The fragment is dropped.
    Only http(s) URLs are crawlable; a bare fragment (``#top``, the page itself) is not a link.
    """
    # The fragment starts at the first "#" (WHATWG): dropping it first gives the same URL.
    href = href.partition("#")[0].strip()
    if not href:
        return None
    try:
        url = ada_url.join_url(base, href) if base is not None else ada_url.normalize_url(href)
    except ValueError:
        return None
    if not url.startswith(("http://", "https://")):
        return None
    return url


def host_port(url: str) -> str:
    """``host:port`` of an http(s) URL, with the scheme's default port spelled out."""
    parts = ada_url.parse_url(url, attributes=("hostname", "port", "protocol"))
    return f"{parts['hostname']}:{parts['port'] or _DEFAULT_PORTS.get(parts['protocol'], '')}"


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL."""
    return str(ada_url.parse_url(url, attributes=("origin",))["origin"])


@dataclass(frozen=True)
class Scope:
    """Which URLs may be fetched: the seeds' exact hosts, or the allowed domains and subdomains.

    Picklable on purpose: it travels to the parse workers, which drop off-site links there.
    """

    hosts: frozenset[str]
    domains: tuple[str, ...] = ()

    @cached_property
    def _prefixes(self) -> tuple[str, ...]:
        """``scheme://host[:port]/`` of each host, as normalised URLs spell them."""
        prefixes = []
        for hostport in sorted(self.hosts):
            host, _, port = hostport.rpartition(":")
            for scheme, default in (("http", "80"), ("https", "443")):
                prefixes.append(f"{scheme}://{host}{'' if port == default else ':' + port}/")
        return tuple(prefixes)

    @classmethod
    def for_seeds(cls, seeds: Iterable[str], domains: Sequence[str] = ()) -> Scope:
        hosts = set()
        for seed in seeds:
            url = normalize_url(seed)
            if url is None:
                raise ValueError(f"a seed must be an absolute http(s) URL, got {seed!r}")
            hosts.add(host_port(url))
        cleaned = tuple(d.strip().lower().lstrip(".") for d in domains if d.strip())
        return cls(frozenset(hosts), cleaned)

    def __contains__(self, url: str) -> bool:
        """Whether ``url`` (normalised, see ``normalize_url``) may be fetched."""
        if not self.domains and url.startswith(self._prefixes):
            return True  # the common case, without parsing the URL
        if self.domains:
            host = ada_url.parse_url(url, attributes=("hostname",))["hostname"]
            return any(host == d or host.endswith("." + d) for d in self.domains)
        return host_port(url) in self.hosts


class Frontier:
    """URLs waiting to be fetched, level by level, and every URL ever seen.

    A URL's depth is its breadth-first distance from the seeds: the fewest links followed to
    reach it (a redirect is no extra hop: its target gets the depth of the redirecting URL).
    Pages are parsed in parallel and finish in any order, so a URL first found by a deep page
    may later be found by a shallower one; the frontier keeps the smaller depth and only hands a
    URL out once no page still in the pipeline can lower it. That makes every depth, and so
    every record, the same on every run:

    - a URL of depth ``k`` can get a smaller depth only from a page of depth ``<= k - 2`` still
      to be parsed, or from a fetch of depth ``<= k - 1`` still to finish (a redirect);
    - so ``pop`` hands out the shallowest queued URLs, of depth ``k``, only once every fetch of
      depth ``< k`` has finished and every page of depth ``< k - 1`` has been parsed.

    Parsing of one level overlaps the fetching of the next, and within a level everything runs
    in parallel. The caller reports each popped URL's progress with ``fetched`` (the page goes
    on to parsing, or not) and ``parsed``.

    Holds URL strings and depths only; page bodies live in the fetch/parse pipeline, whose size
    is bounded by the concurrency and batch size. At most ``max_queued`` URLs wait at once: a
    new URL offered while the queue is full is refused (counted in ``refused``) and not
    remembered as seen, so the memory held is bounded by ``max_queued`` plus the URLs fetched.
    """

    def __init__(self, max_depth: int | None = None, max_queued: int | None = None) -> None:
        self.max_depth = max_depth
        self.max_queued = max_queued
        self.refused = 0  # new URLs turned away because the queue was full
        self._levels: dict[int, deque[str]] = {}  # depth -> URLs (stale entries skipped)
        self._depth: dict[str, int] = {}  # queued URL -> its depth (lowered if found shallower)
        self._queued: Counter[int] = Counter()  # depth -> queued URLs
        self._fetching: Counter[int] = Counter()  # depth -> URLs popped, fetch not finished
        self._parsing: Counter[int] = Counter()  # depth -> pages fetched, links not yet added
        self._seen: set[str] = set()
        self._lowered: list[tuple[str, int]] = []  # (URL, new depth) since take_lowered

    def __len__(self) -> int:
        return len(self._depth)

    @property
    def in_flight(self) -> int:
        """URLs popped whose fetch or parse has not finished."""
        return self._fetching.total() + self._parsing.total()

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
        gets the smaller of the two depths (the redirect may have found it by a shorter path).
        """
        if self.mark_seen(url):
            return True
        self._lower(url, depth)
        return False

    def _enqueue(self, url: str, depth: int) -> None:
        self._depth[url] = depth
        self._queued[depth] += 1
        self._levels.setdefault(depth, deque()).append(url)

    def _lower(self, url: str, depth: int) -> None:
        old = self._depth.get(url)
        if old is not None and depth < old:
            self._queued[old] -= 1
            self._enqueue(url, depth)  # the entry left at the old level is skipped by pop
            self._lowered.append((url, depth))

    def add(self, url: str, depth: int) -> bool:
        """Queue ``url`` unless seen before, too deep or the queue is full; True when queued."""
        if self.max_depth is not None and depth > self.max_depth:
            return False
        if url in self._seen:
            self._lower(url, depth)
            return False
        if self.max_queued is not None and len(self._depth) >= self.max_queued:
            self.refused += 1
            return False
        self._seen.add(url)
        self._enqueue(url, depth)
        return True

    def take_lowered(self) -> list[tuple[str, int]]:
        """Queued URLs whose depth was lowered since the last call, with their new depth."""
        lowered, self._lowered = self._lowered, []
        return lowered

    def _ready(self, depth: int) -> bool:
        """Whether no fetch of depth < ``depth`` and no parse of depth < ``depth - 1`` is left."""
        fetches_done = all(d >= depth for d, count in self._fetching.items() if count)
        return fetches_done and all(d >= depth - 1 for d, count in self._parsing.items() if count)

    def pop(self) -> tuple[str, int] | None:
        """The next URL to fetch with its final depth; None when none may be handed out now.

        None with ``len(frontier) > 0`` means: wait until a fetch or parse in flight finishes.
        """
        while self._depth:
            depth = min(d for d, count in self._queued.items() if count)
            if not self._ready(depth):
                return None
            level = self._levels[depth]
            while level:
                url = level.popleft()
                if self._depth.get(url) == depth:
                    del self._depth[url]
                    self._queued[depth] -= 1
                    self._fetching[depth] += 1
                    return url, depth
            del self._levels[depth]
        return None

    def fetched(self, depth: int, *, to_parse: bool) -> None:
        """A URL popped at ``depth`` has been fetched: its page goes on to parsing, or not."""
        self._fetching[depth] -= 1
        if to_parse:
            self._parsing[depth] += 1

    def parsed(self, depth: int, count: int = 1) -> None:
        """``count`` pages of ``depth`` have been parsed and their links added."""
        self._parsing[depth] -= count
