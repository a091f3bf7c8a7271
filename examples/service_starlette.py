"""A Starlette service on hybridio: one middleware gives it the runtime, admission and deadlines.

The same idea works for FastAPI (``app.add_middleware(HybridioMiddleware, ...)``, and
``offload: Offloader = Depends(offloader)`` in an endpoint). Run it with uvicorn::

    python examples/service_starlette.py --port 8000
    curl 'http://127.0.0.1:8000/primes?below=200000'        # pure Python: a worker process
    curl 'http://127.0.0.1:8000/digest?mb=32'               # hashlib: a thread
    curl -H 'X-Request-Timeout: 0.2' 'http://127.0.0.1:8000/primes?below=50000000'   # 504
    curl http://127.0.0.1:8000/metrics

``--duration S`` stops it by itself after S seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hybridio.web.asgi import HybridioMiddleware, offload


def count_primes(below: int) -> int:
    """Pure-Python CPU work (a sieve): holds the GIL, so it goes to a process."""
    sieve = bytearray([1]) * below
    sieve[:2] = b"\x00\x00"
    for n in range(2, int(below**0.5) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytes(len(range(n * n, below, n)))
    return sum(sieve)


def digest(nbytes: int) -> str:
    """hashlib releases the GIL: a thread runs it in parallel with the loop."""
    return hashlib.sha256(bytes(nbytes)).hexdigest()


async def primes(request: Request) -> JSONResponse:
    below = min(10**8, int(request.query_params.get("below", "100000")))
    return JSONResponse({"below": below, "primes": await offload(count_primes, below)})


async def sha256(request: Request) -> JSONResponse:
    nbytes = min(256, int(request.query_params.get("mb", "8"))) * 2**20
    return JSONResponse({"sha256": await offload(digest, nbytes, kind="blocking")})


def make_app(cpu_workers: int | None = None) -> Starlette:
    """The example's app (tests import it)."""
    return Starlette(
        routes=[Route("/primes", primes), Route("/digest", sha256)],
        middleware=[Middleware(HybridioMiddleware, cpu_workers=cpu_workers, timeout=10.0)],
    )


async def main(port: int, duration: float | None) -> None:
    config = uvicorn.Config(make_app(), host="127.0.0.1", port=port, lifespan="on")
    server = uvicorn.Server(config)
    if duration is not None:
        asyncio.get_running_loop().call_later(duration, setattr, server, "should_exit", True)
    await server.serve()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--duration", type=float, default=None, help="stop after this long")
    args = parser.parse_args()
    asyncio.run(main(args.port, args.duration))
