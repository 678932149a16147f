"""Short findings, written from the figures of the run (nothing here is hard-coded).

Each function takes one experiment's measurements and returns sentences that
quote them and the ratios between them; where a sentence draws a conclusion
("helps", "costs"), the conclusion is chosen by comparing the figures.
"""

from __future__ import annotations

import math
import os

from fishpredict.experiment.costs import RequestCosts
from fishpredict.experiment.loads import PATHS, Load, by_key
from fishpredict.experiment.rows import RowsResult

#: ratios within this of 1.0 are reported as "about the same"
SAME = 0.10
#: a machine this busy (percent of all CPUs) has no idle core left
BUSY = 90.0


def n(v: float, digits: int = 0) -> str:
    """A figure with thousands separators, or ``n/a``."""
    return "n/a" if not math.isfinite(v) else f"{v:,.{digits}f}"


def ratio(a: float, b: float) -> float:
    return a / b if b and math.isfinite(a) and math.isfinite(b) else math.nan


def ratio_error(a: Load, b: Load) -> float:
    """Standard error of ``a.full_load_tps / b.full_load_tps`` from their per-second spread."""
    r = ratio(a.full_load_tps, b.full_load_tps)
    return r * math.hypot(a.full_load_rse, b.full_load_rse)


def x(r: float) -> str:
    """A ratio: ``1.35x``, ``469x``, ``10,189x``."""
    if not math.isfinite(r):
        return "n/a"
    return f"{r:.2f}x" if r < 100 else f"{r:,.0f}x"


def pct(r: float) -> str:
    return "n/a" if not math.isfinite(r) else f"{abs(r - 1):.0%}"


def duration(seconds: float) -> str:
    """``5,956 s (1 h 39 min)`` for long spans, ``12.3 s`` for short ones."""
    if not math.isfinite(seconds):
        return "n/a"
    if seconds < 120:
        return f"{seconds:,.2f} s"
    minutes = round(seconds / 60)
    span = f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
    return f"{seconds:,.0f} s ({span})"


def generator_note(loads: list[Load], users: int) -> str:
    """Whether the load generator held the users it was asked for, from the results."""
    measured = [ld.result for ld in loads if ld.result is not None]
    if not measured:
        return "No load was measured."
    short = [
        ld.label
        for ld in loads
        if ld.result is not None
        and max((row.active_users for row in ld.result.timeline), default=0) < users
    ]
    paced = [
        ld.label
        for ld in loads
        if ld.result is not None and any("set the pace" in w for w in ld.result.warnings)
    ]
    cores = max(r.generator_cores for r in measured)
    text = (
        f"The generator held all {users:,} virtual users in every load"
        if not short
        else f"Not every user started in: {', '.join(short)}"
    )
    text += f" and used at most {cores:.2f} of the machine's {os.cpu_count() or 1} cores"
    if paced:
        return text + f"; it may have set the pace (a worker near 100% CPU) in: {', '.join(paced)}."
    return text + "; no worker process came near a full core, so the servers set the pace."


def _skipped(loads: list[Load]) -> list[str]:
    return [f"{ld.label} was not measured: {ld.skipped}" for ld in loads if not ld.ok]


def _errors(loads: list[Load]) -> list[str]:
    out = []
    for ld in loads:
        if ld.result is not None and ld.errors:
            kinds = ", ".join(f"{k}: {v:,}" for k, v in sorted(ld.result.errors.items()))
            out.append(
                f"{ld.label} had {ld.errors:,} errors of {ld.result.requests:,} requests ({kinds})."
            )
    return out


