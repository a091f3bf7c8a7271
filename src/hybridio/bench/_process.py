"""The helper processes of the bench (servers, load generators, crawlers, a Dask cluster):
starting, stopping and measuring them, all on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

__all__ = ["ensure_debian_packages", "free_port", "measure_tree", "running", "tree_rss"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(
    command: Sequence[str], *, listen: int | None = None, **popen: Any
) -> Iterator[subprocess.Popen[Any]]:
    """Run ``command`` for the block (once it accepts connections on ``listen``, if given), then
    terminate it, and kill it if it does not exit within 10 s."""
    popen.setdefault("stderr", subprocess.DEVNULL)
    process = subprocess.Popen(command, **popen)
    try:
        deadline = time.monotonic() + 30
        while listen is not None:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not listen on port {listen}")
            try:
                socket.create_connection(("127.0.0.1", listen), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _tree(process: psutil.Process) -> list[psutil.Process]:
    try:
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss(process: psutil.Process) -> float:
    """Resident memory of a process and its descendants, in MiB."""
    total = 0
    for member in _tree(process):
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def measure_tree(command: Sequence[str]) -> tuple[float, float, float]:
    """Run ``command`` to its end: wall seconds, CPU seconds of its process tree, and its peak
    RSS in MiB (sampled every 50 ms)."""
    started = time.perf_counter()
    cpu: dict[int, float] = {}
    peak = 0.0
    with tempfile.TemporaryFile() as errors:  # a file: a chatty child never blocks on a pipe
        process = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        while process.poll() is None:
            peak = max(peak, tree_rss(process))
            for member in _tree(process):
                try:
                    times = member.cpu_times()
                    cpu[member.pid] = times.user + times.system
                except psutil.NoSuchProcess:
                    pass
            time.sleep(0.05)
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{stderr[-2000:]}")
    return time.perf_counter() - started, sum(cpu.values()), peak


def ensure_debian_packages(packages: dict[str, Path]) -> str:
    """Install the Debian ``packages`` whose marker path is missing; '' when all are there, else
    why they could not be installed (not Debian, not root, apt-get failed)."""
    missing = [name for name, marker in packages.items() if not marker.exists()]
    apt = shutil.which("apt-get")
    if not missing:
        return ""
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return f"{', '.join(missing)} not installed (needs apt-get as root)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for attempt in range(2):
        command = [apt, "install", "-y", "--no-install-recommends", *missing]
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode == 0:
            return ""
        if attempt == 0:  # maybe an old package list: refresh it once
            subprocess.run([apt, "update"], capture_output=True, env=env, check=False)
    return f"apt-get install {' '.join(missing)} failed: {done.stderr.strip()[-300:]}"
