"""The crawler: fetch on the event loop, parse in worker processes, write through aiofiles.

Pipeline: ``concurrency`` fetch tasks take URLs from the frontier and put HTML bodies on a small
bounded stream; one batcher task takes as many bodies as are waiting (up to ``batch_size``) per
free parse slot and sends them to a worker process in one ``run_cpu`` call; the results add links
to the frontier and records to the output. Bodies exist only between a fetch and its parse, so
memory is bounded by the concurrency and batch size, not by the size of the site; URLs are
bounded by ``max_queued``.

A batch that takes longer than ``parse_timeout`` is parsed again page by page, each page with
the same time box: a page that alone exceeds it (a pathological document, an extraction that
loops) fails as ``parse_timeout``, and ``run_cpu``'s timeout kills its worker, which the
runtime replaces.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._core._exceptions import AsyncioRequired, OffloadTimeout, WorkerCrashed
from .._runtime._runtime import Runtime
from ._config import CrawlConfig
from ._fetcher import RETRYABLE, Fetcher, FetchResult, retry_delay
from ._frontier import Frontier, Scope, host_port, normalize_url, origin
from ._parse import FetchedPage, ParsedPage, parse_batch, warm_up
from ._progress import Progress
from ._robots import Robots, Verdict
from ._sink import OutputLock, Sink, load_resume_state
from ._sitemaps import sitemap_urls
from ._stats import CrawlStats

__all__ = ["TRANSIENT_ERRORS", "Crawler"]

# (URL as queued, page to parse): what a fetch hands to the parser.
_Fetched = tuple[str, FetchedPage]

#: Failures that may go away: not logged as done, so a resumed crawl fetches these URLs again.
TRANSIENT_ERRORS = frozenset(RETRYABLE | {"robots_unreachable", "worker_crashed"})

#: The seed may be parsed on the event loop while the workers start (see ``_parse_and_store``),
#: when it is at most this large: parsing is superlinear on some documents (deep nesting), and
#: the event loop has no time box.
_INLINE_PARSE_BYTES = 64 * 1024


class Crawler:
    """Crawl from ``config.seeds``; records go to ``config.out`` (JSONL) and ``on_record``.

    Needs asyncio (aiohttp is asyncio-only): under trio ``run()`` raises ``RuntimeError``.
    Parsing runs in ``runtime`` when given, else in a Runtime of ``config.cpu_workers`` processes
    created for the crawl and stopped after it.

    Raises:
        TypeError: ``config.extract`` cannot be sent to a worker process (not module-level).

    ``run()`` raises ``CrawlFileError`` (an ``OSError``) when the output or the state log cannot
    be used (another crawl is writing them, a bad path, a damaged state log), and
    ``FileExistsError`` when the output has records but no state log.

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
        self._frontier = Frontier(config.max_depth, config.max_queued)
        self._accepted = 0  # HTML pages sent to parsing or recorded: the page limit counts these
        self._changed = anyio.Event()
        self._finished: list[str] = []  # given up on for good (not parsed): logged as done
        self._workers_ready = anyio.Event()  # set once a worker process has started
        self._pool = _SharedOrAlone()

    # -- public ------------------------------------------------------------------------------

    async def run(self) -> CrawlStats:
        """Crawl until the frontier is empty or a limit is reached; return the statistics."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise AsyncioRequired(
                "hybridio.crawl needs asyncio (aiohttp is asyncio-only): run it with "
                "asyncio.run() or uvloop, not trio"
            ) from None
        config = self.config
        start = time.monotonic()
        async with AsyncExitStack() as stack:
            lock = OutputLock(config.out or config.state_path)
            await anyio.to_thread.run_sync(lock.acquire)
            stack.callback(lock.release)
            # Reading a long resume log takes a while: not on the event loop.
            resume = await anyio.to_thread.run_sync(
                load_resume_state, config.out, config.state_path
            )
            runtime = self._runtime
            if runtime is None:
                runtime = Runtime(cpu_workers=config.cpu_workers)
                await stack.enter_async_context(runtime)
            self._fetcher = await stack.enter_async_context(Fetcher(config))
            sink = Sink(config.out, config.state_path, resume)
            self._sink = await stack.enter_async_context(sink)
            self._robots = Robots(
                self._fetch_robots,
                config.user_agent,
                obey=config.obey_robots,
                max_delay=config.max_crawl_delay,
            )
            self._runtime_used = runtime
            if resume is not None:
                self.stats.resumed_pages = self._accepted = resume.records
                for url in resume.done:
                    self._frontier.mark_seen(url)
                for url, depth in resume.queued.items():
                    self._frontier.add(url, depth)
            seeds = [(url, 0) for url in map(normalize_url, config.seeds) if url is not None]
            if config.sitemaps:
                seeds += [(url, 0) for url in await self._sitemap_seeds(seeds)]
            await sink.log_queued([(url, d) for url, d in seeds if self._frontier.add(url, d)])
            async with anyio.create_task_group() as outer:
                if self._progress is not None and self._progress.enabled:
                    outer.start_soon(self._show_progress)
                async with anyio.create_task_group() as work:
                    # Start the workers now, while the first pages are fetched. Awaited, never
                    # cancelled: cancelling a worker that is still starting leaks it (see report).
                    for _ in range(runtime.cpu_workers):
                        work.start_soon(self._warm_up, runtime)
                    send, receive = anyio.create_memory_object_stream[_Fetched](
                        config.batch_size * 2
                    )
                    work.start_soon(self._batcher, receive, (runtime.cpu_workers or 1) * 2)
                    async with send:
                        for _ in range(config.concurrency):
                            work.start_soon(self._fetch_loop, send.clone())
                await sink.commit([], self._finished)
                self._finished = []
                outer.cancel_scope.cancel()
        if self._progress is not None:
            self._progress.close()
        self._update_stats()
        self.stats.duration = time.monotonic() - start
        return self.stats

    def _update_stats(self) -> None:
        """Copy the counters kept elsewhere (frontier, robots) into the statistics."""
        self.stats.links_refused = self._frontier.refused
        self.stats.crawl_delay_capped = dict(self._robots.capped)

    # -- fetching ----------------------------------------------------------------------------

    def _notify(self) -> None:
        event, self._changed = self._changed, anyio.Event()
        event.set()

    def _limit_reached(self) -> bool:
        limit = self.config.max_pages
        return limit is not None and self._accepted >= limit

    def _fail(self, url: str, kind: str, detail: str) -> None:
        """``url`` gives no record because of an error: counted, named, maybe retried later."""
        self.stats.errors[kind] += 1
        self.stats.failed[url] = f"{kind}: {detail}" if detail else kind
        if kind in TRANSIENT_ERRORS:
            self.stats.retry_on_resume += 1
        else:
            self._finished.append(url)

    def _skip(self, url: str, kind: str) -> None:
        """``url`` gives no record on purpose (not HTML, too large, ...): done for good."""
        self.stats.skipped[kind] += 1
        self._finished.append(url)

    async def _fetch_loop(self, send: MemoryObjectSendStream[_Fetched]) -> None:
        frontier = self._frontier
        async with send:
            while True:
                item = None if self._limit_reached() else frontier.pop()
                if item is None:
                    if frontier.in_flight == 0 and (not frontier or self._limit_reached()):
                        self._notify()  # wake the other loops so that they see it too
                        return
                    await self._changed.wait()
                    continue
                url, depth = item
                fetched = await self._fetch_page(url, depth)
                frontier.fetched(depth, to_parse=fetched is not None)
                self._notify()
                if fetched is not None:
                    await send.send(fetched)

    async def _retrying(
        self, fetch: Callable[[str], Awaitable[FetchResult]], url: str, *, paced: bool = True
    ) -> FetchResult:
        """``fetch(url)``, retried on transient failures: ``Retry-After`` or backoff with jitter.

        A ``Retry-After`` pauses every request to the host (``paced``) or this one; one longer
        than ``max_retry_after`` ends the attempts.
        """
        config, stats = self.config, self.stats
        attempt = 0
        while True:
            if paced:
                await self._robots.wait_turn(url)
            result = await fetch(url)
            stats.requests += 1
            stats.hosts[host_port(url)] += 1
            stats.bytes += result.nbytes
            if result.outcome not in RETRYABLE or attempt >= config.retries:
                return result
            wait = result.retry_after
            if wait is not None and wait > config.max_retry_after:
                result.detail += f" (Retry-After {wait:g} s is over max_retry_after)"
                return result
            if wait is not None and paced:
                self._robots.hold(url, wait)  # the next wait_turn sleeps until then
            else:
                await anyio.sleep(retry_delay(config.backoff, attempt) if wait is None else wait)
            attempt += 1
            stats.retries += 1

    async def _sitemap_seeds(self, seeds: list[tuple[str, int]]) -> list[str]:
        """In-scope page URLs of the sitemaps of the seeds' origins."""
        starts: list[str] = []
        for site in dict.fromkeys(origin(url) for url, _ in seeds):
            listed = [normalize_url(url, site + "/") for url in await self._robots.sitemaps(site)]
            starts += [url for url in listed if url is not None] or [site + "/sitemap.xml"]

        async def fetch(url: str) -> FetchResult:
            return await self._retrying(
                partial(self._fetcher.fetch_text, limit=self.config.max_bytes), url, paced=False
            )

        return [url for url in await sitemap_urls(fetch, starts) if url in self.scope]

    async def _fetch_robots(self, url: str) -> FetchResult:
        return await self._retrying(self._fetcher.fetch_text, url, paced=False)

    async def _fetch_page(self, url: str, depth: int) -> _Fetched | None:
        """Fetch ``url``, following redirects; the page to parse, or None (counted why)."""
        stats, chain, current = self.stats, [url], url
        for _ in range(self.config.max_redirects + 1):
            verdict = await self._robots.verdict(current)
            if verdict is Verdict.DISALLOWED:
                stats.robots_blocked += 1
                self._finished.append(url)
                return None
            if verdict is Verdict.UNREACHABLE:
                reason = self._robots.unreachable_reason(current)
                self._fail(url, "robots_unreachable", f"{origin(current)}/robots.txt: {reason}")
                return None
            result = await self._retrying(self._fetcher.fetch, current)
            if result.outcome == "ok":
                assert result.body is not None
                if self._limit_reached():  # others filled the quota while this one was fetching
                    return None  # not logged as done: a resumed crawl with a higher limit gets it
                self._accepted += 1
                page = (current, result.status, depth, result.body, result.content_type)
                return url, page
            if result.outcome in ("not_html", "too_large"):
                self._skip(url, result.outcome)
                return None
            if result.outcome != "redirect":
                self._fail(url, result.outcome, result.detail)
                return None
            target = normalize_url(result.location or "", current)
            if target is None or target not in self.scope:
                self._skip(url, "offsite_redirect")
                return None
            if target in chain:
                self._fail(url, "redirect_loop", " -> ".join([*chain, target]))
                return None
            if not self._frontier.claim_redirect(target, depth):
                self._skip(url, "duplicate_redirect")
                return None
            chain.append(target)
            current = target
        self._fail(url, "too_many_redirects", f"more than {self.config.max_redirects}")
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

    async def _warm_up(self, runtime: Runtime) -> None:
        await runtime.run_cpu(warm_up)
        self._workers_ready.set()

    async def _parse(self, pages: list[FetchedPage]) -> list[ParsedPage]:
        """Parse ``pages`` in a worker, each page within ``parse_timeout``.

        A batch that times out or loses its worker is parsed again page by page, alone on the
        pool (see ``_parse_alone``), so that only the page at fault fails.
        """
        config = self.config
        try:
            async with self._pool.shared():
                return await self._runtime_used.run_cpu(
                    parse_batch,
                    pages,
                    self.scope,
                    config.extract,
                    config.max_links_per_page,
                    timeout=config.parse_timeout,
                )
        except (OffloadTimeout, WorkerCrashed):
            pass
        # Its time included the wait behind other calls (a looping page in another batch, say):
        # that is no proof against any page of it.
        async with self._pool.exclusive():
            return [await self._parse_alone(page) for page in pages]

    async def _parse_alone(self, page: FetchedPage) -> ParsedPage:
        """Parse one page with nothing else on the pool: its time box measures the page only.

        A page over ``parse_timeout`` fails as ``parse_timeout``; ``run_cpu`` kills its worker,
        which the runtime replaces.
        """
        runtime, config, url = self._runtime_used, self.config, page[0]
        try:
            # Wait (without a time box) until a worker is started and idle: a replacement for a
            # killed one may still be starting, and that is no time of the page's.
            await runtime.run_cpu(warm_up)
            [parsed] = await runtime.run_cpu(
                parse_batch,
                [page],
                self.scope,
                config.extract,
                config.max_links_per_page,
                timeout=config.parse_timeout,
            )
        except OffloadTimeout:
            detail = f"parsing took over {config.parse_timeout:g} s; its worker was killed"
            return ParsedPage(url, [], None, f"parse_timeout: {detail}")
        except WorkerCrashed as exc:
            return ParsedPage(url, [], None, f"worker_crashed: {exc}")
        return parsed

    async def _parse_and_store(self, batch: list[_Fetched], limiter: anyio.Semaphore) -> None:
        config, stats, sink, frontier = self.config, self.stats, self._sink, self._frontier
        try:
            pages = [page for _, page in batch]
            if (
                config.extract is None
                and not self._workers_ready.is_set()
                and frontier.in_flight == len(batch)
                and all(len(body) <= _INLINE_PARSE_BYTES for _, _, _, body, _ in pages)
            ):
                # Nothing else is in flight (the seed, which every other page waits for):
                # rather than wait for a worker process to start, parse here, where it
                # delays no other request. Only the default record of a small page: the
                # user's function, and large pages, always run in a worker (time-boxed).
                parsed = parse_batch(pages, self.scope, None, config.max_links_per_page)
            else:
                parsed = await self._parse(pages)
            queued: list[tuple[str, int]] = []
            lines: list[bytes] = []
            recorded: list[str] = []
            for (url, (_, _, depth, _, _)), result in zip(batch, parsed, strict=True):
                stats.links_dropped += result.links_dropped
                if result.line is None:
                    self._accepted -= 1
                    self._fail(url, result.error_kind, result.error_detail)
                else:
                    lines.append(result.line)
                    recorded.append(url)
                queued += [(u, depth + 1) for u in result.links if frontier.add(u, depth + 1)]
            # A lowered depth is logged again: a resume takes each URL's smallest depth.
            queued += frontier.take_lowered()
            # The order of these writes is what makes resuming safe (see _sink): the links
            # first, then the records with the commit naming their pages (and the URLs given
            # up on for good since the last commit; transient failures are not named).
            await sink.log_queued(queued)
            done, self._finished = recorded + self._finished, []
            # Shielded: a cancelled crawl (Ctrl-C) still writes the commit of records it wrote,
            # so the pages it reports as saved are exactly those a resume keeps.
            with anyio.CancelScope(shield=True):
                await sink.commit(lines, done)
                stats.pages += len(lines)
            if self._on_record is not None:
                for line in lines:
                    self._on_record(json.loads(line))
        finally:
            for _, (_, _, depth, _, _) in batch:
                frontier.parsed(depth)
            self._notify()
            limiter.release()

    async def _show_progress(self) -> None:
        assert self._progress is not None
        while True:
            self._update_stats()
            self._progress.update(self.stats, len(self._frontier), self._frontier.in_flight)
            await anyio.sleep(0.5)


class _SharedOrAlone:
    """A readers-writer gate on the parse pool: calls share it, or one caller has it alone."""

    def __init__(self) -> None:
        self._alone = anyio.Lock()  # held by the one caller alone; shared callers queue behind
        self._sharing = 0
        self._idle = anyio.Event()
        self._idle.set()

    @asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        async with self._alone:  # wait while someone has the pool alone
            if not self._sharing:
                self._idle = anyio.Event()
            self._sharing += 1
        try:
            yield
        finally:
            self._sharing -= 1
            if not self._sharing:
                self._idle.set()

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._alone:
            while self._sharing:
                await self._idle.wait()
            yield
