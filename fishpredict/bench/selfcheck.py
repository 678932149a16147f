"""How fast is the generator itself? Its engine against wrk, side by side.

:func:`selfcheck` starts its own nginx with a fixed response, then for each
round runs wrk and the native engine for the same time on the same target
with the same connections and the same varied request pool, and prints both
request rates and their ratio. A final phase holds many virtual users (1,000
by default) and reports whether any request failed.

The machine is shared by the generator and nginx (and by anything else that
runs), so rounds alternate the two engines and the verdict uses the median of
the per-round ratios.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass, field
from typing import TextIO

from fishpredict.bench.config import BenchConfig
from fishpredict.bench.fixedserver import fixed_nginx
from fishpredict.bench.result import BenchResult
from fishpredict.bench.runner import run_bench
from fishpredict.bench.wrk import wrk_path
from fishpredict.errors import ConfigError

#: the native engine should reach this share of wrk's requests/s
TARGET_RATIO = 0.9


def cpu_us_per_request(r: BenchResult) -> float:
    """The generator's CPU microseconds per request of a run."""
    return 1e6 * r.generator_cpu_s / r.requests if r.requests else 0.0


@dataclass
class SelfcheckReport:
    """Per-round figures and the verdicts."""

    rounds: list[tuple[BenchResult, BenchResult]] = field(default_factory=list)
    many_users: BenchResult | None = None

    @property
    def ratios(self) -> list[float]:
        return [n.rps / w.rps if w.rps else 0.0 for w, n in self.rounds]

    @property
    def median_ratio(self) -> float:
        return statistics.median(self.ratios) if self.rounds else 0.0

    @property
    def median_cpu_ratio(self) -> float:
        """Median of native/wrk CPU seconds per request: the cost of the engine itself,
        less sensitive than the rate to other work sharing the machine."""
        ratios = [
            cpu_us_per_request(n) / cpu_us_per_request(w)
            for w, n in self.rounds
            if cpu_us_per_request(w) > 0
        ]
        return statistics.median(ratios) if ratios else 0.0

    @property
    def speed_ok(self) -> bool:
        return self.median_ratio >= TARGET_RATIO

    @property
    def users_ok(self) -> bool:
        m = self.many_users
        return m is None or (m.error_count == 0 and m.successes > 0)


def selfcheck(
    seconds: float = 5.0,
    connections: int = 64,
    rounds: int = 3,
    users: int = 1000,
    processes: int = 1,
    out: TextIO | None = None,
) -> SelfcheckReport:
    """Compare the native engine with wrk against a fixed-response nginx; print as it goes."""
    out = out or sys.stdout
    if wrk_path() is None:
        raise ConfigError("selfcheck needs wrk on PATH (apt-get install wrk)")
    report = SelfcheckReport()
    with fixed_nginx() as server:
        base = BenchConfig(
            server.url,
            processes=processes,
            threads=max(1, connections // processes),
            duration_s=seconds,
            endpoint="fish",
            check_answers=False,
            timeout_s=5.0,
        )
        print(
            f"selfcheck: nginx fixed response at {server.url} (pid {server.pid}); "
            f"{processes} process(es)/thread(s), {base.users} connections, {seconds:g} s "
            f"per run, {rounds} round(s)",
            file=out,
        )
        print(
            f"{'round':>5}  {'wrk req/s':>10}  {'native req/s':>12}  {'ratio':>6}  "
            f"{'wrk p99 ms':>10}  {'native p99 ms':>13}  {'wrk CPU':>8}  {'native CPU':>10}  "
            f"{'wrk us/req':>10}  {'native us/req':>13}  {'machine busy':>12}",
            file=out,
        )
        for i in range(rounds):
            w = run_bench(base.with_(engine="wrk"))
            n = run_bench(base.with_(engine="native"))
            report.rounds.append((w, n))
            busy = f"{n.machine_cpu_pct:.0f}%" if n.machine_cpu_pct is not None else "-"
            print(
                f"{i + 1:>5}  {w.rps:>10,.0f}  {n.rps:>12,.0f}  {report.ratios[-1]:>6.3f}  "
                f"{w.latency_ms['p99']:>10.3f}  {n.latency_ms['p99']:>13.3f}  "
                f"{w.generator_cores:>7.2f}c  {n.generator_cores:>9.2f}c  "
                f"{cpu_us_per_request(w):>10.2f}  {cpu_us_per_request(n):>13.2f}  {busy:>12}",
                file=out,
                flush=True,
            )
        print(
            f"median ratio native/wrk: {report.median_ratio:.3f} "
            f"(target >= {TARGET_RATIO}): {'OK' if report.speed_ok else 'BELOW TARGET'}",
            file=out,
        )
        print(
            f"median CPU per request native/wrk: {report.median_cpu_ratio:.3f} "
            "(below 1: the native engine spends less CPU per request than wrk)",
            file=out,
        )
        if any((n.machine_cpu_pct or 0) >= 95 for _, n in report.rounds):
            print(
                "note: the machine was fully busy; if other work ran, rates are not "
                "comparable across rounds (the per-request CPU ratio is steadier)",
                file=out,
            )
        if users:
            procs = min(2, users)
            many = run_bench(
                BenchConfig(
                    server.url,
                    processes=procs,
                    threads=users // procs,
                    duration_s=seconds,
                    endpoint="fish",
                    check_answers=False,
                    timeout_s=10.0,
                )
            )
            report.many_users = many
            print(
                f"{many.users} virtual users ({procs} processes): {many.rps:,.0f} req/s, "
                f"{many.successes:,} successes, {many.error_count:,} errors "
                f"{dict(many.errors) if many.errors else ''}, p99 "
                f"{many.latency_ms['p99']:.2f} ms: {'OK' if report.users_ok else 'FAILED'}",
                file=out,
            )
    return report
