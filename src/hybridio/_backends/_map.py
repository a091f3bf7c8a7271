"""``Runtime.map`` / ``map_cpu``: an ordered, chunked, memory-bounded map over any dispatcher."""

from __future__ import annotations

from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._core._exceptions import PartialChunk
from ._call import DONE, Call

if TYPE_CHECKING:
    from ._dispatch import Dispatcher

__all__ = ["OffloadMap"]

T = TypeVar("T")
R = TypeVar("R")

#: A chunk should keep a worker busy for about this long: long enough to amortise a round trip
#: (~0.1-0.3 ms), short enough that results stream and the pool stays balanced.
_CHUNK_SECONDS = 0.02
_MAX_CHUNK = 8192


class OffloadMap(AsyncIterator[R], Generic[T, R]):
    """Async iterator over ``fn(item)`` for each item, in input order (``Runtime.map``, ``map_cpu``).

    Items are pulled from the input lazily and sent in chunks; at most ``max_in_flight`` chunks are
    in flight, so memory stays bounded for any input size, including infinite generators. When
    ``chunksize`` is None it is chosen from the measured per-item cost (a chunk takes about 20 ms).
    Stop early with ``break`` inside ``async with`` (or call ``aclose()``): queued chunks are
    dropped, running ones finish in the workers and are discarded. The first exception raised by
    ``fn`` is raised at its position, after every result before it, and ends the map, as with
    ``concurrent.futures.Executor.map``. ``timeout`` bounds each wait for the next chunk of
    results (not the whole map).
    """

    def __init__(
        self,
        pool: Dispatcher[Any] | Callable[[], Awaitable[tuple[Dispatcher[Any], float | None]]],
        fn: Callable[[T], R],
        items: Iterable[T] | AsyncIterable[T],
        *,
        chunksize: int | None,
        max_in_flight: int | None,
        timeout: float | None,
    ) -> None:
        if chunksize is not None and (not isinstance(chunksize, int) or chunksize < 1):
            raise ValueError(f"chunksize must be a positive integer or None, got {chunksize!r}")
        if max_in_flight is not None and (not isinstance(max_in_flight, int) or max_in_flight < 1):
            raise ValueError(f"max_in_flight must be an integer >= 1, got {max_in_flight!r}")
        # The pool may be resolved on first use: the module-level map_cpu finds its runtime then.
        self._pool: Dispatcher[Any] | None = None
        self._resolve: Callable[[], Awaitable[tuple[Dispatcher[Any], float | None]]] | None = None
        if callable(pool):
            self._resolve = pool
        else:
            self._pool = pool
        self._fn = fn
        self._sync: Iterator[T] | None = None
        self._async: AsyncIterator[T] | None = None
        if isinstance(items, AsyncIterable):
            self._async = aiter(items)
        elif isinstance(items, Iterable):
            self._sync = iter(items)
        else:
            raise TypeError(f"map_cpu needs an iterable or async iterable, got {type(items)!r}")
        self._fixed_chunk = chunksize
        self._next_chunk = chunksize or 1
        self._per_item: float | None = None
        self._max_in_flight = max_in_flight or 0
        self._timeout = timeout
        self._in_flight: deque[tuple[Call, int]] = deque()
        self._results: deque[R] = deque()
        self._error: BaseException | None = None  # raised once the results before it are out
        self._exhausted = False
        self._closed = False
        self.items_sent = 0
        self.max_items_in_flight = 0

    def __aiter__(self) -> OffloadMap[T, R]:
        return self

    async def __aenter__(self) -> OffloadMap[T, R]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop: drop queued chunks, discard running ones. Idempotent."""
        self._cancel()

    def __del__(self) -> None:
        # A consumer that broke out of `async for` without `async with`/aclose(): drop the rest.
        try:
            self._cancel()
        except Exception:  # noqa: BLE001, S110  # pragma: no cover - interpreter shutdown
            pass

    def _cancel(self) -> None:
        self._stop()
        self._results.clear()
        self._error = None

    def _stop(self) -> None:
        """Send nothing more and drop the chunks in flight (results already here are kept)."""
        if self._closed:
            return
        self._closed = True
        self._exhausted = True
        while self._in_flight:
            call, _ = self._in_flight.popleft()
            if call.state != DONE and self._pool is not None:
                self._pool.abandon(call, timed_out=False, kill=False)

    async def __anext__(self) -> R:
        if self._results:
            return self._results.popleft()
        if self._error is not None:  # raised at its position, after the results before it
            error, self._error = self._error, None
            raise error
        if self._closed:
            raise StopAsyncIteration
        if self._pool is None:
            assert self._resolve is not None
            self._pool, default_timeout = await self._resolve()
            if self._timeout is None:
                self._timeout = default_timeout
        pool = self._pool
        if not self._max_in_flight:
            self._max_in_flight = 2 * pool.workers
        try:
            await self._fill()
            if not self._in_flight:
                self._closed = True
                raise StopAsyncIteration
            call, size = self._in_flight[0]
            try:
                chunk: list[R] = await pool.wait(call, self._timeout)
            except PartialChunk as partial:
                # An item raised: deliver the results computed before it, then its exception.
                self._in_flight.popleft()
                self._stop()
                self._results.extend(partial.results)
                self._error = partial.error
                return await self.__anext__()
            call.value = None  # the results are the map's now: hold them in one place only
            self._in_flight.popleft()
            self._learn(call.run_time, size)
            self._results.extend(chunk)
            await self._fill()  # keep the workers busy while the consumer handles this chunk
        except BaseException:
            self._cancel()
            raise
        return self._results.popleft()

    def _learn(self, run_time: float, size: int) -> None:
        if self._fixed_chunk is not None or size == 0:
            return
        per_item = run_time / size
        self._per_item = (
            per_item if self._per_item is None else 0.5 * self._per_item + 0.5 * per_item
        )
        ideal = int(_CHUNK_SECONDS / max(self._per_item, 1e-7))
        # Grow at most 8x per chunk so that one fast outlier does not make a huge slow chunk.
        self._next_chunk = max(1, min(ideal, self._next_chunk * 8, _MAX_CHUNK))

    async def _fill(self) -> None:
        while not self._exhausted and len(self._in_flight) < self._max_in_flight:
            size = self._next_chunk
            chunk = await self._take(size)
            if not chunk:
                self._exhausted = True
                break
            if self._fixed_chunk is None and self._per_item is None:
                self._next_chunk = min(size * 2, _MAX_CHUNK)  # ramp up until measured
            assert self._pool is not None
            name, payload = self._pool.encode(self._fn, (chunk,), mapped=True)
            call = self._pool.submit(name, payload)
            self._in_flight.append((call, len(chunk)))
            self.items_sent += len(chunk)
            in_flight = sum(n for _, n in self._in_flight)
            self.max_items_in_flight = max(self.max_items_in_flight, in_flight)

    async def _take(self, size: int) -> list[T]:
        chunk: list[T] = []
        if self._sync is not None:
            for item in self._sync:
                chunk.append(item)
                if len(chunk) >= size:
                    break
        else:
            assert self._async is not None
            async for item in self._async:
                chunk.append(item)
                if len(chunk) >= size:
                    break
        return chunk
