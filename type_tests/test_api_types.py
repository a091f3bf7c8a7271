"""Checked by ``mypy --strict`` (``make typecheck``), never run: the public API's types.

A line ending in ``# type: ignore[...]`` must be an error: with ``warn_unused_ignores`` (part of
``--strict``) the check fails if it stops being one.
"""

from __future__ import annotations

import functools
from typing import assert_type

import hybridio


def crunch(data: bytes) -> int:
    return len(data)


def scale(x: int, *, factor: int = 2) -> int:
    return x * factor


@hybridio.cpu_bound
def parse(page: str, *, strict: bool = False) -> int:
    return len(page)


@hybridio.blocking
def read(path: str) -> bytes:
    return path.encode()


async def double(x: int) -> int:
    return 2 * x


async def module_level() -> None:
    assert_type(await hybridio.run_cpu(crunch, b"x"), int)
    assert_type(await hybridio.run_blocking(crunch, b"x"), int)
    assert_type(await hybridio.run(crunch, b"x", kind="inline"), int)
    assert_type(await hybridio.run(functools.partial(scale, factor=3), 2), int)
    # Decorated functions: awaiting a call, or passing them on, yields the function's own type.
    assert_type(await parse("x", strict=True), int)
    assert_type(await read("p"), bytes)
    assert_type(await hybridio.run(parse, "x"), int)
    assert_type(await hybridio.run_cpu(parse, "x"), int)
    async with hybridio.map_cpu(parse, ["a", "b"]) as results:
        async for n in results:
            assert_type(n, int)
    async with hybridio.map_cpu(crunch, [b"a"]) as sizes:
        async for size in sizes:
            assert_type(size, int)
    assert parse.__name__ == "parse"
    assert parse.__wrapped__("x") == 1


async def arguments_are_checked() -> None:
    await hybridio.run_cpu(crunch, "not bytes")  # type: ignore[arg-type]
    await hybridio.run_cpu(crunch)  # type: ignore[call-arg, arg-type]
    await parse(3)  # type: ignore[arg-type]
    # A plain coroutine function is not offloaded (run() raises TypeError): its type says so,
    # where only @cpu_bound / @blocking / @offload functions give their result type.
    await hybridio.run(double, 1)  # type: ignore[unused-coroutine]


async def with_a_runtime() -> None:
    async with hybridio.Runtime(cpu_workers=2) as rt:
        assert_type(await rt.run_cpu(crunch, b"x"), int)
        assert_type(await rt.run(parse, "x", timeout=1.0), int)
        await rt.run_blocking(crunch, 1)  # type: ignore[arg-type]
        async with rt.map(scale, range(3), kind="blocking") as scaled:
            async for value in scaled:
                assert_type(value, int)
        stats = rt.stats()
        assert_type(stats["cpu"].completed, int)
        assert_type(stats["cpu"].broken, bool)
