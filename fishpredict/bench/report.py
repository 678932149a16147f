"""Reports of a :class:`BenchResult`: text for people, JSON and CSV for tools.

The CSV timeline has one row per second with the columns ``second, tps,
errors, p50_ms, p90_ms, p99_ms, active_users`` followed by ``successes, sent,
late, generator_cpu_pct, span_s`` (``span_s`` < 1 for the last, partial second).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import astuple, fields

from fishpredict.bench.result import BenchResult, TimelineRow

CSV_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(TimelineRow))


def _ms(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.3f}"


def error_label(kind: str) -> str:
    """``status_404`` -> ``HTTP 404``; other kinds as they are."""
    return f"HTTP {kind[7:]}" if kind.startswith("status_") else kind.replace("_", " ")


def format_text(r: BenchResult) -> str:
    """The summary a person reads: nGrinder's figures plus the latency distribution."""
    lines = []
    if r.model == "open":
        shape = f"open model, {r.rate:,.0f} req/s intended over {r.users} connections"
    else:
        shape = f"closed model, {r.users} virtual users"
    lines.append(
        f"target    {r.url}   [{r.engine}{'/' + r.loop if r.loop else ''}, "
        f"{r.processes} process(es), {shape}]"
    )
    lines.append(f"requests  {r.requests_desc}")
    lines.append(f"elapsed   {r.elapsed_s:.2f} s{'  (interrupted)' if r.interrupted else ''}")
    lines.append(
        f"tests     {r.requests:,}  successes {r.successes:,}  errors {r.error_count:,}"
        + (f" ({100 * r.error_count / r.requests:.2f}%)" if r.requests else "")
    )
    peak = f"{r.peak_rps:,.0f}" if math.isfinite(r.peak_rps) else "-"
    tps = f"TPS       {r.rps:,.1f}   peak TPS {peak}   mean test time {_ms(r.mean_ms)} ms"
    if r.rows_per_request > 1:
        tps += f"   rows/s {r.rows_per_s:,.0f}"
    lines.append(tps)
    lat = r.latency_ms
    keys = [k for k in ("min", "p50", "p90", "p99", "p99.9", "max") if k in lat]
    lines.append("latency   " + "  ".join(f"{k} {_ms(lat.get(k))}" for k in keys) + "  (ms)")
    if r.errors:
        lines.append(
            "errors    "
            + ", ".join(f"{error_label(k)}: {v:,}" for k, v in sorted(r.errors.items()))
        )
    if r.checked:
        lines.append(
            f"accuracy  {100 * (r.accuracy or 0):.2f}% of {r.checked:,} checked answers "
            f"({r.checked - r.correct:,} wrong)"
        )
    if r.model == "open":
        achieved = r.sent / r.elapsed_s if r.elapsed_s else 0.0
        lines.append(
            f"schedule  sent {r.sent:,} ({achieved:,.0f}/s)  late {r.late:,}  "
            f"max lag {r.max_lag_ms:.2f} ms  never sent {r.unsent:,}"
        )
    cpu = f"generator CPU {r.generator_cpu_s:.1f} s ({r.generator_cores:.2f} cores)"
    if r.machine_cpu_pct is not None:
        cpu += f"   machine CPU busy {r.machine_cpu_pct:.0f}%"
    lines.append(cpu)
    lines += [f"warning   {w}" for w in r.warnings]
    return "\n".join(lines)


def write_json(r: BenchResult, path: str | os.PathLike[str]) -> None:
    """Write ``r.to_json()`` to ``path``."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(r.to_json())
        f.write("\n")


def timeline_table(rows: Sequence[TimelineRow]) -> list[list[str]]:
    """The timeline as text cells (NaN percentiles of empty seconds left blank)."""
    out = []
    for row in rows:
        out.append(
            [
                ""
                if isinstance(v, float) and not math.isfinite(v)
                else (f"{v:.4f}" if isinstance(v, float) else str(v))
                for v in astuple(row)
            ]
        )
    return out


def write_csv(r: BenchResult, path: str | os.PathLike[str]) -> None:
    """Write the per-second timeline to ``path`` as CSV."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        w.writerows(timeline_table(r.timeline))
