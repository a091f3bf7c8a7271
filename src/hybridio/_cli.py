"""Entry point of the ``hybridio`` command.

The command needs click (the ``cli`` extra, pulled in by ``web``, ``crawl`` and ``bench``); without
it, this prints how to install it instead of a traceback. Sub-commands live next to the code they
drive and are imported only when used, so ``hybridio --version`` stays fast.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Run the ``hybridio`` command line."""
    try:
        from ._cli_app import cli
    except ImportError as exc:  # pragma: no cover - only without the cli extra
        if getattr(exc, "name", None) != "click":
            raise
        sys.stderr.write(
            "The hybridio command needs click. Install it with: pip install 'hybridio[cli]'\n"
        )
        raise SystemExit(1) from None
    cli.main(args=argv, prog_name="hybridio")
