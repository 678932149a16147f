"""Generators on Dask: ``bench URL --scheduler tcp://HOST:8786 --generators N``.

For loads one machine cannot generate. Each of N Dask tasks, pinned to distinct
workers where there are enough, runs one generator: a child process
(``python -m fishpredict.bench.distributed``, since Dask's worker processes may
not fork load processes of their own) that builds its share of the run, does its
own pre-flight, waits for the common start (a wall-clock time the parent picks,
a few seconds ahead), runs, and hands back every second of its timeline with the
latencies as histogram bins.

The parent merges them exactly: histograms add bin by bin (an HDR merge, never
an average of percentiles), so the merged percentiles are those of one histogram
of every generator's samples; counts add up; the run lasts as long as the
longest generator. ``generators`` in the result keeps each one's own figures.

Shares: closed model, the users (``--threads``) and ``--requests`` are dealt
among the generators (each keeps ``--processes``); open model, each sends
``1/N`` of the rate or stages. ``--scheduler local`` starts a local cluster of N
worker processes (for trying it out, and for the tests).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from typing import Any

from fishpredict.bench.config import BenchConfig
from fishpredict.bench.result import BenchResult, build_result, sparse_json
from fishpredict.bench.runner import _Run, prepare_pool
from fishpredict.bench.stats import LatencyHistogram, Timeline
from fishpredict.errors import ConfigError, FishpredictError

#: seconds from dispatch to the common start (each generator builds and pre-flights first)
START_AHEAD_S = 4.0


def share(config: BenchConfig, index: int, n: int) -> BenchConfig:
    """Generator ``index`` of ``n``'s part of the run."""
    def part(total: int) -> int:
        return total // n + (1 if index < total % n else 0)

    changes: dict[str, Any] = {"progress": False}
    if config.requests is not None:
        changes["requests"] = max(1, part(config.requests))
    if config.open_model:
        if config.stages:
            changes["stages"] = tuple((d, r / n) for d, r in config.stages)
        else:
            changes["rate"] = (config.rate or 0.0) / n
        if config.connections:
            changes["connections"] = max(config.processes, part(config.connections))
    else:
        users = max(1, part(config.threads * config.processes) // config.processes)
        changes["threads"] = users
    return replace(config, **changes)


def _config_from(d: dict[str, Any]) -> BenchConfig:
    d = dict(d)
    d["ks"] = tuple(d["ks"])
    d["extra_headers"] = tuple(tuple(h) for h in d["extra_headers"])
    d["stages"] = tuple(tuple(s) for s in d["stages"]) if d.get("stages") else None
    d["mix"] = tuple((float(w), str(s)) for w, s in d.get("mix") or ())
    return BenchConfig(**d)


def generate(config_doc: dict[str, Any], start_wall: float) -> dict[str, Any]:
    """Run one generator in this process (the child's work); JSON-ready output."""
    config = _config_from(config_doc).validated()
    pool = prepare_pool(config)
    time.sleep(max(0.0, start_wall - time.time()))
    run = _Run(config, pool)
    result = run.execute()
    empty = sparse_json(LatencyHistogram())
    ticks = [{"second": s.second, "hist": _jsonable(s.sparse) if s.sparse else empty,
              "errors": dict(s.errors), "active": s.active_users, "sent": s.sent,
              "late": s.late, "checked": s.checked, "correct": s.correct, "cpu_s": s.cpu_s}
             for s in run.timeline.seconds()]
    if ticks:
        ticks[0]["fhist"] = sparse_json(run.timeline.failed_histogram())
    return {"result": result.to_dict(), "ticks": ticks, "descr": pool.description}


def _jsonable(sp: dict[str, Any]) -> dict[str, Any]:
    return {"idx": [int(i) for i in sp["idx"]], "n": [int(v) for v in sp["n"]],
            "total": int(sp["total"]), "sum": int(sp["sum"]), "min": int(sp["min"]),
            "max": int(sp["max"])}


def _task(config_doc: dict[str, Any], start_wall: float, timeout_s: float) -> dict[str, Any]:
    """A Dask task: run :func:`generate` in a child process and return its output."""
    import socket

    proc = subprocess.run(
        [sys.executable, "-m", "fishpredict.bench.distributed"],
        input=json.dumps({"config": config_doc, "start": start_wall}),
        capture_output=True, text=True, timeout=timeout_s, check=False,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"generator failed on {socket.gethostname()}: {last}")
    out: dict[str, Any] = json.loads(proc.stdout)
    out["host"] = socket.gethostname()
    return out


def run_distributed(config: BenchConfig, scheduler: str,
                    generators: int | None = None) -> BenchResult:
    """Run ``config`` over ``generators`` Dask workers and merge the results."""
    config = config.validated()
    if config.engine != "native":
        raise ConfigError("--scheduler runs the native engine only")
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("--scheduler needs dask (pip install 'fishpredict[dask]')") from None
    cluster = None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=generators or 2, threads_per_worker=1,  # type: ignore[no-untyped-call]
                               processes=True, dashboard_address=None)
        address: Any = cluster
    elif scheduler.startswith("tcp://"):
        address = scheduler
    else:
        raise ConfigError(f"--scheduler takes tcp://HOST:PORT or 'local', got {scheduler!r}")
    try:
        with Client(address, timeout="10s") as client:  # type: ignore[no-untyped-call]
            return _run_on(client, config, generators)
    except OSError as exc:
        raise FishpredictError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
    finally:
        if cluster is not None:
            cluster.close()


