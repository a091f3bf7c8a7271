"""One exception tree; every exception keeps every field through pickling (it crosses processes)."""

from __future__ import annotations

import pickle

import pytest

from hybridio import (
    BackendUnavailable,
    HybridioError,
    NotPicklable,
    OffloadError,
    OffloadTimeout,
    Overloaded,
    RemoteTraceback,
    RuntimeClosed,
    WorkerCrashed,
    WorkerStartFailed,
)

EXAMPLES: list[HybridioError] = [
    WorkerCrashed(pid=12, exitcode=None, signal_number=9, function="m.f", batch_size=3),
    WorkerCrashed(pid=12, exitcode=1, signal_number=None, function="m.f"),
    NotPicklable("argument 0", "cannot pickle '_thread.lock'", function="m.f", hint="do this"),
    Overloaded("cpu", 10, 10),
    OffloadTimeout("blocking", 0.5, "m.f", " (it ran 1 s)"),
    WorkerStartFailed("cpu", "RuntimeError: boom", failures=3, retry_in=0.2),
    BackendUnavailable("interpreter", "Python 3.13+"),
    RuntimeClosed("the runtime is closed"),
    RemoteTraceback("Traceback (most recent call last): ..."),
]


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: type(e).__name__)
def test_pickling_keeps_every_field_and_the_message(error: HybridioError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_the_tree() -> None:
    for cls in (WorkerCrashed, NotPicklable, Overloaded, WorkerStartFailed, BackendUnavailable):
        assert issubclass(cls, OffloadError)
    assert issubclass(OffloadError, HybridioError)
    assert issubclass(OffloadTimeout, HybridioError)
    assert issubclass(OffloadTimeout, TimeoutError)
    assert issubclass(RuntimeClosed, HybridioError)


def test_every_exception_class_of_the_package_is_a_hybridio_error() -> None:
    """Nothing hybridio defines for users to catch sits outside the tree."""
    import importlib

    import hybridio
    from hybridio._extras import MissingExtra

    modules = [hybridio]
    for name in ("hybridio.web", "hybridio.web.asgi", "hybridio.crawl"):
        try:
            modules.append(importlib.import_module(name))
        except MissingExtra:  # the core suite also runs where only the core is installed
            pass
    seen = 0
    for module in modules:
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if isinstance(obj, type) and issubclass(obj, BaseException):
                assert issubclass(obj, HybridioError), f"{module.__name__}.{name}"
                seen += 1
    assert seen >= len(EXAMPLES)
