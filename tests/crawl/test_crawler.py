"""The crawler against the loopback test site: coverage, politeness, faults, limits, workers."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

import pytest

from hybridio import Runtime
from hybridio.crawl import (
    CrawlConfig,
    Crawler,
    CrawlStats,
    Faults,
    SiteManifest,
    TestSiteServer,
)

from . import extractors

pytestmark = pytest.mark.anyio


def expected_paths(
    manifest: SiteManifest, *, exclude: AbstractSet[str] = frozenset(), max_depth: int | None = None
) -> dict[str, int]:
    """Breadth-first over the manifest's links: what a crawl must record, with depths."""
    depth = {"/": 0}
    queue = ["/"]
    for path in queue:
        for link in manifest.links.get(path, []):
            target, hops = link, 0
            while target in manifest.redirects and hops < 10:
                target, hops = manifest.redirects[target], hops + 1
            if target in manifest.redirects or target in depth or target in exclude:
                continue
            if any(target.startswith(prefix) for prefix in manifest.disallowed):
                continue
            if max_depth is not None and depth[path] >= max_depth:
                continue
            depth[target] = depth[path] + 1
            queue.append(target)
    skipped = set(manifest.huge) | set(manifest.binary)
    return {path: d for path, d in depth.items() if path not in skipped}


async def crawl(server: TestSiteServer, **options: Any) -> tuple[list[dict[str, Any]], CrawlStats]:
    records: list[dict[str, Any]] = []
    options = {"cpu_workers": 1, "backoff": 0.0, **options}
    stats = await Crawler(CrawlConfig([server.url], **options), on_record=records.append).run()
    return records, stats


def paths(records: list[dict[str, Any]], server: TestSiteServer) -> list[str]:
    prefix = server.url.rstrip("/")
    assert all(r["url"].startswith(prefix) for r in records)
    return [r["url"].removeprefix(prefix) for r in records]


async def test_every_reachable_page_once_and_faults_handled(
    fault_site: tuple[Path, SiteManifest],
) -> None:
    directory, manifest = fault_site
    async with TestSiteServer(directory) as server:
        records, stats = await crawl(server, max_bytes=100_000)
    found = paths(records, server)
    expected = expected_paths(manifest)
    assert expected == manifest.reachable()
    assert sorted(found) == sorted(expected)  # each page exactly once
    assert {r["url"]: r["depth"] for r in records} == {
        server.url.rstrip("/") + p: d for p, d in expected.items()
    }
    # robots.txt obeyed: the disallowed page is never requested.
    assert stats.robots_blocked == 1
    assert not [p for p in server.requests if p.startswith("/private/")]
    # Huge and binary answers are skipped and counted; redirect loops stopped.
    assert stats.skipped["too_large"] == 1
    assert stats.skipped["not_html"] == 2
    assert stats.errors["redirect_loop"] == 1
    # The /go/k redirects lead to pages also linked directly: whichever way a page is reached
    # first, it is recorded once (checked above), and each /go/k was requested once.
    assert all(server.requests[f"/go/{k}"] == 1 for k in range(2))
    assert stats.skipped["duplicate_redirect"] <= 2
    # Malformed pages give records like any other.
    for path in manifest.malformed:
        record = next(r for r in records if r["url"].endswith(path))
        assert record["title"] == "Broken <b>page"  # <title> is raw text in HTML5
        assert record["words"] > 50
        assert record["links"] == 1
    # Off-site links are never followed: every request went to the test server.
    assert set(stats.hosts) == {f"127.0.0.1:{server.port}"}
    assert manifest.offsite_links > 0
    assert stats.pages == len(records)
    assert stats.requests == sum(server.requests.values())


async def test_5xx_retried_then_counted(plain_site: tuple[Path, SiteManifest]) -> None:
    directory, manifest = plain_site
    faults = Faults(error_rate=0.15, flaky_rate=0.3, flaky_failures=1, seed=3)
    failing = {p for p in manifest.links if faults.fails(p)}
    flaky = {p for p in manifest.links if faults.flaky(p) and not faults.fails(p)}
    expected = expected_paths(manifest, exclude=failing)
    failing_reached = {p for p in failing if any(p in manifest.links[q] for q in expected)}
    assert failing_reached, "the seed must give pages that always fail"
    assert flaky & set(expected), "the seed must give flaky pages"
    async with TestSiteServer(directory, faults) as server:
        records, stats = await crawl(server, retries=2)
    assert sorted(paths(records, server)) == sorted(expected)
    assert stats.errors == Counter({"http_5xx": len(failing_reached)})
    for path in failing_reached:
        assert server.requests[path] == 3  # the first attempt and two retries
    for path in flaky & set(expected):
        assert server.requests[path] == 2  # failed once, then served
    assert stats.retries == 2 * len(failing_reached) + len(flaky & set(expected))


