"""Worker process helpers and the plan that splits a run over processes."""

from __future__ import annotations

import resource

import pytest

from fishpredict.bench.config import BenchConfig
from fishpredict.bench.payloads import build_pool
from fishpredict.bench.runner import plan_workers
from fishpredict.bench.worker import new_loop, raise_fd_limit


def test_raise_fd_limit_reaches_what_is_needed() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip("hard limit too low to test raising")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        assert raise_fd_limit(2000) == 2064  # what is needed plus a margin
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 2064
        assert raise_fd_limit(100) == 2064  # never lowered
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_new_loop_prefers_uvloop() -> None:
    pytest.importorskip("uvloop")
    loop, name = new_loop(True)
    loop.close()
    assert name == "uvloop"
    loop, name = new_loop(False)
    loop.close()
    assert name == "asyncio"


def test_closed_plan_interleaves_users_and_splits_the_budget() -> None:
    cfg = BenchConfig("http://127.0.0.1:1", processes=3, threads=4, requests=10)
    specs = plan_workers(cfg, build_pool(cfg.with_(pool_size=4)))
    assert [s.users for s in specs] == [(0, 3, 6, 9), (1, 4, 7, 10), (2, 5, 8, 11)]
    assert [s.budget for s in specs] == [4, 3, 3]
    assert all(s.rate is None for s in specs)


def test_open_plan_splits_rate_connections_and_phases() -> None:
    cfg = BenchConfig("http://127.0.0.1:1", processes=2, rate=1000.0, connections=5)
    specs = plan_workers(cfg, build_pool(cfg.with_(pool_size=4)))
    assert [len(s.users) for s in specs] == [3, 2]
    assert [s.rate for s in specs] == [500.0, 500.0]
    # process 1 sends half-way between process 0's sends: 1 ms apart at 1000/s in total
    assert [s.phase_ns for s in specs] == [0, 1_000_000]
    assert all(s.budget is None for s in specs)
