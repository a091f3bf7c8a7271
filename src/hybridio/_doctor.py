"""``hybridio doctor``: what this Python and machine offer for each offload choice."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import multiprocessing
import os
import platform
import sys
from dataclasses import asdict, dataclass

import click

from ._extras import EXTRA_MODULES, install_hint
from ._runtime._gil import free_threaded_build, gil_enabled

__all__ = ["Diagnosis", "diagnose", "doctor", "usable_cpus"]

_PACKAGES = ("anyio", "trio", "uvloop", "aiohttp", "aiofiles", "cloudpickle", "click")


@dataclass(frozen=True)
class Diagnosis:
    """Facts about this interpreter and machine that decide where work should run."""

    python: str
    implementation: str
    executable: str
    platform: str
    cpus: int
    #: The CPUs this process may run on (its affinity): what a parallel speedup can reach.
    cpus_usable: int
    cpu_model: str
    memory_bytes: int | None
    free_threaded_build: bool
    gil_enabled: bool
    start_method: str
    subinterpreters: bool
    packages: dict[str, str | None]
    #: Each optional extra -> whether every module it installs is importable.
    extras: dict[str, bool]

    def advice(self) -> list[str]:
        """What the facts mean for offloading, one sentence each."""
        tips = []
        if self.free_threaded_build and not self.gil_enabled:
            tips.append(
                "free-threaded build with the GIL off: threads run Python code in parallel, so "
                "kind='cpu' runs on threads here (no pickling, no worker start-up; "
                "Runtime(cpu_backend='process') keeps processes)."
            )
        else:
            tips.append(
                "the GIL is on: pure-Python CPU work needs processes (run_cpu) to use more than "
                "one core; threads help only blocking calls and C code that releases the GIL. "
                "A free-threaded CPython (3.13t or newer, e.g. `uv python install 3.13t`) lifts this."
            )
        if not self.subinterpreters:
            tips.append(
                f"kind='interpreter' (subinterpreters, one GIL each) needs Python 3.13+; "
                f"this is {self.python}."
            )
        else:
            tips.append(
                "kind='interpreter' is available: pure-Python work in subinterpreters with a GIL "
                "each (cheaper calls than processes; extension modules must support them)."
            )
        if self.packages.get("uvloop") is None:
            tips.append("uvloop is not installed: hybridio.web will use the default asyncio loop.")
        missing = [extra for extra, installed in self.extras.items() if not installed]
        if missing:
            tips.append(
                "extras not installed: "
                + ", ".join(f"{extra} ({install_hint(extra)})" for extra in missing)
                + "."
            )
        if self.cpus < 2:
            tips.append("one CPU: processes cannot speed up CPU work here, only isolate it.")
        return tips


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity): what a parallel speedup can reach."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            found = (line.split(":", 1)[1] for line in cpuinfo if line.startswith("model name"))
            return next(found).strip()
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None  # not a POSIX system


def diagnose() -> Diagnosis:
    """Collect the facts."""
    free_threaded = free_threaded_build()
    gil_on = gil_enabled()
    return Diagnosis(
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        executable=sys.executable,
        platform=platform.platform(),
        cpus=os.cpu_count() or 1,
        cpus_usable=usable_cpus(),
        cpu_model=_cpu_model(),
        memory_bytes=_memory(),
        free_threaded_build=free_threaded,
        gil_enabled=gil_on,
        start_method=multiprocessing.get_start_method(allow_none=False),
        subinterpreters=sys.version_info >= (3, 13),
        packages={name: _version(name) for name in _PACKAGES},
        extras={
            extra: all(importlib.util.find_spec(module) is not None for module in modules)
            for extra, modules in EXTRA_MODULES.items()
        },
    )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the facts as JSON.")
def doctor(as_json: bool) -> None:
    """Show the Python build, GIL state, cores and which backends are available."""
    facts = diagnose()
    if as_json:
        import json

        click.echo(json.dumps(asdict(facts), indent=2))
        return
    rows = [
        ("python", f"{facts.python} ({facts.implementation}) {facts.executable}"),
        ("platform", facts.platform),
        ("cpu", f"{facts.cpu_model}, {facts.cpus} logical ({facts.cpus_usable} usable)"),
        (
            "memory",
            "unknown" if facts.memory_bytes is None else f"{facts.memory_bytes / 2**30:.1f} GiB",
        ),
        ("free-threaded build", "yes" if facts.free_threaded_build else "no"),
        ("GIL", "enabled" if facts.gil_enabled else "disabled"),
        ("multiprocessing start method", facts.start_method),
        ("subinterpreters", "available" if facts.subinterpreters else "not available (3.13+)"),
    ]
    rows += [(name, version or "not installed") for name, version in facts.packages.items()]
    rows.append(("extras", ", ".join(e for e, ok in facts.extras.items() if ok) or "none"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"{name:<{width}}  {value}")
    click.echo("")
    for tip in facts.advice():
        click.echo(f"- {tip}")
