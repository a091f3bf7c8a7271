"""hybridio.web: aiohttp servers whose handlers offload CPU and blocking work through hybridio.

``create_app()`` gives an aiohttp app with a Runtime, admission control per offload kind (503 +
``Retry-After`` at once when full), per-request deadlines (``X-Request-Timeout``; 504 on expiry,
the process work killed), ``/metrics`` and ``/healthz``; ``run_app()`` serves it with graceful
shutdown on SIGTERM/SIGINT. aiohttp needs asyncio (uvloop is used when installed): under trio
this package refuses with ``AsyncioRequired``.

Example::

    from aiohttp import web
    import hybridio, hybridio.web

    async def thumb(request: web.Request) -> web.Response:
        data = await hybridio.web.offload(request, make_thumbnail, await request.read())
        return web.Response(body=data, content_type="image/png")

    app = hybridio.web.create_app(cpu_workers=4)
    app.router.add_post("/thumb", thumb)
    hybridio.web.run_app(app, port=8080)
"""

from __future__ import annotations

from ._admission import Limit as Limit
from ._admission import Rejected as Rejected
from ._app import ADMISSION as ADMISSION
from ._app import HYBRID as HYBRID
from ._app import MONITOR as MONITOR
from ._app import RUNTIME as RUNTIME
from ._app import AsyncioRequired as AsyncioRequired
from ._app import create_app as create_app
from ._app import offload as offload
from ._app import offload_route as offload_route
from ._app import setup as setup
from ._demo import create_demo_app as create_demo_app
from ._hybrid import DeadlineExceeded as DeadlineExceeded
from ._observe import HybridioCollector as HybridioCollector
from ._serve import run_app as run_app
from ._serve import serve as serve

__all__ = [
    "ADMISSION",
    "HYBRID",
    "MONITOR",
    "RUNTIME",
    "AsyncioRequired",
    "DeadlineExceeded",
    "HybridioCollector",
    "Limit",
    "Rejected",
    "create_app",
    "create_demo_app",
    "offload",
    "offload_route",
    "run_app",
    "serve",
    "setup",
]
