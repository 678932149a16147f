"""fishpredict's load generator: ``fishpredict bench URL`` as a library.

>>> from fishpredict.bench import BenchConfig, run_bench
>>> result = run_bench(BenchConfig("http://127.0.0.1:8000", threads=8, duration_s=5))
>>> result.rps, result.percentiles["p99"], result.errors          # doctest: +SKIP

Modules, one idea each: ``config`` (what to run), ``source`` and ``payloads``
(the rows and the pre-built requests), ``engine`` (the asyncio client
protocol), ``worker`` (one load process), ``runner`` (processes and
orchestration), ``stats`` (histograms and the timeline), ``result``,
``report`` (text, JSON, CSV), ``chart`` (PNG), ``wrk`` (the wrk engine),
``fixedserver`` and ``selfcheck`` (engine speed against wrk).
"""

from __future__ import annotations

from fishpredict.bench.config import BenchConfig, Target, parse_target
from fishpredict.bench.result import BenchResult
from fishpredict.bench.runner import run_bench

__all__ = ["BenchConfig", "BenchResult", "Target", "parse_target", "run_bench"]
