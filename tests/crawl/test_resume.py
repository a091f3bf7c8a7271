"""A crawl killed with SIGKILL and started again with the same --out loses and repeats nothing."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from hybridio.crawl import CrawlConfig, Crawler, Faults, SiteManifest, TestSiteServer, _crawler

pytestmark = pytest.mark.anyio

CLI = [sys.executable, "-c", "from hybridio._cli import main; main()", "crawl"]
ROOT = Path(__file__).resolve().parents[2]


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


# Subprocesses run their own event loop: one backend for the test itself is enough.
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_resume_after_sigkill(plain_site: tuple[Path, SiteManifest], tmp_path: Path) -> None:
    directory, manifest = plain_site
    out = tmp_path / "pages.jsonl"
    # Latency and a small concurrency make the crawl last a few seconds, so the kill lands
    # mid-crawl; batches of 2 make records reach the file while it runs.
    async with TestSiteServer(directory, Faults(latency=0.05)) as server:
        command = [*CLI, server.url, "--out", str(out), "--quiet", "--workers", "1"]
        command += ["--concurrency", "2", "--batch-size", "2"]
        process = await anyio.open_process(command)
        with anyio.fail_after(30):
            while lines(out) < 10:
                assert process.returncode is None, "the crawl ended before it could be killed"
                await anyio.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        assert process.returncode == -signal.SIGKILL
        written_before = lines(out)
        assert 10 <= written_before < len(manifest.reachable())

        resumed = await anyio.run_process(
            [*command[:-4], "--concurrency", "8"], check=False, stderr=None
        )
        assert resumed.returncode == 0, resumed.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    urls = [r["url"].removeprefix(server.url.rstrip("/")) for r in records]
    assert len(urls) == len(set(urls)), "a page was written twice"
    assert set(urls) == set(manifest.reachable()), "a page was lost"
    # Only the few pages in flight at the kill (fetched, not yet written) were fetched again.
    pages = {path: n for path, n in server.requests.items() if path != "/robots.txt"}
    assert max(pages.values()) <= 2
    assert sum(pages.values()) <= len(manifest.reachable()) + 10


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_existing_output_without_state_is_refused(
    plain_site: tuple[Path, SiteManifest], tmp_path: Path
) -> None:
    out = tmp_path / "pages.jsonl"
    out.write_text('{"url": "http://127.0.0.1:1/"}\n')
    result = await anyio.run_process(
        [*CLI, "http://127.0.0.1:1/", "--out", str(out), "--quiet"], check=False
    )
    assert result.returncode != 0
    assert b"state log" in result.stderr
    assert out.read_text() == '{"url": "http://127.0.0.1:1/"}\n'


async def test_resume_log_is_read_off_the_event_loop(
    plain_site: tuple[Path, SiteManifest], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[bool] = []
    real = _crawler.load_resume_state  # type: ignore[attr-defined]

    def spy(*args: Any) -> Any:
        threads.append(threading.current_thread() is threading.main_thread())
        return real(*args)

    monkeypatch.setattr(_crawler, "load_resume_state", spy)
    directory, _ = plain_site
    async with TestSiteServer(directory) as server:
        config = CrawlConfig([server.url], out=tmp_path / "o.jsonl", max_pages=3, cpu_workers=1)
        await Crawler(config).run()
    assert threads == [False]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_records_without_url_survive_repeated_sigkills(
    plain_site: tuple[Path, SiteManifest], tmp_path: Path
) -> None:
    """Resume must not depend on the records' shape: these have no "url" key."""
    directory, manifest = plain_site
    out = tmp_path / "pages.jsonl"
    async with TestSiteServer(directory, Faults(latency=0.03)) as server:
        command = [*CLI, server.url, "--out", str(out), "--quiet", "--workers", "1"]
        command += ["--extract", "tests.crawl.extractors:without_url", "--batch-size", "2"]
        kills = 0
        for target in (6, 16, 26, 36):
            # From the checkout: --extract imports tests.crawl.extractors.
            process = await anyio.open_process([*command, "--concurrency", "2"], cwd=ROOT)
            with anyio.fail_after(30):
                while lines(out) < target:
                    if process.returncode is not None:
                        break  # it ended first: the resume below checks it all the same
                    await anyio.sleep(0.01)
            if process.returncode is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            await process.wait()
        assert kills >= 3, "the crawl ended before it could be killed"
        resumed = await anyio.run_process(command, check=False, stderr=None, cwd=ROOT)
        assert resumed.returncode == 0, resumed.stderr
    where = [json.loads(line)["where"] for line in out.read_text().splitlines()]
    assert len(where) == len(set(where)), "a page was written twice"
    assert set(where) == set(manifest.reachable()), "a page was lost"
