"""Pickling of calls for worker processes, with errors that name the culprit.

Stdlib pickle first (fast); cloudpickle, when installed, for functions that pickle refuses or that
the worker could not find by name (lambdas, closures, functions of an interactive ``__main__``).
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable
from typing import Any

from .._core._exceptions import NotPicklable

__all__ = ["cloudpickle_available", "dumps_call"]

_PROTOCOL = pickle.HIGHEST_PROTOCOL

try:
    import cloudpickle as _cloudpickle
except ImportError:  # pragma: no cover - exercised only without the extra
    _cloudpickle = None


def cloudpickle_available() -> bool:
    """True when cloudpickle can be used for functions that stdlib pickle refuses."""
    return _cloudpickle is not None


def _by_value_needed(fn: Callable[..., Any]) -> bool:
    # A function of a __main__ without a file (python -c, a REPL, a notebook) pickles by reference
    # but the worker cannot import it: it must travel by value.
    if getattr(fn, "__module__", None) != "__main__":
        return False
    return not getattr(sys.modules.get("__main__"), "__file__", None)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def dumps_call(fn: Callable[..., Any], args: tuple[Any, ...], name: str) -> bytes:
    """Pickle ``(fn, args)``.

    Raises:
        NotPicklable: naming the function or the argument that cannot be pickled, and why.
    """
    if not _by_value_needed(fn):
        try:
            return pickle.dumps((fn, args), _PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - pickling raises many types; culprit found below
            first_error: BaseException | None = exc
    else:
        first_error = None
    # Find the culprit, then try cloudpickle for the function if that is where the problem is.
    function_error: BaseException | None = None
    if first_error is None:
        function_error = pickle.PicklingError(f"{name} lives in an interactive __main__")
    else:
        try:
            pickle.dumps(fn, _PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - see above
            function_error = exc
    for index, arg in enumerate(args):
        try:
            pickle.dumps(arg, _PROTOCOL)
        except Exception as exc:
            raise NotPicklable(f"argument {index}", _error(exc), function=name) from exc
    if function_error is None:  # pragma: no cover - the pair failed though each part pickles
        assert first_error is not None
        raise NotPicklable("call", _error(first_error), function=name) from first_error
    if _cloudpickle is None:
        raise NotPicklable(
            "function",
            _error(function_error),
            function=name,
            hint=(
                "Use a function defined at module level, or `pip install cloudpickle` "
                "(hybridio[cloudpickle]) so that lambdas, closures and functions of an "
                "interactive session can be sent by value."
            ),
        ) from function_error
    try:
        blob: bytes = _cloudpickle.dumps((fn, args), _PROTOCOL)
    except Exception as exc:
        raise NotPicklable("function", _error(exc), function=name) from exc
    return blob
