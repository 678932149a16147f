"""``--baseline FILE.json``: this run beside an earlier one, and whether it moved.

Each figure is shown with its change. Whether a change is *beyond the noise* is
judged from the two runs themselves: a run's TPS and latency percentiles are
also measured every second, and the spread of those per-second figures gives
each run's standard error (``sd / sqrt(seconds)``; the first second, a warm-up,
and partial seconds are left out; in the open model, TPS spread is measured around
each second's intended rate, so a ramp's planned changes do not count as noise).
A change counts as beyond the noise when it exceeds twice the combined standard
error of the two runs,
``2 * sqrt(se_a^2 + se_b^2)`` (about 95 % for a normal spread). Error and
accuracy shares use the binomial standard error ``sqrt(p (1 - p) / n)``.
Figures with no per-second counterpart (p99.9, mean, max) show their change
without a verdict.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from fishpredict.errors import ConfigError

#: (key, label, where in the result, the per-second column that gives its noise)
FIGURES: tuple[tuple[str, str, str, str | None], ...] = (
    ("tps", "TPS", "rps", "tps"),
    ("peak_tps", "peak TPS", "peak_rps", None),
    ("p50", "p50 (ms)", "latency_ms.p50", "p50_ms"),
    ("p90", "p90 (ms)", "latency_ms.p90", "p90_ms"),
    ("p99", "p99 (ms)", "latency_ms.p99", "p99_ms"),
    ("p99.9", "p99.9 (ms)", "latency_ms.p99.9", None),
    ("mean", "mean (ms)", "mean_ms", None),
    ("errors", "errors (%)", "", None),
    ("accuracy", "accuracy (%)", "", None),
)


def load_baseline(path: str) -> dict[str, Any]:
    """Read a result written by ``--json``; one-line ConfigError when it is not one."""
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read baseline {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"baseline {path} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or "rps" not in doc or "latency_ms" not in doc:
        raise ConfigError(f"baseline {path} is not a bench result (--json FILE)")
    return doc


def _get(doc: dict[str, Any], key: str, where: str) -> float | None:
    if key == "errors":
        req = doc.get("requests") or 0
        return (doc.get("error_count") or 0) / req if req else None
    if key == "accuracy":
        acc = doc.get("accuracy")
        return None if acc is None else float(acc)
    v: Any = doc
    head, _, tail = where.partition(".")
    v = v.get(head)
    if tail:
        v = (v or {}).get(tail)
    return None if v is None else float(v)


def _steady(doc: dict[str, Any], column: str) -> list[float]:
    """The per-second values of ``column``; for TPS in the open model, each second's
    distance from its intended rate (a ramp's planned changes are no noise)."""
    rows = [r for r in doc.get("timeline") or [] if (r.get("span_s") or 0) >= 0.999]
    rows = rows[1:] if len(rows) > 2 else rows  # the first second warms up
    out = []
    for r in rows:
        v = r.get(column)
        if v is None or not math.isfinite(v):
            continue
        if column == "tps" and r.get("intended") is not None:
            v -= r["intended"]
        out.append(float(v))
    return out


def _se(doc: dict[str, Any], key: str, column: str | None) -> float | None:
    if key in ("errors", "accuracy"):
        p = _get(doc, key, "")
        n = doc.get("requests") if key == "errors" else doc.get("checked")
        return math.sqrt(p * (1 - p) / n) if p is not None and n else None
    if column is None:
        return None
    xs = _steady(doc, column)
    if len(xs) < 2:
        return None
    return statistics.stdev(xs) / math.sqrt(len(xs))


def compare(current: dict[str, Any], baseline: dict[str, Any],
            source: str = "") -> dict[str, Any]:
    """The comparison, JSON-ready: one row per figure the two runs both have."""
    rows = []
    for key, label, where, column in FIGURES:
        a, b = _get(baseline, key, where), _get(current, key, where)
        if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
            continue
        change = (b - a) / a if a else None
        se_a, se_b = _se(baseline, key, column), _se(current, key, column)
        noise = 2 * math.hypot(se_a, se_b) if se_a is not None and se_b is not None else None
        beyond = None if noise is None else abs(b - a) > noise
        rows.append({"figure": key, "label": label, "baseline": a, "current": b,
                     "change": change, "noise": noise, "beyond_noise": beyond})
    return {"source": source, "started_at": baseline.get("started_at", ""),
            "url": baseline.get("url", ""), "rows": rows}


def _fmt(key: str, v: float | None) -> str:
    if v is None:
        return "-"
    if key in ("errors", "accuracy"):
        return f"{100 * v:.3f}"
    if key in ("tps", "peak_tps"):
        return f"{v:,.1f}"
    return f"{v:.3f}"


def format_comparison(cmp: dict[str, Any]) -> str:
    """The comparison as a text table."""
    head = ("figure", "baseline", "this run", "change", "noise (2 SE)", "beyond noise?")
    rows = [head]
    for r in cmp["rows"]:
        key = r["figure"]
        change = "-" if r["change"] is None else f"{100 * r['change']:+.1f}%"
        noise = "-" if r["noise"] is None else "±" + _fmt(key, r["noise"])
        verdict = {None: "n/a", True: "yes", False: "no"}[r["beyond_noise"]]
        rows.append((r["label"], _fmt(key, r["baseline"]), _fmt(key, r["current"]), change,
                     noise, verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [f"baseline  {cmp['source']} ({cmp['started_at'] or 'time unknown'})"]
    lines += ["  ".join(c.rjust(w) if i else c.ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True)))
              for row in rows]
    return "\n".join(lines)
