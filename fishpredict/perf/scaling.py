"""``fishpredict perf scaling``: what each scaling lever buys, side by side, one run.

a. micro-batching on the scikit-learn path (``--no-fast-path``): ``--batch-max
   256`` vs ``--batch-max 1`` at 64 connections (target >= 8x requests/s), and
   the p50 of a lone connection (target: on within 10 % of off); also batching
   on with another ``--batch-wait-us`` (default 0, against ``serve``'s 200 us);
b. ``--workers 2`` vs ``--workers 1`` on the scikit-learn path (target >= 1.7x;
   batching off is the target configuration, batching on is shown too), with
   how the connections were spread over the workers;
c. bulk: 100,000 generated rows x k = 1, 5, 15, 25, 49 through the ``.npy``
   endpoint end to end (target <= 1 s) vs one ``GET /fish`` per row and per k
   the seed's way, measured on a slice and extrapolated (target >= 300x); and
   ``fishpredict predict --url`` on 1,000,000 and 10,000,000 rows: peak memory
   flat (target: 10x the rows, <= 1.25x the memory);
d. the socket backend on the fast path vs nginx answering a fixed response, same
   generator and load (target >= 45 % of nginx with ``--workers 2``, one worker per
   core as nginx's ceiling uses the machine; 1 worker is shown too);
e. memory: a big model (a 200 MB random forest, or a KNN on millions of generated
   fish), served by 1 worker and by 4: each extra worker copies at most 10 % of the
   model's memory (PSS), because the workers share the supervisor's copy
   (:mod:`fishpredict.perf.memory`).
Every server is a real process, started for its part and stopped after it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fishpredict.app.config import ServeConfig
from fishpredict.bench.fixedserver import fixed_nginx
from fishpredict.errors import ConfigError
from fishpredict.perf.bulk import bulk_part
from fishpredict.perf.bulkmemory import flat_memory_part
from fishpredict.perf.loads import Load, Measurement, Say, measure, wait_until_idle
from fishpredict.perf.machine import header, table
from fishpredict.perf.memory import memory_part
from fishpredict.perf.report import (
    cores,
    cpu_legend,
    env_line,
    errors_text,
    load_line,
    notes,
    ratio,
    spread_notes,
    verdict,
)
from fishpredict.perf.servers import fishpredict_server

BATCH_ON = ("--batch-max", "256")
BATCH_OFF = ("--batch-max", "1")
SKLEARN = ("--no-fast-path",)
TARGET_BATCH_RATIO = 8.0
TARGET_P50_SLACK = 1.10
TARGET_WORKERS_RATIO = 1.7
TARGET_NGINX_SHARE = 0.45
#: the extra micro-batching row of part a: its ``--batch-wait-us`` (``serve``'s default
#: waits up to 200 us for more rows; this row shows what no wait gives)
DEFAULT_WAIT_US = 0
#: the suite's parts; a (batching) and b (workers) share their servers and run together
PARTS = "abcde"

_HEAD = (
    "configuration",
    "conns",
    "req/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "server CPU",
    "gen CPU",
    "irq CPU",
    "other CPU",
)


def _row(m: Measurement) -> tuple[str, ...]:
    return (
        m.name,
        str(m.connections),
        f"{m.rps:,.0f}",
        f"{m.p50_ms:.3f}",
        f"{m.p99_ms:.2f}",
        errors_text(m),
        cores(m.server_cores),
        cores(m.generator_cores),
        cores(m.irq_cores),
        cores(m.other_cores),
    )


class _Suite:
    """Runs the parts in order, keeping every measurement for the table, JSON and chart."""

    def __init__(self, load: Load, say: Say, wait_us: int = DEFAULT_WAIT_US) -> None:
        self.load = load
        self.wait_us = wait_us
        self.lone = replace(load, connections=1)
        self.say = say
        self.runs: list[Measurement] = []
        self.verdicts: dict[str, bool] = {}
        self.figures: dict[str, Any] = {}

    def settle(self) -> None:
        """Wait for an idle machine before a timing that is not a load (``--settle``)."""
        if self.load.settle_s > 0 and not wait_until_idle(self.load.settle_s):
            self.say(f"note: the machine was not idle within {self.load.settle_s:g} s")

    def _measure(self, name: str, url: str, pid: int, load: Load) -> Measurement:
        m = measure(name, url, load, pid)
        self.runs.append(m)
        return m

    def target(self, key: str, ok: bool, text: str) -> None:
        self.verdicts[key] = ok
        self.say(f"target: {text} {verdict(ok)}")

    # -- a + b --------------------------------------------------------------------------
    def batching_and_workers(self, backend: str) -> None:
        say, load = self.say, self.load
        found: dict[str, Measurement] = {}
        default_wait = ServeConfig().batch_wait_us
        wait = ("--batch-wait-us", str(self.wait_us))
        configs = [
            ("on", f"on (wait {default_wait} us)", 1, BATCH_ON),
            ("off", "off", 1, BATCH_OFF),
            ("off", "off", 2, BATCH_OFF),
            ("on", f"on (wait {default_wait} us)", 2, BATCH_ON),
            ("wait", f"on (wait {self.wait_us} us)", 1, (*BATCH_ON, *wait)),
        ]
        for key, state, workers, batch in configs:
            name = f"{backend} sklearn batching {state}, {workers} worker{'s' * (workers > 1)}"
            say(
                f"... {name}: loading at {load.connections} connections"
                + (" then 1" if workers == 1 else "")
            )
            args = (*SKLEARN, *batch, "--workers", str(workers))
            with fishpredict_server(backend, *args) as srv:
                found[f"{key}{workers}"] = self._measure(name, srv.url, srv.pid, load)
                if workers == 1:
                    found[f"{key}{workers}@1"] = self._measure(name, srv.url, srv.pid, self.lone)
        on, off, tuned = found["on1"], found["off1"], found["wait1"]
        say(
            f"\n## a. micro-batching on the scikit-learn path ({backend}, --no-fast-path, "
            f"1 worker): --batch-max 256 (on; serve's default --batch-wait-us {default_wait}) "
            f"vs --batch-max 1 (off); also on with --batch-wait-us {self.wait_us}"
        )
        say(
            table(
                [_HEAD]
                + [_row(found[k]) for k in ("on1", "off1", "wait1", "on1@1", "off1@1", "wait1@1")]
            )
        )
        got = ratio(on.rps, off.rps)
        self.target(
            f"{backend}_batching_ratio",
            got >= TARGET_BATCH_RATIO,
            f"batching on >= {TARGET_BATCH_RATIO:g}x off at {load.connections} "
            f"connections -> {on.rps:,.0f} / {off.rps:,.0f} = {got:.1f}x",
        )
        p_on, p_off = found["on1@1"].p50_ms, found["off1@1"].p50_ms
        self.target(
            f"{backend}_batching_p50",
            p_on <= TARGET_P50_SLACK * p_off,
            f"p50 at 1 connection, batching on within "
            f"{100 * (TARGET_P50_SLACK - 1):.0f}% of off -> {p_on:.3f} ms vs "
            f"{p_off:.3f} ms = {ratio(p_on, p_off):.3f}x",
        )
        got_w, p_w = ratio(tuned.rps, off.rps), found["wait1@1"].p50_ms
        say(
            f"also: batching on with --batch-wait-us {self.wait_us} vs off -> {tuned.rps:,.0f} / "
            f"{off.rps:,.0f} = {got_w:.1f}x ({verdict(got_w >= TARGET_BATCH_RATIO)} against "
            f"the same {TARGET_BATCH_RATIO:g}x); its p50 at 1 connection {p_w:.3f} ms = "
            f"{ratio(p_w, p_off):.3f}x off ({verdict(p_w <= TARGET_P50_SLACK * p_off)})"
        )

        say(
            f"\n## b. --workers 2 vs --workers 1 on the scikit-learn path ({backend}, "
            f"--no-fast-path, {load.connections} connections)"
        )
        b_rows = [off, found["off2"], on, found["on2"]]
        say(table([_HEAD, *(_row(m) for m in b_rows)]))
        for line in spread_notes(b_rows):
            say(line)
        got_off = ratio(found["off2"].rps, off.rps)
        self.target(
            f"{backend}_workers_ratio",
            got_off >= TARGET_WORKERS_RATIO,
            f"2 workers >= {TARGET_WORKERS_RATIO:g}x 1 worker (target configuration: "
            f"batching off) -> {found['off2'].rps:,.0f} / {off.rps:,.0f} = "
            f"{got_off:.2f}x",
        )
        got_on = ratio(found["on2"].rps, on.rps)
        say(
            f"also: batching on, 2 workers vs 1 -> {found['on2'].rps:,.0f} / {on.rps:,.0f} = "
            f"{got_on:.2f}x ({verdict(got_on >= TARGET_WORKERS_RATIO)} against the same "
            f"{TARGET_WORKERS_RATIO:g}x)"
        )
        self.figures[f"{backend}_sklearn"] = {k: v.to_dict() for k, v in found.items()}

    # -- d --------------------------------------------------------------------------------
    def against_nginx(self) -> None:
        say, load = self.say, self.load
        found: list[Measurement] = []
        for workers in (2, 1):
            name = f"socket fast path, {workers} worker{'s' * (workers > 1)}"
            say(f"... {name}: loading at {load.connections} connections")
            with fishpredict_server("socket", "--workers", str(workers)) as srv:
                found.append(self._measure(name, srv.url, srv.pid, load))
        say(
            f"... nginx (fixed response, 1 worker process): loading at {load.connections} "
            "connections"
        )
        with fixed_nginx() as ngx:
            nginx = self._measure("nginx, fixed response", ngx.url, ngx.pid, load)
        say(
            f"\n## d. the socket backend vs nginx answering a fixed response "
            f"({load.connections} connections, the same requests)"
        )
        say(table([_HEAD, *(_row(m) for m in (*found, nginx))]))
        for line in spread_notes(found):
            say(line)
        machine, one = found
        share = ratio(machine.rps, nginx.rps)
        self.target(
            "nginx_share",
            share >= TARGET_NGINX_SHARE,
            f"{machine.name} (the machine's cores, as nginx's ceiling is measured on them) "
            f">= {TARGET_NGINX_SHARE:.0%} of nginx's req/s -> "
            f"{machine.rps:,.0f} / {nginx.rps:,.0f} = {share:.0%}",
        )
        share_one = ratio(one.rps, nginx.rps)
        say(
            f"also: {one.name} -> {one.rps:,.0f} / {nginx.rps:,.0f} = {share_one:.0%} of nginx "
            f"({verdict(share_one >= TARGET_NGINX_SHARE)} against the same "
            f"{TARGET_NGINX_SHARE:.0%}; one Python process on one core)"
        )
        self.figures["nginx"] = {"nginx": nginx.to_dict(), "socket": [m.to_dict() for m in found]}


def run(
    load: Load,
    backends: tuple[str, ...] = ("socket",),
    bulk_rows: int = 100_000,
    slice_requests: int = 2000,
    parts: str = PARTS,
    wait_us: int = DEFAULT_WAIT_US,
    flat_rows: int = 1_000_000,
    memory_rows: int = 2_000_000,
    memory_workers: int = 4,
    memory_model: str = "forest",
    forest_mb: int = 200,
    say: Say = print,
) -> dict[str, Any]:
    """Run the suite (``parts``: any of ``abcde``; a and b run together), print it, and
    return the figures as a dict (for ``--json``)."""
    unknown = set(parts) - set(PARTS)
    if unknown or not parts:
        raise ConfigError(f"parts must be letters among {PARTS!r}, got {parts!r}")
    say(header("fishpredict perf scaling"))
    say(load_line())
    say(env_line())
    say(f"# load (a, b, d): {load.describe()}; a also at 1 connection")
    say(
        "# generator: fishpredict's bench engine (uvloop), 1 process, on the same cores as "
        "the server; its own CPU use is in the 'gen CPU' column"
    )
    say("# " + cpu_legend()[1:-1])
    suite = _Suite(load, say, wait_us)
    if {"a", "b"} & set(parts):
        for backend in backends:
            suite.batching_and_workers(backend)
        say("")
    if "c" in parts:
        bulk_part(suite, bulk_rows, slice_requests)
        say("")
        flat_memory_part(suite, flat_rows)
        say("")
    if "d" in parts:
        suite.against_nginx()
        say("")
    if "e" in parts:
        memory_part(suite, memory_rows, memory_workers, memory_model, forest_mb)
    errs = [m.name for m in suite.runs if m.error_count]
    suite.target(
        "zero_errors",
        not errs,
        "zero errors in every load -> "
        + (f"0 errors in {len(suite.runs)} loads" if not errs else "errors in " + "; ".join(errs)),
    )
    say(load_line("after"))
    for line in notes(suite.runs):
        say(line)
    return {
        "load": {
            "duration_s": load.duration_s,
            "connections": load.connections,
            "warmup_s": load.warmup_s,
            "ks": list(load.ks),
        },
        **suite.figures,
        "runs": [m.to_dict() for m in suite.runs],
        "targets_met": suite.verdicts,
    }
