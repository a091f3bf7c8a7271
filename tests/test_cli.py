"""The ``hybridio`` command with any one extra installed: help always works, and a sub-command
whose extra is missing says which extra to install.

"Installed" is simulated deterministically: a child interpreter starts with every module of the
extras it should not have set to ``None`` in ``sys.modules`` (so importing them fails as if they
were absent), computed from hybridio's installed metadata, i.e. from pyproject.toml.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import re
import subprocess
import sys
import textwrap
from functools import cache
from typing import cast

import click
import pytest
from click.testing import CliRunner
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from hybridio._cli_app import LAZY_COMMANDS, cli
from hybridio._extras import EXTRA_MODULES

# Runs in the child: block the modules, then run each command line and each import, report JSON.
_CHILD = textwrap.dedent(
    """
    import contextlib, io, json, sys
    blocked, commands, imports = json.loads(sys.argv[1])
    for name in blocked:
        sys.modules[name] = None
    from hybridio._cli import main
    results = {"commands": [], "imports": {}}
    for argv in commands:
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException as exc:
                code, err = -1, io.StringIO(f"{type(exc).__name__}: {exc}")
        results["commands"].append([code, out.getvalue(), err.getvalue()])
    for module in imports:
        try:
            __import__(module)
        except ImportError as exc:
            results["imports"][module] = f"{type(exc).__name__}: {exc}"
        else:
            results["imports"][module] = None
    print(json.dumps(results))
    """
)


def _requirements() -> list[Requirement]:
    return [Requirement(line) for line in importlib.metadata.requires("hybridio") or []]


@cache
def extra_distributions(extra: str) -> frozenset[str]:
    """The distributions an extra installs directly (self-references are flattened by hatch)."""
    return frozenset(
        canonicalize_name(req.name)
        for req in _requirements()
        if req.marker is not None and req.marker.evaluate({"extra": extra})
    )


def _closure(distributions: set[str]) -> set[str]:
    """The distributions plus everything they depend on (only what is installed)."""
    seen: set[str] = set()
    todo = list(distributions)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in requires:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


def _import_names(distribution: str) -> set[str]:
    names = {
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if distribution in {canonicalize_name(dist) for dist in dists}
    }
    return names or {distribution.replace("-", "_")}


def _blocked_modules(installed_extras: list[str]) -> list[str]:
    """The import names of every optional distribution the given extras do not bring."""
    everything = {dist for extra in EXTRA_MODULES for dist in extra_distributions(extra)}
    core = {canonicalize_name(req.name) for req in _requirements() if req.marker is None}
    kept = _closure(core | {d for extra in installed_extras for d in extra_distributions(extra)})
    return sorted({name for dist in everything - kept for name in _import_names(dist)})


def _covers(installed_extras: list[str], extra: str) -> bool:
    have = {d for e in installed_extras for d in extra_distributions(e)}
    return extra_distributions(extra) <= have


def _run_child(installed_extras: list[str], commands: list[list[str]]) -> dict[str, object]:
    payload = json.dumps(
        [_blocked_modules(installed_extras), commands, ["hybridio.web", "hybridio.crawl"]]
    )
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, payload],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


def test_every_extra_module_list_matches_pyproject() -> None:
    # uvloop is optional even with the web extra (it does not exist on Windows).
    for extra, modules in EXTRA_MODULES.items():
        declared = {d.replace("-", "_") for d in extra_distributions(extra)} - {"uvloop"}
        assert set(modules) == declared, (
            f"hybridio._extras.EXTRA_MODULES[{extra!r}] is {sorted(modules)}, but pyproject.toml's "
            f"{extra!r} extra installs {sorted(declared)} (import names): update one of them"
        )


def test_without_the_cli_extra_the_command_says_to_install_it() -> None:
    report = _run_child([], [["--help"]])
    [[code, out, err]] = cast(list[tuple[int, str, str]], report["commands"])
    assert code == 1
    assert out == ""
    assert "pip install 'hybridio[cli]'" in err
    imports = report["imports"]
    assert isinstance(imports, dict)
    assert "pip install 'hybridio[web]'" in imports["hybridio.web"]
    assert "pip install 'hybridio[crawl]'" in imports["hybridio.crawl"]


@pytest.mark.parametrize("extra", ["cli", "web", "crawl", "bench"])
def test_help_works_and_missing_extras_are_named(extra: str) -> None:
    names = sorted(LAZY_COMMANDS)
    commands = [["--help"]]
    commands += [[name, "--help"] for name in names]
    commands += [[name, "some-argument", "--some-option"] for name in names]
    report = _run_child([extra], commands)
    results = report["commands"]
    assert isinstance(results, list)

    code, out, err = results[0]
    assert (code, err) == (0, "")
    for name in names:
        assert f"  {name} " in out, f"`hybridio --help` does not list {name}"

    for name, help_result, use_result in zip(
        names, results[1 : 1 + len(names)], results[1 + len(names) :], strict=True
    ):
        lazy = LAZY_COMMANDS[name]
        if _covers([extra], lazy.extra):
            code, out, err = help_result
            assert code == 0, err
            assert out.startswith(f"Usage: hybridio {name}")
        else:
            for code, out, err in (help_result, use_result):
                assert code == 1, (name, out, err)
                assert f"pip install 'hybridio[{lazy.extra}]'" in err, (name, err)
                assert "Traceback" not in err

    imports = report["imports"]
    assert isinstance(imports, dict)
    for package in ("web", "crawl"):
        error = imports[f"hybridio.{package}"]
        if _covers([extra], package):
            assert error is None
        else:
            assert error.startswith("MissingExtra: ")
            assert f"pip install 'hybridio[{package}]'" in error


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_listed_summary_is_the_commands_own(name: str) -> None:
    lazy = LAZY_COMMANDS[name]
    module_name, _, attribute = lazy.target.partition(":")
    command = getattr(importlib.import_module(module_name), attribute)
    assert isinstance(command, click.Command)
    listed = click.Command(name, help=lazy.summary())
    assert listed.get_short_help_str(10_000) == command.get_short_help_str(10_000)


def test_help_lists_commands_without_importing_them() -> None:
    code = (
        "import sys\n"
        "from hybridio._cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'aiohttp', 'matplotlib', 'selectolax', 'hybridio'} and '_cli' in m or "
        "m in {'aiohttp', 'matplotlib', 'selectolax'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.splitlines()[-1] == "['hybridio._cli', 'hybridio._cli_app']"


def test_version_and_doctor_run() -> None:
    runner = CliRunner()
    version = runner.invoke(cli, ["--version"])
    assert version.exit_code == 0
    assert version.output.startswith("hybridio, version ")
    doctor = runner.invoke(cli, ["doctor", "--json"])
    assert doctor.exit_code == 0, doctor.output
    facts = json.loads(doctor.output)
    assert facts["packages"]["anyio"]
    assert facts["extras"] == dict.fromkeys(EXTRA_MODULES, True)  # make installs them all


def test_doctor_names_the_extras_that_are_missing() -> None:
    report = _run_child(["web"], [["doctor"]])
    [[code, out, err]] = cast(list[tuple[int, str, str]], report["commands"])
    assert code == 0, err
    assert re.search(r"^extras +cli, web$", out, re.MULTILINE), out
    assert "pip install 'hybridio[crawl]'" in out
    assert "pip install 'hybridio[web]'" not in out
