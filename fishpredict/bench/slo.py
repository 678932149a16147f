"""Service-level objectives: ``--slo 'p99<50ms'``, a verdict, an exit code.

An SLO is ``METRIC OP VALUE``:

* latency of successes: ``p50``, ``p90``, ``p99``, ``p99.9`` (any ``pNN``),
  ``mean``, ``max``; VALUE in ``us``, ``ms`` (the default) or ``s``;
* ``errors``: with ``%``, the share of requests that failed; without, a count;
* ``tps`` (also ``rps``): successes per second over the run;
* ``accuracy``: the share of checked answers that carry the data's label (``%``
  or a fraction);
* ``unsent``: open model, requests never sent (a count, or a share with ``%``).

OP is ``<``, ``<=``, ``>`` or ``>=``. VALUE may refer to a baseline run
(``--baseline``): ``tps>=0.95*baseline``, ``p99<=1.1*baseline``.

Exit code :data:`EXIT_SLO_FAILED` (99, as k6) when any SLO fails.

With ``--slo-abort`` the run stops as soon as an SLO is *lost for good*: even if
every request of the rest of the run went perfectly, the SLO could not hold at
the end. "The rest of the run" is bounded by the requests left in
``--requests``, or else by the seconds left at twice the busiest second so far
(or the open model's peak intended rate, if higher).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from fishpredict.bench.stats import LatencyHistogram, bin_bounds
from fishpredict.errors import ConfigError

#: the exit code of a run whose SLOs did not all hold (k6 uses 99 too)
EXIT_SLO_FAILED = 99
#: the exit code of an interrupted run (128 + SIGINT)
EXIT_INTERRUPTED = 130

_EXPR = re.compile(
    r"^\s*(?P<metric>p\d+(?:\.\d+)?|mean|max|errors|tps|rps|accuracy|unsent)\s*"
    r"(?P<op><=|>=|<|>)\s*(?P<value>.+?)\s*$"
)
_VALUE = re.compile(r"^(?:(?P<num>\d+(?:\.\d+)?(?:e[+-]?\d+)?)\s*(?P<unit>us|µs|ms|s|%)?)$")
_BASE = re.compile(r"^(?:(?P<f>\d+(?:\.\d+)?)\s*\*\s*)?baseline$")
_UNIT_MS = {"us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0, None: 1.0}
_OPS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True)
class Slo:
    """One objective, parsed."""

    text: str
    metric: str
    op: str
    #: the threshold in the metric's own unit (ms, a share, req/s, a count), unless
    #: ``baseline_factor`` is set (then it is factor x the baseline's figure)
    value: float
    share: bool = False
    baseline_factor: float | None = None

    @property
    def is_latency(self) -> bool:
        return self.metric.startswith("p") or self.metric in ("mean", "max")


def parse_slo(text: str) -> Slo:
    """Parse ``p99<50ms``-style text, or raise ConfigError with one line."""
    m = _EXPR.match(text.lower())
    if not m:
        raise ConfigError(
            f"bad SLO {text!r}: expected METRIC OP VALUE, e.g. p99<50ms, errors<0.1%, "
            "tps>=1000, tps>=0.95*baseline (metrics: pNN, mean, max, errors, tps, "
            "accuracy, unsent)"
        )
    metric, op, raw = m["metric"], m["op"], m["value"].replace(" ", "")
    if metric == "rps":
        metric = "tps"
    if metric.startswith("p") and not 0 < float(metric[1:]) <= 100:
        raise ConfigError(f"bad SLO {text!r}: a percentile is between 0 and 100")
    b = _BASE.match(raw)
    if b:
        return Slo(text.strip(), metric, op, math.nan,
                   baseline_factor=float(b["f"]) if b["f"] else 1.0)
    v = _VALUE.match(raw)
    if not v:
        raise ConfigError(f"bad SLO {text!r}: cannot read the value {raw!r}")
    num, unit = float(v["num"]), v["unit"]
    latency = metric.startswith("p") or metric in ("mean", "max")
    if latency:
        if unit == "%":
            raise ConfigError(f"bad SLO {text!r}: a latency takes us, ms or s")
        return Slo(text.strip(), metric, op, num * _UNIT_MS[unit])
    if unit not in (None, "%"):
        raise ConfigError(f"bad SLO {text!r}: {metric} takes no time unit")
    if metric == "accuracy":
        return Slo(text.strip(), metric, op, num / 100 if unit == "%" else num, share=True)
    if metric in ("errors", "unsent"):
        return Slo(text.strip(), metric, op, num / 100 if unit == "%" else num,
                   share=unit == "%")
    return Slo(text.strip(), metric, op, num)


def parse_slos(texts: list[str] | tuple[str, ...]) -> list[Slo]:
    return [parse_slo(t) for t in texts]


def _hist(doc: dict[str, Any]) -> LatencyHistogram | None:
    h = doc.get("histogram") or {}
    return LatencyHistogram.from_sparse(h) if h.get("total") else None


def measure(doc: dict[str, Any], slo: Slo) -> float:
    """The figure an SLO is about, from a result's JSON (``to_dict()``); NaN if unknown."""
    m = slo.metric
    if m.startswith("p"):
        lat = doc.get("latency_ms") or {}
        key = "p" + format(float(m[1:]), "g")
        if lat.get(key) is not None:
            return float(lat[key])
        h = _hist(doc)
        return h.percentile(float(m[1:])) / 1000 if h is not None else math.nan
    if m in ("mean", "max"):
        v = (doc.get("latency_ms") or {}).get(m)
        return math.nan if v is None else float(v)
    if m == "tps":
        return float(doc.get("rps") or 0.0)
    if m == "accuracy":
        acc = doc.get("accuracy")
        return math.nan if acc is None else float(acc)
    if m == "errors":
        n = int(doc.get("error_count") or 0)
        req = int(doc.get("requests") or 0)
        return (n / req if req else math.nan) if slo.share else float(n)
    if m == "unsent":
        n = int(doc.get("unsent") or 0)
        planned = int(doc.get("sent") or 0) + n
        return (n / planned if planned else 0.0) if slo.share else float(n)
    return math.nan


