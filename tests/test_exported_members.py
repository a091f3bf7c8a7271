"""The public API is exactly this list, documented, and says it lives in ``hybridio`` (as httpx)."""

from __future__ import annotations

import inspect

import hybridio

EXPECTED = [
    "AutoDecision",
    "BackendUnavailable",
    "BlockEvent",
    "CpuMap",
    "FunctionAborted",
    "FunctionStats",
    "HistogramSnapshot",
    "HybridioError",
    "Kind",
    "KindStats",
    "LoopMonitor",
    "LoopReport",
    "NotPicklable",
    "OffloadError",
    "OffloadMap",
    "OffloadTimeout",
    "OffloadedFunction",
    "Overloaded",
    "RemoteTraceback",
    "Runtime",
    "RuntimeClosed",
    "RuntimeStats",
    "StackFrame",
    "WorkerCrashed",
    "WorkerStartFailed",
    "__version__",
    "blocking",
    "cancel_requested",
    "cpu_bound",
    "map_cpu",
    "offload",
    "prometheus_text",
    "run",
    "run_blocking",
    "run_cpu",
]


def test_all_is_exactly_the_public_api() -> None:
    assert hybridio.__all__ == EXPECTED  # sorted, and nothing added or lost by accident


def test_every_name_exists() -> None:
    for name in hybridio.__all__:
        assert hasattr(hybridio, name), name


def test_public_classes_and_functions_say_they_live_in_hybridio() -> None:
    for name in hybridio.__all__:
        obj = getattr(hybridio, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__module__ == "hybridio", (name, obj.__module__)


def test_public_callables_have_docstrings() -> None:
    for name in hybridio.__all__:
        obj = getattr(hybridio, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"{name} has no docstring"


def test_no_unexpected_public_names() -> None:
    public = {name for name in dir(hybridio) if not name.startswith("_")}
    # Submodules imported as a side effect are not API.
    modules = {"monitor", "web", "crawl", "bench"}
    assert public - modules <= set(hybridio.__all__), public - set(hybridio.__all__) - modules
