"""The click application behind ``hybridio``: the top-level group and lazily loaded commands."""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ._extras import MissingExtra, install_hint, require_extra
from ._version import __version__

__all__ = ["LAZY_COMMANDS", "LazyCommand", "cli"]


@dataclass(frozen=True)
class LazyCommand:
    """A sub-command imported on first use."""

    #: ``"module:attribute"`` of the click command (a module of this package).
    target: str
    #: The extra that installs the command's dependencies.
    extra: str

    def summary(self) -> str:
        """The command's docstring, read from its source file without importing the module.

        ``hybridio --help`` shows it, so listing the commands needs none of their dependencies.
        """
        module_name, _, attribute = self.target.partition(":")
        path = Path(__file__).parent.joinpath(*module_name.split(".")[1:]).with_suffix(".py")
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError):
            return ""
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == attribute:
                return ast.get_docstring(node) or ""
        return ""


#: Sub-commands by name. Listing them (``hybridio --help``) imports none of their modules, so help
#: works with any set of extras installed and stays fast.
LAZY_COMMANDS: dict[str, LazyCommand] = {
    "bench": LazyCommand("hybridio.bench._cli:bench", "bench"),
    "crawl": LazyCommand("hybridio.crawl._cli:crawl", "crawl"),
    "doctor": LazyCommand("hybridio._doctor:doctor", "cli"),
    "serve": LazyCommand("hybridio.web._cli:serve", "web"),
    "testsite": LazyCommand("hybridio.crawl._cli:testsite", "crawl"),
}


def _is_missing_dependency(exc: ImportError) -> bool:
    """True when a third-party module is missing (not when hybridio's own code is broken)."""
    name = exc.name or ""
    return bool(name) and name.partition(".")[0] != "hybridio"


def _needs_extra(name: str, lazy: LazyCommand, exc: ImportError) -> click.Command:
    """A stand-in for a command whose extra is missing: any use of it says what to install."""
    message = (
        str(exc)
        if isinstance(exc, MissingExtra)
        else f"`hybridio {name}` needs the {lazy.extra!r} extra ({exc.name} is not installed). "
        f"Install it with: {install_hint(lazy.extra)}"
    )

    def refuse() -> None:
        raise click.ClickException(message)

    return click.Command(
        name,
        callback=refuse,
        help=f"{lazy.summary()}\n\n{message}",
        add_help_option=False,  # `hybridio crawl --help` also says what to install
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


class LazyGroup(click.Group):
    """A group whose commands are imported only when invoked; listing them imports nothing."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        lazy = LAZY_COMMANDS.get(cmd_name)
        if command is not None or lazy is None:
            return command
        module_name, _, attribute = lazy.target.partition(":")
        try:
            # Checked before the import: a module may import its dependencies lazily, and the
            # command would then fail later, with a traceback instead of this message.
            require_extra(f"`hybridio {cmd_name}`", lazy.extra)
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if not _is_missing_dependency(exc):
                raise
            return _needs_extra(cmd_name, lazy, exc)
        loaded: Any = getattr(module, attribute)
        assert isinstance(loaded, click.Command)
        return loaded

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their summaries, from ``LAZY_COMMANDS`` for the lazy ones."""
        rows: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            lazy = LAZY_COMMANDS.get(name)
            command = (
                click.Command(name, help=lazy.summary())
                if lazy is not None and name not in self.commands
                else self.get_command(ctx, name)
            )
            if command is not None and not command.hidden:
                rows.append((name, command))
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in rows])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="hybridio")
def cli() -> None:
    """hybridio: run I/O on the event loop, blocking calls in threads, CPU work in processes,
    and measure what each choice costs on this machine."""
