"""The cluster executor: kind ``"cpu"`` on the workers of a Dask ``distributed`` cluster.

``Runtime(cluster="tcp://host:8786")`` (or ``HYBRIDIO_CLUSTER``) sends CPU work to a Dask
scheduler instead of local worker processes. The dispatcher is the same as for the local pool:
one batch of encoded calls becomes one Dask task, run on a Dask worker by ``_worker.run_batch``,
so results, exceptions (with the remote traceback as their cause), batching of tiny calls,
timeouts, cancellation and the bounded queue behave as they do locally.

**The bridge.** Dask's ``Client`` needs an asyncio loop; hybridio may run on trio (or on uvloop,
which Dask does not test). So the client always lives on an asyncio loop of its own, in a daemon
thread: a coroutine is handed to it with ``asyncio.run_coroutine_threadsafe`` and its completion
comes back through ``_core._signal.loop_callback`` (one thread hop each way; ``hybridio bench
cluster`` measures it). The same code runs on every event loop.

**Slots.** The dispatcher's lanes are *slots*: how many batches may be on the cluster at once
(``cpu_workers`` when given, else ``DEFAULT_SLOTS``). A slot costs nothing to start; the
scheduler queues the tasks its workers cannot run yet, and a cluster that grows is used as it
grows. Tiny calls share a task once every slot is busy: with ``cpu_workers`` near the cluster's
thread count they share more (fewer, larger Dask tasks).

**Failures.**

* The function raises: the caller gets its exception, ``RemoteTraceback`` as the cause.
* A Dask worker dies while running a batch: Dask's own retries are kept (the scheduler's
  ``distributed.scheduler.allowed-failures``, 3 by default, re-runs the task on another worker);
  once they are spent Dask raises ``KilledWorker`` and the callers get ``WorkerCrashed``.
* The caller times out or is cancelled: the Dask future is cancelled (``force=True``). A Dask
  worker cannot interrupt a running Python function: its thread finishes it and the result is
  dropped.
* The scheduler cannot be reached: ``WorkerStartFailed`` naming the address, after at most
  ``CONNECT_TIMEOUT`` seconds. The scheduler goes away while calls run: they fail with
  ``OffloadError`` naming the address, and the next call connects afresh.

``initializer``, ``max_tasks_per_worker`` and ``max_worker_rss`` apply to local worker processes
only: Dask's workers are set up and recycled by Dask (``dask worker --preload``, worker plugins,
the nanny's memory limits). A server's initializer that ignores signals or lowers the priority of
its own workers must not run on shared Dask workers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import pickle
import threading
import uuid
from collections.abc import Callable, Coroutine
from itertools import repeat
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import anyio

from .._core._exceptions import BackendUnavailable, OffloadError
from .._core._metrics import KindCounters
from .._core._names import function_name, unwrap
from .._core._settings import Settings
from .._core._signal import Signal, loop_callback, signal_factory
from ._dispatch import Dispatcher
from ._executor import Capabilities, Outcome, WorkerLost, WorkerStartError
from ._process import _as_outcome, _decode
from ._serialize import EncodedCall, dumps_args, encode_call
from ._worker import RawOutcome, run_batch

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from distributed import Client

__all__ = ["CONNECT_TIMEOUT", "DEFAULT_SLOTS", "ClusterExecutor", "cluster_address", "create"]

T = TypeVar("T")

#: Seconds to reach the scheduler before the call fails (Dask retries a refused connection).
CONNECT_TIMEOUT = 10.0
#: Batches in flight on the cluster at most, when ``cpu_workers`` is not given.
DEFAULT_SLOTS = 64
# A failed connection is reported to every start that comes soon after it, without a new attempt
# (the dispatcher retries quickly at first: three starts would cost three connect timeouts).
_FAILURE_HOLD = 2.0
_CLOSE_TIMEOUT = 5.0
_PROTOCOL = pickle.HIGHEST_PROTOCOL

#: A call as this executor carries it: the function's name (for the Dask key) and the call.
_Payload = tuple[str, EncodedCall]


# -- the client's side ---------------------------------------------------------------------------


def cluster_address(target: object) -> tuple[str, Any]:
    """The scheduler address (and Dask ``Security``, or None) of a ``cluster=`` value.

    Accepts an address (``"tcp://host:8786"``, ``"host:8786"``), a ``distributed.Client`` or a
    Dask cluster object (``LocalCluster``...): hybridio connects a client of its own to that
    scheduler, with the same security settings.

    Raises:
        TypeError: ``target`` is none of those.
        ValueError: an empty address.
    """
    if isinstance(target, str):
        if not target.strip():
            raise ValueError("cluster must be a Dask scheduler address such as tcp://host:8786")
        return target.strip(), None
    scheduler = getattr(target, "scheduler", None)
    address = getattr(target, "scheduler_address", None) or getattr(scheduler, "address", None)
    if isinstance(address, str):
        return address, getattr(target, "security", None)
    raise TypeError(
        "cluster must be a Dask scheduler address (tcp://host:8786), a distributed.Client or a "
        f"Dask cluster object, got {target!r}"
    )


class _Connection:
    """A ``distributed.Client`` on an asyncio loop in a thread of its own.

    Methods without ``_on_loop`` in their name are called on hybridio's event loop.
    """

    def __init__(
        self,
        address: str,
        security: Any,
        post: Callable[[Callable[[], object]], None],
        new_signal: Callable[[], Signal],
    ) -> None:
        self.address = address
        self.lost: str | None = None  # why the scheduler is gone, once it is
        self._security = security
        self._post = post
        self._new_signal = new_signal
        self._client: Client | None = None
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()  # set on the client's loop: close the client, end the thread
        self._background: set[asyncio.Future[Any]] = set()
        self._ended = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, name=f"hybridio dask client {address}", daemon=True
        )
        self._thread.start()

    def _serve(self) -> None:
        # asyncio.Runner closes the loop cleanly: leftover tasks cancelled, generators finalised.
        try:
            with asyncio.Runner(loop_factory=lambda: self._loop) as runner:
                runner.run(self._serve_on_loop())
        finally:
            self._ended.set()

    async def _serve_on_loop(self) -> None:
        try:
            await self._stop.wait()
        finally:
            client, self._client = self._client, None
            if client is not None:
                # Closing a broken client may fail in many ways; it is closed as far as it can be.
                with contextlib.suppress(Exception):
                    closing = client.close(timeout=_CLOSE_TIMEOUT)  # type: ignore[no-untyped-call]
                    await asyncio.wait_for(closing, _CLOSE_TIMEOUT)

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the client's loop and return its result; cancelling cancels it."""
        done = self._new_signal()
        post = self._post

        def finished(_: concurrent.futures.Future[T]) -> None:
            post(lambda: None if done.done() else done.set_result(None))

        try:
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError:  # the loop has stopped
            coro.close()
            raise OffloadError(
                f"the client of the Dask scheduler at {self.address} is closed"
            ) from None
        future.add_done_callback(finished)
        try:
            await done
        except BaseException:
            future.cancel()
            raise
        return future.result()

    # -- connecting --------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect to the scheduler; raise ``WorkerStartError`` naming it when that fails."""
        try:
            with anyio.fail_after(CONNECT_TIMEOUT + _CLOSE_TIMEOUT):
                await self.call(self._connect_on_loop())
        except TimeoutError as exc:
            error = f"TimeoutError: no answer within {CONNECT_TIMEOUT:g} s"
            raise WorkerStartError(self._cannot_connect(error)) from exc
        except (OSError, ValueError) as exc:
            raise WorkerStartError(self._cannot_connect(f"{type(exc).__name__}: {exc}")) from exc

    def _cannot_connect(self, error: str) -> str:
        return f"cannot connect to the Dask scheduler at {self.address} ({error})"

    async def _connect_on_loop(self) -> None:
        from distributed import Client

        # Kept from the start, so that closing closes it even when connecting failed (a Client
        # collected unclosed leaves an un-awaited coroutine behind).
        self._client = Client(  # type: ignore[no-untyped-call]
            self.address,
            asynchronous=True,
            timeout=CONNECT_TIMEOUT,
            security=self._security,
            set_as_default=False,
            name="hybridio",
        )
        await self._client

    # -- computing ---------------------------------------------------------------------------

    async def compute(self, key: str, calls: list[EncodedCall]) -> tuple[list[RawOutcome], int]:
        """Run a batch as one Dask task (``_worker.run_batch``); translate Dask's failures."""
        from distributed import KilledWorker
        from distributed.client import FutureCancelledError

        try:
            return await self.call(self._compute_on_loop(key, calls))
        except KilledWorker as exc:
            worker = exc.last_worker
            raise WorkerLost(
                pid=getattr(worker, "pid", None),
                reason=f"Dask worker {getattr(worker, 'address', '?')} died: {exc}",
            ) from exc
        except FutureCancelledError as exc:
            if exc.reason == "scheduler-connection-lost":
                self.gone(f"lost the connection to the Dask scheduler at {self.address}")
            raise OffloadError(
                f"the Dask scheduler at {self.address} dropped this call ({exc.reason}); "
                "the next call connects again"
            ) from exc
        except (OffloadError, WorkerLost):
            raise
        except Exception as exc:
            if self._client is None or self._client.status not in ("running", "connecting"):
                self.gone(f"the client of the Dask scheduler at {self.address} closed")
            raise OffloadError(
                f"the Dask cluster at {self.address} could not run this batch "
                f"({type(exc).__name__}: {exc}); are hybridio and the function's module "
                "installed on its workers?"
            ) from exc

    async def _compute_on_loop(
        self, key: str, calls: list[EncodedCall]
    ) -> tuple[list[RawOutcome], int]:
        client = self._client
        if client is None or self.lost is not None:
            raise OffloadError(f"not connected to the Dask scheduler at {self.address}")
        future = client.submit(run_batch, calls, False, key=key, pure=False)
        try:
            result: tuple[list[RawOutcome], int] = await future
        except asyncio.CancelledError:
            # The caller gave up: release the task on the scheduler (a running one finishes on
            # its worker thread and is dropped).
            cancel: Callable[..., Any] = client.cancel
            self._spawn_on_loop(cancel([future], force=True, reason="hybridio-abandoned"))
            raise
        return result

    def _spawn_on_loop(self, awaitable: Any) -> None:
        if not asyncio.iscoroutine(awaitable) and not isinstance(awaitable, asyncio.Future):
            return
        task = asyncio.ensure_future(awaitable)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- closing -----------------------------------------------------------------------------

    def gone(self, reason: str) -> None:
        """The scheduler is gone: no new work here (slots on it are replaced)."""
        if self.lost is None:
            self.lost = reason

    async def close(self) -> None:
        """Close the client and end its thread (bounded: a dead scheduler does not hold it)."""
        self.gone(f"the connection to the Dask scheduler at {self.address} was closed")
        try:
            self._loop.call_soon_threadsafe(self._stop.set)
        except RuntimeError:  # the loop has ended already
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(2 * _CLOSE_TIMEOUT):
            await anyio.to_thread.run_sync(self._ended.wait)


