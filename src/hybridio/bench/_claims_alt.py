"""Claims about getting around the GIL without processes: free-threaded CPython, subinterpreters.

They need another Python than the one running the bench (3.13t, 3.13+), so this finds such
interpreters on this machine and measures them in a subprocess with a stdlib-only script. When
none is found the rows say so, and what it would take.
"""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

from ._claims_common import Part, Timing, row, usable_cpus
from ._claims_cpu import NO_GAIN, calibrate_spin
from ._claims_verdicts import parallel_target, verdict_at_least
from ._model import BenchContext

__all__ = ["alternatives", "find_interpreters"]

_PROBE = (
    "import json, sys, sysconfig; print(json.dumps({'version': list(sys.version_info[:2]), "
    "'free_threaded': bool(sysconfig.get_config_var('Py_GIL_DISABLED'))}))"
)

# Runs in the other interpreter: k tasks one after the other, in k threads, in k subinterpreters.
_SCRIPT = r"""
import json, statistics, sys, threading, time
n, k, repeats = (int(arg) for arg in sys.argv[1:4])
SPIN = "def spin(n):\n    total = 0\n    for i in range(n):\n        total += i * i % 7\n    return total\n"
exec(SPIN)
def timed(fn):
    start = time.perf_counter(); fn(); return time.perf_counter() - start
def in_threads(targets):
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads: t.start()
    for t in threads: t.join()
out = {"gil_enabled": getattr(sys, "_is_gil_enabled", lambda: True)()}
out["sequential"] = [timed(lambda: [spin(n) for _ in range(k)]) for _ in range(repeats)]
out["threads"] = [timed(lambda: in_threads([lambda: spin(n)] * k)) for _ in range(repeats)]
try:
    import _interpreters
except ImportError:
    out["subinterpreters"] = None
else:
    ids = [_interpreters.create() for _ in range(k)]
    code = SPIN + f"spin({n})\n"
    errors = []
    def run_in(i):
        failure = _interpreters.exec(i, code)
        if failure is not None: errors.append(str(failure))
    in_threads([lambda i=i: run_in(i) for i in ids])  # warm: each interpreter's first run
    out["subinterpreters"] = [timed(lambda: in_threads([lambda i=i: run_in(i) for i in ids]))
                              for _ in range(repeats)]
    out["errors"] = errors
    for i in ids: _interpreters.destroy(i)
print(json.dumps(out))
"""


def _candidates() -> list[str]:
    names = [f"python3.{minor}{suffix}" for minor in range(13, 16) for suffix in ("t", "")]
    found = [path for name in names if (path := shutil.which(name))]
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    found += sorted(glob.glob(f"{root}/versions/3.1[3-9]*/bin/python3.1[3-9]*"))
    found = [sys.executable, *found]
    unique: dict[str, str] = {}
    for path in found:
        if not path.endswith(("-config", ".py")):
            unique.setdefault(os.path.realpath(path), path)
    return list(unique.values())[:8]


def find_interpreters() -> dict[str, tuple[str, tuple[int, int]]]:
    """Interpreters here that offer "free_threaded" and "subinterpreters": kind -> (path, version)."""
    found: dict[str, tuple[str, tuple[int, int]]] = {}
    for path in _candidates():
        try:
            done = subprocess.run(
                [path, "-c", _PROBE], capture_output=True, text=True, timeout=20, check=True
            )
            facts = json.loads(done.stdout)
        except (OSError, subprocess.SubprocessError, ValueError):
            continue  # a pyenv shim for a version not selected, a broken install...
        version = (int(facts["version"][0]), int(facts["version"][1]))
        if facts["free_threaded"]:
            found.setdefault("free_threaded", (path, version))
        if version >= (3, 13):
            found.setdefault("subinterpreters", (path, version))
    return found


