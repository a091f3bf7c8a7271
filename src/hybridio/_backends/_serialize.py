"""Pickling of calls for worker processes, with errors that name the culprit.

A call travels as ``(function, arguments, mapped)``: the function and the arguments are pickled
apart, so that

* a module-level function, pickled by reference, is pickled once and its bytes reused: pickling
  a function by reference imports its module and looks it up by name, which on a tiny call costs
  more than the rest of the call's pickling (the cache checks on each use that the module still
  binds that name to that function, so a rebound name is never sent stale);
* cloudpickle, when installed, sends by value the functions that stdlib pickle refuses or that
  the worker could not find by name (lambdas, closures, functions of an interactive
  ``__main__``), whether they are called or mapped;
* an argument that cannot be pickled is named.

``mapped`` asks the worker for ``[fn(item) for item in arguments[0]]`` (a ``map_cpu`` chunk).
"""

from __future__ import annotations

import pickle
import sys
import types
from collections.abc import Callable
from typing import Any

from .._core._exceptions import NotPicklable
from ._base import function_name
from ._worker import EncodedCall

__all__ = ["EncodedCall", "cloudpickle_available", "encode_call", "encode_function"]

_PROTOCOL = pickle.HIGHEST_PROTOCOL

try:
    import cloudpickle as _cloudpickle
except ImportError:  # pragma: no cover - exercised only without the extra
    _cloudpickle = None


# Names and pickles of module-level functions, by function object. Bounded: cleared when full.
_by_reference: dict[Callable[..., Any], tuple[str, bytes]] = {}
_MAX_CACHED = 1024


def cloudpickle_available() -> bool:
    """True when cloudpickle can be used for functions that stdlib pickle refuses."""
    return _cloudpickle is not None


def _by_value_needed(fn: Callable[..., Any]) -> bool:
    # A function of a __main__ without a file (python -c, a REPL, a notebook) pickles by reference
    # but the worker cannot import it: it must travel by value.
    if getattr(fn, "__module__", None) != "__main__":
        return False
    return not getattr(sys.modules.get("__main__"), "__file__", None)


def _named_in_its_module(fn: types.FunctionType) -> bool:
    """True when ``fn`` is what its module binds to its name (so a reference to it is exact)."""
    module = sys.modules.get(fn.__module__)
    return module is not None and module.__dict__.get(fn.__qualname__) is fn


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def encode_function(fn: Callable[..., Any]) -> tuple[str, bytes]:
    """``fn``'s name and pickle: by reference when stdlib pickle can, else by value (cloudpickle).

    Raises:
        NotPicklable: the function cannot be sent (and how to fix that).
    """
    cacheable = type(fn) is types.FunctionType and _named_in_its_module(fn)
    if cacheable:
        known = _by_reference.get(fn)
        if known is not None:
            return known
    name = function_name(fn)
    if _by_value_needed(fn):
        error: BaseException = pickle.PicklingError(f"{name} lives in an interactive __main__")
    else:
        try:
            blob = pickle.dumps(fn, _PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - pickling raises many types; reported below
            error = exc
        else:
            if cacheable:
                if len(_by_reference) >= _MAX_CACHED:
                    _by_reference.clear()
                _by_reference[fn] = (name, blob)
            return name, blob
    if _cloudpickle is None:
        raise NotPicklable(
            "function",
            _error(error),
            function=name,
            hint=(
                "Use a function defined at module level, or `pip install cloudpickle` "
                "(hybridio[cloudpickle]) so that lambdas, closures and functions of an "
                "interactive session can be sent by value."
            ),
        ) from error
    try:
        by_value: bytes = _cloudpickle.dumps(fn, _PROTOCOL)
    except Exception as exc:
        raise NotPicklable("function", _error(exc), function=name) from exc
    return name, by_value


def dumps_args(args: tuple[Any, ...], name: str) -> bytes:
    """Pickle a call's arguments.

    Raises:
        NotPicklable: naming the argument that cannot be pickled, and why.
    """
    try:
        return pickle.dumps(args, _PROTOCOL)
    except Exception as first:
        for index, arg in enumerate(args):
            try:
                pickle.dumps(arg, _PROTOCOL)
            except Exception as exc:
                raise NotPicklable(f"argument {index}", _error(exc), function=name) from exc
        raise NotPicklable("arguments", _error(first), function=name) from first


def encode_call(
    fn: Callable[..., Any], args: tuple[Any, ...], *, mapped: bool = False
) -> tuple[str, EncodedCall]:
    """``fn``'s name and the call pickled for a worker process (see the module docstring).

    Raises:
        NotPicklable: naming the function or the argument that cannot be pickled, and why.
    """
    name, function = encode_function(fn)
    return name, (function, dumps_args(args, name), mapped)
