"""The crawler on what real sites serve: encodings, odd links, races, failures, throttling."""

from __future__ import annotations

import json
import signal
import socket
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from hybridio.crawl import CrawlConfig, Crawler, CrawlStats, Faults, TestSiteServer, generate_site
from hybridio.crawl._testsite import QUIRK_TITLES, write_site

pytestmark = pytest.mark.anyio

CLI = [sys.executable, "-c", "from hybridio._cli import main; main()"]


async def crawl(server: TestSiteServer, **options: Any) -> tuple[list[dict[str, Any]], CrawlStats]:
    records: list[dict[str, Any]] = []
    options = {"cpu_workers": 1, "backoff": 0.0, **options}
    stats = await Crawler(CrawlConfig([server.url], **options), on_record=records.append).run()
    return records, stats


def by_path(records: list[dict[str, Any]], server: TestSiteServer) -> dict[str, dict[str, Any]]:
    prefix = server.url.rstrip("/")
    return {r["url"].removeprefix(prefix): r for r in records}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def page(title: str, *links: str) -> bytes:
    anchors = "".join(f"<a href='{link}'>{link}</a> " for link in links)
    return f"<html><title>{title}</title><body><p>{title} {anchors}</p></body></html>".encode()


async def test_quirk_pages_read_as_a_browser_reads_them(tmp_path: Path) -> None:
    manifest = generate_site(tmp_path, pages=5, words_per_page=30, quirks=True)
    async with TestSiteServer(tmp_path) as server:
        records, stats = await crawl(server)
    found = by_path(records, server)
    assert set(found) == set(manifest.reachable())
    assert stats.errors == Counter()
    for path, title in QUIRK_TITLES.items():
        assert found[path]["title"] == title, path
        assert found[path]["words"] > 30
    # Requested as a browser requests them: UTF-8 percent-encoding, a backslash as a slash.
    assert server.requests["/quirks/café.html"] == 1
    assert server.requests["/quirks/sub/back.html"] == 1
    assert not [p for p in server.requests if "\ufffd" in p or "\\" in p or "%5C" in p]


def race_site(directory: Path) -> dict[str, int]:
    """/a is slow; /x is linked from /a (depth 1) and from /c (depth 2), and /r redirects to /z,
    which /c also links: a crawler that takes depth from the first parse gets /x and /z wrong."""
    pages = {
        "/": page("home", "/a.html", "/b.html", "/r"),
        "/a.html": page("a", "/x.html"),
        "/b.html": page("b", "/c.html"),
        "/c.html": page("c", "/x.html", "/z.html", "/d.html"),
        "/d.html": page("d", "/y.html"),
        "/x.html": page("x", "/y.html"),
        "/y.html": page("y"),
        "/z.html": page("z"),
    }
    write_site(directory, pages, redirects={"/r": "/z.html"})
    return {"/": 0, "/a.html": 1, "/b.html": 1, "/z.html": 1, "/c.html": 2, "/x.html": 2}


async def test_depth_is_breadth_first_on_every_run(tmp_path: Path) -> None:
    expected = race_site(tmp_path) | {"/d.html": 3, "/y.html": 3}
    runs = []
    faults = Faults(slow_paths=("/a.html", "/r"), slow_seconds=0.4)
    async with TestSiteServer(tmp_path, faults) as server:
        for _ in range(3):
            records, _ = await crawl(server, concurrency=8, batch_size=1)
            found = by_path(records, server)
            assert {path: r["depth"] for path, r in found.items()} == expected
            runs.append(sorted(json.dumps(r, sort_keys=True) for r in found.values()))
    assert runs[0] == runs[1] == runs[2]


async def test_max_depth_is_exact_under_the_race(tmp_path: Path) -> None:
    race_site(tmp_path)
    async with TestSiteServer(
        tmp_path, Faults(slow_paths=("/a.html",), slow_seconds=0.3)
    ) as server:
        records, _ = await crawl(server, max_depth=2)
    assert sorted(by_path(records, server)) == sorted(
        ["/", "/a.html", "/b.html", "/z.html", "/c.html", "/x.html"]
    )
    assert "/y.html" not in server.requests  # depth 3: never fetched


