"""A PNG chart of a run: TPS, latency percentiles and active users over time.

Uses matplotlib's Agg backend (no display needed). Three stacked panels share
the time axis, so a throughput dip can be read against the latency and the
number of users at that second.
"""

from __future__ import annotations

import math
import os

from fishpredict.bench.result import BenchResult
from fishpredict.errors import ConfigError


def write_chart(r: BenchResult, path: str | os.PathLike[str]) -> None:
    """Draw ``r``'s timeline into a PNG at ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--chart needs matplotlib (pip install 'fishpredict[bench]')") from None

    # a short last bucket (the drain after the deadline) would plot as noise
    rows = [row for row in r.timeline if row.span_s >= 0.5] or r.timeline
    secs = [row.second + 1 for row in rows]  # a bucket is plotted at its end

    def series(name: str) -> list[float]:
        return [v if math.isfinite(v := float(getattr(row, name))) else math.nan for row in rows]

    fig, (ax_tps, ax_lat, ax_users) = plt.subplots(
        3, 1, figsize=(10, 8), sharex=True, constrained_layout=True
    )
    title = f"{r.url}  {r.requests_desc}\n{r.engine}, {r.model} model, {r.users} users: "
    title += f"{r.rps:,.0f} TPS, p99 {r.latency_ms.get('p99', math.nan):.2f} ms"
    fig.suptitle(title, fontsize=10)

    ax_tps.plot(secs, series("tps"), color="tab:blue", label="successes/s")
    errs = series("errors")
    if any(e > 0 for e in errs):
        ax_tps.plot(secs, errs, color="tab:red", label="errors/s")
    ax_tps.set_ylabel("TPS")
    ax_tps.set_ylim(bottom=0)
    ax_tps.legend(loc="lower right", fontsize=8)
    ax_tps.grid(alpha=0.3)

    for name, color in (("p50_ms", "tab:green"), ("p90_ms", "tab:orange"), ("p99_ms", "tab:red")):
        ax_lat.plot(secs, series(name), color=color, label=name.replace("_ms", ""))
    ax_lat.set_ylabel("latency (ms)")
    ax_lat.set_ylim(bottom=0)
    ax_lat.legend(loc="upper right", fontsize=8)
    ax_lat.grid(alpha=0.3)

    ax_users.step(secs, series("active_users"), where="post", color="tab:purple")
    ax_users.set_ylabel("connections" if r.model == "open" else "active users")
    ax_users.set_xlabel("seconds")
    ax_users.set_ylim(bottom=0)
    ax_users.grid(alpha=0.3)

    fig.savefig(path, dpi=100)
    plt.close(fig)
