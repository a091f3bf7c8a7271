"""robots.txt, parsed by protego: one fetch per origin, rules and Crawl-delay per host."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
from protego import Protego
from yarl import URL

__all__ = ["Robots"]

#: Fetches a robots.txt URL: ``(status, text)``, or None when the host could not be reached.
RobotsFetch = Callable[[str], Awaitable[tuple[int, str] | None]]


class Robots:
    """Which URLs a user agent may fetch, and how long to wait between requests to a host.

    A missing robots.txt (4xx) or an unreachable one allows everything, as most crawlers do.
    """

    def __init__(self, fetch: RobotsFetch, user_agent: str, *, obey: bool = True) -> None:
        self._fetch = fetch
        self._agent = user_agent
        self._obey = obey
        self._rules: dict[str, Protego | None] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self._next_slot: dict[str, float] = {}

    async def _rules_for(self, origin: str) -> Protego | None:
        if origin in self._rules:
            return self._rules[origin]
        lock = self._locks.setdefault(origin, anyio.Lock())
        async with lock:  # one fetch per origin, however many tasks ask at once
            if origin not in self._rules:
                answer = await self._fetch(origin + "/robots.txt")
                rules = None
                if answer is not None and 200 <= answer[0] < 300:
                    rules = Protego.parse(answer[1])
                self._rules[origin] = rules
        return self._rules[origin]

    async def allowed(self, url: str) -> bool:
        """Whether robots.txt lets this crawler fetch ``url``."""
        if not self._obey:
            return True
        rules = await self._rules_for(_origin(url))
        return rules is None or bool(rules.can_fetch(url, self._agent))

    async def wait_turn(self, url: str) -> None:
        """Sleep until the host's Crawl-delay since the previous request has passed."""
        if not self._obey:
            return
        origin = _origin(url)
        rules = await self._rules_for(origin)
        delay = rules.crawl_delay(self._agent) if rules is not None else None
        if not delay:
            return
        # Reserve the next slot before sleeping, so concurrent tasks queue up one delay apart.
        now = time.monotonic()
        slot = max(now, self._next_slot.get(origin, now))
        self._next_slot[origin] = slot + float(delay)
        await anyio.sleep(slot - now)


def _origin(url: str) -> str:
    return str(URL(url).origin())
