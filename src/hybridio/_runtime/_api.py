"""The module-level one-liners and the ``@cpu_bound`` / ``@blocking`` decorators."""

from __future__ import annotations

import functools
import types
from collections.abc import AsyncIterable, Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, TypeVarTuple, overload

from ._default import get_runtime
from ._runtime import Kind, _refuse_coroutine_function, check_map_arguments

if TYPE_CHECKING:
    from .._backends._dispatch import Dispatcher
    from .._backends._map import OffloadMap

__all__ = [
    "OffloadedFunction",
    "blocking",
    "cpu_bound",
    "map_cpu",
    "offload",
    "run",
    "run_blocking",
    "run_cpu",
]

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")
PosArgsT = TypeVarTuple("PosArgsT")


@overload
async def run(
    fn: OffloadedFunction[..., T],
    *args: Any,
    kind: Kind | None = None,
    timeout: float | None = None,
) -> T: ...


@overload
async def run(
    fn: Callable[[*PosArgsT], T],
    *args: *PosArgsT,
    kind: Kind | None = None,
    timeout: float | None = None,
) -> T: ...


async def run(  # type: ignore[misc]  # mypy cannot check overloads over TypeVarTuple
    fn: Callable[..., Any], *args: Any, kind: Kind | None = None, timeout: float | None = None
) -> Any:
    """Run ``fn(*args)`` inline, in a thread or in a process, as ``kind`` says.

    See ``Runtime.run``; this uses the current runtime (the enclosing ``async with Runtime()``, or
    the event loop's default one). A ``@cpu_bound`` / ``@blocking`` function runs where it was
    declared, and its result type is the function's own.
    """
    runtime = await get_runtime()
    backend, timeout = runtime._route(fn, kind, timeout)
    return await backend.call(fn, args, timeout=timeout)


@overload
async def run_cpu(
    fn: OffloadedFunction[..., T],
    *args: Any,
    timeout: float | None = None,
) -> T: ...


@overload
async def run_cpu(
    fn: Callable[[*PosArgsT], T], *args: *PosArgsT, timeout: float | None = None
) -> T: ...


async def run_cpu(  # type: ignore[misc]  # mypy cannot check overloads over TypeVarTuple
    fn: Callable[..., Any], *args: Any, timeout: float | None = None
) -> Any:
    """Run ``fn(*args)`` in a worker process (pure-Python CPU-bound work).

    Example::

        digest = await hybridio.run_cpu(crunch, data, timeout=5)
    """
    return await (await get_runtime()).run_cpu(fn, *args, timeout=timeout)


@overload
async def run_blocking(
    fn: OffloadedFunction[..., T],
    *args: Any,
    timeout: float | None = None,
) -> T: ...


@overload
async def run_blocking(
    fn: Callable[[*PosArgsT], T], *args: *PosArgsT, timeout: float | None = None
) -> T: ...


async def run_blocking(  # type: ignore[misc]  # mypy cannot check overloads over TypeVarTuple
    fn: Callable[..., Any], *args: Any, timeout: float | None = None
) -> Any:
    """Run ``fn(*args)`` in a worker thread (blocking calls, C code that releases the GIL).

    A thread cannot be killed: on timeout the caller gets ``OffloadTimeout`` at once, and the
    function can see ``hybridio.cancel_requested()`` turn true.
    """
    return await (await get_runtime()).run_blocking(fn, *args, timeout=timeout)


@overload
def map_cpu(
    fn: OffloadedFunction[[T], R],
    items: Iterable[T] | AsyncIterable[T],
    *,
    chunksize: int | None = None,
    max_in_flight: int | None = None,
    timeout: float | None = None,
) -> OffloadMap[T, R]: ...


@overload
def map_cpu(
    fn: Callable[[T], R],
    items: Iterable[T] | AsyncIterable[T],
    *,
    chunksize: int | None = None,
    max_in_flight: int | None = None,
    timeout: float | None = None,
) -> OffloadMap[T, R]: ...


