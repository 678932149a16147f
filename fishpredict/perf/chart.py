"""A PNG of requests/s per configuration, drawn from a serving or scaling run's figures.

One horizontal bar per measured load, on a logarithmic axis (the seed's
server and nginx are two orders of magnitude apart), each labelled with its
requests/s and p99. matplotlib's Agg backend: no display needed.
"""

from __future__ import annotations

import math
import os
from typing import Any

from fishpredict.errors import ConfigError


def bars(figures: dict[str, Any]) -> list[tuple[str, float, float]]:
    """``(label, requests/s, p99 ms)`` per load of a run, in the order they ran."""
    out = []
    for run in figures.get("runs", []):
        label = f"{run['name']} ({run['connections']} conn.)"
        out.append((label, float(run["rps"]), float(run["p99_ms"])))
    return out


def write_chart(figures: dict[str, Any], suite: str, path: str | os.PathLike[str]) -> None:
    """Draw the requests/s of every load in ``figures`` (a suite's ``run`` result) to ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--chart needs matplotlib (pip install 'fishpredict[bench]')") from None
    data = bars(figures)
    if not data:
        raise ConfigError("nothing to chart: the run measured no load")
    labels = [d[0] for d in data]
    rps = [max(d[1], 1e-3) for d in data]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(data) + 1.6), constrained_layout=True)
    ypos = list(range(len(data)))[::-1]
    colors = ["#999999" if ("seed" in lab or "nginx" in lab) else "#2a6fb0" for lab in labels]
    ax.barh(ypos, rps, color=colors)
    ax.set_yticks(ypos, labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(min(rps) / 2, max(rps) * 8)
    for y, (_lab, r, p99) in zip(ypos, data, strict=True):
        p99_text = f"p99 {p99:.1f} ms" if math.isfinite(p99) else "p99 -"
        ax.text(r * 1.08, y, f"{r:,.0f} req/s, {p99_text}", va="center", fontsize=8)
    ax.set_xlabel("requests/s (log scale; grey: the seed's server or nginx)")
    load = figures.get("load", {})
    ax.set_title(
        f"fishpredict perf {suite}: {load.get('duration_s', '?')} s per load, closed "
        f"model, generator on the same 2 cores",
        fontsize=10,
    )
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)
