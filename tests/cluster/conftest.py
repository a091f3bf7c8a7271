"""A real Dask cluster for the tests of the cluster backend, started once for the session."""

from __future__ import annotations

from collections.abc import Iterator

import distributed
import pytest


@pytest.fixture(scope="session")
def cluster() -> Iterator[distributed.LocalCluster]:
    """Two worker processes of one thread each. Dask re-runs a task once if its worker dies."""
    import dask

    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 1}),
        distributed.LocalCluster(
            processes=True,
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # never the default 8787 another run may hold
        ) as local,
    ):
        yield local


@pytest.fixture(scope="session")
def client(cluster: distributed.LocalCluster) -> Iterator[distributed.Client]:
    """The tests' own view of the cluster (to look at its workers and tasks)."""
    with distributed.Client(cluster, set_as_default=False) as dask_client:
        yield dask_client
