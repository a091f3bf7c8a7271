"""Which scenarios exist, and running them one after the other so one failure loses no other;
a scenario whose optional dependencies are missing is skipped, saying how to install them."""

from __future__ import annotations

import importlib
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict

from .._extras import EXTRA_MODULES, install_hint
from . import _load
from ._model import BenchContext, Scenario, ScenarioResult, guard_busy

#: The scenarios ``bench all`` runs, in order; ``cluster`` and ``interpreters`` run when named.
IN_ALL = ("claims", "dispatch", "monitor", "server", "crawl", "auto")
#: name -> "module:function".
SCENARIOS = {name: f"hybridio.bench._{name}:run" for name in (*IN_ALL, "cluster", "interpreters")}


class ScenarioUnavailable(Exception):
    """A scenario cannot be loaded here; the message says why and what to do."""


def load_scenario(name: str, registry: dict[str, str]) -> Scenario:
    """Import the scenario registered as ``name``, or raise ``ScenarioUnavailable``."""
    module_name, _, attribute = registry[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise ScenarioUnavailable(f"not available in this version ({module_name})") from exc
        extras = [extra for extra, modules in EXTRA_MODULES.items() if exc.name in modules]
        how = install_hint(extras[-1]) if extras else "pip install 'hybridio[all]'"
        raise ScenarioUnavailable(f"needs {exc.name!r}, which is not installed: {how}") from exc
    function: Scenario = getattr(module, attribute)
    return function


def expand_names(names: Iterable[str], registry: dict[str, str] | None = None) -> list[str]:
    """``all`` expanded (``IN_ALL``, or a given registry's every name), duplicates dropped; a
    ValueError names an unknown scenario."""
    everything = list(IN_ALL if registry is None else registry)
    registry = registry or SCENARIOS
    chosen = [item for name in names for item in (everything if name == "all" else [name])]
    for name in chosen:
        if name not in registry:
            raise ValueError(f"unknown scenario {name!r}; choose from: all, {', '.join(registry)}")
    return list(dict.fromkeys(chosen))


def _guard_busy(result: ScenarioResult, load: _load.Load | None) -> None:
    """On a busy machine a "refuted" or "not met" judged without an interval (a one-shot row)
    may be the load's doing: it becomes inconclusive."""
    for row in result.rows:
        if row.verdict is not None and row.interval is None:
            row.verdict, row.reason = guard_busy(row.verdict, row.reason, load)


def run_scenarios(
    names: Iterable[str],
    ctx: BenchContext,
    *,
    registry: dict[str, str] | None = None,
    announce: Callable[[str], None] = lambda message: None,
) -> list[ScenarioResult]:
    """Run each named scenario and return the results in order: "skipped" when it cannot be
    loaded, "error" (traceback in ``extra``) when it raises; each records the load meanwhile."""
    ctx.out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in expand_names(names, registry):
        announce(f"{name}: starting")
        start, clock = time.perf_counter(), time.monotonic()
        try:
            scenario = load_scenario(name, registry or SCENARIOS)
            result = scenario(ctx.under(name))
        except ScenarioUnavailable as exc:
            result = ScenarioResult(name, name, "", status="skipped", reason=str(exc))
        except Exception as exc:  # noqa: BLE001 - one failure becomes its error section
            extra = {"traceback": traceback.format_exc()}
            reason = f"{type(exc).__name__}: {exc}"
            result = ScenarioResult(name, name, "", status="error", reason=reason, extra=extra)
        result.seconds = time.perf_counter() - start
        load = _load.during(clock, time.monotonic())
        result.load = None if load is None else {**asdict(load), "busy": load.busy}
        _guard_busy(result, load)
        announce(f"{name}: {result.status} in {result.seconds:.1f} s")
        results.append(result)
    return results
