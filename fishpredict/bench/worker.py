"""One load-generating process: its own event loop, its share of the users.

The parent (``runner``) starts P of these. Each talks to it over one pipe:

* worker -> parent: ``("ready", info)``, then one ``("tick", tick)`` per second
  (latencies folded into a sparse histogram, error counts, sends, active users,
  CPU seconds), then ``("done", info)``; or ``("error", message)``.
* parent -> worker: ``("go", t0_ns)`` with the shared start time (the monotonic
  clock is system-wide on Linux), or ``("stop",)`` to end early.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fishpredict.bench.config import BenchConfig
from fishpredict.bench.engine import (
    CheckingClosedUser,
    ClosedUser,
    Connection,
    Driver,
    Recorder,
    now_ns,
)
from fishpredict.bench.openloop import CheckingOpenConnection, OpenConnection, OpenScheduler
from fishpredict.bench.payloads import Pool
from fishpredict.bench.stats import LatencyHistogram

#: seconds a worker waits for its pre-opened connections (open model) before "ready"
PRECONNECT_WAIT_S = 2.0
#: how often raw latencies are folded into the histogram (short, frequent pauses
#: instead of one long one per second that would delay the answers waiting)
FOLD_EVERY_S = 0.05


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker process does."""

    index: int
    config: BenchConfig
    pool: Pool
    #: closed model: the global indices of this process's virtual users;
    #: open model: ``range(connections of this process)``
    users: tuple[int, ...]
    #: this process's share of ``config.requests`` (None: unbounded by count)
    budget: int | None
    #: this process's share of the rate (open model)
    rate: float | None = None
    #: offset of this process's intended send times, so processes interleave
    phase_ns: int = 0


