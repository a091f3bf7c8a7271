"""The layering the design promises: the bottom layer imports nothing above it.

``_core`` imports nothing else of hybridio; ``_backends`` imports only ``_core`` (and itself);
the runtime loads backends by name, so ``import hybridio`` loads no backend.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import hybridio

PACKAGE = Path(hybridio.__file__).parent


def _hybridio_imports(path: Path) -> set[str]:
    """Top-level hybridio packages a module imports (``_core``, ``_backends``...)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 2 and node.module:  # from ..x import y
                found.add(node.module.split(".")[0])
            elif node.level == 0 and node.module and node.module.startswith("hybridio."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("hybridio."):
                    found.add(alias.name.split(".")[1])
    return found


def test_core_imports_nothing_else_of_hybridio() -> None:
    for path in (PACKAGE / "_core").glob("*.py"):
        assert _hybridio_imports(path) <= {"_core"}, path.name


def test_backends_import_only_the_core() -> None:
    for path in (PACKAGE / "_backends").glob("*.py"):
        assert _hybridio_imports(path) <= {"_core", "_backends"}, path.name


def test_import_hybridio_loads_no_backend() -> None:
    code = (
        "import sys, hybridio; "
        "print(sorted(m for m in sys.modules if m.startswith('hybridio._backends.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # The map iterator type is public (with the call record it tracks); the dispatcher and the
    # executors load on first use.
    assert out.stdout.strip() == "['hybridio._backends._call', 'hybridio._backends._map']"
