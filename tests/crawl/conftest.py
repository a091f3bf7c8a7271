"""The crawler needs asyncio (aiohttp): its async tests run on asyncio and asyncio+uvloop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hybridio.crawl import SiteManifest, generate_site


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="asyncio+uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture(scope="session")
def fault_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SiteManifest]:
    """A small site with every content fault the generator has."""
    directory = tmp_path_factory.mktemp("fault-site")
    manifest = generate_site(
        directory,
        pages=40,
        branching=4,
        words_per_page=120,
        robots_disallow=("/private/",),
        huge_pages=1,
        huge_size=300_000,
        binary_files=2,
        malformed_pages=2,
        redirect_loops=1,
        redirects=2,
    )
    return directory, manifest


@pytest.fixture(scope="session")
def plain_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SiteManifest]:
    """A small site without faults."""
    directory = tmp_path_factory.mktemp("plain-site")
    return directory, generate_site(directory, pages=60, branching=3, words_per_page=120)
