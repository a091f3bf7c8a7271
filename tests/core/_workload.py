"""Functions that tests send to workers: module-level so that they pickle by reference."""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import hybridio


def square(x: int) -> int:
    return x * x


def identity(x: Any) -> Any:
    return x


def add(a: int, b: int = 0) -> int:
    return a + b


def where() -> tuple[int, int]:
    return os.getpid(), threading.get_ident()


def fail(message: str) -> None:
    raise ValueError(message)


def exit_with(code: int) -> None:
    os._exit(code)


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def segfault() -> None:
    ctypes.string_at(0)


def sleep_then(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


def spin(seconds: float) -> int:
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        n += 1
    return n


def make_generator() -> Iterator[int]:
    return iter(x for x in range(3))


def pid_and_value(x: int) -> tuple[int, int]:
    return os.getpid(), x


class NeedsTwoArgs(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a} {b}")


def raise_needs_two_args() -> None:
    raise NeedsTwoArgs(1, 2)


class HoldsALock(Exception):
    def __init__(self) -> None:
        super().__init__("holds a lock")
        self.lock = threading.Lock()


def raise_unpicklable_exception() -> None:
    raise HoldsALock


def wait_for_cancel(started: Any, observed: Any, limit: float) -> bool:
    """Loop until the caller gives up (cooperative cancel), then record that we saw it."""
    started.set()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if hybridio.cancel_requested():
            observed.set()
            return True
        time.sleep(0.005)
    return False


_initialized: list[str] = []


def remember(tag: str) -> None:
    _initialized.append(tag)


def initialized() -> list[str]:
    return list(_initialized)


def failing_initializer() -> None:
    raise RuntimeError("initializer exploded")


def allocate_and_report(megabytes: int) -> int:
    global _ballast
    _ballast = bytearray(megabytes * 1024 * 1024)
    return os.getpid()


_ballast: bytearray = bytearray()


@hybridio.cpu_bound
def decorated_cpu(x: int, *, scale: int = 1) -> tuple[int, int]:
    return os.getpid(), x * scale


@hybridio.blocking
def decorated_blocking(x: int) -> tuple[int, int]:
    return threading.get_ident(), x


def kill_self_if(really: bool) -> bool:
    if really:
        kill_self()
    return really


def append_and_count(items: list[Any], item: Any) -> int:
    """Mutates its list argument: a worker must give each call its own copy."""
    items.append(item)
    return len(items)


def fail_while_exists(path: str) -> None:
    """An initializer that raises for as long as ``path`` exists (a start-up that can recover)."""
    if os.path.exists(path):
        raise RuntimeError(f"initializer exploded: {path} exists")


def write_to_fd1(x: int) -> int:
    """Writes protocol-looking bytes straight to file descriptor 1, then answers."""
    os.write(1, b"RETURN 5\n\x80\x04K\x07.\n")
    print("a print in a worker", flush=True)
    return x
