"""Worker functions that misbehave on purpose (issue 19): module-level so that they pickle."""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import os
import subprocess
import sys
from typing import Any

import hybridio


def noisy_identity(x: Any) -> Any:
    """Write to file descriptor 1 three ways (Python, C stdio, a child process), then answer."""
    os.write(1, b"os.write to fd 1 from a worker\n")
    libc = ctypes.CDLL(None)
    libc.printf(b"printf to fd 1 from a worker: %d\n", 7)
    libc.fflush(None)
    subprocess.run([sys.executable, "-c", "print('a child of a worker on fd 1' * 20)"], check=True)
    return x


def flood_stderr(megabytes: int) -> int:
    """Write ``megabytes`` MiB to file descriptor 2 and return how many bytes were written."""
    chunk = b"e" * (1 << 20)
    for _ in range(megabytes):
        os.write(2, chunk)
    return megabytes << 20


def exit_with_status(code: int) -> None:
    sys.exit(code)


def interrupt() -> None:
    raise KeyboardInterrupt("pressed in the function")


def cancel_itself() -> None:
    raise asyncio.CancelledError


def exit_at(position: int, x: int) -> int:
    if x == position:
        sys.exit(f"item {x}")
    return x * 10


def fail_at(position: int, x: int) -> int:
    if x == position:
        raise ValueError(f"item {x}")
    return x * 10


@dataclasses.dataclass(frozen=True)
class FrozenError(Exception):
    """An exception users define as a frozen dataclass: its __init__ takes fields, not args."""

    code: int
    why: str


def raise_frozen(code: int) -> None:
    raise FrozenError(code, "frozen on purpose")


class ExitsWhenUnpickled:
    """Unpickling it calls sys.exit (CPython's ExitAtUnpickle)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (sys.exit, ("exit at unpickle",))


class ExitsWhenPickled:
    """Pickling it calls sys.exit (CPython's ExitAtPickle)."""

    def __reduce__(self) -> tuple[Any, ...]:
        sys.exit("exit at pickle")


def return_exits_when_unpickled() -> ExitsWhenUnpickled:
    return ExitsWhenUnpickled()


def return_exits_when_pickled() -> ExitsWhenPickled:
    return ExitsWhenPickled()


def take(x: Any) -> str:
    return type(x).__name__


def pid() -> int:
    return os.getpid()


def die_at(position: int, x: int) -> int:
    """Kill this worker process on item ``position`` (its batch fails with it)."""
    if x == position:
        os._exit(9)
    return x


def sleep_for(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


def start_child_then_sleep(seconds: float, pid_file: str) -> None:
    """Start a long-lived child process, write its pid to ``pid_file``, then sleep."""
    import pathlib
    import time

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    pathlib.Path(pid_file).write_text(str(child.pid))
    time.sleep(seconds)


def kill_self() -> None:
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def identity(x: Any) -> Any:
    return x


@hybridio.cpu_bound
def decorated_exit(code: int) -> None:
    os._exit(code)


@hybridio.cpu_bound
def decorated_take(x: Any) -> str:
    return type(x).__name__


def fork_then_die() -> None:
    """Fork a child that keeps the worker's channel open for a minute, then die (SIGKILL)."""
    import signal
    import time

    if os.fork() == 0:
        time.sleep(60)
        os._exit(0)
    os.kill(os.getpid(), signal.SIGKILL)
