"""LoopMonitor: a heartbeat task measures event-loop lag; a watchdog thread names what blocked it.

The heartbeat sleeps ``interval`` and records how late it woke up. Before each sleep it publishes
``(seq, due)``; the watchdog thread sleeps until ``due + threshold`` and, if that heartbeat has
still not run, samples the loop thread's stack right then, while the loop is still blocked, and
again every ``interval`` while it stays blocked (at most ``_MAX_SAMPLES`` times). The heartbeat,
once it runs again, turns the samples into a ``BlockEvent`` on the loop thread, so the histogram
and the callbacks are only ever touched from the loop.

Late is not the same as blocked by code: on a busy machine the loop can be ready and get no CPU.
So the heartbeat also reads the loop thread's CPU time and run-queue delay (``ThreadClock``) at
each beat, and a block is ``code`` only when a sample shows code of yours *and* the loop would
have been late past the threshold without the time it spent waiting for a CPU.

Cost: one timer and one clock read (a few microseconds) per ``interval`` on the loop, and the
watchdog wakes about once per ``threshold``.
"""

from __future__ import annotations

import collections
import logging
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Self

import anyio
from anyio.abc import TaskGroup, TaskStatus

from .._core._metrics import Histogram
from ._report import BlockCause, BlockEvent, LoopReport
from ._stack import Capture, base_frames, capture
from ._threadclock import ThreadClock

__all__ = ["LoopMonitor"]

logger = logging.getLogger("hybridio.monitor")

_clock = time.perf_counter

#: Samples the watchdog takes of one block (one per interval): the culprit is the commonest.
_MAX_SAMPLES = 16


def _check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


