"""Which optional extra brings which modules, and the error that names the extra to install.

The core needs anyio only; everything else comes with an extra (``pip install 'hybridio[web]'``).
A package or command whose extra is missing says which one, instead of a bare
``ModuleNotFoundError`` for a dependency the user never asked for.
"""

from __future__ import annotations

import importlib.util

from ._core._exceptions import HybridioError

__all__ = ["EXTRA_MODULES", "MissingExtra", "install_hint", "require_extra"]

#: The modules each extra installs (import names; tests check them against pyproject.toml).
#: uvloop is left out on purpose: the ``web`` extra installs it where it exists, and works without.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "cli": ("click",),
    "cloudpickle": ("cloudpickle",),
    "web": ("click", "aiohttp", "prometheus_client"),
    "crawl": (
        "click",
        "aiohttp",
        "aiofiles",
        "protego",
        "selectolax",
        "yarl",
        "ada_url",
        "webencodings",
    ),
    "bench": (
        *("click", "aiohttp", "prometheus_client", "aiofiles", "protego", "selectolax", "yarl"),
        *("ada_url", "webencodings"),
        *("jinja2", "matplotlib", "psutil", "pyperf", "rich"),
    ),
    "scrapy": ("scrapy",),
    "cluster": ("distributed",),
    "asgi": ("click", "aiohttp", "prometheus_client", "starlette"),
}


class MissingExtra(HybridioError, ModuleNotFoundError):
    """Raised when a part of hybridio is used without the extra that installs its dependencies.

    A ``ModuleNotFoundError`` (so an ``ImportError``) whose ``name`` is the missing module.
    """


def install_hint(extra: str) -> str:
    """The command that installs ``extra``."""
    return f"pip install 'hybridio[{extra}]'"


def require_extra(feature: str, extra: str) -> None:
    """Raise ``MissingExtra`` naming ``extra`` unless every module it installs can be imported.

    Only looks the modules up (``importlib.util.find_spec``): nothing is imported, so a package
    can call this first thing and still import its heavy dependencies lazily.
    """
    for module in EXTRA_MODULES[extra]:
        if importlib.util.find_spec(module) is None:
            raise MissingExtra(
                f"{feature} needs the {extra!r} extra ({module} is not installed). "
                f"Install it with: {install_hint(extra)}",
                name=module,
            )
