"""The HTTP part of ``fishpredict perf models``: micro-batching on vs off for models
that scikit-learn answers.

The same model files served twice by the socket backend with ``--no-fast-path``
(every prediction is ``estimator.predict``): micro-batching on (``serve``'s
default) and off (``--batch-max 1``), each loaded by fishpredict's bench engine
with 64 keep-alive connections, one V2 request of one row in flight on each, the
same 1,024 distinct rows. With batching on, concurrent one-row requests become one
``predict`` call of up to 64 rows; off, every request is one call. Target: on >=
:data:`TARGET_RATIO` x off for a scikit-learn-path model. Both the 100-tree forest
(one scikit-learn call: about 5 ms whatever the rows) and the 30-feature
scaler + logistic pipeline (about 0.3 ms a call) of ``perf peers`` are shown: the
ratio is the call's cost over its share of a batch plus what HTTP costs a request.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

from fishpredict.perf.loads import Load, Say, measure
from fishpredict.perf.machine import table
from fishpredict.perf.peer_workload import v2_pool, write_models
from fishpredict.perf.servers import fishpredict_server

TARGET_RATIO: Final = 10.0
BATCH_OFF: Final = ("--batch-max", "1")


def http_part(*, quick: bool = False, connections: int = 64, say: Say = print
              ) -> dict[str, Any]:
    """Measure, print the table and the target line, and return the figures."""
    load = (Load(duration_s=3.0, connections=connections, warmup_s=1.0) if quick
            else Load(duration_s=8.0, connections=connections, warmup_s=2.0))
    say(f"\n## over HTTP: micro-batching on vs off, scikit-learn answering "
        f"(socket backend, --no-fast-path, {connections} connections, one V2 row per "
        f"request, {load.duration_s:g} s per load)")
    rows: list[tuple[str, ...]] = [("model", "batching", "req/s", "p50 ms", "p99 ms",
                                    "errors", "on vs off")]
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="fishpredict-batching-") as tmp:
        models = write_models(Path(tmp))
        for m in models:
            got = {}
            for mode, extra in (("on", ()), ("off", BATCH_OFF)):
                with fishpredict_server("socket", "--models", str(m.path), "--trust",
                                        "--no-fast-path", *extra) as srv:
                    pool = v2_pool(m, f"127.0.0.1:{srv.port}")
                    got[mode] = measure(f"{m.name} batching {mode}", srv.url, load,
                                        srv.pid, pool)
            ratio = got["on"].rps / got["off"].rps if got["off"].rps > 0 else float("inf")
            for mode in ("on", "off"):
                r = got[mode]
                rows.append((m.name, mode, f"{r.rps:,.0f}", f"{r.p50_ms:.2f}",
                             f"{r.p99_ms:.2f}", str(r.error_count),
                             f"{ratio:.1f}x" if mode == "on" else ""))
            figures[m.name] = {"description": m.description, "ratio": ratio,
                               **{mode: {**asdict(got[mode]),
                                         "error_count": got[mode].error_count}
                                  for mode in got}}
    say(table(rows))
    best = max(figures, key=lambda name: figures[name]["ratio"])
    errors = sum(figures[n][mode]["error_count"] for n in figures for mode in ("on", "off"))
    met = figures[best]["ratio"] >= TARGET_RATIO and errors == 0
    say(f"target: micro-batching on >= {TARGET_RATIO:g}x off for a scikit-learn-path model, "
        f"zero errors -> {best}: {figures[best]['ratio']:.1f}x, {errors} errors "
        f"{'MET' if met else 'NOT MET'}")
    return {"models": figures, "target_ratio": TARGET_RATIO, "met": met}
