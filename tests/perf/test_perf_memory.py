"""Part e of perf scaling: reading a real server's memory (the suite itself runs in
tests/perf/test_perf_scaling.py)."""

from __future__ import annotations

import pytest

from fishpredict.errors import ConfigError
from fishpredict.perf.memory import memory_part, server_memory, touch
from fishpredict.server.process import start_server


def test_server_memory_names_the_supervisor_and_every_worker() -> None:
    with start_server("socket", "--workers", "2") as srv:
        touch(srv.url, rows=100)
        procs = server_memory(srv.pid)
        assert [p.role for p in procs] == ["supervisor", "worker", "worker"]
        assert procs[0].pid == srv.pid
        # the workers map the supervisor's pages: each one's own share is far below its RSS
        for p in procs[1:]:
            assert 0 < p.uss < p.pss < p.rss
    with start_server("socket") as srv:
        (one,) = server_memory(srv.pid)
        assert one.role == "server (1 process)" and 0 < one.uss <= one.pss <= one.rss


def test_a_dead_server_is_a_clear_error() -> None:
    with start_server("socket") as srv:
        pid = srv.pid
    with pytest.raises(ConfigError, match=f"cannot read the memory of server {pid}"):
        server_memory(pid)


def test_the_memory_part_needs_two_workers_or_more() -> None:
    class Never:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"the part ran ({name})")

    with pytest.raises(ConfigError, match="compares 1 worker with more"):
        memory_part(Never(), 1000, 1)  # type: ignore[arg-type]
