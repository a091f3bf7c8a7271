"""Which scenarios exist and where they live: name -> "module:function".

Scenarios are imported only when run, so a scenario whose module is not written yet, or whose
optional dependencies are missing, is reported as skipped (with the reason) instead of breaking
``hybridio bench all``.
"""

from __future__ import annotations

import importlib

from ._model import Scenario

__all__ = ["SCENARIOS", "ScenarioUnavailable", "load_scenario"]

#: In the order ``bench all`` runs them.
SCENARIOS: dict[str, str] = {
    "claims": "hybridio.bench._claims:run",
    "dispatch": "hybridio.bench._dispatch:run",
    "monitor": "hybridio.bench._monitor:run",
    "server": "hybridio.bench._server:run",
    "crawl": "hybridio.bench._crawl:run",
    "cluster": "hybridio.bench._cluster:run",
}


class ScenarioUnavailable(Exception):
    """Raised when a scenario cannot be loaded here; the message says why and what to do."""


def load_scenario(name: str, registry: dict[str, str] | None = None) -> Scenario:
    """Import the scenario function registered as ``name``.

    Raises:
        KeyError: ``name`` is not registered.
        ScenarioUnavailable: its module (or one of its dependencies) cannot be imported, or it
            does not define the function.
    """
    registry = SCENARIOS if registry is None else registry
    if name not in registry:
        raise KeyError(f"unknown scenario {name!r}; choose from: {', '.join(registry)}")
    module_name, _, attribute = registry[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise ScenarioUnavailable(f"not available in this version ({module_name})") from exc
        raise ScenarioUnavailable(
            f"needs {exc.name!r}, which is not installed: pip install 'hybridio[all]'"
        ) from exc
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ScenarioUnavailable(f"{module_name} does not define {attribute}()")
    scenario: Scenario = function
    return scenario
