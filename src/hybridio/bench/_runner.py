"""Which scenarios exist, and running them one after the other so one failure loses no other.

Scenarios are imported only when run, so one whose optional dependencies are missing is
reported as skipped (with the reason) instead of breaking ``hybridio bench all``.
"""

from __future__ import annotations

import importlib
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import replace

from .._extras import EXTRA_MODULES, install_hint
from . import _load
from ._model import INCONCLUSIVE, BenchContext, Scenario, ScenarioResult

#: name -> "module:function", in the order ``bench all`` runs them.
SCENARIOS: dict[str, str] = {
    name: f"hybridio.bench._{name}:run"
    for name in ("claims", "dispatch", "monitor", "server", "crawl", "auto", "cluster")
}
#: What ``bench all`` runs; the others run only when named (``cluster`` starts a Dask cluster).
IN_ALL = ("claims", "dispatch", "monitor", "server", "crawl", "auto")


class ScenarioUnavailable(Exception):
    """Raised when a scenario cannot be loaded here; the message says why and what to do."""


def load_scenario(name: str, registry: dict[str, str]) -> Scenario:
    """Import the scenario function registered as ``name``.

    Raises:
        ScenarioUnavailable: its module (or one of its dependencies) cannot be imported, or it
            does not define the function.
    """
    module_name, _, attribute = registry[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise ScenarioUnavailable(f"not available in this version ({module_name})") from exc
        extras = [extra for extra, modules in EXTRA_MODULES.items() if exc.name in modules]
        how = install_hint(extras[-1]) if extras else "pip install 'hybridio[all]'"
        raise ScenarioUnavailable(f"needs {exc.name!r}, which is not installed: {how}") from exc
    function: Scenario | None = getattr(module, attribute, None)
    if not callable(function):
        raise ScenarioUnavailable(f"{module_name} does not define {attribute}()")
    return function


def expand_names(names: Iterable[str], registry: dict[str, str] | None = None) -> list[str]:
    """Resolve ``all`` (``IN_ALL``, or every scenario of a given ``registry``), drop duplicates,
    keep the order given.

    Raises:
        ValueError: a name is neither ``all`` nor registered.
    """
    everything = list(IN_ALL) if registry is None else list(registry)
    registry = SCENARIOS if registry is None else registry
    chosen = [item for name in names for item in (everything if name == "all" else [name])]
    unknown = [name for name in chosen if name not in registry]
    if unknown:
        raise ValueError(
            f"unknown scenario {unknown[0]!r}; choose from: all, {', '.join(registry)}"
        )
    return list(dict.fromkeys(chosen))


def prefixed(progress: Callable[[str], None], name: str) -> Callable[[str], None]:
    """``progress`` with "name: " before each message that does not start with it already."""
    prefix = f"{name}: "
    return lambda m: progress(m if m.startswith(prefix) else prefix + m)


def _guard_busy(result: ScenarioResult, load: _load.Load | None) -> None:
    """Rows judged without an interval (one-shot, or scenarios that judge by themselves): on a
    busy machine a "refuted" or "not met" may be the load's doing, so it becomes inconclusive."""
    if load is None or not load.busy:
        return
    for row in result.rows:
        if row.verdict in ("refuted", "not met") and row.interval is None:
            row.verdict = INCONCLUSIVE
            row.reason = f"busy machine ({load.text()}): rerun when it is quiet"


def run_scenarios(
    names: Iterable[str],
    ctx: BenchContext,
    *,
    registry: dict[str, str] | None = None,
    announce: Callable[[str], None] = lambda message: None,
) -> list[ScenarioResult]:
    """Run each named scenario with ``ctx`` and return their results in order.

    ``announce`` hears when each scenario starts and ends; the scenario's own progress goes to
    ``ctx.progress`` prefixed with its name. A scenario that cannot be loaded comes back with
    ``status="skipped"``, one that raises with ``status="error"`` and the traceback in
    ``extra["traceback"]``; the rest still run. Each result records the load while it ran.
    """
    ctx.out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in expand_names(names, registry):
        announce(f"{name}: starting")
        start, clock = time.perf_counter(), time.monotonic()
        try:
            scenario = load_scenario(name, registry or SCENARIOS)
            result = scenario(replace(ctx, progress=prefixed(ctx.progress, name)))
        except ScenarioUnavailable as exc:
            result = ScenarioResult(name, name, "", status="skipped", reason=str(exc))
        except Exception as exc:  # noqa: BLE001 - one failure becomes its error section
            reason = f"{type(exc).__name__}: {exc}"
            extra = {"traceback": traceback.format_exc()}
            result = ScenarioResult(name, name, "", status="error", reason=reason, extra=extra)
        result.seconds = time.perf_counter() - start
        load = _load.during(clock, time.monotonic())
        result.load = None if load is None else load.to_dict()
        _guard_busy(result, load)
        announce(f"{name}: {result.status} in {result.seconds:.1f} s")
        results.append(result)
    return results
