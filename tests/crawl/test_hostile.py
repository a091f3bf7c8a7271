"""Pages, extraction functions and servers that try to break the crawl (issue 19, items 6-10).

Nothing a page, an extraction function or a server does may stop the crawl, hang it, corrupt its
output or grow its memory without bound.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from hybridio import Runtime
from hybridio.crawl import (
    CrawlConfig,
    Crawler,
    CrawlFileError,
    CrawlStats,
    Faults,
    SiteManifest,
    TestSiteServer,
    generate_site,
)

from . import extractors

pytestmark = pytest.mark.anyio


async def crawl(
    urls: list[str], *, runtime: Runtime | None = None, **options: Any
) -> tuple[list[dict[str, Any]], CrawlStats]:
    records: list[dict[str, Any]] = []
    options = {"cpu_workers": 1, "backoff": 0.0, **options}
    crawler = Crawler(CrawlConfig(urls, **options), runtime=runtime, on_record=records.append)
    return records, await crawler.run()


def reachable_without_links_of(manifest: SiteManifest, dead: str) -> set[str]:
    """Pages reachable from ``/`` when page ``dead`` gives no links (and no record)."""
    seen, queue = {"/"}, ["/"]
    for path in queue:
        for link in [] if path == dead else manifest.links.get(path, []):
            if link not in seen:
                seen.add(link)
                queue.append(link)
    return seen - {dead}


def strict_json(line: str) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(line, parse_constant=refuse)


# -- 6. a page or an extraction that never ends ---------------------------------------------------


async def test_deeply_nested_page_is_time_boxed(
    plain_site: tuple[Path, SiteManifest], tmp_path: Path
) -> None:
    """200k nested <div>: lexbor needs minutes (quadratic); the page fails, the crawl ends."""
    directory, manifest = plain_site
    site = tmp_path / "site"
    shutil.copytree(directory, site)
    (site / "deep.html").write_bytes(b"<title>deep</title>" + b"<div>" * 200_000 + b"<p>end")
    async with TestSiteServer(site) as server:
        seeds = [server.url, server.url + "deep.html"]
        with anyio.fail_after(45):
            records, stats = await crawl(seeds, parse_timeout=2.0, out=tmp_path / "o.jsonl")
        assert stats.errors == Counter({"parse_timeout": 1})
        assert list(stats.failed) == [server.url + "deep.html"]
        assert "killed" in stats.failed[server.url + "deep.html"]
        assert len(records) == len(manifest.reachable())
        # Failed for good: a resumed crawl does not fetch it again.
        _, again = await crawl(seeds, parse_timeout=2.0, out=tmp_path / "o.jsonl")
        assert again.requests == 0
        assert server.requests["/deep.html"] == 1


async def test_looping_extract_is_time_boxed_and_its_worker_replaced(
    plain_site: tuple[Path, SiteManifest], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, manifest = plain_site
    pidfile = tmp_path / "looping.pid"
    monkeypatch.setenv("HYBRIDIO_TEST_PIDFILE", str(pidfile))
    async with TestSiteServer(directory) as server, Runtime(cpu_workers=1) as runtime:
        with anyio.fail_after(45):
            records, stats = await crawl(
                [server.url], runtime=runtime, extract=extractors.loop_on_page_3, parse_timeout=1.5
            )
        looping = int(pidfile.read_text())
        assert stats.errors == Counter({"parse_timeout": 1})
        assert list(stats.failed) == [server.url + "p/3.html"]
        expected = reachable_without_links_of(manifest, "/p/3.html")
        prefix = server.url.rstrip("/")
        assert sorted(r["url"].removeprefix(prefix) for r in records) == sorted(expected)
        # The looping worker was killed, and another one took its place.
        assert not psutil.pid_exists(looping) or psutil.Process(looping).status() == "zombie"
        assert looping not in runtime.worker_pids()
        assert len(runtime.worker_pids()) == 1


# -- 7. records JSON cannot hold, sys.exit ------------------------------------------------------


async def test_records_json_cannot_hold_and_sys_exit_are_extract_errors(
    plain_site: tuple[Path, SiteManifest], tmp_path: Path
) -> None:
    directory, manifest = plain_site
    out = tmp_path / "pages.jsonl"
    async with TestSiteServer(directory) as server:
        with anyio.fail_after(45):
            records, stats = await crawl([server.url], out=out, extract=extractors.hostile)
        failed = {url.removeprefix(server.url): error for url, error in stats.failed.items()}
        assert stats.errors == Counter({"extract": 5})
        assert sorted(failed) == [f"p/{i}.html" for i in range(1, 6)]
        assert "cannot be written as JSON" in failed["p/1.html"]  # a set
        assert "cannot be written as JSON" in failed["p/2.html"]  # bytes
        assert "surrogate" in failed["p/3.html"]
        assert "cannot be written as JSON" in failed["p/4.html"]  # NaN
        assert "SystemExit: 3" in failed["p/5.html"]
        # The crawl went on through their links: every other page is recorded, as strict JSON.
        written = [strict_json(line) for line in out.read_text("utf-8").splitlines()]
        assert len(written) == len(records) == len(manifest.reachable()) - 5
        # Running it again (a resume) does not die at those pages either: they are done.
        _, again = await crawl([server.url], out=out, extract=extractors.hostile)
        assert again.requests == 0
        assert not again.errors


# -- 8. resume whatever the records hold -------------------------------------------------------


async def test_resume_after_lost_commits_with_records_without_url(
    plain_site: tuple[Path, SiteManifest], tmp_path: Path
) -> None:
    """A kill after records are written but before the state log says so, made deterministic:
    the last lines of the state log are cut off, then the crawl is run again."""
    directory, manifest = plain_site
    out = tmp_path / "pages.jsonl"
    options: dict[str, Any] = {"out": out, "extract": extractors.without_url, "batch_size": 2}
    async with TestSiteServer(directory) as server:
        _, first = await crawl([server.url], **options)
        assert first.pages == len(manifest.reachable())
        state = tmp_path / "pages.jsonl.state"
        lines = state.read_bytes().splitlines(keepends=True)
        state.write_bytes(b"".join(lines[:-5]))
        _, second = await crawl([server.url], **options)
    assert second.pages > 0, "cutting the state log must leave pages to fetch again"
    where = [json.loads(line)["where"] for line in out.read_text().splitlines()]
    assert sorted(where) == sorted(manifest.reachable()), "a page was lost or written twice"


# -- 9. Crawl-delay ----------------------------------------------------------------------------


async def test_huge_crawl_delay_is_capped(tmp_path: Path) -> None:
    generate_site(tmp_path / "site", pages=4, words_per_page=20, crawl_delay=100_000)
    async with TestSiteServer(tmp_path / "site") as server:
        with anyio.fail_after(30):
            records, stats = await crawl([server.url], max_crawl_delay=0.05)
    assert len(records) == 4
    assert stats.crawl_delay_capped == {server.url.rstrip("/"): 100_000.0}
    assert "Crawl-delay 100000 s" in stats.summary()


# -- 10. memory bounded for URLs: a wide spider trap -------------------------------------------


async def test_frontier_is_bounded_on_a_spider_trap(tmp_path: Path) -> None:
    generate_site(tmp_path / "site", pages=2, words_per_page=5)
    out = tmp_path / "trap.jsonl"
    queued: list[int] = []
    async with TestSiteServer(tmp_path / "site", Faults(trap_links=3000)) as server:
        config = CrawlConfig(
            [server.url + "trap/0"],
            out=out,
            max_pages=12,
            max_queued=500,
            max_links_per_page=1000,
            cpu_workers=1,
        )
        crawler = Crawler(config, on_record=lambda _: queued.append(len(crawler._frontier)))
        with anyio.fail_after(45):
            stats = await crawler.run()
    assert stats.pages == 12
    assert queued
    assert max(queued) <= 500
    # Each page gave its first 1000 links, not the other 2000 ...
    assert stats.links_dropped == 12 * 2000
    # ... and those 12,000 new links were refused but for 500 queued (and those fetched).
    assert stats.links_refused >= 12 * 1000 - 500 - stats.requests
    assert "refused" in stats.summary()
    # The state log is bounded too: refused links are not logged.
    state_lines = (tmp_path / "trap.jsonl.state").read_bytes().count(b'"q"')
    assert state_lines <= 500 + stats.requests


# -- Also: one crawl per output, broken redirects, bytes counted --------------------------------


async def test_second_crawl_into_the_same_output_is_refused(
    plain_site: tuple[Path, SiteManifest], tmp_path: Path
) -> None:
    directory, _ = plain_site
    out = tmp_path / "pages.jsonl"
    async with TestSiteServer(directory, Faults(latency=0.05)) as server:
        writing = anyio.Event()
        config = CrawlConfig([server.url], out=out, cpu_workers=1, concurrency=2)
        first = Crawler(config, on_record=lambda _: writing.set())
        async with anyio.create_task_group() as group:
            group.start_soon(first.run)
            with anyio.fail_after(30):
                await writing.wait()
            second = Crawler(CrawlConfig([server.url], out=out, cpu_workers=1))
            with pytest.raises(CrawlFileError, match="another crawl is writing to"):
                await second.run()
            group.cancel_scope.cancel()
    # Once the first crawl has ended, the same output can be resumed.
    async with TestSiteServer(directory) as server:
        _, stats = await crawl([server.url], out=out)
    assert stats.resumed_pages > 0


async def test_redirect_without_location_is_an_error(
    plain_site: tuple[Path, SiteManifest],
) -> None:
    directory, manifest = plain_site
    async with TestSiteServer(directory, Faults(bare_redirects=("/p/1.html",))) as server:
        records, stats = await crawl([server.url])
    assert stats.errors == Counter({"bad_redirect": 1})
    assert "without a Location" in stats.failed[server.url + "p/1.html"]
    assert server.url + "p/1.html" not in {r["url"] for r in records}
    assert len(records) == len(reachable_without_links_of(manifest, "/p/1.html"))


async def test_bytes_received_count_only_bodies_read(
    fault_site: tuple[Path, SiteManifest],
) -> None:
    directory, _ = fault_site
    async with TestSiteServer(directory) as server:
        records, stats = await crawl([server.url], max_bytes=100_000)
    assert stats.skipped["too_large"] == 1  # 300 kB, announced by Content-Length: never read
    prefix = server.url.rstrip("/")
    read = [r["url"].removeprefix(prefix) for r in records] + ["/robots.txt"]
    assert stats.bytes == sum(len(server._file(path) or b"") for path in read)
