"""What a LoopMonitor reports: the lag histogram, the blocks it saw, and their culprits."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from .._core._metrics import HistogramSnapshot

__all__ = ["BlockCause", "BlockEvent", "LoopReport", "StackFrame"]

#: Why the loop was late: ``"code"`` (code was running on the loop: the culprit names it),
#: ``"stall"`` (the loop was only in its own machinery, e.g. waiting for I/O: the process was
#: starved of CPU), ``"unknown"`` (the stack could not be sampled in time, e.g. a C call held the
#: GIL for the whole block).
BlockCause = Literal["code", "stall", "unknown"]


@dataclass(frozen=True)
class StackFrame:
    """One frame of a captured stack; ``str()`` is ``file:line function``."""

    filename: str
    lineno: int
    function: str
    module: str
    #: The source line, stripped ("" when the file cannot be read).
    line: str = ""

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno} {self.function}"


@dataclass(frozen=True)
class BlockEvent:
    """The event loop was late past the threshold.

    ``duration`` is how late the heartbeat was: the block lasted at least that long (it may have
    begun up to one heartbeat interval earlier). ``culprit`` is the innermost frame of your code
    on the loop thread while it was still blocked (None unless ``cause == "code"``); ``stack`` is
    the loop thread's stack at that moment, from the loop's dispatch to the innermost frame.

    ``cpu_time`` and ``cpu_wait`` are the evidence for the ``cause``: the seconds the loop
    thread ran on a CPU, and waited for one (Linux; None elsewhere), from the heartbeat before
    the block to the one after it.
    """

    #: Wall-clock time (``time.time()``) the heartbeat was due.
    start: float
    #: Seconds since the monitor started when the heartbeat was due.
    offset: float
    duration: float
    cause: BlockCause
    culprit: StackFrame | None
    stack: str
    #: Seconds the loop thread ran on a CPU over the block (and the heartbeat interval before).
    cpu_time: float = 0.0
    #: Seconds the loop thread was ready but waited for a CPU over the same window (Linux only).
    cpu_wait: float | None = None

    def __str__(self) -> str:
        if self.culprit is not None:
            where = f"in {self.culprit}"
            if self.culprit.line:
                where += f"  ({self.culprit.line})"
        else:
            evidence = f"on a CPU {self.cpu_time * 1000:.1f} ms"
            if self.cpu_wait is not None:
                evidence += f", waiting for a CPU {self.cpu_wait * 1000:.1f} ms"
            if self.cause == "stall":
                where = (
                    f"with no code of yours holding it (loop thread {evidence}: a busy machine?)"
                )
            else:
                where = (
                    f"but its stack could not be sampled (loop thread {evidence}: "
                    "a C call holding the GIL?)"
                )
        return f"+{self.offset:.3f}s blocked {self.duration * 1000:.1f} ms {where}"


def _ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.2f} ms"


@dataclass(frozen=True)
class LoopReport:
    """A snapshot of a LoopMonitor: lag histogram, blocks, totals. ``str()`` is a summary.

    ``blocks`` holds the most recent blocks (at most the monitor's ``max_blocks``);
    ``total_blocks`` and ``blocked_seconds`` count every block since the start.
    """

    threshold: float
    interval: float
    #: Seconds monitored so far.
    elapsed: float
    #: Heartbeat lag in seconds, one observation per heartbeat.
    lag: HistogramSnapshot
    blocks: tuple[BlockEvent, ...]
    total_blocks: int
    blocked_seconds: float

    @property
    def heartbeats(self) -> int:
        """How many heartbeats were measured."""
        return self.lag.count

    @property
    def p50(self) -> float:
        """Median lag in seconds (``nan`` before the first heartbeat)."""
        return self.lag.quantile(0.5)

    @property
    def p90(self) -> float:
        """90th percentile of the lag in seconds."""
        return self.lag.quantile(0.9)

    @property
    def p99(self) -> float:
        """99th percentile of the lag in seconds."""
        return self.lag.quantile(0.99)

    @property
    def max(self) -> float:
        """Largest lag seen, in seconds."""
        return self.lag.max

    def culprits(self) -> dict[str, int]:
        """``file:line function`` -> how many of the kept blocks it caused, most frequent first."""
        counts: dict[str, int] = {}
        for block in self.blocks:
            if block.culprit is not None:
                key = str(block.culprit)
                counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: -item[1]))

    def __str__(self) -> str:
        lines = [
            (
                f"Loop health over {self.elapsed:.2f} s (threshold {self.threshold * 1000:g} ms, "
                f"heartbeat every {self.interval * 1000:g} ms)"
            ),
            (
                f"  lag: {self.heartbeats} heartbeats, p50 {_ms(self.p50)}, p90 {_ms(self.p90)}, "
                f"p99 {_ms(self.p99)}, max {_ms(self.max) if self.heartbeats else 'n/a'}"
            ),
            f"  blocks: {self.total_blocks}, {self.blocked_seconds * 1000:.1f} ms blocked in total",
        ]
        culprits = self.culprits()
        if culprits:
            lines.append("  culprits:")
            lines.extend(f"    {n} x {where}" for where, n in culprits.items())
        for block in self.blocks:
            lines.append(f"  - {block}")
            if block.stack:
                lines.extend(f"      {line}" for line in block.stack.rstrip().splitlines())
        return "\n".join(lines)
