"""The public API is exactly what __all__ says, and every public name is documented."""

from __future__ import annotations

import inspect

import hybridio


def test_all_names_exist_and_are_sorted() -> None:
    assert sorted(hybridio.__all__) == list(hybridio.__all__)
    for name in hybridio.__all__:
        assert hasattr(hybridio, name), name


def test_public_names_are_reexported_from_private_modules() -> None:
    for name in hybridio.__all__:
        obj = getattr(hybridio, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue  # constants and typing aliases (Kind) have no module of their own
        module = obj.__module__
        assert module.startswith("hybridio"), (name, module)


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
