"""hybridio.crawl: a polite concurrent crawler that fetches on the event loop and parses on all cores.

Fetching uses aiohttp (so the crawler runs on asyncio or uvloop, not trio); robots.txt rules are
read by protego; links and records are extracted by selectolax (lexbor) in worker processes, in
batches, through ``hybridio.Runtime.run_cpu``; records are appended to a JSONL file with aiofiles,
and a state log makes a killed crawl resumable.

Example::

    config = CrawlConfig(["http://127.0.0.1:8000/"], out=Path("pages.jsonl"), max_pages=100)
    stats = await Crawler(config).run()
"""

from __future__ import annotations

from .._extras import require_extra

require_extra("hybridio.crawl", "crawl")  # an ImportError naming the extra, not its parts

import importlib
from typing import TYPE_CHECKING, Any

from ._config import DEFAULT_USER_AGENT as DEFAULT_USER_AGENT
from ._config import CrawlConfig as CrawlConfig
from ._config import Extractor as Extractor
from ._frontier import Scope as Scope
from ._frontier import normalize_url as normalize_url
from ._parse import Page as Page
from ._parse import default_extract as default_extract
from ._parse import paragraph_text as paragraph_text
from ._parse import top_words as top_words
from ._progress import Progress as Progress
from ._stats import CrawlStats as CrawlStats
from ._testsite import SiteManifest as SiteManifest
from ._testsite import generate_site as generate_site

if TYPE_CHECKING:
    from ._crawler import Crawler as Crawler
    from ._sink import CrawlFileError as CrawlFileError
    from ._testserver import Faults as Faults
    from ._testserver import TestSiteServer as TestSiteServer

# The parse workers import this package to reach ``_parse``: the aiohttp side is imported on
# first use only, which keeps a worker's start-up (and so a short crawl) fast.
_LAZY = {
    "CrawlFileError": "._sink",
    "Crawler": "._crawler",
    "Faults": "._testserver",
    "TestSiteServer": "._testserver",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_USER_AGENT",
    "CrawlConfig",
    "CrawlFileError",
    "CrawlStats",
    "Crawler",
    "Extractor",
    "Faults",
    "Page",
    "Progress",
    "Scope",
    "SiteManifest",
    "TestSiteServer",
    "default_extract",
    "generate_site",
    "normalize_url",
    "paragraph_text",
    "top_words",
]
