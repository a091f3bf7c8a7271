"""CPU work on a Dask cluster: the same ``run_cpu`` / ``map_cpu`` calls, on the cluster's workers.

Run it against your scheduler::

    HYBRIDIO_CLUSTER=tcp://scheduler.internal:8786 python examples/cluster.py

or without one: it starts a small local cluster (two worker processes on 127.0.0.1) to show
the calls. Needs ``pip install 'hybridio[cluster]'``; see docs/scaling-out.md.
"""

from __future__ import annotations

import hashlib
import os

import anyio

import hybridio


def crunch(data: bytes) -> str:
    for _ in range(1000):
        data = hashlib.sha256(data).digest()
    return data.hex()[:16]


def parse(page: str) -> int:
    return len(page.split())


async def use(address: str) -> None:
    data = b"hybridio"
    pages = [f"page {i} has some words" for i in range(100)]
    async with hybridio.Runtime(cluster=address) as rt:
        digest = await rt.run_cpu(crunch, data, timeout=5)  # runs on a Dask worker
        async with rt.map_cpu(parse, pages) as records:  # chunks spread over the workers
            words = [record async for record in records]
    print(f"digest {digest}; {sum(words)} words in {len(words)} pages, parsed on {address}")


def main() -> None:
    address = os.environ.get("HYBRIDIO_CLUSTER")
    if address:
        anyio.run(use, address)
        return
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    )
    try:
        anyio.run(use, cluster.scheduler_address)
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
