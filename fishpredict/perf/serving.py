"""``fishpredict perf serving``: every backend against the seed's server, one run.

The seed's FastAPI server (unpickling the model on every request) is the
baseline. Then each built-in backend with its defaults (one worker, the fast
path, micro-batching on), and each again with ``--workers 2``. Every server is
a real process on a loopback port, gets the same load for the same time from
the same generator (:mod:`fishpredict.perf.loads`), and is stopped before the
next starts, so no two compete for the cores. Targets (1 worker): starlette
>= 25x, aiohttp >= 30x, socket >= 100x the baseline's requests/s; p99 < 20 ms
at 64 connections; zero errors in every run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fishpredict.perf.loads import Load, Measurement, Say, measure
from fishpredict.perf.machine import header, table
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
from fishpredict.perf.servers import fishpredict_server, seed_server

BACKENDS: tuple[str, ...] = ("starlette", "aiohttp", "socket")
#: requests/s each backend (1 worker, defaults) must reach, as a multiple of the baseline's
TARGET_RATIOS: dict[str, float] = {"starlette": 25.0, "aiohttp": 30.0, "socket": 100.0}
TARGET_P99_MS = 20.0
BASELINE = "seed (FastAPI, unpickle per request)"


@dataclass(frozen=True)
class Contender:
    """One server of the comparison: its row name, backend and ``serve`` options."""

    name: str
    backend: str | None  # None: the seed's server
    args: tuple[str, ...] = ()
    workers: int = 1

    @contextlib.contextmanager
    def running(self) -> Iterator[tuple[str, int]]:
        """Start it; yield ``(url, pid)``; stop it."""
        if self.backend is None:
            with seed_server() as seed:
                yield seed.url, seed.pid
        else:
            with fishpredict_server(self.backend, *self.args) as srv:
                yield srv.url, srv.pid


def contenders(backends: tuple[str, ...] = BACKENDS, extra_workers: int = 2) -> list[Contender]:
    """The baseline, each backend with its defaults, then each with more workers."""
    out = [Contender(BASELINE, None)]
    out += [Contender(b, b) for b in backends]
    if extra_workers > 1:
        out += [
            Contender(
                f"{b} --workers {extra_workers}",
                b,
                ("--workers", str(extra_workers)),
                extra_workers,
            )
            for b in backends
        ]
    return out


def run(load: Load, backends: tuple[str, ...] = BACKENDS, say: Say = print) -> dict[str, Any]:
    """Run the suite, print it, and return the figures as a dict (for ``--json``)."""
    say(header("fishpredict perf serving"))
    say(load_line())
    say(env_line())
    say(f"# load: {load.describe()}")
    say(
        "# generator: fishpredict's bench engine (uvloop), 1 process, on the same cores as "
        "the server; its own CPU use is in the 'gen CPU' column"
    )
    say(
        "# errors: failed connections, timeouts and non-2xx answers (answers are not "
        "checked against labels: with k=49 every answer is rightly bream)"
    )
    results: list[tuple[Contender, Measurement]] = []
    for c in contenders(backends):
        say(f"... {c.name}: starting, warming up, loading for {load.duration_s:g} s")
        with c.running() as (url, pid):
            results.append((c, measure(c.name, url, load, pid)))
    base = results[0][1]

    say(f"\n## requests/s at {load.connections} connections, vs the seed's server")
    rows: list[tuple[str, ...]] = [
        (
            "server",
            "req/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "vs baseline",
            "server CPU",
            "gen CPU",
            "irq CPU",
            "other CPU",
        )
    ]
    for _c, m in results:
        rows.append(
            (
                m.name,
                f"{m.rps:,.0f}",
                f"{m.p50_ms:.2f}",
                f"{m.p99_ms:.2f}",
                errors_text(m),
                f"{ratio(m.rps, base.rps):,.1f}x",
                cores(m.server_cores),
                cores(m.generator_cores),
                cores(m.irq_cores),
                cores(m.other_cores),
            )
        )
    say(table(rows))
    say(cpu_legend())
    for line in spread_notes([m for _c, m in results]):
        say(line)

    say("\n## targets")
    by_name = {c.name: m for c, m in results}
    verdicts: dict[str, bool] = {}
    for b in backends:
        m = by_name[b]
        want = TARGET_RATIOS.get(b)
        if want is not None:
            got = ratio(m.rps, base.rps)
            ok = verdicts[f"{b}_ratio"] = got >= want
            say(
                f"target: {b} >= {want:g}x the baseline's req/s -> {m.rps:,.0f} / "
                f"{base.rps:,.0f} = {got:,.1f}x {verdict(ok)}"
            )
    for _c, m in results[1:]:
        ok = verdicts[f"{m.name}_p99"] = m.p99_ms < TARGET_P99_MS
        say(
            f"target: {m.name} p99 < {TARGET_P99_MS:g} ms at {load.connections} connections "
            f"-> {m.p99_ms:.2f} ms {verdict(ok)}"
        )
    failed = [m.name for _c, m in results if m.error_count]
    ok = verdicts["zero_errors"] = not failed
    seen = f"0 errors in {len(results)} runs" if ok else "errors in " + ", ".join(failed)
    say(f"target: zero errors in every run -> {seen} {verdict(ok)}")
    say(load_line("after"))
    for line in notes([m for _c, m in results]):
        say(line)
    return {
        "load": {
            "duration_s": load.duration_s,
            "connections": load.connections,
            "warmup_s": load.warmup_s,
            "ks": list(load.ks),
        },
        "baseline": base.name,
        "runs": [
            {
                **m.to_dict(),
                "backend": c.backend,
                "workers": c.workers,
                "ratio_vs_baseline": ratio(m.rps, base.rps),
            }
            for c, m in results
        ],
        "targets_met": verdicts,
    }
