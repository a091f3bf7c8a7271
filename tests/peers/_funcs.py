"""Functions the translated peer tests send to workers: module-level so that they pickle by name.

Cross-process "events" are files: a worker touches one, the test polls for it (bounded), which
needs no multiprocessing.Manager process and works from threads, processes and the event loop.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

import anyio

import hybridio

#: The longest a worker waits for a file the test is expected to create (a hang becomes a failure).
WAIT_LIMIT = 30.0


def touch(path: str | Path) -> None:
    Path(path).touch()


def wait_file(path: str | Path, limit: float = WAIT_LIMIT) -> bool:
    """Block until ``path`` exists (True) or ``limit`` seconds passed (False)."""
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def exists(path: str | Path) -> bool:
    return os.path.exists(path)


def read_pid(path: str | Path) -> int:
    return int(Path(path).read_text())


def listing(directory: str | Path, pattern: str = "*") -> list[Path]:
    return sorted(Path(directory).glob(pattern))


async def eventually(predicate: Any, limit: float = 20.0) -> None:
    """In the test: wait until ``predicate()`` is true (fails the test after ``limit``).

    Polling: what it waits for happens in another process or thread, which no anyio.Event spans.
    """
    with anyio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110 - see above
            await anyio.sleep(0.005)


async def wait_for_file(path: str | Path, limit: float = 20.0) -> None:
    """In the test: wait for a worker to create ``path`` (fails the test after ``limit``)."""
    await eventually(lambda: exists(path), limit)


def kill(pid: int, signum: int) -> None:
    """Signal one worker, never a process group (pid 0 / -1) or this process."""
    assert pid > 1
    assert pid != os.getpid()
    os.kill(pid, signum)


def pid_is_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie that is not ours counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


ROOT = Path(__file__).resolve().parents[2]


def run_python(
    code: str | None = None, *, script: Path | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (or the file ``script``) in a fresh interpreter (cases that may hang or exit).

    The child runs from the repository root so that ``tests.peers._funcs`` imports, in a new
    session so that a signal it sends to its process group reaches no one else.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(script)] if script is not None else [sys.executable, "-c", str(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        start_new_session=True,
    )


def block_worker(block: str, start: str, done: str) -> None:
    """trio-parallel's _block_worker: say it started, wait for ``block``, say it is done."""
    touch(start)
    wait_file(block)
    touch(done)


def never_halts(started: str) -> NoReturn:
    """trio-parallel's _never_halts: a CPU loop that only a kill ends."""
    touch(started)
    while True:
        pass


def report_pid_then_wait(started: str, gate: str) -> int:
    """Write our pid into ``started`` (atomically: never seen empty), wait for ``gate``."""
    Path(started + ".tmp").write_text(str(os.getpid()))
    os.replace(started + ".tmp", started)
    wait_file(gate)
    return os.getpid()


def wait_gate(gate: str, started_dir: str) -> int:
    """Say we started (one file per call), wait for ``gate``; return our pid."""
    Path(started_dir, f"{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}").touch()
    wait_file(gate)
    return os.getpid()


def rendezvous(directory: str, parties: int) -> int:
    """Register this process, wait until ``parties`` distinct processes registered; return pid."""
    Path(directory, str(os.getpid())).touch()
    deadline = time.monotonic() + WAIT_LIMIT
    while len(os.listdir(directory)) < parties and time.monotonic() < deadline:
        time.sleep(0.005)
    return os.getpid()


def nap(seconds: float, value: Any = None) -> Any:
    """Sleep ``seconds``; stop early when the caller gave up (threads cannot be killed)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if hybridio.cancel_requested():
            return None
        time.sleep(0.005)
    return value


def raise_pid() -> NoReturn:
    raise ValueError(os.getpid())


def sys_path() -> list[str]:
    return list(sys.path)


def main_module_foo() -> Any:
    # as anyio's _check_main_importable: multiprocessing's convention
    assert sys.modules["__main__"] is sys.modules["__mp_main__"]
    return sys.modules["__main__"].foo


def flood_stdout_and_stderr() -> str:
    """anyio's _flood_stderr: write well past a pipe buffer (64 KiB) to fds 1 and 2."""
    payload = "x" * (1024 * 1024)
    for stream in sys.stdout, sys.stderr:
        stream.write(payload)
        stream.flush()
    return "completed"


