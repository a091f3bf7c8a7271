"""The commands, the test site generator, the progress display and the example."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hybridio._cli_app import cli
from hybridio.crawl import CrawlConfig, CrawlStats, Progress, generate_site
from hybridio.crawl._testsite import load_manifest

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from hybridio._cli import main; main()"]


def test_testsite_generate_is_deterministic(tmp_path: Path) -> None:
    runner = CliRunner()
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        result = runner.invoke(
            cli, ["testsite", "generate", str(tmp_path / name), "--pages", "12", "--seed", seed]
        )
        assert result.exit_code == 0, result.output
        assert "12 pages" in result.output
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.html"))
    assert len(files) == 12
    for file in files:
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
    assert (tmp_path / "a/index.html").read_bytes() != (tmp_path / "c/index.html").read_bytes()


def test_generate_fault_options(tmp_path: Path) -> None:
    manifest = generate_site(
        tmp_path, pages=5, robots_disallow=("/private/",), crawl_delay=0.5, redirect_loops=1
    )
    robots = (tmp_path / "robots.txt").read_text()
    assert "Disallow: /private/" in robots
    assert "Crawl-delay: 0.5" in robots
    assert manifest.redirects == {"/loop/0/a": "/loop/0/b", "/loop/0/b": "/loop/0/a"}
    assert load_manifest(tmp_path) == manifest
    with pytest.raises(FileNotFoundError, match="testsite generate"):
        load_manifest(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="pages"):
        generate_site(tmp_path, pages=0)


def test_crawl_command_rejects_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    out = str(tmp_path / "o.jsonl")
    result = runner.invoke(cli, ["crawl", "http://127.0.0.1:1/", "--out", out, "--extract", "x"])
    assert result.exit_code == 2
    assert "module:function" in result.output
    result = runner.invoke(
        cli, ["crawl", "http://127.0.0.1:1/", "--out", out, "--extract", "no_such_mod:f"]
    )
    assert result.exit_code == 2
    assert "cannot import" in result.output
    result = runner.invoke(cli, ["crawl", "ftp://h/", "--out", out])
    assert result.exit_code == 2
    assert "http(s)" in result.output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"seeds": []}, "at least one seed"),
        ({"concurrency": 0}, "concurrency"),
        ({"timeout": -1}, "timeout"),
        ({"max_pages": -1}, "max_pages"),
        ({"extract": "not callable"}, "callable"),
    ],
)
def test_config_validation(options: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"seeds": ["http://127.0.0.1/"], **options}
    with pytest.raises((ValueError, TypeError), match=message):
        CrawlConfig(**arguments)  # type: ignore[arg-type]


def test_unpicklable_extract_is_refused() -> None:
    from hybridio.crawl import Crawler

    with pytest.raises(TypeError, match="module level"):
        Crawler(CrawlConfig(["http://127.0.0.1/"], extract=lambda page: {}))


def test_progress_only_on_a_tty() -> None:
    stats = CrawlStats(pages=5)
    stats.errors["timeout"] += 2
    quiet = io.StringIO()
    Progress(quiet).update(stats, queued=3, in_flight=1)  # StringIO is not a TTY
    assert quiet.getvalue() == ""
    shown = io.StringIO()
    progress = Progress(shown, enabled=True)
    progress.update(stats, queued=3, in_flight=1)
    progress.close()
    assert "pages 5" in shown.getvalue()
    assert "queue 3" in shown.getvalue()
    assert "errors 2" in shown.getvalue()
    summary = stats.summary()
    assert "errors    2 (timeout 2)" in summary
    assert json.loads(json.dumps(stats.to_dict()))["errors"] == {"timeout": 2}


def test_example_crawler_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "crawler.py"), "12"],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    first = json.loads(result.stdout.splitlines()[0])
    assert first["headings"]
    assert first["worker_pid"] > 0
    assert "pages     12" in result.stdout


def _commands() -> list[tuple[str, click.Command]]:
    testsite = cli.get_command(click.Context(cli), "testsite")
    crawl = cli.get_command(click.Context(cli), "crawl")
    assert isinstance(testsite, click.Group)
    assert crawl is not None
    found = [("crawl", crawl)]
    for name in ("generate", "serve"):
        command = testsite.get_command(click.Context(testsite), name)
        assert command is not None
        found.append((f"testsite {name}", command))
    return found


@pytest.mark.parametrize(("name", "command"), _commands())
def test_every_option_has_help(name: str, command: click.Command) -> None:
    options = [p for p in command.params if isinstance(p, click.Option)]
    assert options
    missing = [o.name for o in options if not o.help]
    assert not missing, f"{name}: options without help: {missing}"
    result = CliRunner().invoke(cli, [*name.split(), "--help"])
    assert result.exit_code == 0
    if name == "crawl":
        assert "Seconds allowed for one request" in result.output
        assert "Bytes: a larger page is skipped" in result.output


def _serve_error(directory: Path, port: int) -> str:
    """Run `testsite serve` expecting a failure: its one line of error."""
    command = [*CLI, "testsite", "serve", str(directory), "--port", str(port), "--exit-after", "5"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=50, check=False)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0, done.stderr
    return done.stderr


def test_testsite_serve_errors_are_one_line(tmp_path: Path) -> None:
    generate_site(tmp_path / "site", pages=2, words_per_page=5)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert f"cannot serve on 127.0.0.1:{port}" in _serve_error(tmp_path / "site", port)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "site.json not found" in _serve_error(empty, 0)


def _crawl_error(*arguments: str) -> str:
    """Run `hybridio crawl` expecting a refusal: its error, which must not be a traceback."""
    command = [*CLI, "crawl", "http://127.0.0.1:1/", "--quiet", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=50, check=False)
    assert done.returncode not in (0, 130)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("Error: "), done.stderr
    return done.stderr


def test_bad_output_paths_are_clear_errors(tmp_path: Path) -> None:
    assert "is a directory" in _crawl_error("--out", str(tmp_path)).lower()
    (tmp_path / "file").write_text("")
    message = _crawl_error("--out", str(tmp_path / "file" / "pages.jsonl"))
    assert "is a file, not a directory" in message
    assert "choose another --out" in message
    message = _crawl_error("--out", str(tmp_path / "o.jsonl"), "--stats-json", str(tmp_path))
    assert "--stats-json" in message


def test_damaged_state_logs_are_clear_errors(tmp_path: Path) -> None:
    out, state = tmp_path / "o.jsonl", tmp_path / "o.jsonl.state"
    out.write_text('{"title": "a"}\n')
    commit = '{"x": ["http://127.0.0.1:1/"], "o": 16, "n": 1}\n'
    state.write_text('{"v": 2}\n{"q": "http://127.0.0.1:1/", "d": 0}\n' + "\0\0garbage\n" + commit)
    message = _crawl_error("--out", str(out))
    assert f"{state}, line 3, is damaged" in message
    assert "Delete that line" in message
    # A log of the format before version 2 (no version line): not misread.
    state.write_text('{"q": "http://127.0.0.1:1/", "d": 0}\n{"x": "http://127.0.0.1:1/"}\n')
    assert "not a state log of this version" in _crawl_error("--out", str(out))
    # An output shorter than the state log says: edited or replaced.
    state.write_text('{"v": 2}\n{"x": [], "o": 999, "n": 9}\n')
    assert "was edited, truncated or replaced" in _crawl_error("--out", str(out))
    assert out.read_text() == '{"title": "a"}\n'  # refused, the output is untouched