def seed_findings(loads: list[Load], costs: RequestCosts) -> list[str]:
    """Experiment 1: how much loading once helped, and why (the per-request costs)."""
    found = by_key(loads)
    per, once = found["seed-per-request"], found["seed-load-once"]
    if not (per.ok and once.ok):
        return _skipped(loads)
    r = ratio(once.full_load_tps, per.full_load_tps)
    size = (
        "about the same TPS as"
        if abs(r - 1) <= SAME
        else (f"{x(r)} the TPS of" if r > 1 else f"{x(r)} (less than) the TPS of")
    )
    users = once.result.users if once.result is not None else 0
    out = [
        f"Loading the model once gave {size} unpickling it on every request: "
        f"{n(once.full_load_tps)} vs {n(per.full_load_tps)} TPS with all users running; "
        f"mean test time {n(per.latency('mean'), 1)} -> {n(once.latency('mean'), 1)} ms, "
        f"p99 {n(per.latency('p99'), 1)} -> {n(once.latency('p99'), 1)} ms. In a closed "
        f"model the mean test time is mostly queueing: {users:,} users / "
        f"{n(once.full_load_tps)} TPS = {n(users / once.full_load_tps * 1e3)} ms "
        "(Little's law), so it moves with the TPS."
    ]
    u, p = costs.unpickle_us, costs.sklearn_predict_us
    load = costs.per_request_load_us if math.isfinite(costs.per_request_load_us) else u
    cold = (
        f", and a freshly unpickled model's `predict` costs {n(load - u, 1)} us more than a "
        f"warm one's, so loading per request adds {n(load, 1)} us in all"
        if load > 1.1 * u
        else ""
    )
    request_us = 1e6 / once.full_load_tps  # one server process: its time per request
    expected = (request_us + load) / request_us
    err = ratio_error(once, per)
    agree = (
        "too few full-load seconds to judge the spread."
        if not math.isfinite(err)
        else "the measurement agrees with the costs within that spread."
        if abs(r - expected) <= 2 * err
        else "more apart than that spread allows. A short load on a shared machine drifts "
        "more than its per-second spread shows, and in the server the loading runs in a "
        "thread pool beside the other requests, not in a tight loop; a longer --duration "
        "tells the two apart."
    )
    out.append(
        f"Why: opening and unpickling the {costs.model_bytes:,}-byte model costs {n(u, 1)} us "
        f"here{cold}, while scikit-learn's `predict` of one row alone costs {n(p, 1)} us (its "
        f"input checks and per-call overhead dwarf the arithmetic on 49 fish): per-request "
        f"loading is {ratio(load, p):.0%} of the predict call. At {n(once.full_load_tps)} "
        f"TPS the load-once server spends about {n(request_us)} us per request (one process, "
        f"so at most one core; the framework and predict make up the rest), so adding "
        f"{n(load, 1)} us predicts {x(expected)}; measured {x(r)} ± {n(err, 2)} (standard "
        f"error from the per-second TPS): {agree}"
    )
    dominate = (
        "the unpickling is a small share of what each request costs; the framework and "
        "scikit-learn's per-call overhead dominate (fishpredict's fast path predicts one row "
        f"in {n(costs.fast_predict_us, 1)} us, {x(ratio(p, costs.fast_predict_us))} faster "
        "than scikit-learn)"
    )
    if expected < 1 + SAME and r <= 1 + SAME:
        out.append(f'So the seed\'s "less difference than expected" holds here too: {dominate}.')
    elif expected < 1 + SAME:
        out.append(
            f'The costs predict the seed\'s "less difference than expected": {dominate}. '
            f"This run measured more ({x(r)}) than they predict."
        )
    else:
        out.append(
            f"Here unpickling is a sizeable share of a request ({expected - 1:.0%} on top), "
            "so loading once pays more than the seed saw."
        )
    return out + _errors(loads)


def backend_findings(seed: list[Load], backends: list[Load], costs: RequestCosts) -> list[str]:
    """Experiment 2: each backend against the seed's load-once server."""
    base = by_key(seed).get("seed-load-once")
    measured = [b for b in backends if b.ok]
    if base is None or not base.ok or not measured:
        return _skipped(seed + backends)
    out = []
    for b in measured:
        out.append(
            f"{b.label}: {n(b.full_load_tps)} TPS with all users running, "
            f"{x(ratio(b.full_load_tps, base.full_load_tps))} the seed server (load once); "
            f"p99 {n(b.latency('p99'), 1)} ms vs {n(base.latency('p99'), 1)} ms."
        )
    best = max(measured, key=lambda b: b.full_load_tps)
    worst = min(measured, key=lambda b: b.full_load_tps)
    if best is not worst:
        spread = ratio(best.full_load_tps, worst.full_load_tps)
        out.append(f"Fastest backend: {best.label}, {x(spread)} the slowest ({worst.label}).")
    out.append(
        f"Every fishpredict backend predicts with the fast path by default "
        f"({n(costs.fast_predict_us, 1)} us per row against scikit-learn's "
        f"{n(costs.sklearn_predict_us, 1)} us) and does not go through FastAPI's "
        "validation and thread pool per request; the rest of each gap is the HTTP stack."
    )
    return out + _skipped(backends) + _errors(backends)


def _busy(ld: Load | None) -> float:
    """The machine's CPU busy share during a load (NaN if unknown)."""
    if ld is None or ld.result is None or ld.result.machine_cpu_pct is None:
        return math.nan
    return ld.result.machine_cpu_pct


def _cpu(ld: Load) -> str:
    busy = _busy(ld)
    return "" if not math.isfinite(busy) else f", machine CPU {busy:.0f}% busy"