# The crawl runs as a command, in its own process: one backend for the test is enough.
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_server_down_exit_status_named_url_and_retried_on_resume(tmp_path: Path) -> None:
    site = tmp_path / "site"
    manifest = generate_site(site, pages=8, words_per_page=20)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    out, stats_path = tmp_path / "out.jsonl", tmp_path / "stats.json"
    command = [*CLI, "crawl", url, "--out", str(out), "--workers", "1", "--retries", "0"]
    command += ["--stats-json", str(stats_path)]
    down = await anyio.run_process(command, check=False)
    assert down.returncode == 1
    stderr = down.stderr.decode()
    assert f"nothing could be crawled: {url}" in stderr
    assert "robots_unreachable" in stderr
    assert json.loads(stats_path.read_text())["failed"][0]["url"] == url
    state = (tmp_path / "out.jsonl.state").read_text()
    assert '"x"' not in state  # the seed is not marked done

    async with TestSiteServer(site) as server:
        await server.close()
        await server.start(port)
        up = await anyio.run_process(command, check=False)
    assert up.returncode == 0, up.stderr
    urls = [json.loads(line)["url"] for line in out.read_text().splitlines()]
    assert sorted(urls) == sorted(url.rstrip("/") + p for p in manifest.reachable())


async def test_connection_refused_names_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    config = CrawlConfig([url], obey_robots=False, retries=1, backoff=0.0, cpu_workers=1)
    stats = await Crawler(config).run()
    assert stats.pages == 0
    assert stats.errors == Counter({"connection": 1})
    assert stats.failed[url].startswith("connection: ")
    assert stats.retries == 1
    assert stats.retry_on_resume == 1
    assert url in stats.summary()


async def test_429_waits_for_retry_after(tmp_path: Path) -> None:
    manifest = generate_site(tmp_path, pages=12, branching=4, words_per_page=20)
    faults = Faults(throttle_rate=0.4, retry_after=1, seed=2)
    throttled = {p for p in manifest.reachable() if faults.throttled(p)}
    assert throttled
    async with TestSiteServer(tmp_path, faults) as server:
        records, stats = await crawl(server, retries=1, backoff=30.0)  # backoff is not used
        times = dict(server.request_times)
    assert len(records) == len(manifest.reachable())
    assert stats.errors == Counter()
    assert stats.retries == len(throttled)
    for path in throttled:
        first, second = times[path]
        assert second - first >= 0.95  # Retry-After: 1 was honoured (clock granularity aside)


async def test_retry_after_over_the_limit_fails_the_url(tmp_path: Path) -> None:
    manifest = generate_site(tmp_path, pages=12, branching=4, words_per_page=20)
    faults = Faults(throttle_rate=0.4, retry_after=120, seed=2)
    throttled = {p for p in manifest.reachable() if faults.throttled(p)}
    async with TestSiteServer(tmp_path, faults) as server:
        _, stats = await crawl(server, retries=3, max_retry_after=5.0)
    assert stats.errors["http_429"] == len(throttled)
    assert all("Retry-After 120 s" in error for error in stats.failed.values())
    assert stats.retry_on_resume == len(throttled)


@pytest.mark.parametrize(("status", "pages"), [(503, 0), (500, 0), (404, 8), (410, 8)])
async def test_robots_txt_answer_per_rfc_9309(tmp_path: Path, status: int, pages: int) -> None:
    generate_site(tmp_path, pages=8, words_per_page=20)
    async with TestSiteServer(tmp_path, Faults(robots_status=status)) as server:
        records, stats = await crawl(server, retries=2)
    assert len(records) == pages
    if status >= 500:  # unreachable: disallow everything, say so, retry on resume
        assert server.requests["/robots.txt"] == 3
        assert set(server.requests) == {"/robots.txt"}
        assert stats.errors == Counter({"robots_unreachable": 1})
        assert f"{status}" in stats.failed[server.url]
        assert stats.retry_on_resume == 1
    else:  # unavailable: allow everything
        assert server.requests["/robots.txt"] == 1