def threshold(slo: Slo, baseline: dict[str, Any] | None) -> float:
    if slo.baseline_factor is None:
        return slo.value
    if baseline is None:
        raise ConfigError(f"SLO {slo.text!r} refers to a baseline: give --baseline FILE.json")
    return slo.baseline_factor * measure(baseline, slo)


def unit_of(slo: Slo) -> str:
    if slo.is_latency:
        return "ms"
    if slo.share:
        return "%"
    return "req/s" if slo.metric == "tps" else ""


def evaluate(doc: dict[str, Any], slos: list[Slo],
             baseline: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One verdict per SLO: ``{"slo", "metric", "op", "threshold", "actual", "unit", "ok"}``
    (shares as fractions). An SLO on a figure the run did not measure fails."""
    out = []
    for slo in slos:
        limit = threshold(slo, baseline)
        actual = measure(doc, slo)
        ok = math.isfinite(actual) and math.isfinite(limit) and _OPS[slo.op](actual, limit)
        out.append({"slo": slo.text, "metric": slo.metric, "op": slo.op,
                    "threshold": limit if math.isfinite(limit) else None,
                    "actual": actual if math.isfinite(actual) else None,
                    "unit": unit_of(slo), "ok": bool(ok)})
    return out


def all_hold(verdicts: list[dict[str, Any]]) -> bool:
    return all(v["ok"] for v in verdicts)


def format_value(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "%":
        return f"{100 * v:.3g}%"
    if unit == "ms":
        return f"{v:.3f} ms"
    if unit == "req/s":
        return f"{v:,.1f} req/s"
    return f"{v:,.6g}"


def format_verdicts(verdicts: list[dict[str, Any]]) -> str:
    """The verdict table a person reads."""
    if not verdicts:
        return ""
    rows = [("SLO", "threshold", "actual", "verdict")]
    for v in verdicts:
        rows.append((v["slo"], f"{v['op']} {format_value(v['threshold'], v['unit'])}",
                     format_value(v["actual"], v["unit"]), "pass" if v["ok"] else "FAIL"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    failed = sum(1 for v in verdicts if not v["ok"])
    lines.append(f"SLOs: {len(verdicts) - failed} of {len(verdicts)} hold"
                 + (f"; {failed} failed (exit code {EXIT_SLO_FAILED})" if failed else ""))
    return "\n".join(lines)


# -- lost for good (--slo-abort) ----------------------------------------------------------
def count_above(hist: LatencyHistogram, limit_ms: float, strict: bool) -> int:
    """Successes whose latency is above (``strict``: at or above) ``limit_ms``, at the
    histogram's resolution (a bin counts when its lowest value is beyond the limit)."""
    if hist.total == 0:
        return 0
    limit_us = limit_ms * 1000
    nz = np.flatnonzero(hist.counts)
    low, _ = bin_bounds(nz)
    beyond = low >= limit_us if strict else low > limit_us
    return int(hist.counts[nz[beyond]].sum())


def lost_for_good(slo: Slo, limit: float, hist: LatencyHistogram, requests: int,
                  successes: int, errors: int, future: float, elapsed_bound_s: float,
                  checked: int = 0, correct: int = 0) -> bool:
    """Whether ``slo`` cannot hold whatever the next ``future`` requests do.

    ``elapsed_bound_s``: the run lasts at least this long (its duration), for ``tps``.
    Only objectives that a perfect future could rescue are judged: an upper bound on
    latency, errors and unsent, a lower bound on TPS and accuracy.
    """
    if not math.isfinite(limit):
        return False
    m, op = slo.metric, slo.op
    if m.startswith("p") and op in ("<", "<="):
        q = float(m[1:]) / 100
        slow = count_above(hist, limit, strict=op == "<")
        return slow > (1 - q) * (successes + future)  # more slow than the tail can hold
    if m == "max" and op in ("<", "<="):
        return count_above(hist, limit, strict=op == "<") > 0
    if m == "errors" and op in ("<", "<="):
        if slo.share:
            share = errors / (requests + future) if requests + future else 0.0
            return not _OPS[op](share, limit)
        return not _OPS[op](errors, limit)
    if m == "tps" and op in (">", ">="):
        best = (successes + future) / max(elapsed_bound_s, 1e-9)
        return not _OPS[op](best, limit)
    if m == "accuracy" and op in (">", ">=") and checked:
        return False  # rows per future request unknown: judged at the end only
    return False
