"""robots.txt (RFC 9309), parsed by protego, and per-host pacing: Crawl-delay, Retry-After.

One robots.txt fetch per origin (with the crawl's retries), and what its answer means, as
RFC 9309 section 2.3.1 says:

- 2xx: the rules apply (protego parses them);
- 3xx: followed (up to 10 redirects), then as for the final answer;
- 4xx ("unavailable"): no rules, everything may be fetched;
- 5xx, 429 or no answer at all ("unreachable"): nothing may be fetched. Such URLs are reported
  as failed with ``robots_unreachable`` and are not marked done, so a later run of the same
  crawl (a resume) fetches robots.txt again and then the pages.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from enum import Enum

import anyio
from protego import Protego

from ._fetcher import FetchResult
from ._frontier import origin

__all__ = ["Robots", "Verdict"]

#: Fetches a robots.txt URL (retrying as the crawl does): the final answer.
RobotsFetch = Callable[[str], Awaitable[FetchResult]]


class Verdict(Enum):
    """What robots.txt says about a URL."""

    ALLOWED = "allowed"
    DISALLOWED = "disallowed"
    UNREACHABLE = "unreachable"  # robots.txt answered 5xx/429 or not at all: disallow all


class _Unreachable:
    def __init__(self, detail: str) -> None:
        self.detail = detail


class Robots:
    """Which URLs a user agent may fetch, and how long to wait before the next request to a host.

    ``wait_turn`` paces requests to one origin: by robots.txt's Crawl-delay (when obeyed, at most
    ``max_delay`` seconds: the origins whose delay was capped are in ``capped``), and after a
    ``Retry-After`` answer (see ``hold``), whether robots.txt is obeyed or not.
    """

    def __init__(
        self,
        fetch: RobotsFetch,
        user_agent: str,
        *,
        obey: bool = True,
        max_delay: float = math.inf,
    ) -> None:
        self._fetch = fetch
        self._agent = user_agent
        self._obey = obey
        self._max_delay = max_delay
        self.capped: dict[str, float] = {}  # origin -> the Crawl-delay it asked for, if capped
        self._rules: dict[str, Protego | _Unreachable | None] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self._next_slot: dict[str, float] = {}

    async def _rules_for(self, site: str) -> Protego | _Unreachable | None:
        if site in self._rules:
            return self._rules[site]
        lock = self._locks.setdefault(site, anyio.Lock())
        async with lock:  # one fetch per origin, however many tasks ask at once
            if site not in self._rules:
                answer = await self._fetch(site + "/robots.txt")
                rules: Protego | _Unreachable | None = None
                if answer.outcome == "ok":
                    assert answer.body is not None
                    # RFC 9309: UTF-8; a byte order mark would hide the first line from the parser.
                    rules = Protego.parse(answer.body.decode("utf-8-sig", errors="replace"))
                elif answer.outcome != "http_4xx":
                    rules = _Unreachable(answer.detail or answer.outcome)
                self._rules[site] = rules
        return self._rules[site]

    async def verdict(self, url: str) -> Verdict:
        """What robots.txt says about ``url`` (always ALLOWED when robots.txt is ignored)."""
        if not self._obey:
            return Verdict.ALLOWED
        rules = await self._rules_for(origin(url))
        if isinstance(rules, _Unreachable):
            return Verdict.UNREACHABLE
        if rules is None or rules.can_fetch(url, self._agent):
            return Verdict.ALLOWED
        return Verdict.DISALLOWED

    async def sitemaps(self, url: str) -> list[str]:
        """The ``Sitemap:`` URLs of the robots.txt of ``url``'s origin (fetched if need be)."""
        rules = await self._rules_for(origin(url))
        return list(rules.sitemaps) if isinstance(rules, Protego) else []

    def unreachable_reason(self, url: str) -> str:
        """Why robots.txt of ``url``'s origin counts as unreachable."""
        rules = self._rules.get(origin(url))
        return rules.detail if isinstance(rules, _Unreachable) else ""

    def hold(self, url: str, seconds: float) -> None:
        """The host of ``url`` asked for ``seconds`` of quiet (Retry-After): no request before."""
        site = origin(url)
        until = time.monotonic() + seconds
        self._next_slot[site] = max(self._next_slot.get(site, until), until)

    async def wait_turn(self, url: str) -> None:
        """Sleep until the host's Crawl-delay since the previous request (and any hold) passed."""
        site = origin(url)
        delay = 0.0
        if self._obey:
            rules = await self._rules_for(site)
            if isinstance(rules, Protego):
                delay = float(rules.crawl_delay(self._agent) or 0.0)
                if delay > self._max_delay:
                    self.capped.setdefault(site, delay)
                    delay = self._max_delay
        now = time.monotonic()
        slot = self._next_slot.get(site, now)
        if not delay and slot <= now:
            return
        # Reserve the next slot before sleeping, so concurrent tasks queue up one delay apart.
        slot = max(now, slot)
        self._next_slot[site] = slot + delay
        await anyio.sleep(slot - now)