def trio_not_imported() -> bool:
    return "trio" not in sys.modules


def raise_sigint_in_self() -> None:
    signal.raise_signal(signal.SIGINT)


def call_exit(code: int = 1) -> NoReturn:
    sys.exit(code)


def raise_keyboard_interrupt() -> NoReturn:
    raise KeyboardInterrupt


def raise_base_exception() -> NoReturn:
    raise BaseException("BOOM!")  # noqa: TRY002 - pebble's error_function


def return_base_exception() -> BaseException:
    return BaseException("BOOM!")


def return_lock() -> Any:
    return threading.Lock()


def lambda_job() -> None:
    return None


_lambda = lambda: None


def return_lambda() -> Any:
    return _lambda


async def null_async_fn() -> None:  # pragma: no cover - never awaited
    pass


class SpecialError(Exception):
    pass


def chained_exc() -> NoReturn:
    try:
        raise ValueError("test1")
    except ValueError as e:
        raise SpecialError("test2") from e


@dataclasses.dataclass(frozen=True)
class FrozenError(Exception):
    pass


def frozen_error_function() -> NoReturn:
    raise FrozenError()


def function(argument: Any, keyword_argument: Any = 0) -> Any:
    """pebble's function."""
    return argument + keyword_argument


def sigterm_ignoring_sleep(seconds: float) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(seconds)


def process_function() -> int:
    """pebble's process_function: the worker starts a multiprocessing.Process of its own."""
    p = multiprocessing.Process(target=function, args=[1])
    p.start()
    p.join()
    return 1


def pool_function() -> int:
    """pebble's pool_function: the worker runs a multiprocessing.Pool of its own."""
    with multiprocessing.Pool(1) as pool:
        return int(pool.apply(function, args=[1]))


INITARG = 0


def initializer(value: Any) -> None:
    global INITARG
    INITARG = value


def initializer_function() -> Any:
    return INITARG


def broken_initializer() -> NoReturn:
    raise BaseException("BOOM!")  # noqa: TRY002 - pebble's broken_initializer


def init_fail() -> NoReturn:
    raise ValueError("error in initializer")


def mul(x: int, y: int) -> int:
    return x * y


def pid_and_mul(x: int, y: int) -> tuple[int, int]:
    return os.getpid(), x * y


def capture(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


def star(fn_and_args: tuple[Any, ...]) -> Any:
    """Apply a function to a tuple of arguments: Executor.map over several iterables."""
    fn, *args = fn_and_args
    return fn(*args)


class MyObject:
    def my_method(self) -> None:
        pass


def make_dummy_object(_: Any) -> MyObject:
    return MyObject()


def traceback_function() -> NoReturn:
    raise RuntimeError(123)  # some comment


class DelTouches:
    """CPython's EventfulGCObj: its __del__ (in the worker) touches a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __del__(self) -> None:
        touch(self.path)


def crash(delay: float | None = None) -> None:
    """Induce a segfault (CPython's _crash)."""
    if delay:
        time.sleep(delay)
    faulthandler.disable()
    faulthandler._sigsegv()  # type: ignore[attr-defined]


def crash_with_data(data: Any) -> None:
    crash()


def raise_error(err: type[BaseException]) -> NoReturn:
    raise err()


def raise_error_ignore_stderr(err: type[BaseException]) -> NoReturn:
    import io

    sys.stderr = io.StringIO()
    raise err()


def return_instance(cls: type) -> Any:
    return cls()


class CrashAtPickle:
    """Segfaults when pickled."""

    def __reduce__(self) -> Any:
        crash()


class CrashAtUnpickle:
    """Segfaults when unpickled."""

    def __reduce__(self) -> Any:
        return crash, ()


class ExitAtPickle:
    """sys.exit(1) when pickled."""

    def __reduce__(self) -> Any:
        call_exit(1)


class ExitAtUnpickle:
    """sys.exit(1) when unpickled."""

    def __reduce__(self) -> Any:
        return call_exit, ()


class ErrorAtPickle:
    """PicklingError when pickled."""

    def __reduce__(self) -> Any:
        raise pickle.PicklingError("Error in pickle")


class ErrorAtUnpickle:
    """UnpicklingError when unpickled (and the unpickling side's stderr replaced)."""

    def __reduce__(self) -> Any:
        return raise_error_ignore_stderr, (pickle.UnpicklingError,)
