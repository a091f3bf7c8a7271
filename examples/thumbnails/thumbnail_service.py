"""An image-and-docs service, before and after hybridio: the same handlers, one ``setup(app)``.

The service keeps photos (JPEG) and documents (Markdown) and serves:

* ``GET /thumbnail?id=N&size=PX``: the photo scaled down, as PNG (Pillow: C code that releases
  the GIL while it decodes, resamples and encodes: a **thread** runs it in parallel);
* ``GET /doc?id=N``: the document rendered to HTML (Python-Markdown: pure Python, holds the
  GIL: only a **process** runs it in parallel);
* ``GET /io``: a 1 ms wait standing for a database call, the request everyone else makes.

``existing_app()`` is the service as it is usually written: the work runs in the handlers, on
the event loop. ``hybrid_app()`` is the same routes moved onto hybridio: ``setup(app)`` adds the
runtime, admission, deadlines, ``/metrics`` and ``/healthz``, and each handler offloads its
work where it belongs. ``loadtest.py`` beside this file measures both under load.

Run::

    python examples/thumbnails/thumbnail_service.py --port 8080            # after (hybridio)
    python examples/thumbnails/thumbnail_service.py --port 8080 --before   # before (all on the loop)
    curl -o t.png 'http://127.0.0.1:8080/thumbnail?id=1&size=128'
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
from collections.abc import Awaitable, Callable

import markdown
from aiohttp import web
from PIL import Image

import hybridio
import hybridio.web

PHOTOS = 4
DOCS = 4
_WORDS = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit"]


# -- the work: module-level functions, so that a worker process can run them ----------------


def make_thumbnail(jpeg: bytes, size: int) -> bytes:
    """Decode a JPEG, scale it to fit ``size`` x ``size``, encode it as PNG (Pillow, in C)."""
    with Image.open(io.BytesIO(jpeg)) as image:
        image = image.convert("RGB")
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        image.save(out, "PNG")
    return out.getvalue()


def render(text: str) -> str:
    """Markdown to HTML (pure Python)."""
    return markdown.markdown(text, extensions=["tables", "fenced_code"])


# -- the service's data, made up at start-up ----------------------------------------------


def make_photo(seed: int, width: int = 1200, height: int = 900) -> bytes:
    """A photo-sized JPEG (noise over a gradient: no two alike, hard to compress)."""
    noise = Image.effect_noise((width, height), 40 + seed).convert("L")
    gradient = Image.linear_gradient("L").resize((width, height))
    image = Image.merge("RGB", [noise, gradient, gradient.rotate(90 * seed)])
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def make_doc(seed: int, sections: int = 40) -> str:
    """A Markdown document of about 35 KB."""
    rng = random.Random(seed)
    parts = [f"# Document {seed}\n\n"]
    for n in range(sections):
        words = " ".join(rng.choice(_WORDS) for _ in range(120))
        parts.append(f"## Section {n}\n\n{words}\n\n* **bold** and `code`\n* [a link](#s{n})\n\n")
    return "".join(parts)


PHOTO_STORE = web.AppKey("photos", list)
DOC_STORE = web.AppKey("docs", list)


def _pick(request: web.Request, store: list[object]) -> int:
    try:
        index = int(request.query.get("id", "0"))
    except ValueError:
        index = -1
    if not 0 <= index < len(store):
        raise web.HTTPNotFound(text=f"no such id; there are {len(store)}")
    return index


# -- the routes: one set of handlers, with the way they run the work passed in -------------

Runner = Callable[..., Awaitable[object]]


def routes(app: web.Application, run_thread: Runner, run_process: Runner) -> web.Application:
    """Add the service's routes; ``run_*(request, fn, *args)`` run the work somewhere."""

    async def thumbnail(request: web.Request) -> web.Response:
        photo = request.app[PHOTO_STORE][_pick(request, request.app[PHOTO_STORE])]
        size = min(512, max(16, int(request.query.get("size", "128"))))
        png = await run_thread(request, make_thumbnail, photo, size)
        assert isinstance(png, bytes)
        return web.Response(body=png, content_type="image/png")

    async def doc(request: web.Request) -> web.Response:
        text = request.app[DOC_STORE][_pick(request, request.app[DOC_STORE])]
        html = await run_process(request, render, text)
        assert isinstance(html, str)
        return web.Response(text=html, content_type="text/html")

    async def io_(request: web.Request) -> web.Response:
        await asyncio.sleep(0.001)
        return web.json_response({"ok": True})

    app[PHOTO_STORE] = [make_photo(n) for n in range(PHOTOS)]
    app[DOC_STORE] = [make_doc(n) for n in range(DOCS)]
    app.router.add_get("/thumbnail", thumbnail)
    app.router.add_get("/doc", doc)
    app.router.add_get("/io", io_)
    return app


async def on_the_loop(request: web.Request, fn: Callable[..., object], *args: object) -> object:
    """Before: the work runs right in the handler, as most aiohttp services do it."""
    return fn(*args)


def existing_app() -> web.Application:
    """The service before hybridio."""
    return routes(web.Application(), on_the_loop, on_the_loop)


async def in_a_thread(request: web.Request, fn: Callable[..., object], *args: object) -> object:
    """After: C code that releases the GIL goes to a thread."""
    return await hybridio.web.offload(request, fn, *args, kind="blocking")


async def in_a_process(request: web.Request, fn: Callable[..., object], *args: object) -> object:
    """After: pure-Python work goes to a process."""
    return await hybridio.web.offload(request, fn, *args, kind="cpu")


def hybrid_app(cpu_workers: int | None = None, threads: int | None = None) -> web.Application:
    """The same service on hybridio: ``setup(app)`` and offloaded work."""
    app = routes(web.Application(), in_a_thread, in_a_process)
    hybridio.web.setup(app, cpu_workers=cpu_workers, threads=threads, timeout=10.0)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--before", action="store_true", help="serve the app before hybridio")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-access-log", action="store_true")
    args = parser.parse_args()
    app = existing_app() if args.before else hybrid_app(args.workers, args.threads)
    hybridio.web.run_app(app, port=args.port, access_log=not args.no_access_log)


if __name__ == "__main__":
    main()
