"""The ``--cluster ADDR`` option of the commands that offload CPU work (``serve``, ``crawl``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import click

__all__ = ["cluster_option"]

F = TypeVar("F", bound=Callable[..., object])


def _use_cluster(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    # Before the command runs: every Runtime it creates reads HYBRIDIO_CLUSTER
    # (Runtime(cluster=None) means "the environment's cluster, if any").
    if value:
        os.environ["HYBRIDIO_CLUSTER"] = value


def cluster_option(purpose: str) -> Callable[[F], F]:
    """``--cluster ADDR``: run the command's CPU work on that Dask scheduler's workers."""
    return click.option(
        "--cluster",
        metavar="ADDR",
        expose_value=False,
        callback=_use_cluster,
        help=f"{purpose} (a Dask scheduler, tcp://host:8786) [env: HYBRIDIO_CLUSTER].",
    )
