"""Stack sampling from another thread, and which frame is named the culprit."""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from hybridio._monitor._stack import capture, pick_culprit
from hybridio.monitor import StackFrame


def _kiwi_waits_here(started: threading.Event, release: threading.Event) -> None:
    started.set()
    release.wait()


@contextmanager
def _thread_running(target: Callable[[threading.Event, threading.Event], None]) -> Iterator[int]:
    started, release = threading.Event(), threading.Event()
    thread = threading.Thread(target=target, args=(started, release))
    thread.start()
    try:
        assert started.wait(5)
        assert thread.ident is not None
        # started.set() returns before the thread reaches release.wait(): on a busy machine a
        # sample taken at once can still see the line before. Wait until it is blocked.
        deadline = time.monotonic() + 5
        while sys._current_frames()[thread.ident].f_code.co_name != "wait":
            assert time.monotonic() < deadline, "the thread never reached release.wait()"
            time.sleep(0.001)
        yield thread.ident
    finally:
        release.set()
        thread.join()


def test_capture_names_the_innermost_frame_of_user_code() -> None:
    with _thread_running(_kiwi_waits_here) as ident:
        sample = capture(ident, base=())
    assert sample is not None
    assert sample.cause == "code"
    assert sample.culprit is not None
    assert sample.culprit.function == "_kiwi_waits_here"
    assert sample.culprit.line == "release.wait()"
    # threading's own frames are on the stack text, but never the culprit
    assert 'threading.py", line' in sample.stack
    # innermost frame last, as in a traceback
    assert sample.stack.splitlines()[-2].endswith(", in wait")


def test_only_machinery_on_the_stack_is_a_stall() -> None:
    release = threading.Event()
    # The thread's target is threading's own code: no frame of ours on that stack.
    thread = threading.Thread(target=release.wait)
    thread.start()
    try:
        assert thread.ident is not None
        for _ in range(1000):  # until the thread is inside wait()
            frame = sys._current_frames().get(thread.ident)
            if frame is not None and frame.f_code.co_name == "wait":
                break
            threading.Event().wait(0.001)
        sample = capture(thread.ident, base=())
    finally:
        release.set()
        thread.join()
    assert sample is not None
    assert sample.cause == "stall"
    assert sample.culprit is None
    assert "wait" in sample.stack


def test_capture_of_a_thread_that_is_gone_is_none() -> None:
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join()
    assert thread.ident is not None
    assert capture(thread.ident, base=()) is None


def test_base_frames_cut_the_stack() -> None:
    with _thread_running(_kiwi_waits_here) as ident:
        frame = sys._current_frames()[ident]
        assert frame.f_back is not None
        # Everything from the culprit's caller down counts as "below the loop".
        base = set()
        outer: FrameType | None = frame.f_back
        while outer is not None and outer.f_code.co_name != "_kiwi_waits_here":
            outer = outer.f_back
        assert outer is not None
        assert outer.f_back is not None
        below: FrameType | None = outer.f_back
        while below is not None:
            base.add(id(below))
            below = below.f_back
        sample = capture(ident, base=base)
    assert sample is not None
    assert "_bootstrap" not in sample.stack
    assert sample.stack.startswith('File "' + __file__)


def _frame(module: str, filename: str, function: str = "f") -> StackFrame:
    return StackFrame(filename, 1, function, module)


def test_culprit_prefers_your_code_over_libraries_and_machinery() -> None:
    library = _frame("json.decoder", json.__file__.replace("__init__", "decoder"), "raw_decode")
    mine = _frame("app.handlers", "/srv/app/handlers.py", "handle")
    loop = _frame("asyncio.events", "/usr/lib/python3/asyncio/events.py", "_run")
    assert pick_culprit([library, mine, loop]) == mine
    # No code of yours: the innermost installed frame that is not the loop's own...
    aiohttp = _frame("aiohttp.web_protocol", "/v/site-packages/aiohttp/web_protocol.py")
    assert pick_culprit([library, aiohttp, loop]) == aiohttp
    assert pick_culprit([aiohttp, loop]) == aiohttp
    # ...and the standard library the loop calls for itself is the loop's own: anyio's trio
    # test runner waits in queue.Queue.get, trio waits for processes with subprocess.
    assert pick_culprit([library, loop]) is None
    waits = _frame("queue", queue.__file__, "get")
    runner = _frame("anyio._backends._trio", "/v/site-packages/anyio/_backends/_trio.py")
    assert pick_culprit([_frame("threading", threading.__file__, "wait"), waits, runner]) is None
    # Called from your code, the standard library is yours to answer for: your line is named.
    assert pick_culprit([waits, mine, runner]) == mine
    assert pick_culprit([loop, _frame("trio._core._run", "/x/trio/_core/_run.py")]) is None
    # hybridio's own scenarios and examples are not "installed libraries", its machinery is.
    assert pick_culprit([_frame("hybridio.bench._monitor", "/site-packages/x.py")]) is not None
    assert pick_culprit([_frame("hybridio._core._api", "/src/hybridio/_core/_api.py")]) is None


def test_stack_frame_str_is_file_line_function() -> None:
    assert str(StackFrame("/srv/app.py", 42, "handle", "app")) == "/srv/app.py:42 handle"
