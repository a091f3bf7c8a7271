"""Every rule that turns a measured ratio into a verdict, in one table: the seed notes' claims
(thresholds for a shared, noisy machine: "confirmed" needs a clear effect, "refuted" a clear
absence of it) and the design targets of docs/benchmarks.md (met or not met)."""

from __future__ import annotations

from .._doctor import usable_cpus
from ._model import Rule

CPUS = usable_cpus()


def parallel_target(cpus: int, efficiency: float = 0.6) -> float:
    """The speedup that counts as "uses several cores": 1 + efficiency x (cpus - 1); 1.6x on 2
    CPUs (a shared machine rarely gives the ideal 2x, and 1.6x cannot be noise)."""
    return 1.0 + efficiency * (max(1, cpus) - 1)


#: Below 1.15x there is "no benefit": timing noise of paired repeats stays well under it.
GAIN = 1.15

# -- the seed notes' claims ----------------------------------------------------------------
#: Uses the cores (processes; C code releasing the GIL in threads; subinterpreters).
PARALLEL = Rule(parallel_target(CPUS), GAIN, load_sensitive=True)
#: "No effect": a speedup under 1.15x; refuted where it reaches the parallel threshold.
NO_GAIN = Rule(GAIN, PARALLEL.confirm, higher=False, load_sensitive=True)
#: "Way slower", "heavyweight", "more memory": from 10x, refuted under 2x.
MUCH = Rule(10.0, 2.0)
#: "Faster to start": from 2x, refuted when not faster at all.
FASTER = Rule(2.0, 1.0)
#: "Faster access to data": below 0.8x the parent's time, refuted from 1.25x.
FASTER_ACCESS = Rule(0.8, 1.25, higher=False)

# -- design targets (docs/benchmarks.md) ----------------------------------------------------
#: A lone caller of run_cpu is at least as fast as plain anyio.to_process.
LONE_CALL = Rule(1.0, target=True)
#: Queued tiny calls (32 and 256 callers): at least the minimal batching sketch measured in the
#: same run (DESIGN.md's D1: what this machine allows batching).
AGAINST_SKETCH = Rule(1.0, target=True)
#: run_blocking with 32 callers: at least ThreadPoolExecutor, twice anyio.to_thread.
THREADS_VS_EXECUTOR = Rule(1.0, target=True)
THREADS_VS_ANYIO = Rule(2.0, target=True)
#: CPU-bound tasks on all cores: 0.95 x the cores over inline.
CPU_SPEEDUP = Rule(0.95 * CPUS, target=True, load_sensitive=True)
#: map_cpu of tiny items: 20x one anyio.to_process call per item.
MAP_CPU = Rule(20.0, target=True)
#: Subinterpreters run 4 pure-Python tasks on 2 interpreters 1.4x as fast as inline.
INTERPRETER_SPEEDUP = Rule(1.4, target=True, load_sensitive=True)
#: LoopMonitor slows a loop-bound workload by less than 1%.
MONITOR_OVERHEAD = Rule(1.01, higher=False, target=True)

# -- the server (docs/benchmarks.md "server"), hybridio against plain aiohttp + a process pool --
AT_LEAST = Rule(1.0, target=True)
AT_MOST = Rule(1.0, higher=False, target=True)
#: The hybrid design against one process per core: a 10x better ``/io`` p99.
MUCH_BETTER_P99 = Rule(10.0, target=True)
#: A retry storm keeps 90% of the server's own ok req/s.
STORM_KEEPS = Rule(0.9, target=True)
#: ``/cpu`` in a process: ``/io`` p99 at most 1.5x idle, throughput 1.6x inline.
PROCESS_P99 = Rule(1.5, higher=False, target=True)
PROCESS_THROUGHPUT = Rule(1.6, target=True)
#: Overload at 4x capacity: the server's memory grows under 10%.
FLAT_MEMORY = Rule(1.1, higher=False, target=True)

# -- kind="auto" against the kind it should find (docs/core.md "Choosing a kind") -----------
#: A tiny call 3x kind="cpu", pure Python 1.5x inline, sha256 1.2x inline; in the mixed
#: workload 0.9x the best kind per function and 1.3x the best single kind for all; the loop
#: never stalls 15 ms once auto has learned.
AUTO_TINY = Rule(3.0, target=True)
AUTO_PYTHON = Rule(1.5, target=True)
AUTO_SHA256 = Rule(1.2, target=True)
AUTO_MIXED = Rule(0.9, target=True)
AUTO_OVERALL = Rule(1.3, target=True)
AUTO_LAG = Rule(0.015, higher=False, target=True)

# -- the crawler against Scrapy (docs/crawl.md) ------------------------------------------------
#: hybridio crawls the generated site 3x as fast as Scrapy, CPython's docs 5x.
CRAWL_GENERATED = Rule(3.0, target=True)
CRAWL_REAL = Rule(5.0, target=True)
