"""Output and resume: records appended to a JSONL file, the crawl's progress to a state log.

Both files are append-only and written with aiofiles. The state log starts with a version line
(``{"v": 2}``) and then holds two kinds of lines:

- ``{"q": url, "d": depth}``: a URL was queued (again, with a smaller depth, when it was lowered);
- ``{"x": [url, ...], "o": bytes, "n": records}``: a *commit*: these URLs are finished for good,
  and the output's first ``bytes`` bytes (``records`` lines) are final.

Per batch of pages the crawler writes, in this order: the links the pages revealed (``q``), the
records (to the output), then the commit naming the pages, in one line. Records and their commit
are written under one lock, so no other batch's commit can cover records whose own commit was not
written yet. Each step is one write and a flush (a SIGKILL does not lose what the OS has).

On restart the output is cut back to the last commit's size: records written after it belong to
pages that are not done, which are fetched and written again. So a resume never writes a record
twice and never loses one, whatever the records hold (nothing is read from them). The queue is
rebuilt as "queued minus done". A line cut short by the kill is truncated away first; a damaged
line elsewhere is refused with its line number (skipping it could lose or repeat a page).

Two crawls must not write the same output: ``OutputLock`` holds an advisory lock (``flock``) on
it for the whole crawl; the OS releases it when the process ends, even by SIGKILL.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import aiofiles
import anyio
from aiofiles.threadpool.binary import AsyncBufferedIOBase

from .._core._exceptions import HybridioError

__all__ = [
    "STATE_VERSION",
    "CrawlFileError",
    "OutputLock",
    "ResumeState",
    "Sink",
    "load_resume_state",
]

#: The state log format: the first line of every state log is ``{"v": STATE_VERSION}``.
STATE_VERSION = 2


class CrawlFileError(HybridioError, OSError):
    """The output or the state log cannot be used; the message says what and what to do.

    A ``HybridioError`` and an ``OSError`` (a file problem).
    """


def _start_over(out: Path | None, state: Path) -> str:
    files = f"{out} and {state}" if out is not None else str(state)
    return f"remove {files} to start the crawl over"


@dataclass
class ResumeState:
    """What an interrupted crawl had done.

    ``queued``: URLs queued, with their smallest depth; ``done``: URLs finished for good;
    ``records``: records in the output that are final, ``out_size``: their size in bytes.
    """

    queued: dict[str, int] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    records: int = 0
    out_size: int = 0


class OutputLock:
    """An exclusive advisory lock (``flock``) on the crawl's output (else its state log).

    ``acquire`` also checks that the file can be written, creating it (and its directory).

    Raises:
        CrawlFileError: another crawl holds the lock, or the path cannot be written.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        path = self.path
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            if isinstance(exc, FileExistsError | NotADirectoryError):
                reason = "a part of its directory is a file, not a directory"
            raise CrawlFileError(
                f"cannot write the crawl output {path}: {reason}; choose another --out "
                "(a file in a directory you may write to)"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CrawlFileError(
                f"another crawl is writing to {path}: wait for it to end (or stop it), then run "
                "this command again to resume; or choose another --out"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases its lock
            self._fd = None


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


def _entry(line: bytes) -> dict[str, Any] | None:
    """A state line decoded, or None when it is not one the crawler writes."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    if entry.keys() == {"q", "d"}:
        ok = isinstance(entry["q"], str) and _count(entry["d"])
    elif entry.keys() == {"x", "o", "n"}:
        urls = entry["x"]
        ok = isinstance(urls, list) and all(isinstance(u, str) for u in urls)
        ok = ok and _count(entry["o"]) and _count(entry["n"])
    else:
        ok = False
    return entry if ok else None


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def load_resume_state(out: Path | None, state: Path | None) -> ResumeState | None:
    """Read an interrupted crawl's state log and cut the output back to its last commit.

    None when there is nothing to resume.

    Raises:
        FileExistsError: ``out`` has records but there is no state log to resume from.
        CrawlFileError: the state log is damaged, of another format, or does not match ``out``.
    """
    has_out = out is not None and out.is_file() and out.stat().st_size > 0
    if state is None or not state.exists() or state.stat().st_size == 0:
        if has_out:
            raise FileExistsError(
                f"{out} already has records but its state log {state} is missing, so the crawl "
                "cannot resume without writing pages twice: remove the file or pick another --out"
            )
        return None
    try:
        lines = _complete_lines(state)
    except OSError as exc:
        raise CrawlFileError(f"cannot read the state log {state}: {exc.strerror}") from None
    if not lines:  # only a partial first line: nothing was committed
        lines = [b'{"v": %d}' % STATE_VERSION]
    try:
        header = json.loads(lines[0])
    except ValueError:
        header = None
    if header != {"v": STATE_VERSION}:
        raise CrawlFileError(
            f"{state} is not a state log of this version of hybridio.crawl (its first line is "
            f'not {{"v": {STATE_VERSION}}}): finish that crawl with the version that started '
            f"it, or {_start_over(out, state)}"
        )
    resume = ResumeState()
    for number, line in enumerate(lines[1:], start=2):
        entry = _entry(line)
        if entry is None:
            shown = line[:80].decode("utf-8", "backslashreplace")
            raise CrawlFileError(
                f"{state}, line {number}, is damaged (not a line the crawler writes: {shown!r}). "
                f"Delete that line to resume (its page may be fetched again or missed), or "
                f"{_start_over(out, state)}"
            )
        if "q" in entry:
            url, depth = entry["q"], entry["d"]
            resume.queued[url] = min(depth, resume.queued.get(url, depth))
        else:
            resume.done.update(entry["x"])
            resume.out_size, resume.records = entry["o"], entry["n"]
    if out is not None:
        _cut_back(out, state, resume.out_size)
    return resume


def _cut_back(out: Path, state: Path, size: int) -> None:
    """Cut ``out`` to ``size`` bytes: records after the last commit are written again."""
    actual = out.stat().st_size if out.exists() else 0
    if actual < size:
        raise CrawlFileError(
            f"{out} has {actual} bytes but its state log {state} says {size} were written: the "
            f"output was edited, truncated or replaced, so the crawl cannot resume; "
            f"{_start_over(out, state)}"
        )
    if actual > size:
        with out.open("r+b") as handle:
            handle.truncate(size)


class Sink:
    """Appends records (JSONL) and the state log; either path may be None (not written).

    ``resume`` is what ``load_resume_state`` found (the output was cut back to its size).
    """

    def __init__(self, out: Path | None, state: Path | None, resume: ResumeState | None) -> None:
        self._paths = (out, state)
        self._out: AsyncBufferedIOBase | None = None
        self._state: AsyncBufferedIOBase | None = None
        self._commit_lock = anyio.Lock()  # records and their commit line, together
        self._write_lock = anyio.Lock()  # one write and flush of the state log at a time
        self._out_size = resume.out_size if resume is not None else 0
        self._records = resume.records if resume is not None else 0
        self.bytes_written = 0

    async def __aenter__(self) -> Self:
        out, state = self._paths
        try:
            for path in (out, state):
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
            if out is not None:
                self._out = await aiofiles.open(out, "ab")
            if state is not None:
                self._state = await aiofiles.open(state, "ab")
                if await self._state.tell() == 0:
                    await self._append(self._state, [{"v": STATE_VERSION}])
        except OSError as exc:
            await self.__aexit__()
            path = exc.filename or out or state
            raise CrawlFileError(
                f"cannot write {path}: {exc.strerror or exc}; choose another --out or --state"
            ) from None
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # Shielded: a cancelled crawl (a task group cancelled around it) still closes its files.
        with anyio.CancelScope(shield=True):
            for handle in (self._out, self._state):
                if handle is not None:
                    await handle.close()
        self._out = self._state = None

    async def log_queued(self, entries: Iterable[tuple[str, int]]) -> None:
        """Log URLs added to the queue with their depths."""
        await self._append(self._state, [{"q": url, "d": depth} for url, depth in entries])

    async def commit(self, lines: list[bytes], done: list[str]) -> None:
        """Append records (each a JSON line, see ``encode_record``), then log ``done`` finished
        for good (recorded, skipped, permanent errors) with the output's new size.

        URLs that failed for a reason that may go away are not given: a resume fetches them.
        """
        if not lines and not done:
            return
        async with self._commit_lock:  # no other commit between these records and theirs
            if self._out is not None and lines:
                data = b"".join(lines)
                await self._out.write(data)
                await self._out.flush()
                self._out_size += len(data)
                self._records += len(lines)
                self.bytes_written += len(data)
            commit = {"x": done, "o": self._out_size, "n": self._records}
            await self._append(self._state, [commit])

    async def _append(self, handle: AsyncBufferedIOBase | None, items: list[Any]) -> None:
        if handle is None or not items:
            return
        data = "".join(json.dumps(item) + "\n" for item in items).encode("ascii")
        # One write and a flush per step: the OS has the bytes before the next step runs, so
        # a SIGKILL (which does not lose OS buffers) keeps the order the resume relies on.
        async with self._write_lock:
            await handle.write(data)
            await handle.flush()
