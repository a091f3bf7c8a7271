"""The click application behind ``hybridio``: the top-level group and lazily loaded commands."""

from __future__ import annotations

import importlib
from typing import Any

import click

from ._version import __version__

__all__ = ["cli"]

#: Sub-commands: name -> "module:attribute" of a click command, imported on first use.
LAZY_COMMANDS: dict[str, str] = {
    "doctor": "hybridio._doctor:doctor",
    "bench": "hybridio.bench._cli:bench",
    "serve": "hybridio.web._cli:serve",
    "crawl": "hybridio.crawl._cli:crawl",
    "testsite": "hybridio.crawl._cli:testsite",
}


class LazyGroup(click.Group):
    """A group whose commands are imported only when invoked (or listed in --help)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in LAZY_COMMANDS:
            return command
        module_name, _, attribute = LAZY_COMMANDS[cmd_name].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise click.ClickException(
                f"`hybridio {cmd_name}` needs an optional dependency that is missing "
                f"({exc.name or exc}). Install it with: pip install 'hybridio[all]'"
            ) from exc
        loaded: Any = getattr(module, attribute)
        assert isinstance(loaded, click.Command)
        return loaded


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="hybridio")
def cli() -> None:
    """hybridio: run I/O on the event loop, blocking calls in threads, CPU work in processes,
    and measure what each choice costs on this machine."""