def _measure(path: str, n: int, k: int, repeats: int) -> dict[str, Any]:
    done = subprocess.run(
        [path, "-c", _SCRIPT, str(n), str(k), str(repeats)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def alternatives(ctx: BenchContext) -> Part:
    """Free-threaded CPython threads and subinterpreters: speedup of k CPU tasks over sequential."""
    cpus = usable_cpus()
    k = max(2, cpus)
    target = parallel_target(cpus)
    n = calibrate_spin(ctx.pick(0.1, 0.05, 0.005))
    repeats = ctx.repeats(5, 3, 1)
    here = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    found = find_interpreters()
    ctx.progress(
        f"alternatives: found {', '.join(f'{k}: {v[0]}' for k, v in found.items()) or 'none'}"
    )
    part = Part(data={"interpreters": {kind: path for kind, (path, _) in found.items()}})
    measured: dict[str, tuple[Timing, Timing, str]] = {}
    for kind, (path, version) in found.items():
        try:
            data = _measure(path, n, k, repeats)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            ctx.progress(f"alternatives: {path} failed: {exc}")
            continue
        column = "threads" if kind == "free_threaded" else "subinterpreters"
        if data.get(column) and not data.get("errors"):
            label = f"Python {version[0]}.{version[1]} at {path}"
            measured[kind] = (Timing.of(data["sequential"]), Timing.of(data[column]), label)
    how = {
        "free_threaded": "not available here: install a free-threaded CPython 3.13t or newer "
        "(`uv python install 3.13t`, or the python.org installer's free-threaded option) and put "
        "python3.13t on PATH; `hybridio doctor` reports the build",
        "subinterpreters": "not available here: needs CPython 3.13+ (one GIL per interpreter; "
        "anyio.to_interpreter); `hybridio doctor` reports it",
    }
    titles = {
        "free_threaded": f"free-threaded CPython: {k} CPU tasks on {k} threads",
        "subinterpreters": f"subinterpreters: {k} CPU tasks in {k} interpreters (threads)",
    }
    for kind in ("free_threaded", "subinterpreters"):
        if kind not in measured:
            part.rows.append(
                row(
                    titles[kind],
                    math.nan,
                    "s",
                    claim="other_implementations",
                    verdict="n/a",
                    note=how[kind],
                )
            )
            continue
        sequential, parallel, label = measured[kind]
        x = sequential.median / parallel.median
        part.rows.append(
            row(
                titles[kind],
                parallel.median,
                "s",
                claim="other_implementations",
                verdict=verdict_at_least(x, target, NO_GAIN),
                timing=parallel,
                baseline=f"the same {k} tasks one after the other",
                baseline_value=sequential.median,
                ratio_value=x,
                note=f"ratio = speedup ({x:.2f}x; confirmed at >= {target:.2f}x); measured with "
                f"{label} in a subprocess" + (" (this interpreter)" if here else ""),
            )
        )
    free = measured.get("free_threaded")
    part.rows += [
        row(
            "Jython / IronPython as the way around the GIL",
            math.nan,
            "",
            claim="other_implementations",
            verdict="qualified",
            note="Python 2 era advice: Jython is still 2.7 and IronPython lags (3.4), and neither "
            "runs C extensions. Today's ways are CPython's free-threaded build (3.13t) and "
            "subinterpreters (3.13+), measured in the rows above when available",
        ),
        row(
            "free-threaded CPython threads (is the GIL required?)",
            math.nan if free is None else free[1].median,
            "s",
            claim="gil_required",
            verdict="qualified",
            baseline=None if free is None else "sequential",
            baseline_value=None if free is None else free[0].median,
            ratio_value=None if free is None else free[0].median / free[1].median,
            note="qualified: the default CPython build needs it, but PEP 703's free-threaded "
            "build (3.13t) makes reference counting thread-safe without it (biased and deferred "
            "reference counting), at some single-thread cost"
            + ("" if free else "; " + how["free_threaded"]),
        ),
    ]
    return part