def map_cpu(
    fn: Callable[[Any], Any],
    items: Iterable[Any] | AsyncIterable[Any],
    *,
    chunksize: int | None = None,
    max_in_flight: int | None = None,
    timeout: float | None = None,
) -> OffloadMap[Any, Any]:
    """Iterate ``fn(item)`` for each item, in order, computed in worker processes.

    Chunked (sized from the measured cost when ``chunksize`` is None) and memory-bounded: items are
    pulled lazily, so a generator of a million items streams. Breaking out of the loop drops the
    queued chunks; use ``async with`` to make that happen at once rather than when the iterator is
    garbage collected. See ``Runtime.map`` for other kinds.

    Example::

        async with hybridio.map_cpu(count_words, pages) as counts:
            async for n in counts:
                total += n
    """
    from .._backends._map import OffloadMap

    _refuse_coroutine_function(fn)
    check_map_arguments(fn, chunksize, max_in_flight, timeout)

    async def resolve() -> tuple[Dispatcher[Any], float | None]:
        return await (await get_runtime())._map_target("cpu")

    return OffloadMap(
        resolve, fn, items, chunksize=chunksize, max_in_flight=max_in_flight, timeout=timeout
    )


class OffloadedFunction(Generic[P, T]):
    """A function declared CPU-bound, blocking or offloaded: calling it runs it there; await it.

    Made by ``@hybridio.cpu_bound``, ``@hybridio.blocking`` and ``@hybridio.offload``. It keeps the function's
    ``__name__``, ``__doc__`` and ``__wrapped__``, pickles by reference like the function (workers
    run the undecorated one), and can be passed to ``run``, ``run_cpu``, ``map_cpu``... which then
    type-check its arguments and return its result type.
    """

    __wrapped__: Callable[P, T]
    __hybridio_kind__: Kind
    __name__: str
    __qualname__: str

    def __init__(self, fn: Callable[P, T], kind: Kind) -> None:
        functools.update_wrapper(self, fn)
        self.__hybridio_kind__ = kind

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, T]:
        target: Callable[..., Any] = functools.partial(self, **kwargs) if kwargs else self
        return run(target, *args, kind=self.__hybridio_kind__)

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        # Decorating a method: bind it like a function would be.
        return self if instance is None else types.MethodType(self, instance)

    def __reduce__(self) -> str:
        # By reference, as the plain function would be: the module binds this object by name.
        return self.__qualname__

    def __repr__(self) -> str:
        return f"<{_NAMES[self.__hybridio_kind__]} {self.__module__}.{self.__qualname__}>"


_NAMES: dict[str, str] = {"cpu": "cpu_bound", "blocking": "blocking", "auto": "offload"}


def _declare(fn: Callable[P, T], kind: Kind) -> OffloadedFunction[P, T]:
    if not callable(fn):
        raise TypeError(f"@{_NAMES[kind]} decorates a function, got {fn!r}")
    return OffloadedFunction(fn, kind)


def cpu_bound(fn: Callable[P, T]) -> OffloadedFunction[P, T]:
    """Declare a function CPU-bound: calling it returns an awaitable run in a worker process.

    The decorated function stays picklable (the worker runs the undecorated one) and can also be
    passed to ``run``, ``run_cpu`` or ``map_cpu``.

    Example::

        @hybridio.cpu_bound
        def parse(page: str) -> Record: ...

        record = await parse(page)
    """
    return _declare(fn, "cpu")


def blocking(fn: Callable[P, T]) -> OffloadedFunction[P, T]:
    """Declare a function blocking: calling it returns an awaitable run in a worker thread."""
    return _declare(fn, "blocking")


def offload(fn: Callable[P, T]) -> OffloadedFunction[P, T]:
    """Let hybridio choose where a function runs: calling it returns an awaitable (``kind="auto"``).

    Each call goes inline, to a thread or to a process, where this function measured best (see
    ``Runtime.stats().auto`` for the choice and its evidence).

    Example::

        @hybridio.offload
        def digest(data: bytes) -> str: ...

        hex_digest = await digest(data)
    """
    return _declare(fn, "auto")
