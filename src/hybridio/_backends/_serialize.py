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

import os
import pickle
import sys
import types
from collections.abc import Callable
from typing import Any

from .._core._exceptions import NotPicklable
from .._core._names import function_name
from ._worker import EncodedCall

__all__ = [
    "EncodedCall",
    "cloudpickle_available",
    "encode_call",
    "encode_function",
    "main_path",
]

_PROTOCOL = pickle.HIGHEST_PROTOCOL

try:
    import cloudpickle as _cloudpickle
except ImportError:  # pragma: no cover - exercised only without the extra
    _cloudpickle = None


# Names and pickles of module-level functions, by function object, with the namespace and name
# that must still bind the function for the pickle (a reference) to be exact. Bounded: cleared
# when full.
_by_reference: dict[Callable[..., Any], tuple[str, bytes, dict[str, Any], str]] = {}
_MAX_CACHED = 1024


def cloudpickle_available() -> bool:
    """True when cloudpickle can be used for functions that stdlib pickle refuses."""
    return _cloudpickle is not None


def _by_value_needed(fn: Callable[..., Any]) -> bool:
    # A function of a __main__ without a file (python -c, a REPL, a notebook) pickles by reference
    # but the worker cannot import it: it must travel by value.
    if getattr(fn, "__module__", None) != "__main__":
        return False
    return main_path() is None


def main_path() -> str | None:
    """The main script a worker must import as ``__mp_main__`` for its functions to unpickle.

    None when there is none to import: a main module run with ``python -m`` (it has a
    ``__spec__``; like multiprocessing, it is not re-run from its file, since a package's
    ``__main__.py`` with relative imports cannot be), or one without a file on disk
    (``python -c``, ``python -`` reading stdin, a REPL, a Jupyter kernel).
    """
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        return None
    path: str | None = getattr(main, "__file__", None)
    if not path or not os.path.isfile(path):
        return None
    # What the worker's copy defines says it comes from `__mp_main__`: results and exceptions of
    # classes defined in the main script must unpickle here too (multiprocessing does the same).
    sys.modules.setdefault("__mp_main__", main)
    return path


def _by_reference_exact(fn: Callable[..., Any]) -> bool:
    """True when ``fn`` is a plain or ``@cpu_bound`` function its module binds by its name.

    A reference to it is then exact, and its pickle can be reused.
    """
    if type(fn) is not types.FunctionType and getattr(fn, "__hybridio_kind__", None) is None:
        return False
    module = sys.modules.get(getattr(fn, "__module__", ""))
    return module is not None and module.__dict__.get(getattr(fn, "__qualname__", "")) is fn


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def encode_function(fn: Callable[..., Any]) -> tuple[str, bytes]:
    """``fn``'s name and pickle: by reference when stdlib pickle can, else by value (cloudpickle).

    Raises:
        NotPicklable: the function cannot be sent (and how to fix that).
    """
    try:
        known = _by_reference.get(fn)
    except TypeError:  # an unhashable callable object
        known = None
    if known is not None:
        name, blob, namespace, qualname = known
        if namespace.get(qualname) is fn:  # its module still binds it by that name
            return name, blob
    cacheable = _by_reference_exact(fn)
    name = function_name(fn)
    if _by_value_needed(fn):
        error: BaseException = pickle.PicklingError(f"{name} lives in an interactive __main__")
    else:
        try:
            blob = pickle.dumps(fn, _PROTOCOL)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - many types; reported below
            error = exc
        else:
            if cacheable:
                if len(_by_reference) >= _MAX_CACHED:
                    _by_reference.clear()
                namespace = sys.modules[fn.__module__].__dict__
                _by_reference[fn] = (name, blob, namespace, fn.__qualname__)
            return name, blob
    if _cloudpickle is None:
        raise NotPicklable(
            "function",
            _error(error),
            function=name,
            hint=(
                "A worker process cannot import a function defined in `python -c`, on stdin, "
                "in a REPL or in a notebook cell. Install cloudpickle (`pip install "
                "'hybridio[cloudpickle]'`) to send it by value, or move it into a module file "
                "and import it from there."
                if _by_value_needed(fn)
                else "Use a function defined at module level, or `pip install cloudpickle` "
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
    # SystemExit from a __reduce__ fails this call (NotPicklable), never the caller's program.
    try:
        return pickle.dumps(args, _PROTOCOL)
    except (Exception, SystemExit) as first:
        for index, arg in enumerate(args):
            try:
                pickle.dumps(arg, _PROTOCOL)
            except (Exception, SystemExit) as exc:
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
