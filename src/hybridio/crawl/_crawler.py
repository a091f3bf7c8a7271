"""The crawler: fetch on the event loop, parse in worker processes, write through aiofiles.

Pipeline: ``concurrency`` fetch tasks take URLs from the frontier and put HTML bodies on a small
bounded stream; one batcher task takes as many bodies as are waiting (up to ``batch_size``) per
free parse slot and sends them to a worker process in one ``run_cpu`` call; the results add links
to the frontier and records to the output. Bodies exist only between a fetch and its parse, so
memory is bounded by the concurrency and batch size, not by the size of the site.
"""

from __future__ import annotations

import asyncio
import pickle
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from yarl import URL

from .._core._exceptions import WorkerCrashed
from .._runtime._runtime import Runtime
from ._config import CrawlConfig
from ._fetcher import Fetcher
from ._frontier import Frontier, Scope, normalize_url
from ._parse import parse_batch, warm_up
from ._progress import Progress
from ._robots import Robots
from ._sink import Sink, load_resume_state
from ._stats import CrawlStats

__all__ = ["Crawler"]

# (URL as queued, (final URL, status, depth, body)): what a fetch hands to the parser.
_Fetched = tuple[str, tuple[str, int, int, bytes]]


class Crawler:
    """Crawl from ``config.seeds``; records go to ``config.out`` (JSONL) and ``on_record``.

    Needs asyncio (aiohttp is asyncio-only): under trio ``run()`` raises ``RuntimeError``.
    Parsing runs in ``runtime`` when given, else in a Runtime of ``config.cpu_workers`` processes
    created for the crawl and stopped after it.

    Raises:
        TypeError: ``config.extract`` cannot be sent to a worker process (not module-level).

    Example::

        stats = await Crawler(CrawlConfig(["http://127.0.0.1:8000/"], out=Path("pages.jsonl"))).run()
        print(stats.summary())
    """

    def __init__(
        self,
        config: CrawlConfig,
        *,
        runtime: Runtime | None = None,
        on_record: Callable[[dict[str, Any]], None] | None = None,
        progress: Progress | None = None,
    ) -> None:
        if config.extract is not None:
            try:
                pickle.dumps(config.extract)
            except Exception as exc:
                raise TypeError(
                    f"extract={config.extract!r} cannot be sent to a worker process ({exc}): "
                    "define it at module level in an importable module"
                ) from exc
        self.config = config
        self.scope = Scope.for_seeds(config.seeds, config.allowed_domains)
        self.stats = CrawlStats()
        self._runtime = runtime
        self._on_record = on_record
        self._progress = progress
        self._frontier = Frontier(config.max_depth)
        self._accepted = 0  # HTML pages sent to parsing or recorded: the page limit counts these
        self._active = 0  # URLs popped and not finished (fetching, waiting to parse, parsing)
        self._changed = anyio.Event()
        self._failed_urls: list[str] = []

    # -- public ------------------------------------------------------------------------------

    async def run(self) -> CrawlStats:
        """Crawl until the frontier is empty or a limit is reached; return the statistics."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "hybridio.crawl needs asyncio (aiohttp is asyncio-only): run it with "
                "asyncio.run() or uvloop, not trio"
            ) from None
        config = self.config
        start = time.monotonic()
        resume = load_resume_state(config.out, config.state_path)
        async with AsyncExitStack() as stack:
            runtime = self._runtime
            if runtime is None:
                runtime = Runtime(cpu_workers=config.cpu_workers)
                await stack.enter_async_context(runtime)
            self._fetcher = await stack.enter_async_context(Fetcher(config))
            self._sink = sink = await stack.enter_async_context(Sink(config.out, config.state_path))
            self._robots = Robots(self._fetch_robots, config.user_agent, obey=config.obey_robots)
            self._runtime_used = runtime
            if resume is not None:
                self.stats.resumed_pages = self._accepted = resume.records
                for url in resume.done:
                    self._frontier.mark_seen(url)
                for url, depth in resume.queued.items():
                    self._frontier.add(url, depth)
            seeds = [(url, 0) for url in map(normalize_url, config.seeds) if url is not None]
            await sink.log_queued([(url, d) for url, d in seeds if self._frontier.add(url, d)])
            async with anyio.create_task_group() as outer:
                if self._progress is not None and self._progress.enabled:
                    outer.start_soon(self._show_progress)
                async with anyio.create_task_group() as work:
                    # Start the workers now, while the first pages are fetched. Awaited, never
                    # cancelled: cancelling a worker that is still starting leaks it (see report).
                    for _ in range(runtime.cpu_workers):
                        work.start_soon(runtime.run_cpu, warm_up)
                    send, receive = anyio.create_memory_object_stream[_Fetched](
                        config.batch_size * 2
                    )
                    work.start_soon(self._batcher, receive, (runtime.cpu_workers or 1) * 2)
                    async with send:
                        for _ in range(config.concurrency):
                            work.start_soon(self._fetch_loop, send.clone())
                await sink.log_done(self._failed_urls)
                outer.cancel_scope.cancel()
        if self._progress is not None:
            self._progress.close()
        self.stats.duration = time.monotonic() - start
        return self.stats

    # -- fetching ----------------------------------------------------------------------------

    def _notify(self) -> None:
        event, self._changed = self._changed, anyio.Event()
        event.set()

    def _limit_reached(self) -> bool:
        limit = self.config.max_pages
        return limit is not None and self._accepted >= limit

    async def _fetch_loop(self, send: MemoryObjectSendStream[_Fetched]) -> None:
        async with send:
            while True:
                while not self._frontier or self._limit_reached():
                    if self._active == 0:
                        self._notify()  # wake the other loops so that they see it too
                        return
                    await self._changed.wait()
                url, depth = self._frontier.pop()
                self._active += 1
                fetched = await self._fetch_page(url, depth)
                if fetched is None:
                    self._active -= 1
                    self._notify()
                else:
                    await send.send(fetched)

    async def _fetch_robots(self, url: str) -> tuple[int, str] | None:
        self.stats.requests += 1
        self.stats.hosts[_host(url)] += 1
        return await self._fetcher.fetch_text(url)

    async def _fetch_page(self, url: str, depth: int) -> _Fetched | None:
        """Fetch ``url``, following redirects; the page to parse, or None (counted why)."""
        stats, chain, current = self.stats, [url], url
        for _ in range(self.config.max_redirects + 1):
            if not await self._robots.allowed(current):
                stats.robots_blocked += 1
                self._failed_urls.append(url)
                return None
            await self._robots.wait_turn(current)
            result = await self._fetcher.fetch(current)
            stats.requests += 1 + result.retries
            stats.hosts[_host(current)] += 1 + result.retries
            stats.retries += result.retries
            stats.bytes += result.nbytes
            if result.outcome == "ok":
                assert result.body is not None
                if self._limit_reached():  # others filled the quota while this one was fetching
                    return None  # not logged as done: a resumed crawl with a higher limit gets it
                self._accepted += 1
                return url, (current, result.status, depth, result.body)
            if result.outcome != "redirect":
                counter = stats.skipped if result.outcome in ("not_html", "too_large") else None
                (counter if counter is not None else stats.errors)[result.outcome] += 1
                self._failed_urls.append(url)
                return None
            target = normalize_url(result.location or "", current)
            if target is None or target not in self.scope:
                stats.skipped["offsite_redirect"] += 1
                self._failed_urls.append(url)
                return None
            if target in chain:
                stats.errors["redirect_loop"] += 1
                self._failed_urls.append(url)
                return None
            if not self._frontier.claim_redirect(target, depth):
                stats.skipped["duplicate_redirect"] += 1
                self._failed_urls.append(url)
                return None
            chain.append(target)
            current = target
        stats.errors["too_many_redirects"] += 1
        self._failed_urls.append(url)
        return None

    # -- parsing and writing -----------------------------------------------------------------

    async def _batcher(self, receive: MemoryObjectReceiveStream[_Fetched], slots: int) -> None:
        limiter = anyio.Semaphore(slots)
        async with receive, anyio.create_task_group() as parsers:
            while True:
                # Take a parse slot first: pages keep arriving while the workers are busy, so
                # the next batch is as large as the backlog allows (up to batch_size).
                await limiter.acquire()
                try:
                    batch = [await receive.receive()]
                except anyio.EndOfStream:
                    limiter.release()
                    return
                while len(batch) < self.config.batch_size:
                    try:
                        batch.append(receive.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                parsers.start_soon(self._parse_and_store, batch, limiter)

    async def _parse_and_store(self, batch: list[_Fetched], limiter: anyio.Semaphore) -> None:
        config, stats, sink = self.config, self.stats, self._sink
        try:
            pages = [page for _, page in batch]
            try:
                parsed = await self._runtime_used.run_cpu(
                    parse_batch, pages, self.scope, config.extract
                )
            except WorkerCrashed:
                stats.errors["worker_crashed"] += len(batch)
                self._accepted -= len(batch)
                self._failed_urls.extend(url for url, _ in batch)
                return
            queued: list[tuple[str, int]] = []
            records: list[dict[str, Any]] = []
            for (_, (_, _, depth, _)), result in zip(batch, parsed, strict=True):
                if result.record is None:
                    stats.errors["extract"] += 1
                    self._accepted -= 1
                else:
                    records.append(result.record)
                queued += [(u, depth + 1) for u in result.links if self._frontier.add(u, depth + 1)]
            # The order of these three writes is what makes resuming safe (see _sink).
            await sink.log_queued(queued)
            await sink.write_records(records)
            stats.pages += len(records)
            if self._on_record is not None:
                for record in records:
                    self._on_record(record)
            done, self._failed_urls = [url for url, _ in batch] + self._failed_urls, []
            await sink.log_done(done)
        finally:
            self._active -= len(batch)
            self._notify()
            limiter.release()

    async def _show_progress(self) -> None:
        assert self._progress is not None
        while True:
            self._progress.update(self.stats, len(self._frontier), self._active)
            await anyio.sleep(0.5)


def _host(url: str) -> str:
    parsed = URL(url)
    return f"{parsed.host}:{parsed.port}"
