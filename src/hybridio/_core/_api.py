"""The module-level one-liners and the ``@cpu_bound`` / ``@blocking`` decorators."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import Any, ParamSpec, TypeVar

from .._backends._process import ProcessPool
from ._default import get_runtime
from ._map import CpuMap
from ._runtime import Kind

__all__ = ["blocking", "cpu_bound", "map_cpu", "run", "run_blocking", "run_cpu"]

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")


async def run(
    fn: Callable[..., T], *args: Any, kind: Kind | None = None, timeout: float | None = None
) -> T:
    """Run ``fn(*args)`` inline, in a thread or in a process, as ``kind`` says.

    See ``Runtime.run``; this uses the current runtime (the enclosing ``async with Runtime()``, or
    the event loop's default one).
    """
    return await (await get_runtime()).run(fn, *args, kind=kind, timeout=timeout)


async def run_cpu(fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
    """Run ``fn(*args)`` in a worker process (pure-Python CPU-bound work).

    Example::

        digest = await hybridio.run_cpu(crunch, data, timeout=5)
    """
    return await (await get_runtime()).run_cpu(fn, *args, timeout=timeout)


async def run_blocking(fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
    """Run ``fn(*args)`` in a worker thread (blocking calls, C code that releases the GIL).

    A thread cannot be killed: on timeout the caller gets ``OffloadTimeout`` at once, and the
    function can see ``hybridio.cancel_requested()`` turn true.
    """
    return await (await get_runtime()).run_blocking(fn, *args, timeout=timeout)


def map_cpu(
    fn: Callable[[T], R],
    items: Iterable[T] | AsyncIterable[T],
    *,
    chunksize: int | None = None,
    max_in_flight: int | None = None,
    timeout: float | None = None,
) -> CpuMap[T, R]:
    """Iterate ``fn(item)`` for each item, in order, computed in worker processes.

    Chunked (sized from the measured cost when ``chunksize`` is None) and memory-bounded: items are
    pulled lazily, so a generator of a million items streams. Breaking out of the loop drops the
    queued chunks; use ``async with`` to make that happen at once rather than when the iterator is
    garbage collected. See ``Runtime.map_cpu``.

    Example::

        async with hybridio.map_cpu(count_words, pages) as counts:
            async for n in counts:
                total += n
    """

    async def resolve() -> tuple[ProcessPool, float | None]:
        return await (await get_runtime())._map_pool()

    return CpuMap(
        resolve, fn, items, chunksize=chunksize, max_in_flight=max_in_flight, timeout=timeout
    )


def _declare(kind: Kind) -> Callable[[Callable[P, T]], Callable[P, Awaitable[T]]]:
    def decorator(fn: Callable[P, T]) -> Callable[P, Awaitable[T]]:
        if not callable(fn):
            raise TypeError(f"@{_NAMES[kind]} decorates a function, got {fn!r}")

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            target: Callable[..., Any] = functools.partial(wrapper, **kwargs) if kwargs else wrapper
            result: T = await run(target, *args, kind=kind)
            return result

        # The wrapper pickles by reference (it has the function's name in its module); the worker
        # process and the thread backend call the plain function behind it.
        wrapper.__hybridio_target__ = fn  # type: ignore[attr-defined]
        wrapper.__hybridio_kind__ = kind  # type: ignore[attr-defined]
        return wrapper

    return decorator


_NAMES: dict[str, str] = {"cpu": "cpu_bound", "blocking": "blocking"}

cpu_bound = _declare("cpu")
cpu_bound.__doc__ = """Declare a function CPU-bound: calling it returns an awaitable run in a worker process.

The decorated function stays picklable (the worker runs the undecorated one) and can also be
passed to ``run``, ``run_cpu`` or ``map_cpu``.

Example::

    @hybridio.cpu_bound
    def parse(page: str) -> Record: ...

    record = await parse(page)
"""
blocking = _declare("blocking")
blocking.__doc__ = (
    """Declare a function blocking: calling it returns an awaitable run in a worker thread."""
)