class LoopMonitor:
    """Measure event-loop lag and name the code that blocks the loop, on any anyio backend.

    A heartbeat task wakes every ``interval`` seconds and records how late it was. When it is
    late past ``threshold``, a watchdog thread samples the loop thread's stack while the loop is
    still blocked, and the block is reported with its culprit, ``file:line function``.

    Args:
        threshold: a heartbeat later than this many seconds is a block (default 50 ms).
        interval: seconds between heartbeats (default ``threshold / 5``). A block is caught when
            it lasts longer than ``threshold + interval``.
        on_block: called with each ``BlockEvent``, on the event loop, after the block ended.
        log_blocks: also log each block (with its stack) as a warning on ``hybridio.monitor``.
        max_blocks: how many recent blocks the report keeps (totals count them all).

    Raises:
        ValueError: for a threshold, interval or max_blocks that is not positive, or an
            interval not smaller than the threshold.

    Example::

        async with hybridio.LoopMonitor(threshold=0.05) as monitor:
            await serve()
        print(monitor.report())
    """

    def __init__(
        self,
        threshold: float = 0.05,
        interval: float | None = None,
        *,
        on_block: Callable[[BlockEvent], object] | None = None,
        log_blocks: bool = False,
        max_blocks: int = 100,
    ) -> None:
        self.threshold = _check_positive("threshold", threshold)
        self.interval = (
            self.threshold / 5 if interval is None else _check_positive("interval", interval)
        )
        if self.interval >= self.threshold:
            raise ValueError(
                f"interval ({self.interval!r} s) must be smaller than threshold "
                f"({self.threshold!r} s): a block is seen only between two heartbeats"
            )
        if isinstance(max_blocks, bool) or not isinstance(max_blocks, int) or max_blocks < 1:
            raise ValueError(f"max_blocks must be a positive integer, got {max_blocks!r}")
        self._on_block = on_block
        self._log_blocks = log_blocks
        self._lag = Histogram()
        self._last_lag = 0.0
        self._blocks: collections.deque[BlockEvent] = collections.deque(maxlen=max_blocks)
        self._total_blocks = 0
        self._blocked_seconds = 0.0
        # Shared with the watchdog thread: each is replaced whole, never mutated, so a plain
        # read is consistent under the GIL.
        self._state: tuple[int, float] | None = None
        self._pending: tuple[int, tuple[Capture, ...]] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop_thread = 0
        self._base: dict[int, FrameType] = {}
        self._started: float | None = None
        self._wall_started = 0.0
        self._stopped: float | None = None
        self._task_group: TaskGroup | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        try:
            await task_group.start(self.run)
        except BaseException:
            task_group.cancel_scope.cancel()
            await task_group.__aexit__(*sys.exc_info())
            raise
        self._task_group = task_group
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task_group, self._task_group = self._task_group, None
        assert task_group is not None
        task_group.cancel_scope.cancel()
        # The body's exception propagates as itself, not wrapped in an ExceptionGroup.
        await task_group.__aexit__(None, None, None)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Monitor the loop until cancelled: for ``task_group.start(monitor.run)``.

        Raises:
            RuntimeError: if this monitor already ran (a LoopMonitor runs once).
        """
        if self._started is not None:
            raise RuntimeError("this LoopMonitor already ran; create a new one")
        self._started = _clock()
        self._wall_started = time.time()
        self._loop_thread = threading.get_ident()
        # Kept alive (not just their ids) so that no other frame can reuse an id.
        self._base = {id(frame): frame for frame in base_frames(sys._getframe())}
        self._state = (0, _clock() + self.interval)
        thread = threading.Thread(target=self._watch, name="hybridio-loop-watchdog", daemon=True)
        self._thread = thread
        thread.start()
        clock = ThreadClock()
        try:
            task_status.started()
            await self._beat(clock)
        finally:
            clock.close()
            self._stop.set()
            thread.join(timeout=5.0)  # it wakes at once on the event: this does not block
            self._thread = None
            self._state = None
            self._base = {}
            self._stopped = _clock()

    @property
    def running(self) -> bool:
        """True while the heartbeat and the watchdog run."""
        return self._thread is not None

    # -- what it measured --------------------------------------------------------------------

    @property
    def current_lag(self) -> float:
        """Seconds of lag now: the last heartbeat's lag, or how overdue the next one is if more.

        Cheap (no allocation): meant for health checks. 0.0 when not running.
        """
        state = self._state
        if state is None:
            return 0.0
        return max(self._last_lag, _clock() - state[1], 0.0)

    def healthy(self, max_lag: float | None = None) -> bool:
        """True when ``current_lag`` is at most ``max_lag`` seconds (default: the threshold)."""
        return self.current_lag <= (self.threshold if max_lag is None else max_lag)

    def report(self) -> LoopReport:
        """A snapshot: lag histogram, recent blocks and totals; ``str()`` of it is a summary."""
        if self._started is None:
            elapsed = 0.0
        else:
            elapsed = (self._stopped if self._stopped is not None else _clock()) - self._started
        return LoopReport(
            threshold=self.threshold,
            interval=self.interval,
            elapsed=elapsed,
            lag=self._lag.snapshot(),
            blocks=tuple(self._blocks),
            total_blocks=self._total_blocks,
            blocked_seconds=self._blocked_seconds,
        )

    # -- the heartbeat (event loop) ----------------------------------------------------------

    async def _beat(self, clock: ThreadClock) -> None:
        interval = self.interval
        threshold = self.threshold
        seq, due = self._state or (0, _clock() + interval)
        cpu, waited = clock.read()
        while True:
            await anyio.sleep(interval)
            now = _clock()
            late_seq, late_due = seq, due
            seq += 1
            due = now + interval
            self._state = (seq, due)  # first: the watchdog must stop looking at the late beat
            lag = now - late_due if now > late_due else 0.0
            self._lag.observe(lag)
            self._last_lag = lag
            if lag > threshold:
                cpu_now, waited_now = clock.read()
                self._record(
                    late_seq,
                    late_due,
                    lag,
                    cpu_now - cpu,
                    None if waited is None or waited_now is None else waited_now - waited,
                )
                seq += 1
                due = _clock() + interval  # the callbacks took their time
                self._state = (seq, due)
            cpu, waited = clock.read()

    def _record(self, seq: int, due: float, lag: float, cpu: float, cpu_wait: float | None) -> None:
        pending, self._pending = self._pending, None
        samples = pending[1] if pending is not None and pending[0] == seq else ()
        cause, sample = _classify(samples, lag, cpu, cpu_wait, self.threshold)
        assert self._started is not None
        offset = due - self._started
        event = BlockEvent(
            start=self._wall_started + offset,
            offset=offset,
            duration=lag,
            cause=cause,
            culprit=sample.culprit if sample is not None and cause == "code" else None,
            stack=sample.stack if sample is not None else "",
            cpu_time=cpu,
            cpu_wait=cpu_wait,
        )
        self._blocks.append(event)
        self._total_blocks += 1
        self._blocked_seconds += lag
        if self._log_blocks:
            logger.warning("event loop %s\n%s", event, event.stack)
        if self._on_block is not None:
            try:
                self._on_block(event)
            except Exception:
                logger.exception("LoopMonitor on_block callback failed")

    # -- the watchdog (its own thread) -------------------------------------------------------

    def _watch(self) -> None:
        stop = self._stop
        threshold = self.threshold
        while not stop.is_set():
            state = self._state
            if state is None:
                return
            wait = state[1] + threshold - _clock()
            if wait > 0:
                stop.wait(wait)
                continue
            samples: list[Capture] = []
            while self._state is state and len(samples) < _MAX_SAMPLES:
                sample = capture(self._loop_thread, self._base)
                if sample is None or self._state is not state:
                    break  # the loop came back meanwhile: this stack is not the block's
                samples.append(sample)
                self._pending = (state[0], tuple(samples))
                if stop.wait(self.interval):
                    return
            while self._state is state and not stop.wait(self.interval):
                pass  # enough samples of this block: wait for the loop to come back


def _classify(
    samples: tuple[Capture, ...], lag: float, cpu: float, cpu_wait: float | None, threshold: float
) -> tuple[BlockCause, Capture | None]:
    """Why the loop was ``lag`` seconds late, and the sample that shows it.

    ``cpu`` and ``cpu_wait`` are the seconds the loop thread ran on a CPU and waited for one
    between the two heartbeats (``cpu_wait`` is None where the OS does not say).

    * ``code``: a sample shows code of yours, and without the time spent waiting for a CPU the
      loop would still have been late past the threshold (it ran that code, or sat in a blocking
      call). The culprit is the commonest among the samples.
    * ``stall``: the samples show only the loop waiting (for I/O, timers), or the lateness is the
      time the loop thread waited for a CPU (a busy machine), or there is no sample and the loop
      thread hardly ran: the watchdog could not run either (the process was starved or stopped).
    * ``unknown``: the loop thread ran on a CPU longer than the threshold but no sample names
      code (a C call holding the GIL, or the loop's own machinery busy).
    """
    blamed = [s for s in samples if s.culprit is not None]
    if blamed:
        commonest = collections.Counter(str(s.culprit) for s in blamed).most_common(1)[0][0]
        sample = next(s for s in blamed if str(s.culprit) == commonest)
        own = lag - (cpu_wait or 0.0)
        return ("code" if own > threshold else "stall"), sample
    first = samples[0] if samples else None
    return ("unknown" if cpu > threshold else "stall"), first
