"""The published artefacts hold what they should: the sdist only source, tests, docs and the licence,
even after the tutorials and benchmarks have written into the checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Top-level entries an sdist may hold (hatch adds PKG-INFO and .gitignore itself).
ALLOWED = {
    "src",
    "tests",
    "type_tests",
    "examples",
    "docs",
    "mkdocs.yml",
    "Makefile",
    "CHANGELOG.md",
    "README.md",
    "LICENSE",
    "pyproject.toml",
    "PKG-INFO",
    ".gitignore",
}

#: What a user's first hour leaves in the checkout (README tutorials, make demo/test/docs).
JUNK = [
    "demo-site/index.html",
    "demo-site/site.json",
    "pages.jsonl",
    "pages.jsonl.state",
    "headings.jsonl",
    "demo-out/report.md",
    "bench-out/results.json",
    "site/index.html",
    ".hypothesis/examples/0/1",
    ".pytest_cache/v/cache",
    "src/hybridio/__pycache__/junk.cpython-311.pyc",
    "tests/.hypothesis/examples/0",
    "dist/old.tar.gz",
]


def _tracked_files() -> list[str]:
    result = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
    )
    return result.stdout.splitlines()


@pytest.mark.slow
def test_sdist_holds_only_source_docs_and_licence(tmp_path: Path) -> None:
    # A copy of the checkout's tracked files plus the junk, so the real checkout is not touched.
    tree = tmp_path / "hybridio"
    for name in _tracked_files():
        if (ROOT / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tree / name)
    for name in JUNK:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("junk")

    out = tmp_path / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(out), "."],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    [sdist] = out.glob("hybridio-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]

    top = {name.split("/", 1)[0] for name in names}
    assert top <= ALLOWED, f"unexpected entries: {sorted(top - ALLOWED)}"
    leaked = [n for n in names if any(n == j or n.startswith(j + "/") for j in JUNK)]
    assert not leaked
    assert not [n for n in names if "__pycache__" in n or ".hypothesis" in n]
    # Everything tracked under the allowed entries is shipped.
    expected = {n for n in _tracked_files() if n.split("/", 1)[0] in ALLOWED}
    assert expected <= set(names), sorted(expected - set(names))
    assert "LICENSE" in names


def test_metadata_is_publishable() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert (ROOT / project["license-files"][0]).read_text().startswith("MIT License")
    assert {"Homepage", "Source", "Issues", "Documentation"} <= set(project["urls"])
    # A classifier for every Python that is tested (3.11 is the floor: requires-python).
    versions = {c.rsplit(" :: ", 1)[1] for c in project["classifiers"] if "Python :: 3." in c}
    assert versions == {"3.11", "3.12", "3.13"}
    # Development tools are dependency groups, not an extra users could install.
    assert "dev" not in project["optional-dependencies"]


def test_crawler_user_agent_points_to_the_project() -> None:
    # Site operators read the user agent to find out who crawls them: it must name a real page.
    from hybridio.crawl import DEFAULT_USER_AGENT

    homepage = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Homepage"]
    assert f"+{homepage}" in DEFAULT_USER_AGENT
