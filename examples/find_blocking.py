"""Find what blocks your event loop: a toy service with two hidden blocking calls, and its report.

Run it::

    python examples/find_blocking.py            # asyncio
    python examples/find_blocking.py trio       # or asyncio+uvloop: "uvloop"

The service answers many quick requests concurrently; two handlers hide blocking work on the loop
(a synchronous "HTTP call" and a CPU-heavy JSON round trip). LoopMonitor names both, with file,
line and stack. The last part moves them off the loop with hybridio and shows the loop healthy.
"""

from __future__ import annotations

import json
import sys
import time

import anyio

import hybridio


def fetch_exchange_rates_synchronously() -> dict[str, float]:
    time.sleep(0.3)  # stands in for requests.get(...) left in async code
    return {"EUR": 1.0, "USD": 1.08}


def render_invoice(lines: int) -> str:
    # Pure-Python CPU work: fine in a worker, a stall on the loop.
    document = {"lines": [{"item": i, "price": i * 1.5, "tags": ["a", "b"]} for i in range(lines)]}
    for _ in range(30):
        document = json.loads(json.dumps(document))
    return json.dumps(document)[:40]


async def quick_request() -> None:
    await anyio.sleep(0.001)  # I/O: the loop is free meanwhile


async def service(offload: bool) -> None:
    async with anyio.create_task_group() as tg:
        for i in range(200):
            tg.start_soon(quick_request)
            if i == 60:
                if offload:
                    await hybridio.run_blocking(fetch_exchange_rates_synchronously)
                else:
                    fetch_exchange_rates_synchronously()
            if i == 140:
                if offload:
                    await hybridio.run_cpu(render_invoice, 3000)
                else:
                    render_invoice(3000)
            await anyio.sleep(0.002)


async def main() -> None:
    # The three lines that matter:
    async with hybridio.LoopMonitor(threshold=0.05) as monitor:
        await service(offload=False)
    print(monitor.report())

    print("\nAfter moving the blocking calls off the loop (run_blocking / run_cpu):")
    async with hybridio.Runtime(cpu_workers=1), hybridio.LoopMonitor(threshold=0.05) as after:
        await service(offload=True)
    print(after.report())


if __name__ == "__main__":
    backend = sys.argv[1] if len(sys.argv) > 1 else "asyncio"
    if backend == "uvloop":
        anyio.run(main, backend="asyncio", backend_options={"use_uvloop": True})
    else:
        anyio.run(main, backend=backend)
