"""hybridio.web: aiohttp and ASGI servers that offload CPU and blocking work through hybridio.

``setup(app)`` adds to an existing aiohttp app a Runtime (started and stopped with the app),
admission control per offload kind (a request queues only when it can be served within its
deadline, else 503 + ``Retry-After``), per-request deadlines (``X-Request-Timeout``; only
hybridio's own deadline is 504), ``/metrics`` and ``/healthz``; ``create_app()`` does it on a new
app; ``serve()``/``run_app()`` serve it with graceful shutdown, access logs and bounded
connections (a cap, a request-head deadline, an idle timeout; a client that hangs up has its
request cancelled and its process work killed). ``hybridio.web.asgi`` gives
Starlette/FastAPI apps the same as a middleware; ``HybridioCollector`` puts the metrics into a
``prometheus_client`` registry. aiohttp needs asyncio (uvloop is used when installed): under trio
``serve`` refuses with ``AsyncioRequired``.

Example::

    from aiohttp import web
    import hybridio.web

    async def thumb(request: web.Request) -> web.Response:
        data = await hybridio.web.offload(request, make_thumbnail, await request.read())
        return web.Response(body=data, content_type="image/png")

    app = web.Application()
    app.router.add_post("/thumb", thumb)
    hybridio.web.setup(app, cpu_workers=4)
    hybridio.web.run_app(app, port=8080)
"""

from __future__ import annotations

from .._extras import require_extra

require_extra("hybridio.web", "web")  # an ImportError naming the extra, not its parts

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
