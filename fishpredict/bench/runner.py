"""Orchestration: start P worker processes, merge their ticks, build the result.

:func:`run_bench` is the library entry point. The parent process does no load
itself: it plans each worker's share (users, request budget, rate and phase),
starts them (fork where it is safe, spawn otherwise), gives them one common
start time, merges their once-a-second ticks into a :class:`Timeline`, shows
progress, and watches the clock: a worker that overruns its deadline is
terminated. Ctrl-C stops the run early and still reports what was measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import time
from datetime import UTC, datetime
from multiprocessing.connection import wait
from typing import Any

from fishpredict.bench.config import BenchConfig
from fishpredict.bench.engine import now_ns
from fishpredict.bench.payloads import Pool, build_pool
from fishpredict.bench.progress import Progress
from fishpredict.bench.result import BenchResult, build_result
from fishpredict.bench.stats import Timeline
from fishpredict.bench.worker import WorkerSpec, worker_main
from fishpredict.bench.wrk import run_wrk
from fishpredict.errors import ConfigError, FishpredictError

#: seconds to wait for the workers' "ready"
READY_TIMEOUT_S = 60.0
#: delay from "all ready" to the common start, so every worker starts on time
START_DELAY_NS = 50_000_000
#: a worker this share of a core busy or more was probably the bottleneck
BUSY_SHARE = 0.9


def run_bench(config: BenchConfig, pool: Pool | None = None) -> BenchResult:
    """Run one benchmark as ``config`` says and return what it measured.

    ``pool`` replaces the requests the config would build: any pre-built HTTP requests
    (for a protocol this package does not build requests for, e.g. a peer's).
    Raises :class:`~fishpredict.errors.ConfigError` for a bad config (including a
    non-loopback target without ``allow_remote``) and
    :class:`~fishpredict.errors.FishpredictError` when the run itself fails.
    """
    config = config.validated()
    if config.engine == "wrk":
        if pool is not None:
            raise ConfigError("the wrk engine builds its own requests: it takes no pool")
        return run_wrk(config)
    return _Run(config, pool if pool is not None else build_pool(config)).execute()


def plan_workers(config: BenchConfig, pool: Pool) -> list[WorkerSpec]:
    """Each process's share: users (interleaved, so ramp-up steps spread evenly),
    request budget, and in the open model its rate and phase."""
    P = config.processes
    budgets: list[int | None] = [None] * P
    if config.requests is not None:
        budgets = [config.requests // P + (1 if p < config.requests % P else 0) for p in range(P)]
    specs = []
    for p in range(P):
        if config.open_model:
            assert config.rate is not None
            n = config.users // P + (1 if p < config.users % P else 0)
            specs.append(
                WorkerSpec(
                    index=p,
                    config=config,
                    pool=pool,
                    users=tuple(range(n)),
                    budget=budgets[p],
                    rate=config.rate / P,
                    phase_ns=int(p * 1e9 / config.rate),
                )
            )
        else:
            users = tuple(range(p, config.users, P))
            specs.append(
                WorkerSpec(index=p, config=config, pool=pool, users=users, budget=budgets[p])
            )
    return specs


def _start_method(config: BenchConfig) -> str:
    if config.start_method:
        return config.start_method
    try:
        asyncio.get_running_loop()
        in_loop = True
    except RuntimeError:
        in_loop = False
    # a forked child would inherit a running loop's state; spawn is clean
    return "fork" if "fork" in mp.get_all_start_methods() and not in_loop else "spawn"


class _Run:
    def __init__(self, config: BenchConfig, pool: Pool) -> None:
        self.cfg = config
        self.pool = pool
        self.specs = plan_workers(config, pool)
        self.timeline = Timeline()
        self.progress = Progress(config.effective_duration_s, enabled=config.progress)
        self.summaries: dict[int, dict[str, Any]] = {}
        self.failures: list[str] = []
        self.interrupted = False
        self.ticks: dict[int, int] = {}
        self.shown = -1

    def execute(self) -> BenchResult:
        ctx: Any = mp.get_context(_start_method(self.cfg))
        procs: list[Any] = []
        pipes: dict[Any, int] = {}
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        cpu0 = _machine_cpu()
        try:
            for spec in self.specs:
                parent, child = ctx.Pipe()
                proc = ctx.Process(
                    target=worker_main,
                    args=(spec, child),
                    daemon=True,
                    name=f"fishpredict-bench-{spec.index}",
                )
                proc.start()
                child.close()
                procs.append(proc)
                pipes[parent] = spec.index
            info = self._await_ready(pipes)
            t0 = now_ns() + START_DELAY_NS
            for pipe in pipes:
                pipe.send(("go", t0))
            self._collect(pipes, t0)
        finally:
            for proc in procs:
                proc.join(timeout=2.0)
                if proc.is_alive():
                    proc.terminate()
                    proc.join(timeout=2.0)
            for pipe in pipes:
                pipe.close()
        self.progress.end()
        if self.failures and not self.summaries:
            raise FishpredictError("; ".join(self.failures))
        return self._result(t0, started_at, info, cpu0)

    def _await_ready(self, pipes: dict[Any, int]) -> dict[str, Any]:
        waiting = set(pipes)
        info: dict[str, Any] = {}
        deadline = time.monotonic() + READY_TIMEOUT_S
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FishpredictError("load workers did not start in time")
            ready: list[Any] = wait(list(waiting), timeout=left)
            for pipe in ready:
                try:
                    kind, data = pipe.recv()
                except (EOFError, OSError):
                    raise FishpredictError(f"load worker {pipes[pipe]} died at start") from None
                if kind == "error":
                    raise FishpredictError(str(data))
                info = data
                waiting.discard(pipe)
        return info

    def _collect(self, pipes: dict[Any, int], t0: int) -> None:
        live = set(pipes)
        hard_stop = t0 + int((self.cfg.effective_duration_s + self.cfg.timeout_s + 15.0) * 1e9)
        while live:
            try:
                ready = wait(list(live), timeout=0.25)
                for pipe in ready:
                    self._receive(pipe, pipes[pipe], live)
                if now_ns() > hard_stop:
                    self.failures.append("load workers overran their deadline; terminated")
                    return
            except KeyboardInterrupt:
                if self.interrupted:
                    raise
                self.interrupted = True
                self.progress.note("interrupted: stopping the run (Ctrl-C again to abort)")
                for pipe in live:
                    with contextlib.suppress(OSError):
                        pipe.send(("stop",))

    def _receive(self, pipe: Any, index: int, live: set[Any]) -> None:
        try:
            kind, data = pipe.recv()
        except (EOFError, OSError):
            live.discard(pipe)
            if index not in self.summaries:
                self.failures.append(f"load worker {index} ended without a report")
            return
        if kind == "tick":
            sec = self.timeline.add_tick(data)
            n = self.ticks[sec.second] = self.ticks.get(sec.second, 0) + 1
            in_run = sec.second < self.cfg.effective_duration_s  # not the drain after it
            if n >= len(live) and sec.second > self.shown and pipe in live and in_run:
                self.shown = sec.second
                self.progress.second(sec)
        elif kind == "done":
            self.summaries[index] = data
            live.discard(pipe)
        elif kind == "error":
            self.failures.append(str(data))
            live.discard(pipe)

    def _result(
        self, t0: int, started_at: str, info: dict[str, Any], cpu0: tuple[float, float] | None
    ) -> BenchResult:
        cfg = self.cfg
        done = list(self.summaries.values())
        elapsed = max((d["elapsed_ns"] for d in done), default=now_ns() - t0) / 1e9
        elapsed = max(elapsed, 1e-6)
        self.timeline.close(elapsed)
        cpu_s = sum(d["cpu_s"] for d in done)
        base: dict[str, Any] = dict(
            engine="native",
            model="open" if cfg.open_model else "closed",
            url=cfg.target.url,
            requests_desc=self.pool.description,
            users=cfg.users,
            processes=cfg.processes,
            rows_per_request=self.pool.rows_per_request,
            rate=cfg.rate,
            max_lag_ms=max((d["max_lag_ns"] for d in done), default=0) / 1e6,
            unsent=sum(d["unsent"] for d in done),
            generator_cpu_s=cpu_s,
            generator_cores=cpu_s / elapsed,
            machine_cpu_pct=_machine_busy(cpu0),
            loop=info.get("loop", ""),
            interrupted=self.interrupted,
            config=cfg.to_dict(),
            started_at=started_at,
        )
        result = build_result(timeline=self.timeline, elapsed_s=elapsed, base=base)
        result.warnings = self._warnings(result, done) + self.failures
        return result

    def _warnings(self, r: BenchResult, done: list[dict[str, Any]]) -> list[str]:
        cfg = self.cfg
        out = []
        for d in sorted(done, key=lambda d: d["index"]):
            share = d["cpu_s"] / max(d["elapsed_ns"] / 1e9, 1e-6)
            if share >= BUSY_SHARE:
                out.append(
                    f"load worker {d['index']} kept {share:.0%} of a CPU core busy: the "
                    "generator may have set the pace, not the server "
                    "(add --processes, or compare with --engine wrk)"
                )
        cores = (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else (os.cpu_count() or 1)
        )
        if r.generator_cores >= BUSY_SHARE * cores:
            out.append(f"the load generator used {r.generator_cores:.1f} of {cores} cores")
        if r.machine_cpu_pct is not None and r.machine_cpu_pct >= 95:
            out.append(
                f"the machine's CPUs were {r.machine_cpu_pct:.0f}% busy during the run: "
                "generator and server competed for them"
            )
        if cfg.open_model and cfg.rate:
            if r.sent and r.late > 0.01 * r.sent:
                out.append(
                    f"{r.late:,} of {r.sent:,} sends were late (> {cfg.late_ms:g} ms "
                    "after their intended time): too few --connections, or the "
                    "generator or server could not keep up"
                )
            if r.unsent:
                out.append(f"{r.unsent:,} intended sends never left (all connections busy)")
        if cfg.ramp_up_s and not cfg.open_model:
            last_start = cfg.user_start_s(cfg.users - 1)
            if last_start >= min(r.elapsed_s, cfg.effective_duration_s):
                out.append(
                    f"ramp-up did not finish: the last users were due at "
                    f"{last_start:g} s, the run ended at {r.elapsed_s:.1f} s"
                )
        return out


def _machine_cpu() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine so far, if psutil is there."""
    try:
        import psutil
    except ImportError:
        return None
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    total = sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)  # in user
    return total - idle, total


def _machine_busy(before: tuple[float, float] | None) -> float | None:
    after = _machine_cpu()
    if before is None or after is None or after[1] <= before[1]:
        return None
    return 100.0 * (after[0] - before[0]) / (after[1] - before[1])
