"""Stall or code: a loop that waits, or gets no CPU, is never blamed on code.

The classification is a pure function of the samples and of the loop thread's CPU evidence, so
it is tested case by case; then a real loop is stopped with SIGSTOP (in a child process, so that
an interactive shell running pytest never sees a stopped job) and must report only stalls.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hybridio._monitor._loop_monitor import _classify
from hybridio._monitor._stack import Capture
from hybridio.monitor import StackFrame

THRESHOLD = 0.05
HANDLER = StackFrame("/srv/app.py", 7, "handle", "app", "render(page)")
OTHER = StackFrame("/srv/app.py", 9, "other", "app", "other()")


def _code(culprit: StackFrame = HANDLER) -> Capture:
    return Capture("code", culprit, f'File "{culprit.filename}", line {culprit.lineno}\n')


WAITING = Capture("stall", None, 'File "selectors.py", line 468, in select\n')


def test_code_that_ran_on_the_loop_is_code() -> None:
    # 300 ms late, 250 ms of it on a CPU: the handler burned it.
    assert _classify((_code(),), 0.3, 0.25, 0.01, THRESHOLD) == ("code", _code())


def test_a_blocking_call_on_the_loop_is_code() -> None:
    # 300 ms late, no CPU used, no wait for a CPU: the loop thread sat in a call (time.sleep).
    assert _classify((_code(),), 0.3, 0.0, 0.0, THRESHOLD)[0] == "code"


def test_code_on_the_stack_of_a_starved_loop_is_a_stall() -> None:
    # Sampled in the handler, but 280 of the 300 ms were spent waiting for a CPU.
    cause, sample = _classify((_code(),), 0.3, 0.002, 0.28, THRESHOLD)
    assert cause == "stall"
    assert sample == _code()  # the stack is kept; the event names no culprit


def test_a_loop_waiting_in_its_selector_is_a_stall_whatever_the_clock_says() -> None:
    assert _classify((WAITING, WAITING), 0.3, 0.0, 0.0, THRESHOLD) == ("stall", WAITING)
    assert _classify((WAITING,), 0.3, 0.0, None, THRESHOLD)[0] == "stall"


def test_no_sample_and_no_cpu_is_a_stall() -> None:
    # Neither the loop nor its watchdog ran: the process was starved or stopped.
    assert _classify((), 0.3, 0.001, None, THRESHOLD) == ("stall", None)
    assert _classify((), 0.3, 0.001, 0.0, THRESHOLD) == ("stall", None)


def test_no_sample_but_the_loop_was_on_a_cpu_is_unknown() -> None:
    # The loop thread burned 250 ms that no sample saw: a C call holding the GIL.
    assert _classify((), 0.3, 0.25, 0.0, THRESHOLD) == ("unknown", None)


def test_the_culprit_is_the_commonest_sample() -> None:
    samples = (WAITING, _code(OTHER), _code(), _code())
    assert _classify(samples, 0.3, 0.25, 0.0, THRESHOLD) == ("code", _code())


STOPPED = textwrap.dedent(
    """
    import json, os, subprocess, sys, threading
    import anyio
    from hybridio import LoopMonitor
    from hybridio._monitor._stack import base_frames

    backend, options = sys.argv[1], json.loads(sys.argv[2])
    sys.path.insert(0, sys.argv[3])
    from _sampling import wait_until_parked

    def stop_me_for_a_while(loop_thread: int, base: dict[int, object]) -> None:
        # Run by a worker thread while the loop awaits it: once the loop waits for I/O, a
        # child stops this process for 0.4 s (no code of ours runs on the loop meanwhile).
        wait_until_parked(loop_thread, base)
        script = f"kill -STOP {os.getpid()}; sleep 0.4; kill -CONT {os.getpid()}"
        subprocess.run(["sh", "-c", script], check=True)

    async def main() -> None:
        base = {id(frame): frame for frame in base_frames(sys._getframe())}
        async with LoopMonitor(threshold=0.05) as monitor:
            await anyio.sleep(0.05)
            await anyio.to_thread.run_sync(stop_me_for_a_while, threading.get_ident(), base)
            await anyio.sleep(0.05)
        report = monitor.report()
        print(json.dumps([[b.cause, str(b.culprit), b.duration] for b in report.blocks]))

    anyio.run(main, backend=backend, backend_options=options)
    """
)


@pytest.mark.parametrize(
    ("backend", "options"),
    [("asyncio", {}), ("asyncio", {"use_uvloop": True}), ("trio", {})],
    ids=["asyncio", "asyncio+uvloop", "trio"],
)
def test_a_stopped_idle_loop_is_a_stall(backend: str, options: dict[str, bool]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", STOPPED, backend, json.dumps(options), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    blocks = json.loads(result.stdout)
    # The 400 ms stop made the heartbeat late: at least that block, and no code is blamed for
    # it or for anything a busy machine added.
    assert max(duration for _, _, duration in blocks) >= 0.35
    assert [(cause, culprit) for cause, culprit, _ in blocks] == [("stall", "None")] * len(blocks)