def raise_fd_limit(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards the hard limit when ``needed`` is above it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + 64
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
    return int(soft)


def new_loop(use_uvloop: bool) -> tuple[asyncio.AbstractEventLoop, str]:
    """A fresh event loop: uvloop when asked for and installed, else asyncio's."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop(), "uvloop"
    return asyncio.new_event_loop(), "asyncio"


def worker_main(spec: WorkerSpec, pipe: Any) -> None:
    """Process entry point: run the worker's share and report over ``pipe``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    raise_fd_limit(len(spec.users) + 16)
    loop, loop_name = new_loop(spec.config.use_uvloop)
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(_Worker(spec, pipe, loop, loop_name).run())
    except BaseException as exc:  # report, never leave the parent waiting
        with contextlib.suppress(OSError):
            pipe.send(("error", f"worker {spec.index}: {type(exc).__name__}: {exc}"))
    finally:
        with contextlib.suppress(Exception):
            loop.close()
        pipe.close()


class _Worker:
    def __init__(
        self, spec: WorkerSpec, pipe: Any, loop: asyncio.AbstractEventLoop, loop_name: str
    ) -> None:
        self.spec = spec
        self.cfg = spec.config
        self.pipe = pipe
        self.loop = loop
        self.loop_name = loop_name
        self.rec = Recorder()
        target = self.cfg.target
        self.driver = Driver(
            loop, target.host, target.port, spec.pool, self.rec, self.cfg.timeout_s, spec.budget
        )
        self.inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.second = 0
        self.t0 = 0
        self.cpu_mark = time.process_time()
        self.cpu_start = self.cpu_mark
        self.scheduler: OpenScheduler | None = None
        self.stopped_at = 0  # when a "stop" message arrived, if one did
        self.hist = LatencyHistogram()  # this second's latencies, folded in every 50 ms
        #: what is due on a whole second (ramp-up starts, the deadline) runs right after
        #: that second's tick, so each tick counts the users of the second that just ended
        self.after_tick: dict[int, list[Callable[[], None]]] = {}
        self.handles: list[asyncio.TimerHandle] = []  # user starts, the deadline
        self.timers: dict[str, asyncio.TimerHandle] = {}  # the ticker and the sweeper

    def _on_pipe(self) -> None:
        try:
            msg = self.pipe.recv()
        except (EOFError, OSError):
            msg = ("stop",)  # parent gone: stop
            self.loop.remove_reader(self.pipe.fileno())
        self.inbox.put_nowait(msg)
        if msg[0] == "stop" and self.t0:
            self.stopped_at = now_ns()
            if self.scheduler is not None:
                self.scheduler.close()
            self.driver.stop()

    async def run(self) -> None:
        self.loop.add_reader(self.pipe.fileno(), self._on_pipe)
        users = self._make_users()
        if self.scheduler is not None:  # open model: connect before the clock starts
            for conn in users:
                conn.start()
            await self._wait_connected(len(users))
        self.pipe.send(("ready", {"pid": os.getpid(), "loop": self.loop_name}))
        msg = await self.inbox.get()
        if msg[0] != "go":
            return
        self.t0 = int(msg[1])
        await asyncio.sleep(max(0.0, (self.t0 - now_ns()) / 1e9))
        self._start(users)
        await self._wait_finished()
        end = now_ns()
        for h in [*self.handles, *self.timers.values()]:
            h.cancel()
        self._tick(final=True)
        self.pipe.send(("done", self._summary(end)))

    def _make_users(self) -> list[Connection]:
        pool = self.spec.pool
        checking = pool.checks_answers
        n_all = max(1, self.cfg.users)
        stride = max(1, len(pool) // n_all)
        if self.cfg.open_model:
            assert self.spec.rate is not None
            self.scheduler = OpenScheduler(
                self.driver, self.spec.rate, self.spec.phase_ns, self.cfg.late_ms
            )
            cls: type[Connection] = CheckingOpenConnection if checking else OpenConnection
            conns: list[Connection] = []
            for u in self.spec.users:
                c = cls(self.driver, first=(u * self.cfg.processes + self.spec.index) * stride)
                c.scheduler = self.scheduler  # type: ignore[attr-defined]
                conns.append(c)
            return conns
        cls = CheckingClosedUser if checking else ClosedUser
        return [cls(self.driver, first=u * stride) for u in self.spec.users]

    async def _wait_connected(self, n: int) -> None:
        deadline = now_ns() + int(min(PRECONNECT_WAIT_S, self.cfg.timeout_s) * 1e9)
        while now_ns() < deadline:
            if self.driver.connects + self.rec.errors["connect"] >= n:
                return
            await asyncio.sleep(0.005)

    def _start(self, users: list[Connection]) -> None:
        loop, cfg = self.loop, self.cfg
        if self.scheduler is not None:
            self.scheduler.begin(self.t0)
        else:
            for conn, u in zip(users, self.spec.users, strict=True):
                at = cfg.user_start_s(u)
                if at <= 0:
                    conn.start()
                elif at == int(at):  # on a second boundary: right after that second's tick
                    self.after_tick.setdefault(int(at), []).append(conn.start)
                else:
                    self.handles.append(loop.call_later(self._until(at), conn.start))
        if not users:
            self.driver.stop()
        end = cfg.effective_duration_s
        if end == int(end):  # the last whole second's tick still counts its users
            self.after_tick.setdefault(int(end), []).append(self._deadline)
        else:
            self.handles.append(loop.call_later(self._until(end), self._deadline))
        self._arm_tick()
        self._arm_sweep()
        self._arm_fold()

    def _until(self, at_s: float) -> float:
        """Seconds from now until ``at_s`` after the common start."""
        return max(0.0, (self.t0 + int(at_s * 1e9) - now_ns()) / 1e9)

    def _deadline(self) -> None:
        if self.scheduler is not None:
            # what was due by the deadline still goes out; nothing due after it
            self.scheduler.pump(horizon=self.t0 + int(self.cfg.effective_duration_s * 1e9))
            self.scheduler.close()
        self.driver.stop()

    async def _wait_finished(self) -> None:
        # every in-flight request ends within the timeout (the sweeper aborts it);
        # the extra margin is a last guard against a bug leaving the loop waiting
        limit = self.cfg.effective_duration_s + self.cfg.timeout_s + 5.0
        try:
            await asyncio.wait_for(self.driver.finished.wait(), limit)
        except TimeoutError:
            for conn in list(self.driver.conns):
                conn.abort()

    def _arm_tick(self) -> None:
        self.timers["tick"] = self.loop.call_later(self._until(self.second + 1), self._tick)

    def _arm_sweep(self) -> None:
        every = min(0.1, self.cfg.timeout_s / 4)

        def sweep() -> None:
            self.driver.sweep_timeouts()
            self.timers["sweep"] = self.loop.call_later(every, sweep)

        self.timers["sweep"] = self.loop.call_later(every, sweep)

    def _arm_fold(self) -> None:
        def fold() -> None:
            self._fold()
            self.timers["fold"] = self.loop.call_later(FOLD_EVERY_S, fold)

        self.timers["fold"] = self.loop.call_later(FOLD_EVERY_S, fold)

    def _fold(self) -> None:
        """Move the raw latencies into this second's histogram (a short pause, often)."""
        lat = self.rec.take_latencies()
        if lat:
            self.hist.record(np.frombuffer(lat, dtype=np.uint32))

    def _tick(self, final: bool = False) -> None:
        self._fold()
        hist, self.hist = self.hist, LatencyHistogram()
        data = self.rec.take()
        cpu = time.process_time()
        data.update(
            second=self.second,
            hist=hist.to_sparse(),
            active=self.driver.active,
            cpu_s=cpu - self.cpu_mark,
        )
        self.cpu_mark = cpu
        self.pipe.send(("tick", data))
        if not final:
            self.second += 1
            for action in self.after_tick.pop(self.second, ()):
                action()
            self._arm_tick()

    def _summary(self, end: int) -> dict[str, Any]:
        unsent = 0
        if self.scheduler is not None:
            # the deadline's last pump may run a hair early (millisecond timers): count
            # what was due by the time it checked, not by the nominal deadline
            stop_at = min(end, self.t0 + int(self.cfg.effective_duration_s * 1e9))
            stop_at = min(stop_at, max(self.scheduler.checked_until, self.stopped_at))
            unsent = self.scheduler.unsent(stop_at, self.spec.budget)
        return {
            "pid": os.getpid(),
            "index": self.spec.index,
            "elapsed_ns": end - self.t0,
            "cpu_s": time.process_time() - self.cpu_start,
            "connects": self.driver.connects,
            "unsent": unsent,
            "max_lag_ns": self.rec.max_lag_ns,
            "loop": self.loop_name,
        }
