"""What a run measured: :class:`BenchResult`, built from a :class:`Timeline`.

Definitions (the same for every engine):

* ``requests`` = ``successes`` + ``error_count``: every attempt that ended.
* a *success* is a 2xx answer that, when answers are checked, is right.
* ``rps`` (nGrinder's TPS) = successes / elapsed seconds; ``peak_rps`` is the
  best whole second.
* latency percentiles cover successes only, in milliseconds; ``mean_ms`` is
  nGrinder's "mean test time".
* ``elapsed_s`` runs from the common start to the last answer (or the deadline).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from fishpredict.bench.stats import REPORT_PERCENTILES, ItemTotals, LatencyHistogram, Timeline


def pct_key(q: float) -> str:
    """``99.9`` -> ``"p99.9"``, ``50.0`` -> ``"p50"``."""
    return "p" + format(q, "g")


@dataclass
class TimelineRow:
    """One second of the run (the CSV timeline's columns)."""

    second: int
    tps: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    active_users: int
    successes: int
    sent: int
    late: int
    generator_cpu_pct: float
    #: length of the bucket: 1 s, less for the last (the drain after the deadline)
    span_s: float = 1.0
    #: open model: requests due in this second by the schedule (None: closed model)
    intended: float | None = None


@dataclass
class BenchResult:
    """The outcome of one run; ``to_json()`` gives the machine-readable report."""

    engine: str
    model: str  # "closed" or "open"
    url: str
    requests_desc: str
    users: int
    processes: int
    elapsed_s: float
    requests: int
    successes: int
    errors: dict[str, int]
    rps: float
    peak_rps: float
    mean_ms: float
    latency_ms: dict[str, float]
    checked: int = 0
    correct: int = 0
    rows_per_request: int = 1
    # open model
    rate: float | None = None
    sent: int = 0
    late: int = 0
    max_lag_ms: float = 0.0
    unsent: int = 0
    #: open model with --stages: ``[[seconds, target rate], ...]``
    stages: list[list[float]] | None = None
    #: open model: requests the schedule intended by the end of the run
    intended: float = 0.0
    #: latencies of failed requests (ms; failed connects excluded: nothing was sent)
    failed_latency_ms: dict[str, float] = field(default_factory=dict)
    #: a mix: one entry per item (name, weight, requests, errors, rps, latency_ms, ...)
    items: list[dict[str, Any]] = field(default_factory=list)
    #: every success's latency as the histogram's non-empty bins (``idx``, ``n``, and
    #: exact ``total``/``sum``/``min``/``max`` in us): merged exactly by adding counts
    histogram: dict[str, Any] = field(default_factory=dict)
    #: SLO verdicts (see :mod:`fishpredict.bench.slo`)
    slo: list[dict[str, Any]] = field(default_factory=list)
    #: the comparison with a baseline run (see :mod:`fishpredict.bench.baseline`)
    baseline: dict[str, Any] | None = None
    #: what the target's own ``/metrics`` said, per second (fishpredict targets)
    target_metrics: list[dict[str, Any]] = field(default_factory=list)
    #: Dask: each generator's own figures (see :mod:`fishpredict.bench.distributed`)
    generators: list[dict[str, Any]] = field(default_factory=list)
    # honesty
    generator_cpu_s: float = 0.0
    generator_cores: float = 0.0
    machine_cpu_pct: float | None = None
    loop: str = ""
    warnings: list[str] = field(default_factory=list)
    interrupted: bool = False
    #: why the run was stopped early by its own checks (``--slo-abort``), if it was
    aborted: str = ""
    timeline: list[TimelineRow] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""

    # -- derived ------------------------------------------------------------------------
    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def percentiles(self) -> dict[str, float]:
        """``{"p50": ms, "p90": ms, "p99": ms, "p99.9": ms}``."""
        return {k: v for k, v in self.latency_ms.items() if k.startswith("p")}

    @property
    def accuracy(self) -> float | None:
        """Share of checked answers that were right (None when nothing was checked)."""
        return self.correct / self.checked if self.checked else None

    @property
    def rows_per_s(self) -> float:
        return self.rps * self.rows_per_request

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["error_count"] = self.error_count
        d["accuracy"] = self.accuracy
        d["rows_per_s"] = self.rows_per_s
        out: dict[str, Any] = _finite(d)
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


def _finite(obj: Any) -> Any:
    """NaN/inf -> None, so the JSON is valid everywhere."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def latency_summary(hist: LatencyHistogram) -> dict[str, float]:
    """min, the report percentiles, max, mean (milliseconds) of a histogram."""
    out = {"min": hist.min_us / 1000 if hist.total else math.nan}
    for q, v in zip(REPORT_PERCENTILES, hist.percentiles(REPORT_PERCENTILES), strict=True):
        out[pct_key(q)] = v / 1000
    out["max"] = hist.max_us / 1000 if hist.total else math.nan
    out["mean"] = hist.mean_us / 1000
    return out


def sparse_json(hist: LatencyHistogram) -> dict[str, Any]:
    """A histogram as JSON-ready non-empty bins."""
    sp = hist.to_sparse()
    return {"idx": [int(i) for i in sp["idx"]], "n": [int(n) for n in sp["n"]],
            "total": int(sp["total"]), "sum": int(sp["sum"]), "min": int(sp["min"]),
            "max": int(sp["max"])}


def item_stats(timeline: Timeline, names: tuple[str, ...], weights: list[float],
               elapsed_s: float) -> list[dict[str, Any]]:
    """Each mix item's figures, in the order of ``names``."""
    out = []
    for i, name in enumerate(names):
        t = timeline.items.get(i) or ItemTotals()
        errors = dict(sorted(t.errors.items()))
        n_err = sum(errors.values())
        out.append({
            "name": name,
            "weight": weights[i] if i < len(weights) else None,
            "requests": t.hist.total + n_err,
            "successes": t.hist.total,
            "errors": errors,
            "error_count": n_err,
            "rps": t.hist.total / elapsed_s if elapsed_s > 0 else 0.0,
            "latency_ms": latency_summary(t.hist),
            "failed_latency_ms": latency_summary(t.failed) if t.failed.total else {},
            "checked": t.checked,
            "correct": t.correct,
            "accuracy": t.correct / t.checked if t.checked else None,
        })
    return out


def timeline_rows(timeline: Timeline, processes: int,
                  intended: list[float] | None = None) -> list[TimelineRow]:
    rows = []
    for s in timeline.seconds():
        p50, p90, p99 = (v / 1000 for v in s.hist.percentiles((50.0, 90.0, 99.0)))
        rows.append(
            TimelineRow(
                second=s.second,
                tps=round(s.tps, 3),
                errors=s.error_count,
                p50_ms=p50,
                p90_ms=p90,
                p99_ms=p99,
                active_users=s.active_users,
                successes=s.successes,
                sent=s.sent,
                late=s.late,
                generator_cpu_pct=round(100.0 * s.cpu_s / s.span_s, 1) if s.span_s else 0.0,
                span_s=round(s.span_s, 4),
                intended=(None if intended is None else
                          round(intended[s.second], 3) if s.second < len(intended) else 0.0),
            )
        )
    return rows


def build_result(*, timeline: Timeline, elapsed_s: float, base: Mapping[str, Any],
                 intended: list[float] | None = None) -> BenchResult:
    """Fold a closed timeline into a result; ``base`` holds the run's other fields;
    ``intended``: the open model's requests due in each second."""
    secs = timeline.seconds()
    hist = timeline.total_histogram()
    failed = timeline.failed_histogram()
    errors = dict(sorted(timeline.total_errors().items()))
    successes = hist.total
    lat = latency_summary(hist)
    return BenchResult(
        elapsed_s=elapsed_s,
        requests=successes + sum(errors.values()),
        successes=successes,
        errors=errors,
        rps=successes / elapsed_s if elapsed_s > 0 else 0.0,
        peak_rps=timeline.peak_tps(),
        mean_ms=lat["mean"],
        latency_ms=lat,
        checked=sum(s.checked for s in secs),
        correct=sum(s.correct for s in secs),
        sent=sum(s.sent for s in secs),
        late=sum(s.late for s in secs),
        timeline=timeline_rows(timeline, int(base.get("processes", 1)), intended),
        failed_latency_ms=latency_summary(failed) if failed.total else {},
        histogram=sparse_json(hist),
        **base,
    )
