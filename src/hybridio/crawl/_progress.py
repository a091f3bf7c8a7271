"""A one-line live progress display on a terminal; nothing at all when output is not a TTY."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ._stats import CrawlStats

__all__ = ["Progress"]


class Progress:
    """Redraws ``pages | pages/s | queue | errors`` in place on ``stream`` when it is a TTY."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._start = time.monotonic()
        self._drawn = False

    def line(self, stats: CrawlStats, queued: int, in_flight: int) -> str:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        return (
            f"pages {stats.pages} | {stats.pages / elapsed:.1f} pages/s | queue {queued} | "
            f"in flight {in_flight} | errors {sum(stats.errors.values())}"
        )

    def update(self, stats: CrawlStats, queued: int, in_flight: int) -> None:
        if not self.enabled:
            return
        self.stream.write("\r\x1b[2K" + self.line(stats, queued, in_flight))
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
