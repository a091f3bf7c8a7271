"""Every async test runs on each anyio backend that applies: asyncio, asyncio+uvloop and trio."""

from __future__ import annotations

import signal
from typing import Any

import pytest

BACKENDS = [
    pytest.param(("asyncio", {}), id="asyncio"),
    pytest.param(("asyncio", {"use_uvloop": True}), id="asyncio+uvloop"),
    pytest.param(("trio", {}), id="trio"),
]

# A test run started in the background of a non-interactive shell (`make test &`, some CI
# runners) inherits SIGINT ignored, and so would every process the tests start: a crawl sent
# Ctrl-C by a test would then run to its end and exit 0. The tests run with Python's default
# handler, as from a terminal; processes they start get SIGINT's default action back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param
