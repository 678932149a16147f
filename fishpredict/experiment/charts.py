"""The report's PNG charts (matplotlib, Agg backend: no display needed).

* :func:`load_chart`: TPS over time of every server under the common load
  (with the active users on a second axis), next to a bar of each server's
  TPS at full load annotated with its mean and p99 latency;
* :func:`cluster_chart`: experiment 3's TPS and p99, grouped by prediction path;
* :func:`rows_chart`: experiment 4's time for the 500,000 predictions (log
  scale) and the accuracy of each k against the bream share.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fishpredict.errors import ConfigError
from fishpredict.experiment.findings import duration
from fishpredict.experiment.loads import PATHS, TOPOLOGIES, Load
from fishpredict.experiment.rows import RowsResult

COLORS = ("tab:red", "tab:orange", "tab:blue", "tab:green", "tab:purple", "tab:brown")
DPI = 100


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError(
            "the report's charts need matplotlib (pip install 'fishpredict[bench]')"
        ) from None
    return plt


def _save(fig: Any, plt: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _fmt(v: float, digits: int = 0) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:,.{digits}f}"


def load_chart(loads: Sequence[Load], title: str, path: Path) -> None:
    """TPS per second of each load (left) and TPS at full load as bars (right).

    The left axis turns logarithmic when the servers differ by more than 20x,
    so the slow ones do not lie flat on the floor.
    """
    plt = _pyplot()
    measured = [ld for ld in loads if ld.ok]
    fig, (ax_t, ax_b) = plt.subplots(
        1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [3, 2]}, constrained_layout=True
    )
    fig.suptitle(title, fontsize=11)
    ax_u = ax_t.twinx()
    ax_t.set_zorder(ax_u.get_zorder() + 1)  # lines above the users' step
    ax_t.patch.set_visible(False)
    lowest, highest = math.inf, 0.0
    for i, ld in enumerate(measured):
        rows = ld.seconds_in_run() or (ld.result.timeline if ld.result else [])
        secs = [r.second + 1 for r in rows]  # a bucket is plotted at its end
        tps = [r.tps for r in rows]
        positive = [t for t in tps if t > 0]
        lowest, highest = min([lowest, *positive]), max([highest, *positive])
        ax_t.plot(
            secs, tps, color=COLORS[i % len(COLORS)], marker="o", markersize=3, label=ld.label
        )
        if i == 0:
            ax_u.step(
                [0, *secs],
                [0, *(r.active_users for r in rows)],
                where="pre",
                color="grey",
                linestyle="--",
                linewidth=1,
            )
    if highest > 20 * lowest:
        ax_t.set_yscale("log")
    else:
        ax_t.set_ylim(bottom=0)
    ax_t.set_xlabel("seconds into the load (grey dashes: active virtual users)")
    ax_t.set_ylabel("TPS (successes per second)")
    ax_t.grid(alpha=0.3, which="both")
    ax_u.set_ylabel("active virtual users", color="grey")
    ax_u.set_ylim(bottom=0)
    ax_t.legend(loc="best", fontsize=8, framealpha=0.9)

    labels = [ld.label for ld in measured]
    full = [ld.full_load_tps for ld in measured]
    bars = ax_b.barh(
        range(len(measured)), full, color=[COLORS[i % len(COLORS)] for i in range(len(measured))]
    )
    ax_b.set_yticks(range(len(measured)), labels, fontsize=8)
    ax_b.invert_yaxis()
    ax_b.set_xlabel("TPS with every user running")
    ax_b.grid(axis="x", alpha=0.3)
    top = max((t for t in full if math.isfinite(t)), default=1.0)
    ax_b.set_xlim(0, top * 2.3)
    for bar, ld in zip(bars, measured, strict=True):
        ax_b.text(
            bar.get_width() + top * 0.02,
            bar.get_y() + bar.get_height() / 2,
            f"{_fmt(ld.full_load_tps)} TPS\nmean {_fmt(ld.latency('mean'), 1)} ms, "
            f"p99 {_fmt(ld.latency('p99'), 1)} ms",
            va="center",
            fontsize=7,
        )
    _save(fig, plt, path)


def cluster_chart(loads: Sequence[Load], title: str, path: Path) -> None:
    """Experiment 3: TPS (left) and p99 (right), grouped by path, one bar per topology."""
    plt = _pyplot()
    found = {ld.key: ld for ld in loads}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), constrained_layout=True)
    fig.suptitle(title, fontsize=11)
    width = 0.8 / len(TOPOLOGIES)
    metrics: tuple[tuple[str, Callable[[Load], float]], ...] = (
        ("TPS with every user running", lambda ld: ld.full_load_tps),
        ("p99 latency (ms)", lambda ld: ld.latency("p99")),
    )
    for ax, (ylabel, value) in zip(axes, metrics, strict=True):
        for t, (topo_key, topo_label, _n) in enumerate(TOPOLOGIES):
            xs, ys = [], []
            for p, (path_key, _label, _fast) in enumerate(PATHS):
                ld = found.get(f"{path_key}/{topo_key}")
                xs.append(p + (t - (len(TOPOLOGIES) - 1) / 2) * width)
                ys.append(value(ld) if ld is not None and ld.ok else 0.0)
            bars = ax.bar(xs, ys, width, label=topo_label, color=COLORS[(t + 2) % len(COLORS)])
            for bar, y in zip(bars, ys, strict=True):
                ax.text(
                    bar.get_x() + bar.get_width() / 2,
                    bar.get_height(),
                    _fmt(y, 0 if y >= 100 else 1),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
        ax.set_xticks(range(len(PATHS)), [label for _k, label, _f in PATHS], fontsize=9)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    _save(fig, plt, path)


def rows_chart(rows: RowsResult, title: str, path: Path) -> None:
    """Experiment 4: seconds for rows x k predictions (log), and accuracy per k."""
    plt = _pyplot()
    fig, (ax_s, ax_a) = plt.subplots(
        1, 2, figsize=(12, 4.4), gridspec_kw={"width_ratios": [3, 2]}, constrained_layout=True
    )
    fig.suptitle(title, fontsize=11)
    names = [f"{p.label}\none request per row (extrapolated)" for p in rows.per_row]
    secs = [p.extrapolated_s(rows.rows) for p in rows.per_row]
    names.append("fishpredict POST /predict (.npy)\nall rows per k (measured)")
    secs.append(rows.batch_seconds)
    colors = [COLORS[i % len(COLORS)] for i in range(len(secs) - 1)] + ["tab:green"]
    bars = ax_s.barh(range(len(secs)), secs, color=colors)
    ax_s.set_xscale("log")
    ax_s.set_yticks(range(len(secs)), names, fontsize=8)
    ax_s.invert_yaxis()
    ax_s.set_xlabel(f"seconds for {rows.predictions:,} predictions (log scale)")
    ax_s.grid(axis="x", alpha=0.3)
    for bar, s in zip(bars, secs, strict=True):
        ax_s.text(
            bar.get_width() * 1.1,
            bar.get_y() + bar.get_height() / 2,
            duration(s),
            va="center",
            fontsize=8,
        )
    finite = [s for s in secs if math.isfinite(s) and s > 0]
    if finite:
        ax_s.set_xlim(min(finite) / 3, max(finite) * 30)

    ks = [str(r.k) for r in rows.table]
    acc = [100 * r.accuracy for r in rows.table]
    ax_a.bar(ks, acc, color="tab:blue")
    ax_a.axhline(
        100 * rows.bream_share,
        color="tab:red",
        linestyle="--",
        label=f"bream share {100 * rows.bream_share:.3f}%",
    )
    for i, a in enumerate(acc):
        ax_a.text(i, a + 1, f"{a:.3f}%", ha="center", fontsize=7)
    ax_a.set_ylim(0, 112)
    ax_a.set_xlabel("k (neighbours)")
    ax_a.set_ylabel(f"accuracy on {rows.rows:,} rows (%)")
    ax_a.legend(loc="lower left", fontsize=8)
    ax_a.grid(axis="y", alpha=0.3)
    _save(fig, plt, path)
