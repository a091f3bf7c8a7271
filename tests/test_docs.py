"""Every code block in README.md and docs/*.md works as written.

The convention, which these tests enforce:

* a ```` ```python ```` block is a complete program: it is run in an empty temporary directory and
  must exit 0 in bounded time (no top-level ``await``; an ``if __name__ == "__main__":`` guard
  where worker processes are used, since they import the main module);
* a block preceded by the line ``<!-- fragment-of: examples/NAME.py -->`` is a fragment: each of
  its non-blank lines must appear in that example, which tests/test_examples.py runs;
* ```` ```console ````, ```` ```bash ```` and ```` ```text ```` blocks (and unlabelled diagrams)
  are shown, not run; but in a console block, each ``$ hybridio ...`` command must parse (its
  sub-commands and options exist: it is run with ``--help`` added), each ``$ python FILE`` must
  name an existing file and each ``$ make TARGET`` an existing target.

Relative links must point to files that exist.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybridio._cli_app import cli

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHOWN_ONLY = {"", "console", "bash", "sh", "shell", "text", "toml", "json", "yaml", "ini"}
FRAGMENT = re.compile(r"<!--\s*fragment-of:\s*(\S+)\s*-->")
FENCE = re.compile(r"^(`{3,})([\w+-]*)\s*$")
LINK = re.compile(r"\]\(([^)\s]+)\)")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    fragment_of: str | None

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def code_blocks(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, with the fragment marker that precedes each."""
    blocks: list[Block] = []
    lines = page.read_text().splitlines()
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        fence, language = match.groups()
        start = index
        index += 1
        while index < len(lines) and lines[index].strip() != fence:
            index += 1
        previous = next((line for line in reversed(lines[:start]) if line.strip()), "")
        marker = FRAGMENT.fullmatch(previous.strip())
        blocks.append(
            Block(
                page=page,
                line=start + 1,
                language=language.lower(),
                code="\n".join(lines[start + 1 : index]) + "\n",
                fragment_of=marker.group(1) if marker else None,
            )
        )
        index += 1
    return blocks


ALL_BLOCKS = [block for page in PAGES for block in code_blocks(page)]
PROGRAMS = [b for b in ALL_BLOCKS if b.language == "python" and b.fragment_of is None]
FRAGMENTS = [b for b in ALL_BLOCKS if b.fragment_of is not None]


def test_blocks_were_found() -> None:
    # Guards the parser: the README alone has programs, fragments and shell sessions.
    readme = [b for b in ALL_BLOCKS if b.page.name == "README.md"]
    assert {b.language for b in readme} >= {"python", "console"}
    assert any(b.page.name == "README.md" for b in FRAGMENTS)
    assert ["hybridio", "crawl", "http://127.0.0.1:8000/", "--out", "pages.jsonl"] == next(
        argv[:5] for b in CONSOLE for argv in shell_commands(b) if argv[1:2] == ["crawl"]
    )


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: b.id)
def test_every_block_follows_the_convention(block: Block) -> None:
    if block.fragment_of is not None:
        return  # checked by test_fragment_is_part_of_its_example
    assert block.language == "python" or block.language in SHOWN_ONLY, (
        f"{block.id}: a ```{block.language} block is neither run nor a known shown-only kind; "
        "use ```python for a complete program or mark a fragment with "
        "<!-- fragment-of: examples/NAME.py -->"
    )


@pytest.mark.parametrize("block", FRAGMENTS, ids=lambda b: b.id)
def test_fragment_is_part_of_its_example(block: Block) -> None:
    assert block.fragment_of is not None
    example = ROOT / block.fragment_of
    assert example.is_relative_to(ROOT / "examples"), f"{block.id}: fragments quote examples/"
    assert example.is_file(), f"{block.id}: {block.fragment_of} does not exist"
    assert any(example.name in test.read_text() for test in (ROOT / "tests").rglob("test_*.py")), (
        f"{block.id}: no test under tests/ runs {block.fragment_of}"
    )
    source = {line.strip() for line in example.read_text().splitlines()}
    missing = [
        line.strip()
        for line in block.code.splitlines()
        if line.strip() and line.strip() not in source
    ]
    assert not missing, f"{block.id}: lines not in {block.fragment_of}: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("block", PROGRAMS, ids=lambda b: b.id)
def test_program_runs(block: Block, tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(block.code)
    try:
        result = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=50,  # under the 60 s per-test limit, so the failure says which block
            check=False,
            cwd=tmp_path,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{block.id}: did not finish within 50 s (a server? use a fragment)")
    assert result.returncode == 0, f"{block.id} exited {result.returncode}:\n{result.stderr}"


def shell_commands(block: Block) -> list[list[str]]:
    """The commands of a console block's ``$ `` lines, without environment variables and ``&``."""
    commands = []
    for line in block.code.splitlines():
        if not line.startswith("$ "):
            continue
        argv = shlex.split(line[2:], comments=True)
        while argv and re.fullmatch(r"[A-Za-z_]\w*=\S*", argv[0]):
            argv.pop(0)
        if argv and argv[-1] == "&":
            argv.pop()
        commands.append(argv)
    return commands


CONSOLE = [b for b in ALL_BLOCKS if b.language == "console" and shell_commands(b)]


@pytest.mark.parametrize("block", CONSOLE, ids=lambda b: b.id)
def test_console_commands_exist(block: Block) -> None:
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    for argv in shell_commands(block):
        program, args = argv[0], argv[1:]
        if program == "hybridio":
            result = CliRunner().invoke(cli, [*args, "--help"])
            assert result.exit_code == 0, f"{block.id}: `{shlex.join(argv)}`: {result.output}"
        elif program == "python" and args and args[0].endswith(".py"):
            assert (ROOT / args[0]).is_file(), f"{block.id}: {args[0]} does not exist"
        elif program == "make":
            assert set(args) <= targets, f"{block.id}: no make target {set(args) - targets}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    text = page.read_text()
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # an absolute URL or an anchor on the same page
        path = target.split("#", 1)[0]
        if path and not (page.parent / path).exists():
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {broken}"