def _path_finding(
    label: str, fast: bool, d: Load, one: Load, two: Load, costs: RequestCosts
) -> str:
    hop = ratio(one.full_load_tps, d.full_load_tps)
    lb = ratio(two.full_load_tps, one.full_load_tps)
    lb_text = f"{x(lb)} (± {n(ratio_error(two, one), 2)})"
    if lb > 1 + SAME:
        verdict = (
            f"load balancing helps: two replicas gave {lb_text} the TPS of one behind "
            f"nginx and {x(ratio(two.full_load_tps, d.full_load_tps))} the direct replica"
        )
    elif lb < 1 - SAME:
        verdict = (
            f"load balancing costs: two replicas gave {lb_text} the TPS of one behind "
            f"nginx, {pct(lb)} less"
        )
    else:
        verdict = f"a second replica changed little: {lb_text} the TPS of one behind nginx"
    hop_text = (
        f"the nginx hop alone cost {pct(hop)} of the direct replica's TPS"
        if hop < 1 - SAME
        else f"nginx in front of one replica gave {x(hop)} the direct replica's TPS"
    )
    request_us = 1e6 / d.full_load_tps
    text = (
        f"{label}: {verdict}; {hop_text}. Direct: "
        f"{n(d.full_load_tps)} TPS, p99 {n(d.latency('p99'), 1)} ms, about {n(request_us)} us "
        f"of server time per request{_cpu(d)}; nginx + 1: {n(one.full_load_tps)} TPS, p99 "
        f"{n(one.latency('p99'), 1)} ms; nginx + 2: {n(two.full_load_tps)} TPS, p99 "
        f"{n(two.latency('p99'), 1)} ms{_cpu(two)}."
    )
    if not fast and request_us < costs.sklearn_predict_us:
        text += (
            f" A request took less server time than one scikit-learn `predict` call "
            f"({n(costs.sklearn_predict_us)} us) because the replica micro-batches "
            "concurrent requests into one call (`--batch-max`, default 256)"
        )
        text += (
            "; two replicas each see half the users, so their batches are smaller."
            if lb < 1 + SAME
            else "."
        )
    return text


def cluster_findings(loads: list[Load], costs: RequestCosts) -> list[str]:
    """Experiment 3: what nginx's hop costs and what a second replica brings, per path."""
    found = by_key(loads)
    cores = os.cpu_count() or 1
    out = []
    gains: dict[str, float] = {}
    busy = []
    for path_key, path_label, fast in PATHS:
        d, one, two = (found.get(f"{path_key}/{t}") for t in ("direct", "nginx-1", "nginx-2"))
        if d is None or one is None or two is None or not (d.ok and one.ok and two.ok):
            continue
        gains[path_label] = ratio(two.full_load_tps, one.full_load_tps)
        busy.append(_busy(d))
        out.append(_path_finding(path_label, fast, d, one, two, costs))
    if gains:
        best = max(gains, key=lambda k: gains[k])
        top = max((b for b in busy if math.isfinite(b)), default=math.nan)
        busy_text = (
            f"with one direct replica the machine's CPUs were {top:.0f}% busy"
            if math.isfinite(top)
            else "the machine's CPU use was not measured"
        )
        shared = (
            f"the {cores} cores are shared by the replicas, nginx's worker processes "
            "and the load generator"
        )
        if gains[best] > 1 + SAME:
            others = [k for k in gains if k != best and gains[k] <= 1 + SAME]
            out.append(
                f"On this {cores}-core machine a second replica helped where it had CPU to "
                f"take: the {best} gained {x(gains[best])}"
                + (f", the {others[0]} {x(gains[others[0]])}" if others else "")
                + f"; {shared}, so a second replica only pays while a core is left idle by "
                f"the first ({busy_text})."
            )
        elif math.isfinite(top) and top >= BUSY:
            out.append(
                f"On this {cores}-core machine a second replica did not help either path: "
                f"{shared}, and {busy_text} already, so the second replica finds no idle "
                "core; it adds a process to schedule, and every request pays nginx's hop. "
                'The seed\'s "clearly better" needs cores to spare for the second replica.'
            )
        else:
            out.append(
                f"On this {cores}-core machine a second replica did not help either path, "
                f"although there was CPU to spare ({busy_text}): here nginx's extra hop "
                "costs more than a second replica brings."
            )
    return out + _skipped(loads) + _errors(loads)


def rows_findings(rows: RowsResult) -> list[str]:
    """Experiment 4: per-row requests (extrapolated) vs the batch endpoint; accuracy."""
    out = []
    batch = rows.batch_seconds
    for p in rows.per_row:
        ext = p.extrapolated_s(rows.rows)
        out.append(
            f"One request per row against the {p.label}: {n(p.seconds / p.requests * 1e3, 3)} "
            f"ms per request over {p.requests:,} measured requests, so the seed's "
            f"{rows.predictions:,} requests would take {duration(ext)}; the batch endpoint "
            f"is {x(ratio(ext, batch))} faster."
        )
    out.append(
        f"The batch endpoint predicted all {rows.predictions:,} rows x k in {duration(batch)} "
        f"({n(ratio(rows.predictions, batch))} predictions/s), measured whole."
    )
    full = [r for r in rows.table if not r.all_bream]
    if full:
        accs = ", ".join(f"k={r.k}: {r.accuracy:.3%}" for r in full)
        every = all(r.correct == r.rows for r in full)
        out.append(
            f"Accuracy {accs}" + (" — every row right, as the seed found." if every else ".")
        )
    for r in rows.table:
        if r.all_bream:
            same = "equals" if r.correct == r.bream_rows else "differs from"
            out.append(
                f"k={r.k} answers bream for every row, so its accuracy {r.accuracy:.3%} "
                f"{same} the bream share of the rows, {r.bream_share:.3%}."
            )
    return out