async def test_timeouts_counted(plain_site: tuple[Path, SiteManifest]) -> None:
    directory, manifest = plain_site
    faults = Faults(slow_rate=0.1, slow_seconds=5.0, seed=1)
    slow = {p for p in manifest.links if faults.slow(p)}
    expected = expected_paths(manifest, exclude=slow)
    slow_reached = {p for p in slow if any(p in manifest.links[q] for q in expected)}
    assert slow_reached
    async with TestSiteServer(directory, faults) as server:
        records, stats = await crawl(server, timeout=1.5, retries=0)  # slow pages: 5 s
    assert sorted(paths(records, server)) == sorted(expected)
    assert stats.errors == Counter({"timeout": len(slow_reached)})


@pytest.mark.parametrize("max_depth", [0, 1, 2])
async def test_depth_limit_exact(plain_site: tuple[Path, SiteManifest], max_depth: int) -> None:
    directory, manifest = plain_site
    async with TestSiteServer(directory) as server:
        records, _ = await crawl(server, max_depth=max_depth)
    expected = expected_paths(manifest, max_depth=max_depth)
    assert {p: r["depth"] for p, r in zip(paths(records, server), records, strict=True)} == expected
    assert len(records) == len(expected)
    # Links beyond the limit are not fetched at all.
    assert set(server.requests) - {"/robots.txt"} == set(expected)


@pytest.mark.parametrize("max_pages", [0, 1, 7])
async def test_page_limit_exact(plain_site: tuple[Path, SiteManifest], max_pages: int) -> None:
    directory, manifest = plain_site
    async with TestSiteServer(directory) as server:
        records, stats = await crawl(server, max_pages=max_pages, concurrency=8)
    found = paths(records, server)
    assert len(found) == len(set(found)) == max_pages == stats.pages
    assert set(found) <= set(manifest.reachable())


async def test_user_extraction_runs_in_a_worker_process(
    plain_site: tuple[Path, SiteManifest],
) -> None:
    directory, _ = plain_site
    async with TestSiteServer(directory) as server, Runtime(cpu_workers=2) as runtime:
        records: list[dict[str, Any]] = []
        config = CrawlConfig([server.url], max_pages=20, extract=extractors.with_pid)
        await Crawler(config, runtime=runtime, on_record=records.append).run()
        workers = set(runtime.worker_pids())
        assert runtime.stats()["cpu"].completed >= 1
    pids = {r["pid"] for r in records}
    assert len(records) == 20
    assert os.getpid() not in pids
    assert pids <= workers


async def test_extraction_errors_are_counted_per_page(
    plain_site: tuple[Path, SiteManifest],
) -> None:
    directory, manifest = plain_site
    async with TestSiteServer(directory) as server:
        records, stats = await crawl(server, extract=extractors.fail_on_odd_pages)
    odd = [p for p in manifest.reachable() if p != "/" and int(p[3:-5]) % 2]
    assert stats.errors == Counter({"extract": len(odd)})
    assert len(records) == len(manifest.reachable()) - len(odd)
    # A page whose record failed still gave its links: the crawl went on through it.
    assert all(int(p[3:-5]) % 2 == 0 for p in paths(records, server) if p != "/")


async def test_ignore_robots_and_allowed_domains(fault_site: tuple[Path, SiteManifest]) -> None:
    directory, manifest = fault_site
    async with TestSiteServer(directory) as server:
        records, stats = await crawl(
            server, obey_robots=False, allowed_domains=["127.0.0.1"], max_bytes=100_000
        )
    assert stats.robots_blocked == 0
    assert "/robots.txt" not in server.requests
    found = set(paths(records, server))
    assert {"/private/secret-0.html"} <= found
    assert set(stats.hosts) == {f"127.0.0.1:{server.port}"}  # offsite.test is not 127.0.0.1
    assert len(found) == len(manifest.reachable()) + 1


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_refuses_trio_clearly(plain_site: tuple[Path, SiteManifest]) -> None:
    crawler = Crawler(CrawlConfig(["http://127.0.0.1:9/"]))
    with pytest.raises(RuntimeError, match="needs asyncio"):
        await crawler.run()


@pytest.mark.parametrize("max_pages", [2, 5, 13])
async def test_page_limit_takes_the_shallowest_pages(
    plain_site: tuple[Path, SiteManifest], max_pages: int
) -> None:
    directory, manifest = plain_site
    async with TestSiteServer(directory) as server:
        records, _ = await crawl(server, max_pages=max_pages, concurrency=8)
    levels = Counter(expected_paths(manifest).values())
    got = Counter(r["depth"] for r in records)
    deepest = max(got)
    # Every level above the deepest one reached is complete: pages are taken breadth-first.
    assert all(got[d] == levels[d] for d in range(deepest))
    assert sum(got.values()) == max_pages
