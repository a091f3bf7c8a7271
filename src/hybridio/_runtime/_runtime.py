"""The Runtime: one place that owns the backends, their limits and their metrics."""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import sys
import threading
import types
from asyncio.events import _get_running_loop
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from importlib import import_module
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar, TypeVarTuple, cast, overload

import anyio
from anyio.abc import TaskGroup

from .._core._exceptions import RuntimeClosed
from .._core._metrics import KindCounters, RuntimeStats
from .._core._settings import Settings
from .._core._signal import background_context, loop_callback
from .._core._validate import (
    check_bool,
    check_count,
    check_optional_count,
    check_positive,
    check_timeout,
)
from ._gil import CPU_BACKENDS, CpuBackend, cpu_runs_on_threads, gil_enabled
from ._registry import BACKENDS, create_backend

if TYPE_CHECKING:
    from .._backends._base import Backend
    from .._backends._dispatch import Dispatcher
    from .._backends._map import OffloadMap
    from ._api import OffloadedFunction
    from ._auto import AutoPolicy, AutoRouter

__all__ = ["KINDS", "Kind", "Runtime", "current_runtime", "declared_kind", "use_runtime"]

T = TypeVar("T")
R = TypeVar("R")
PosArgsT = TypeVarTuple("PosArgsT")

Kind = Literal["inline", "blocking", "cpu", "interpreter", "auto"]
KINDS: tuple[Kind, ...] = ("inline", "blocking", "cpu", "interpreter", "auto")

_current: ContextVar[Runtime | None] = ContextVar("hybridio_current_runtime", default=None)


_FunctionType = types.FunctionType
_CO_COROUTINE = inspect.CO_COROUTINE


