"""Claims about getting around the GIL without processes: free-threaded CPython, subinterpreters.

They need another Python than the one running the bench (3.13t, 3.13+), so this finds such
interpreters on this machine and measures them in a subprocess with a stdlib-only script. When
none is found the rows say so (docs/claims.md says how to get one).
"""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .. import _workloads
from ._claims_common import SCENARIO, Part, fact
from ._load import usable_cpus
from ._model import BenchContext, Row, Series
from ._targets import PARALLEL

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


def find_interpreters() -> dict[str, tuple[str, tuple[int, int]]]:
    """Interpreters here that offer "free_threaded" and "subinterpreters": kind -> (path, version)."""
    names = [f"python3.{minor}{suffix}" for minor in range(13, 16) for suffix in ("t", "")]
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    paths = [sys.executable, *filter(None, map(shutil.which, names))]
    paths += sorted(glob.glob(f"{root}/versions/3.1[3-9]*/bin/python3.1[3-9]*"))
    unique = {os.path.realpath(p): p for p in reversed(paths) if not p.endswith(("-config", ".py"))}
    found: dict[str, tuple[str, tuple[int, int]]] = {}
    for path in list(unique.values())[::-1][:8]:
        try:
            facts = json.loads(_run(path, "-c", _PROBE, timeout=20))
        except (OSError, subprocess.SubprocessError, ValueError):
            continue  # a pyenv shim for a version not selected, a broken install...
        version = (int(facts["version"][0]), int(facts["version"][1]))
        if facts["free_threaded"]:
            found.setdefault("free_threaded", (path, version))
        if version >= (3, 13):
            found.setdefault("subinterpreters", (path, version))
    return found


def _python_with_hybridio() -> str | None:
    """A Python 3.13+ here that imports this hybridio (``make test`` builds ``.venv313``)."""
    candidates = [Path(sys.prefix).parent / ".venv313" / "bin" / "python"]
    candidates += [
        Path(p) for p in glob.glob(str(Path(sys.prefix).parent / ".venv31[3-9]*/bin/python"))
    ]
    for path in candidates:
        if path.exists():
            return str(path)
    return None


def _hybridio_interpreters(ctx: BenchContext) -> Row:
    """hybridio's own ``kind="interpreter"``: 4 x ~50 ms pure-Python calls against inline."""
    name = 'hybridio kind="interpreter": 4 x ~50 ms calls on 2 interpreters, vs inline'
    python = _python_with_hybridio()
    if python is None or ctx.tiny:
        why = "no Python 3.13 environment with hybridio here (`make test` builds .venv313)"
        return fact(name, math.nan, "x", "other_implementations", "n/a", note=why)
    command = [python, "-m", "hybridio.bench._interpreters"] + ([] if ctx.quick else ["--full"])
    try:
        rows = {row["name"]: row for row in json.loads(_run(*command, timeout=600))}
        speedup = float(rows["parallel/interpreter/speed-up"]["value"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        return fact(name, math.nan, "x", "other_implementations", "n/a", note=f"failed: {exc!r}")
    return fact(
        name,
        speedup,
        "x",
        "other_implementations",
        "n/a",
        note=f"best of several rounds (context, not judged); {python}; see docs/benchmarks.md",
    )


def _run(*command: str, timeout: float = 300) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)
    return done.stdout


def alternatives(ctx: BenchContext) -> Part:
    """Free-threaded CPython threads and subinterpreters: speedup of k CPU tasks over sequential."""
    k = max(2, usable_cpus())
    n = _workloads.loops_for(ctx.pick(0.1, 0.05, 0.005))
    found = find_interpreters()
    ctx.progress(f"found {', '.join(f'{k}: {v[0]}' for k, v in found.items()) or 'none'}")
    part = Part()
    titles = {
        "free_threaded": (f"free-threaded CPython: {k} CPU tasks on {k} threads", "threads"),
        "subinterpreters": (
            f"subinterpreters: {k} CPU tasks in {k} interpreters",
            "subinterpreters",
        ),
    }
    for kind, (title, column) in titles.items():
        series = Series(title, "tasks/s", f"the same {k} tasks one after the other")
        note = "not available here: see docs/claims.md for how to get it"
        if kind in found:
            path, version = found[kind]
            try:
                data = json.loads(
                    _run(path, "-c", _SCRIPT, str(n), str(k), str(ctx.pick(12, 8, 1)))
                )
            except (OSError, subprocess.SubprocessError, ValueError) as exc:
                data = {"errors": [repr(exc)]}
            if data.get("errors"):
                note = f"failed: {data['errors'][0]}"
            else:
                note = f"Python {version[0]}.{version[1]}: {path}"
                for seq, par in zip(data["sequential"], data.get(column) or [], strict=False):
                    series.add(k / par, k / seq)
        measured = series.n > 0 and not note.startswith("failed")
        part.rows.append(
            series.row(SCENARIO, rule=PARALLEL, claim="other_implementations", note=note)
            if measured
            else series.row(SCENARIO, claim="other_implementations", verdict="n/a", note=note)
        )
    part.rows.append(_hybridio_interpreters(ctx))
    for name, claim in (
        ("Jython / IronPython as the way around the GIL", "other_implementations"),
        ("is the GIL required? (free-threaded CPython 3.13t runs without it)", "gil_required"),
    ):
        part.rows.append(fact(name, math.nan, "", claim, "qualified", note="see docs/claims.md"))
    return part