async def test_sitemaps_are_optional_seeds(tmp_path: Path) -> None:
    pages = {"/": page("home", "/a.html"), "/a.html": page("a"), "/orphan.html": page("orphan")}
    write_site(tmp_path, pages, robots="User-agent: *\nDisallow:\nSitemap: /maps/index.xml\n")
    ns = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps/index.xml").write_text(
        f"<sitemapindex {ns}><sitemap><loc>/maps/pages.xml</loc></sitemap></sitemapindex>"
    )
    async with TestSiteServer(tmp_path) as server:
        base = server.url.rstrip("/")
        (tmp_path / "maps/index.xml").write_text(
            f"<sitemapindex {ns}><sitemap><loc>{base}/maps/pages.xml</loc></sitemap></sitemapindex>"
        )
        # Off-site URLs first (dropped), so that the page is found only if all ~250 KB are read.
        offsite = "".join(f"<url><loc>http://elsewhere.test/{i}</loc></url>" for i in range(5000))
        (tmp_path / "maps/pages.xml").write_text(
            f"<urlset {ns}>{offsite}<url><loc>{base}/orphan.html</loc></url></urlset>"
        )
        plain, _ = await crawl(server)
        with_maps, _ = await crawl(server, sitemaps=True)
    assert sorted(by_path(plain, server)) == ["/", "/a.html"]
    depths = {path: r["depth"] for path, r in by_path(with_maps, server).items()}
    assert depths == {"/": 0, "/a.html": 1, "/orphan.html": 0}


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_ctrl_c_says_what_is_saved_and_how_to_resume(tmp_path: Path) -> None:
    generate_site(tmp_path / "site", pages=200, words_per_page=20)
    out = tmp_path / "out.jsonl"
    async with TestSiteServer(tmp_path / "site", Faults(latency=0.05)) as server:
        command = [*CLI, "crawl", server.url, "--out", str(out), "--workers", "1", "-c", "2"]
        async with await anyio.open_process([*command, "--batch-size", "1"]) as process:
            for _ in range(1500):  # 30 s at most
                if out.exists() and out.read_bytes().count(b"\n") >= 3:
                    break
                await anyio.sleep(0.02)
            process.send_signal(signal.SIGINT)
            assert process.stderr is not None
            chunks = [chunk async for chunk in process.stderr]
            await process.wait()
            stderr = b"".join(chunks).decode()
    assert process.returncode == 130
    assert "Traceback" not in stderr
    saved = out.read_bytes().count(b"\n")
    assert f"interrupted: {saved} pages are saved in {out}" in stderr
    assert "run the same command again to resume" in stderr


async def test_pages_that_failed_are_fetched_again_on_resume(tmp_path: Path) -> None:
    manifest = generate_site(tmp_path / "site", pages=30, branching=3, words_per_page=20)
    faults = Faults(error_rate=0.2, seed=4)
    failing = {p for p in manifest.reachable() if faults.fails(p)}
    assert failing
    out = tmp_path / "out.jsonl"
    options: dict[str, Any] = {"out": out, "retries": 0, "backoff": 0.0, "cpu_workers": 1}
    async with TestSiteServer(tmp_path / "site", faults) as server:
        first = await Crawler(CrawlConfig([server.url], **options)).run()
    assert first.errors["http_5xx"] >= 1
    assert first.retry_on_resume == len(first.failed)
    assert all(error.startswith("http_5xx: HTTP 503") for error in first.failed.values())
    # The same port again, now without faults: the failed pages (and what they link) come in.
    healthy = TestSiteServer(tmp_path / "site")
    await healthy.start(server.port)
    try:
        second = await Crawler(CrawlConfig([healthy.url], **options)).run()
    finally:
        await healthy.close()
    assert second.errors == Counter()
    urls = [json.loads(line)["url"] for line in out.read_text().splitlines()]
    assert len(urls) == len(set(urls))
    assert sorted(urls) == sorted(healthy.url.rstrip("/") + p for p in manifest.reachable())
    assert set(healthy.requests) - {"/robots.txt"} >= {
        p for p in failing if any(p in manifest.links[q] for q in manifest.reachable())
    }


async def test_robots_txt_with_a_byte_order_mark_is_obeyed(tmp_path: Path) -> None:
    pages = {"/": page("home", "/private/a.html", "/b.html"), "/private/a.html": page("a")}
    pages["/b.html"] = page("b")
    write_site(tmp_path, pages, robots="\ufeffUser-agent: *\nDisallow: /private/\n")
    async with TestSiteServer(tmp_path) as server:
        records, stats = await crawl(server)
    assert sorted(by_path(records, server)) == ["/", "/b.html"]
    assert stats.robots_blocked == 1
    assert "/private/a.html" not in server.requests