class _Slot:
    """One batch-sized place on the cluster (a dispatcher lane's worker)."""

    __slots__ = ("connection", "ended")

    def __init__(self, connection: _Connection) -> None:
        self.connection = connection
        self.ended = False


class ClusterExecutor:
    """CPU-kind executor on a Dask cluster: one Dask task per batch."""

    kind: ClassVar[str] = "cpu"
    capabilities: ClassVar[Capabilities] = Capabilities(can_kill=True, parallel=True, pipeline=2)

    def __init__(self, target: object) -> None:
        self.address, self._security = cluster_address(target)
        self._connection: _Connection | None = None
        self._failure = ""
        self._failed_until = 0.0
        self._lock: anyio.Lock | None = None
        self._post: Callable[[Callable[[], object]], None] | None = None
        self._new_signal: Callable[[], Signal] | None = None

    def bind(self, task_group: TaskGroup, lost: Callable[[_Slot], None]) -> None:
        self._lock = anyio.Lock()
        self._post = loop_callback()
        self._new_signal = signal_factory()
        task_group.start_soon(self._close_at_exit, name=f"hybridio cluster {self.address}")

    async def _close_at_exit(self) -> None:
        """Hold the connection for the runtime's life; close it when the runtime closes."""
        try:
            await anyio.sleep_forever()
        finally:
            connection, self._connection = self._connection, None
            if connection is not None:
                await connection.close()

    def encode(
        self, fn: Callable[..., Any], args: tuple[Any, ...], mapped: bool
    ) -> tuple[str, _Payload]:
        target = unwrap(fn)
        while isinstance(target, functools.partial):
            target = target.func
        if getattr(target, "__module__", None) == "__main__":
            # A worker of the cluster cannot import the caller's main script: send the function
            # by value (cloudpickle comes with distributed).
            import cloudpickle

            name = function_name(fn)
            call: EncodedCall = (cloudpickle.dumps(fn, _PROTOCOL), dumps_args(args, name), mapped)
        else:
            name, call = encode_call(fn, args, mapped=mapped)
        return name, (name, call)

    # -- slots -------------------------------------------------------------------------------

    async def _connect(self) -> _Connection:
        assert self._lock is not None
        assert self._post is not None
        assert self._new_signal is not None
        async with self._lock:
            connection = self._connection
            if connection is not None and connection.lost is None:
                return connection
            if connection is not None:  # the scheduler went away: start afresh
                self._connection = None
                await connection.close()
            if anyio.current_time() < self._failed_until:
                raise WorkerStartError(self._failure)
            connection = _Connection(self.address, self._security, self._post, self._new_signal)
            try:
                await connection.open()
            except BaseException as exc:
                await connection.close()
                if isinstance(exc, WorkerStartError):
                    self._failure = exc.reason
                    self._failed_until = anyio.current_time() + _FAILURE_HOLD
                raise
            self._connection = connection
            return connection

    async def start(self) -> _Slot:
        return _Slot(await self._connect())

    # -- running -----------------------------------------------------------------------------

    async def run_batch(self, worker: _Slot, payloads: list[_Payload]) -> list[Outcome]:
        connection = worker.connection
        if connection.lost is not None:
            raise WorkerLost(started=False, reason=connection.lost)
        # Dask names the task group after the part before the first "-": the function.
        key = f"hybridio:{payloads[0][0]}-{uuid.uuid4().hex}"
        raw, _ = await connection.compute(key, [call for _, call in payloads])
        return list(map(_as_outcome, repeat(Outcome), raw))

    def decode(self, name: str, outcome: Outcome) -> tuple[Any, BaseException | None]:
        return _decode(name, outcome)

    def abandon(self, payload: _Payload) -> None:
        pass  # the slot is killed instead, which cancels the Dask future

    def orphan(self, worker: _Slot, release: Callable[[], None]) -> bool:
        return False  # pragma: no cover - slots are killed, never orphaned

    def alive(self, worker: _Slot) -> bool:
        return not worker.ended and worker.connection.lost is None

    def retire(self, worker: _Slot) -> bool:
        return False  # Dask recycles its own workers

    async def kill(self, worker: _Slot) -> WorkerLost:
        # The batch's Dask future was cancelled when its run_batch was.
        worker.ended = True
        return WorkerLost(reason="cancelled on the Dask cluster")

    async def stop(self, worker: _Slot) -> None:
        worker.ended = True

    def describe(self, worker: _Slot) -> int | None:
        return None  # no local process


def create(settings: Settings, counters: KindCounters, *, cluster: object) -> Dispatcher[_Slot]:
    """The factory of kind ``"cpu"`` when the runtime has a cluster.

    ``settings.cpu_workers`` is the number of slots: batches in flight on the cluster at most.

    Raises:
        BackendUnavailable: ``distributed`` is not installed.
    """
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise BackendUnavailable(
            "cpu", "pip install 'hybridio[cluster]' (Dask distributed)"
        ) from None
    executor = ClusterExecutor(cluster)
    return Dispatcher(
        executor,
        counters,
        workers=settings.cpu_workers,
        max_queue=settings.max_queue,
        batching=settings.batching,
        max_batch=1024,
        batch_seconds=0.02,
    )
