"""Sampling the loop thread's stack from another thread, and naming the culprit frame.

The watchdog runs this while the loop is still blocked, so the walk over the frames must not do
I/O (which would release the GIL and let the loop move on): frames are first copied to plain
tuples, and only then are source lines read.

What the loop runs to wait is never the culprit: the selector or poll call (``selectors``,
trio's ``epoll.poll``/``kqueue``, uvloop's ``run``, which has no Python frame) is loop machinery,
and so is the standard library the machinery calls for itself (anyio's trio test runner waits in
``queue.Queue.get``; trio waits for processes with ``subprocess``).
"""

from __future__ import annotations

import inspect
import linecache
import sys
import sysconfig
from collections.abc import Collection
from dataclasses import dataclass
from types import FrameType

from ._report import BlockCause, StackFrame

__all__ = ["Capture", "base_frames", "capture", "pick_culprit"]

# Event-loop and framework machinery: never the culprit, whatever it runs.
_MACHINERY = (
    "anyio",
    "asyncio",
    "contextlib",
    "contextvars",
    "hybridio._backends",
    "hybridio._core",
    "hybridio._monitor",
    "hybridio.pytest_plugin",
    "outcome",
    "selectors",
    "sniffio",
    "threading",
    "trio",
    "uvloop",
)
# Installed code (stdlib, site-packages) is blamed only when no code of yours is on the stack:
# `json.loads(huge)` is better reported at the line that called it.
_PATHS = sysconfig.get_paths()
_LIBRARY_PATHS = tuple(
    {_PATHS[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in _PATHS}
)
_STDLIB_PATHS = tuple({_PATHS[key] for key in ("stdlib", "platstdlib") if key in _PATHS})
_SITE_PATHS = tuple({_PATHS[key] for key in ("purelib", "platlib") if key in _PATHS})
# Comprehension frames: the function around them is the culprit (its line is the same).
_ANONYMOUS = frozenset({"<genexpr>", "<listcomp>", "<setcomp>", "<dictcomp>"})
_ASYNC_FLAGS = inspect.CO_COROUTINE | inspect.CO_ITERABLE_COROUTINE | inspect.CO_ASYNC_GENERATOR


def _is_machinery(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in _MACHINERY)


def _is_stdlib(filename: str) -> bool:
    if filename.startswith("<frozen "):
        return True
    return (
        filename.startswith(_STDLIB_PATHS)
        and not filename.startswith(_SITE_PATHS)
        and "-packages" not in filename  # site-packages / dist-packages below the stdlib
    )


def _is_library(frame: StackFrame) -> bool:
    if frame.module == "hybridio" or frame.module.startswith("hybridio."):
        return False
    return frame.filename.startswith(_LIBRARY_PATHS) or frame.filename.startswith("<")


@dataclass(frozen=True)
class Capture:
    """A sampled stack: why the loop was busy, the culprit frame and the stack text."""

    cause: BlockCause
    culprit: StackFrame | None
    stack: str


def base_frames(frame: FrameType | None) -> list[FrameType]:
    """The frames below the event loop's dispatch, seen from a task's ``frame``.

    They run the loop (``asyncio.run``, ``trio.run``, the test runner...) and stay on the stack
    for the whole run, so a sampled stack is cut where it meets them: what lies above them is
    what the loop was doing.
    """
    while frame is not None and frame.f_code.co_flags & _ASYNC_FLAGS:
        frame = frame.f_back
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames


def _walk(frame: FrameType | None, base: Collection[int]) -> list[StackFrame]:
    # No I/O here: the loop must still be blocked when this returns.
    frames: list[StackFrame] = []
    while frame is not None and id(frame) not in base:
        code = frame.f_code
        module = frame.f_globals.get("__name__")
        frames.append(
            StackFrame(
                code.co_filename,
                frame.f_lineno or 0,
                code.co_name,
                module if isinstance(module, str) else "",
            )
        )
        frame = frame.f_back
    return frames  # innermost first


def _candidates(frames: list[StackFrame]) -> list[StackFrame]:
    """The frames that may be blamed, innermost first: not machinery, nor the standard library
    that the machinery called for itself (walking from the loop outwards, a stdlib frame whose
    caller is machinery, or such a stdlib frame, belongs to the loop)."""
    found: list[StackFrame] = []
    inside_loop = True  # the frames below the cut run the loop
    for frame in reversed(frames):  # outermost first
        if _is_machinery(frame.module):
            inside_loop = True
        elif not (inside_loop and _is_stdlib(frame.filename)):
            inside_loop = False
            if frame.function not in _ANONYMOUS:
                found.append(frame)
    found.reverse()
    return found


def pick_culprit(frames: list[StackFrame]) -> StackFrame | None:
    """The innermost frame of your code (not installed, not loop machinery), or else the
    innermost frame that is not loop machinery, or None when the loop ran only its own code."""
    candidates = _candidates(frames)
    for frame in candidates:
        if not _is_library(frame):
            return frame
    return candidates[0] if candidates else None


def capture(thread_id: int, base: Collection[int]) -> Capture | None:
    """Sample the stack of thread ``thread_id`` above the ``base`` frames (ids); None if gone."""
    frame = sys._current_frames().get(thread_id)
    if frame is None:
        return None
    frames = _walk(frame, base)
    del frame
    with_lines = [
        StackFrame(f.filename, f.lineno, f.function, f.module, _source(f.filename, f.lineno))
        for f in frames
    ]
    culprit = pick_culprit(with_lines)
    if culprit is not None:
        # The loop's own outermost frames (run_once, the task step) say nothing: drop them.
        while with_lines and _is_machinery(with_lines[-1].module):
            with_lines.pop()
    stack = "".join(
        f'File "{f.filename}", line {f.lineno}, in {f.function}\n'
        + (f"  {f.line}\n" if f.line else "")
        for f in reversed(with_lines)
    )
    return Capture("code" if culprit is not None else "stall", culprit, stack)


def _source(filename: str, lineno: int) -> str:
    return linecache.getline(filename, lineno).strip()