def declared_kind(fn: Callable[..., Any]) -> Kind | None:
    """The kind a ``@cpu_bound`` / ``@blocking`` decorator declared for ``fn``, if any."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if type(fn) is _FunctionType:  # a missing attribute costs an exception: look directly
        return cast(Kind | None, fn.__dict__.get("__hybridio_kind__"))
    return cast(Kind | None, getattr(fn, "__hybridio_kind__", None))


def _is_coroutine_function(fn: Callable[..., Any]) -> bool:
    # inspect.iscoroutinefunction costs microseconds per call; a plain function answers from its
    # code flags directly (this runs on every call).
    if type(fn) is _FunctionType:
        return bool(fn.__code__.co_flags & _CO_COROUTINE)
    return inspect.iscoroutinefunction(fn)


def _refuse_coroutine_function(fn: Callable[..., Any]) -> None:
    if _is_coroutine_function(fn) and declared_kind(fn) is None:
        raise TypeError(
            f"{fn!r} is a coroutine function: await it on the event loop directly; "
            "hybridio offloads regular (synchronous) functions"
        )


class Runtime:
    """Owns the worker processes, worker threads, limits and metrics of one event loop.

    Use it as an async context manager; leaving it stops the workers (no process is left behind).
    Inside ``async with Runtime(...)`` the module-level functions (``hybridio.run_cpu`` ...) use it;
    elsewhere they use a default runtime created lazily for each event loop. Each kind's backend
    is loaded and started on its first call, so a runtime that only uses threads never imports
    the process machinery.

    Args:
        cpu_workers: worker processes (default: the number of CPUs).
        threads: worker threads for blocking calls (default: ``min(32, cpus + 4)``, like
            ``ThreadPoolExecutor``).
        max_queue: calls that may wait per kind beyond those running; one more raises
            ``Overloaded`` at once.
        timeout: default per-call timeout in seconds (None: no deadline).
        initializer: called with ``initargs`` in each worker process when it starts (warm imports,
            per-worker state). If it raises, the pool backs off and, after a few failures in a
            row, fails calls at once with ``WorkerStartFailed`` until a retry succeeds.
        max_tasks_per_worker: replace a worker process after it ran this many calls.
        max_worker_rss: replace a worker process when its resident memory exceeds this many bytes.
        batching: let an idle worker take several queued tiny calls in one round trip.
        cluster: run kind ``"cpu"`` on a Dask ``distributed`` cluster instead of local processes:
            its scheduler's address (``"tcp://host:8786"``), a ``distributed.Client`` or a Dask
            cluster object (default: the ``HYBRIDIO_CLUSTER`` environment variable, if set).
            ``cpu_workers`` is then how many batches may be on the cluster at once (default: 64;
            Dask queues what its workers cannot run yet). Needs ``hybridio[cluster]``.
        interpreters: subinterpreters for ``kind="interpreter"`` (Python 3.13+; default: the
            number of CPUs). Each has its own GIL; see docs/core.md.
        cpu_backend: where ``kind="cpu"`` runs: ``"process"`` (worker processes), ``"thread"``
            (worker threads: no pickling, parallel only where the GIL is off) or ``"auto"``
            (the default: threads on a free-threaded CPython with the GIL off, else processes).
        default_kind: where ``run`` sends a function that neither the call nor a decorator
            gives a kind; ``"auto"`` measures each function and routes it (see ``stats().auto``).

    Example::

        async with hybridio.Runtime(cpu_workers=4, max_queue=100) as rt:
            digest = await rt.run_cpu(crunch, data, timeout=2.0)
            print(rt.stats()["cpu"].completed)
    """

    def __init__(
        self,
        *,
        cpu_workers: int | None = None,
        threads: int | None = None,
        max_queue: int = 1000,
        timeout: float | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_worker: int | None = None,
        max_worker_rss: int | None = None,
        batching: bool = True,
        cluster: object | None = None,
        interpreters: int | None = None,
        cpu_backend: CpuBackend = "auto",
        default_kind: Kind = "cpu",
    ) -> None:
        cpus = os.cpu_count() or 2
        if cluster is None:
            cluster = os.environ.get("HYBRIDIO_CLUSTER", "").strip() or None
        if cluster is not None:
            from .._backends._cluster import DEFAULT_SLOTS, cluster_address

            cluster_address(cluster)  # TypeError / ValueError now, not at the first call
            if cpu_workers is None:  # slots on the cluster, not local processes
                cpu_workers = DEFAULT_SLOTS
        self._cluster = cluster
        cpu_workers = check_count("cpu_workers", cpus if cpu_workers is None else cpu_workers)
        threads = check_count("threads", min(32, cpus + 4) if threads is None else threads)
        check_count("max_queue", max_queue, minimum=0)
        check_timeout("timeout", timeout)
        check_optional_count("max_tasks_per_worker", max_tasks_per_worker)
        check_positive("max_worker_rss", max_worker_rss)
        interpreters = check_count("interpreters", cpus if interpreters is None else interpreters)
        check_bool("batching", batching)
        _check_choice("cpu_backend", cpu_backend, CPU_BACKENDS)
        _check_choice("default_kind", default_kind, KINDS)
        if initializer is not None and not callable(initializer):
            raise TypeError(
                f"initializer must be a function called in each worker process, got {initializer!r}"
            )
        if not isinstance(initargs, tuple | list):
            raise TypeError(
                f"initargs must be a tuple of the initializer's arguments, got {initargs!r}"
            )
        self.cpu_workers = cpu_workers
        self.threads = threads
        self.max_queue = max_queue
        self.timeout = timeout
        self.interpreters = interpreters
        self.cpu_backend: CpuBackend = cpu_backend
        self.default_kind: Kind = default_kind
        self._auto: AutoRouter | None = None
        self._auto_policy: AutoPolicy | None = None  # tests replace the thresholds and clocks
        self._settings = Settings(
            cpu_workers=cpu_workers,
            threads=threads,
            max_queue=max_queue,
            initializer=initializer,
            initargs=tuple(initargs),
            max_tasks_per_worker=max_tasks_per_worker,
            max_worker_rss=max_worker_rss,
            batching=batching,
            interpreters=interpreters,
            cpu_backend=cpu_backend,
        )
        self._counters = {kind: KindCounters(kind) for kind in BACKENDS}
        self._backends: dict[str, Backend] = {}
        self._task_group: TaskGroup | None = None
        self._context_token: Token[Runtime | None] | None = None
        self._closed = False
        # The event loop the runtime was entered on (None on trio) and its thread: its workers,
        # queues and signals belong to that loop.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._task_group is not None or self._closed:
            raise RuntimeError("a Runtime can be entered only once; create a new one")
        await _import_off_the_loop()
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        self._loop = _get_running_loop()
        self._thread = threading.get_ident()
        self._context_token = _current.set(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if self._context_token is not None:
            try:
                _current.reset(self._context_token)
            except ValueError:  # exited in another context than entered (fixtures do that)
                _current.set(None)
            self._context_token = None
        await self.aclose()
        assert self._task_group is not None
        self._task_group.cancel_scope.cancel()
        # The body's own exception is not handed to the task group: it would come out wrapped in
        # an ExceptionGroup. It propagates unchanged once the background tasks have stopped.
        await self._task_group.__aexit__(None, None, None)
        return None

    async def aclose(self) -> None:
        """Refuse new work and stop the backends; waiting calls get ``RuntimeClosed``."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            for backend in self._backends.values():
                await backend.aclose()

    def _abort(self) -> None:
        """Refuse new work and stop the workers now, without waiting.

        For an event loop that ends without cancelling its tasks (``loop.run_until_complete``
        then ``loop.close()``): the runtime's own clean-up would never run.
        """
        self._closed = True
        for backend in self._backends.values():
            abort: Callable[[], None] | None = getattr(backend, "abort", None)
            if abort is not None:
                abort()

    @property
    def cpu_on_threads(self) -> bool:
        """True when ``kind="cpu"`` would run on threads now (see ``cpu_backend``).

        The cpu backend decides once, when it is created (its first call): a free-threaded
        build can turn the GIL back on when it imports an extension module that needs it.
        """
        return cpu_runs_on_threads(self.cpu_backend, gil_enabled=gil_enabled())

    @property
    def closed(self) -> bool:
        """True once ``aclose()`` ran or the ``async with`` block was left."""
        return self._closed

    # -- backends ----------------------------------------------------------------------------

    def _on_its_loop(self) -> bool:
        """True when called on the event loop this runtime was entered on."""
        loop = _get_running_loop()
        return loop is self._loop and (loop is not None or threading.get_ident() == self._thread)

    def _refuse_here(self) -> None:
        """Raise ``RuntimeClosed`` saying why this runtime cannot take work here."""
        if self._closed:
            raise RuntimeClosed("this Runtime is closed; create a new one to offload work")
        if self._task_group is None:
            raise RuntimeClosed("enter the Runtime first: `async with Runtime() as rt: ...`")
        raise RuntimeClosed(
            "this Runtime belongs to another event loop (the one that entered "
            "`async with Runtime()`, in thread "
            f"{self._thread}); its workers and queues work only there. On this loop, create a "
            "Runtime of its own or call hybridio.run_cpu / run_blocking (each event loop gets its "
            "own default runtime), or hand the work to the owning loop "
            "(asyncio.run_coroutine_threadsafe, anyio.from_thread)."
        )

    def _backend(self, kind: str) -> Backend:
        backend = self._backends.get(kind)
        if backend is not None and not self._closed:
            return backend
        if self._closed:
            raise RuntimeClosed("this Runtime is closed; create a new one to offload work")
        if self._task_group is None:
            raise RuntimeClosed("enter the Runtime first: `async with Runtime() as rt: ...`")
        if kind == "auto":
            from ._auto import AutoRouter

            backend = self._auto = AutoRouter(self._backend, self._counters, self._auto_policy)
        elif kind not in BACKENDS:
            _check_choice("kind", kind, KINDS)
            raise AssertionError(kind)  # pragma: no cover - _check_choice raised
        else:
            backend = create_backend(
                kind, self._settings, self._counters[kind], cluster=self._cluster
            )
        # Its background tasks start in a context of their own: they must not keep the values of
        # whichever caller happened to be first for the runtime's whole life.
        background_context().run(backend.start, self._task_group)
        self._backends[kind] = backend
        return backend

    def _dispatcher(self, kind: str) -> Dispatcher[Any]:
        from .._backends._dispatch import Dispatcher

        if not self._on_its_loop():
            self._refuse_here()
        backend = self._backend(kind)
        if not isinstance(backend, Dispatcher):
            raise ValueError(  # noqa: TRY004 - a kind value, not a type, is wrong
                f"kind={kind!r} has no workers to map over; use 'cpu', 'interpreter' or 'blocking'"
            )
        return backend

    # -- running work ------------------------------------------------------------------------

    @overload
    async def run(
        self,
        fn: OffloadedFunction[..., T],
        *args: Any,
        kind: Kind | None = None,
        timeout: float | None = None,
    ) -> T: ...

    @overload
    async def run(
        self,
        fn: Callable[[*PosArgsT], T],
        *args: *PosArgsT,
        kind: Kind | None = None,
        timeout: float | None = None,
    ) -> T: ...

    async def run(  # type: ignore[misc]  # mypy cannot check overloads over TypeVarTuple
        self,
        fn: Callable[..., Any],
        *args: Any,
        kind: Kind | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Run ``fn(*args)`` where ``kind`` says and return its result.

        ``kind`` is ``"inline"`` (on the event loop), ``"blocking"`` (a worker thread), ``"cpu"``
        (a worker process), ``"interpreter"`` (a subinterpreter, Python 3.13+) or ``"auto"``
        (where this function measured best); by default the kind a ``@cpu_bound`` /
        ``@blocking`` / ``@offload`` decorator declared, else ``default_kind``. Pass keyword
        arguments with ``functools.partial``.

        Raises:
            OffloadTimeout: past ``timeout`` (or the runtime's default timeout).
            Overloaded: the queue of that kind is full.
            NotPicklable: process work whose function, arguments or result cannot be pickled.
            WorkerCrashed: the worker process died while running it.
            WorkerStartFailed: worker processes cannot start (the initializer raised).
            BackendUnavailable: the kind cannot run here (``"interpreter"`` before Python 3.13,
                or a module the function needs refuses subinterpreters).
        """
        backend, timeout = self._route(fn, kind, timeout)
        return await backend.call(fn, args, timeout=timeout)

    def _route(
        self, fn: Callable[..., Any], kind: Kind | None, timeout: float | None
    ) -> tuple[Backend, float | None]:
        """Check a call and pick its backend and timeout (not a coroutine: it is on every call)."""
        _refuse_coroutine_function(fn)
        if not callable(fn):
            raise TypeError(f"expected a function to run, got {fn!r} ({type(fn).__name__})")
        if kind is not None and type(kind) is not str:
            _check_choice("kind", kind, KINDS)
        loop = _get_running_loop()
        if loop is not self._loop or (loop is None and threading.get_ident() != self._thread):
            self._refuse_here()
        if timeout is None:
            timeout = self.timeout
        else:
            check_timeout("timeout", timeout)
        return self._backend(kind or declared_kind(fn) or self.default_kind), timeout

    @overload
    async def run_cpu(
        self,
        fn: OffloadedFunction[..., T],
        *args: Any,
        timeout: float | None = None,
    ) -> T: ...

    @overload
    async def run_cpu(
        self,
        fn: Callable[[*PosArgsT], T],
        *args: *PosArgsT,
        timeout: float | None = None,
    ) -> T: ...

    async def run_cpu(  # type: ignore[misc]  # mypy cannot check overloads over TypeVarTuple
        self, fn: Callable[..., Any], *args: Any, timeout: float | None = None
    ) -> Any:
        """Run ``fn(*args)`` in a worker process: for pure-Python CPU-bound work."""
        backend, timeout = self._route(fn, "cpu", timeout)
        return await backend.call(fn, args, timeout=timeout)

    @overload
    async def run_blocking(
        self,
        fn: OffloadedFunction[..., T],
        *args: Any,
        timeout: float | None = None,
    ) -> T: ...

    @overload
    async def run_blocking(
        self,
        fn: Callable[[*PosArgsT], T],
        *args: *PosArgsT,
        timeout: float | None = None,
    ) -> T: ...

    async def run_blocking(  # type: ignore[misc]  # mypy cannot check overloads over TypeVarTuple
        self, fn: Callable[..., Any], *args: Any, timeout: float | None = None
    ) -> Any:
        """Run ``fn(*args)`` in a worker thread: for blocking calls and C code that drops the GIL."""
        backend, timeout = self._route(fn, "blocking", timeout)
        return await backend.call(fn, args, timeout=timeout)

    @overload
    def map(
        self,
        fn: OffloadedFunction[[T], R],
        items: Iterable[T] | AsyncIterable[T],
        *,
        kind: Kind = "cpu",
        chunksize: int | None = None,
        max_in_flight: int | None = None,
        timeout: float | None = None,
    ) -> OffloadMap[T, R]: ...

    @overload
    def map(
        self,
        fn: Callable[[T], R],
        items: Iterable[T] | AsyncIterable[T],
        *,
        kind: Kind = "cpu",
        chunksize: int | None = None,
        max_in_flight: int | None = None,
        timeout: float | None = None,
    ) -> OffloadMap[T, R]: ...

    def map(
        self,
        fn: Callable[[Any], Any],
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        kind: Kind = "cpu",
        chunksize: int | None = None,
        max_in_flight: int | None = None,
        timeout: float | None = None,
    ) -> OffloadMap[Any, Any]:
        """Apply ``fn`` to each item on the workers of ``kind``; iterate the results in order.

        ``chunksize=None`` sizes chunks from the measured per-item cost; at most ``max_in_flight``
        chunks (default: twice the workers) are in flight. ``timeout`` applies to each chunk.

        Example::

            async with rt.map(parse, pages) as results:
                async for record in results:
                    ...
        """
        _refuse_coroutine_function(fn)
        check_map_arguments(fn, chunksize, max_in_flight, timeout)
        if type(kind) is not str:
            _check_choice("kind", kind, KINDS)
        from .._backends._map import OffloadMap

        return OffloadMap(
            self._dispatcher(kind),
            fn,
            items,
            chunksize=chunksize,
            max_in_flight=max_in_flight,
            timeout=timeout if timeout is not None else self.timeout,
        )

    @overload
    def map_cpu(
        self,
        fn: OffloadedFunction[[T], R],
        items: Iterable[T] | AsyncIterable[T],
        *,
        chunksize: int | None = None,
        max_in_flight: int | None = None,
        timeout: float | None = None,
    ) -> OffloadMap[T, R]: ...

    @overload
    def map_cpu(
        self,
        fn: Callable[[T], R],
        items: Iterable[T] | AsyncIterable[T],
        *,
        chunksize: int | None = None,
        max_in_flight: int | None = None,
        timeout: float | None = None,
    ) -> OffloadMap[T, R]: ...

    def map_cpu(
        self,
        fn: Callable[[Any], Any],
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        chunksize: int | None = None,
        max_in_flight: int | None = None,
        timeout: float | None = None,
    ) -> OffloadMap[Any, Any]:
        """``map(fn, items, kind="cpu", ...)``: apply ``fn`` to each item in worker processes."""
        return self.map(
            fn, items, kind="cpu", chunksize=chunksize, max_in_flight=max_in_flight, timeout=timeout
        )

    async def _map_target(self, kind: Kind) -> tuple[Dispatcher[Any], float | None]:
        """The dispatcher and default timeout, for a module-level ``map_cpu`` resolved lazily."""
        return self._dispatcher(kind), self.timeout

    # -- metrics ------------------------------------------------------------------------------

    def stats(self) -> RuntimeStats:
        """A snapshot of every kind's counters and latency histograms (and ``auto``'s routes)."""
        if self._auto is not None:
            self._auto.flush()
        return RuntimeStats(
            {kind: c.snapshot() for kind, c in self._counters.items()},
            self._auto.decisions() if self._auto is not None else {},
        )

    def worker_pids(self) -> list[int]:
        """Pids of the live worker processes."""
        backend = self._backends.get("cpu")
        return backend.worker_ids() if backend is not None else []


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be one of {', '.join(map(repr, choices))}, "
            f"got {value!r} ({type(value).__name__})"
        )
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def check_map_arguments(
    fn: object, chunksize: object, max_in_flight: object, timeout: object
) -> None:
    """Check ``map`` / ``map_cpu`` arguments at the call, before anything is pulled or sent."""
    if not callable(fn):
        raise TypeError(f"map needs a function to apply to each item, got {fn!r}")
    check_optional_count("chunksize", chunksize)
    check_optional_count("max_in_flight", max_in_flight)
    check_timeout("timeout", timeout)


#: The backends a first call would otherwise import on the event loop (50-120 ms measured).
_PRELOAD = ("hybridio._backends._thread", "hybridio._backends._process")


async def _import_off_the_loop() -> None:
    """Import the thread and process backends in a thread, once: a first call must not block
    the event loop on imports (the loop monitor named `import_module` as a culprit)."""
    missing = [name for name in _PRELOAD if name not in sys.modules]
    if not missing:
        return
    done = anyio.Event()
    post = loop_callback()

    def load() -> None:
        try:
            for name in missing:
                import_module(name)
        except Exception:  # noqa: BLE001, S110 - the first call imports it again and says why
            pass
        finally:
            post(done.set)

    # A daemon thread of its own: anyio's worker threads would outlive a loop closed bare.
    threading.Thread(target=load, name="hybridio import", daemon=True).start()
    await done.wait()


@contextmanager
def use_runtime(runtime: Runtime) -> Iterator[Runtime]:
    """Make ``runtime`` the one module-level calls use within this context.

    For frameworks built on the core (``hybridio.web`` serves each request with its app's
    runtime): ``async with Runtime()`` does the same for the task that enters it.
    """
    token = _current.set(runtime)
    try:
        yield runtime
    finally:
        _current.reset(token)


def current_runtime() -> Runtime | None:
    """The Runtime of the enclosing ``async with Runtime()``, if it is still open."""
    runtime = _current.get()
    if runtime is None or runtime.closed or not runtime._on_its_loop():
        # A context copied into a thread that runs an event loop of its own (asyncio.run inside
        # run_blocking) carries the caller's runtime: that loop uses its own.
        return None
    return runtime
