"""Pure-Python work in subinterpreters: ``kind="interpreter"``, one GIL each (Python 3.13+).

Run it::

    python examples/interpreters.py

On Python 3.11 and 3.12 it prints why the kind is not available here (``BackendUnavailable``).
"""

from __future__ import annotations

import anyio

import hybridio


def crunch(rows: int) -> int:
    return sum(i * i for i in range(rows))


def parse(page: str) -> int:
    return len(page.split())


async def main() -> None:
    rows = 200_000
    pages = ["the quick brown fox", "jumps over", "the lazy dog"]
    try:
        async with hybridio.Runtime(interpreters=2) as rt:
            total = await rt.run(crunch, rows, kind="interpreter")
            async with rt.map(parse, pages, kind="interpreter") as results:
                words = [n async for n in results]
        # or, with the default runtime:
        again = await hybridio.run(crunch, rows, kind="interpreter")
    except hybridio.BackendUnavailable as exc:
        print(f"not here: {exc}")
        return
    print(f"crunch: {total} (the default runtime agrees: {again == total}); words: {words}")


if __name__ == "__main__":
    anyio.run(main)