def _run_on(client: Any, config: BenchConfig, generators: int | None) -> BenchResult:
    workers = sorted(client.scheduler_info()["workers"])
    if not workers:
        raise FishpredictError("the Dask cluster has no workers")
    n = generators or len(workers)
    start_wall = time.time() + START_AHEAD_S
    timeout_s = START_AHEAD_S + config.effective_duration_s + config.timeout_s + 120.0
    futures = [
        client.submit(_task, share(config, i, n).to_dict(), start_wall, timeout_s,
                      workers=[workers[i % len(workers)]], pure=False, key=f"bench-gen-{i}")
        for i in range(n)
    ]
    try:
        outs = client.gather(futures)
    except Exception as exc:  # a task's error arrives as it was raised remotely
        raise FishpredictError(f"a generator failed: {exc}") from None
    return merge_generators(config, outs)


def merge_generators(config: BenchConfig, outs: list[dict[str, Any]]) -> BenchResult:
    """One result from every generator's output (exact histogram merge)."""
    timeline = Timeline()
    for out in outs:
        for tick in out["ticks"]:
            timeline.add_tick(tick)
    results = [o["result"] for o in outs]
    elapsed = max(r["elapsed_s"] for r in results)
    timeline.close(elapsed)
    cpu = sum(r["generator_cpu_s"] for r in results)
    sched = config.schedule if config.open_model else None
    base = dict(
        engine="native",
        model="open" if config.open_model else "closed",
        url=config.target.url,
        requests_desc=outs[0]["descr"] if outs else "",
        users=sum(r["users"] for r in results),
        processes=sum(r["processes"] for r in results),
        rows_per_request=results[0]["rows_per_request"] if results else 1,
        rate=config.rate,
        max_lag_ms=max((r["max_lag_ms"] for r in results), default=0.0),
        unsent=sum(r["unsent"] for r in results),
        generator_cpu_s=cpu,
        generator_cores=cpu / elapsed if elapsed else 0.0,
        machine_cpu_pct=None,
        loop=results[0]["loop"] if results else "",
        interrupted=any(r["interrupted"] for r in results),
        config=config.to_dict(),
        started_at=min((r["started_at"] for r in results), default=""),
        stages=[list(st) for st in config.stages] if config.stages else None,
        intended=sched.count(min(elapsed, config.effective_duration_s)) if sched else 0.0,
        generators=[{"index": i, "host": o.get("host", ""), "requests": r["requests"],
                     "successes": r["successes"], "errors": r["errors"], "rps": r["rps"],
                     "latency_ms": r["latency_ms"], "histogram": r["histogram"],
                     "elapsed_s": r["elapsed_s"]}
                    for i, (o, r) in enumerate(zip(outs, results, strict=True))],
    )
    intended = (config.schedule.intended_per_second(len(timeline.seconds()))
                if config.open_model else None)
    result = build_result(timeline=timeline, elapsed_s=elapsed, base=base, intended=intended)
    result.warnings = [f"generator {i}: {w}" for i, r in enumerate(results)
                       for w in r["warnings"]]
    return result


def _main() -> None:
    job = json.loads(sys.stdin.read())
    out = generate(job["config"], float(job["start"]))
    sys.stdout.write(json.dumps(out))


if __name__ == "__main__":
    _main()
