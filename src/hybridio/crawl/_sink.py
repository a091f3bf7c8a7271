"""Output and resume: records appended to a JSONL file, the crawl's progress to a state log.

Both files are append-only and written with aiofiles. The order of writes per batch of pages is
what makes a SIGKILL at any instant safe:

1. the state log gets the links the pages revealed (``{"q": url, "d": depth}``),
2. the output gets the records,
3. the state log gets the pages as done (``{"x": url}``).

On restart the queue is rebuilt as "queued minus done", where done also includes every URL
already in the output, so a record written just before a kill is not written again, and a page
whose links were logged but whose record was not is simply fetched again. A line cut short by
the kill is truncated away first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import aiofiles
import anyio
from aiofiles.threadpool.binary import AsyncBufferedIOBase

__all__ = ["ResumeState", "Sink", "load_resume_state"]


@dataclass
class ResumeState:
    """What an interrupted crawl had done: queued URLs with depths, done URLs, records written."""

    queued: dict[str, int] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    records: int = 0


def _complete_lines(path: Path) -> list[bytes]:
    """The file's complete lines; a trailing partial line is cut off the file itself."""
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with path.open("r+b") as handle:
            handle.truncate(end)
    return data[:end].splitlines()


def load_resume_state(out: Path | None, state: Path | None) -> ResumeState | None:
    """Read an interrupted crawl's files; None when there is nothing to resume.

    Raises:
        FileExistsError: ``out`` has records but there is no state log to resume from.
    """
    has_out = out is not None and out.exists() and out.stat().st_size > 0
    if state is None or not state.exists():
        if has_out:
            raise FileExistsError(
                f"{out} already has records but its state log {state} is missing, so the crawl "
                "cannot resume without writing pages twice: remove the file or pick another --out"
            )
        return None
    resume = ResumeState()
    for line in _complete_lines(state):
        entry = json.loads(line)
        if "q" in entry:
            url, depth = entry["q"], entry["d"]
            resume.queued[url] = min(depth, resume.queued.get(url, depth))
        else:
            resume.done.add(entry["x"])
    if out is not None:
        for line in _complete_lines(out):
            record = json.loads(line)
            resume.records += 1
            if isinstance(record, dict) and isinstance(record.get("url"), str):
                resume.done.add(record["url"])
    return resume


class Sink:
    """Appends records (JSONL) and the state log; either path may be None (not written)."""

    def __init__(self, out: Path | None, state: Path | None) -> None:
        self._paths = (out, state)
        self._out: AsyncBufferedIOBase | None = None
        self._state: AsyncBufferedIOBase | None = None
        self._lock = anyio.Lock()
        self.bytes_written = 0

    async def __aenter__(self) -> Self:
        out, state = self._paths
        for path in (out, state):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
        if out is not None:
            self._out = await aiofiles.open(out, "ab")
        if state is not None:
            self._state = await aiofiles.open(state, "ab")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for handle in (self._out, self._state):
            if handle is not None:
                await handle.close()

    async def log_queued(self, entries: Iterable[tuple[str, int]]) -> None:
        """Log URLs added to the queue with their depths."""
        await self._append(self._state, [{"q": url, "d": depth} for url, depth in entries])

    async def log_done(self, urls: Iterable[str]) -> None:
        """Log URLs finished for good (recorded, skipped, permanent errors): never fetched
        again on resume. URLs that failed for a reason that may go away are not logged."""
        await self._append(self._state, [{"x": url} for url in urls])

    async def write_records(self, records: list[dict[str, Any]]) -> None:
        """Append records, one JSON object per line."""
        self.bytes_written += await self._append(self._out, records)

    async def _append(self, handle: AsyncBufferedIOBase | None, items: list[Any]) -> int:
        if handle is None or not items:
            return 0
        data = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items).encode()
        async with self._lock:
            # One write and a flush per batch: the OS has the bytes before the next step runs,
            # so a SIGKILL (which does not lose OS buffers) keeps the order the resume relies on.
            await handle.write(data)
            await handle.flush()
        return len(data)
