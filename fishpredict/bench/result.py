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

from fishpredict.bench.stats import REPORT_PERCENTILES, LatencyHistogram, Timeline


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
    # honesty
    generator_cpu_s: float = 0.0
    generator_cores: float = 0.0
    machine_cpu_pct: float | None = None
    loop: str = ""
    warnings: list[str] = field(default_factory=list)
    interrupted: bool = False
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


def timeline_rows(timeline: Timeline, processes: int) -> list[TimelineRow]:
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
            )
        )
    return rows


def build_result(*, timeline: Timeline, elapsed_s: float, base: Mapping[str, Any]) -> BenchResult:
    """Fold a closed timeline into a result; ``base`` holds the run's other fields."""
    secs = timeline.seconds()
    hist = timeline.total_histogram()
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
        timeline=timeline_rows(timeline, int(base.get("processes", 1))),
        **base,
    )
