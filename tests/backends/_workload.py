"""Functions that the interpreter tests send to subinterpreters (module-level: they pickle)."""

from __future__ import annotations

import os
import select
import time
from pathlib import Path

import hybridio

#: Set by ``remember`` (the Runtime's initializer): module state of the interpreter it ran in.
initialised_with: str | None = None


def square(x: int) -> int:
    return x * x


def fail(message: str) -> None:
    raise ValueError(message)


def current_interpreter() -> int:
    """The id of the interpreter this runs in (0 is the main one)."""
    import _interpreters  # type: ignore[import-not-found]  # Python 3.13+

    ident: int = _interpreters.get_current()[0]
    return ident


def rendezvous(write_fd: int, read_fd: int) -> bool:
    """Signal the other call, then wait (bounded) for its signal: True when both ran at once."""
    os.write(write_fd, b"x")
    ready, _, _ = select.select([read_fd], [], [], 20.0)
    if not ready:
        return False
    os.read(read_fd, 1)
    return True


def until_cancelled(marker: str) -> str:
    """Spin until the caller gives up (bounded), then say so in ``marker``."""
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        if hybridio.cancel_requested():
            Path(marker).write_text("cancelled")
            return "cancelled"
        time.sleep(0.001)
    Path(marker).write_text("not cancelled")
    return "not cancelled"


def uses_psutil() -> int:
    """psutil's extension module refuses subinterpreters: importing it here fails."""
    import psutil

    return psutil.cpu_count() or 1


def remember(value: str) -> None:
    global initialised_with
    initialised_with = value


def recall() -> str | None:
    return initialised_with


def refuse() -> None:
    raise RuntimeError("initializer refused")
