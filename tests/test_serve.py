"""The process model: bind, workers, signals, supervision (real processes)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from fishpredict.cli import main
from fishpredict.errors import ConfigError
from fishpredict.serve import bind
from fishpredict.testing.server import start_server


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
        return [int(p) for p in f.read().split()]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_right_after_the_announce_line_drains_cleanly(workers: str) -> None:
    """No start-up window where SIGTERM is fatal, in the supervisor or in a fresh worker."""
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-m", "fishpredict", "serve", "--port", "0", "--workers", workers,
             "--log-level", "warning"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            assert b"on http://127.0.0.1:" in proc.stdout.readline()
            os.kill(proc.pid, signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_dead_worker_is_replaced() -> None:
    with start_server("socket", "--workers", "2") as srv:
        before = children(srv.pid)
        assert len(before) == 2
        os.kill(before[0], signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = children(srv.pid)
            if len(now) == 2 and before[0] not in now:
                break
            time.sleep(0.1)  # polling the supervisor, bounded by the deadline
        else:
            pytest.fail(f"no replacement worker: {children(srv.pid)}")
        with srv.client() as c:
            assert c.get("/healthz").status == 200
        assert srv.stop() == 0


def test_port_in_use_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {port} on 127.0.0.1 is already in use"):
            bind("127.0.0.1", port)
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert "already in use" in err and len(err.strip().splitlines()) == 1


def test_unknown_host_is_one_clear_line() -> None:
    with pytest.raises(ConfigError, match="cannot resolve host"):
        bind("no-such-host.invalid", 0)
