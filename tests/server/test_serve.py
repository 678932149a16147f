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
from fishpredict.perf.loads import worker_connections
from fishpredict.server.process import ServerProcess, start_server
from fishpredict.server.serve import HAVE_REUSEPORT, bind, listen

needs_reuseport = pytest.mark.skipif(not HAVE_REUSEPORT, reason="no SO_REUSEPORT here")


def kill_and_wait_for_replacement(srv: ServerProcess, worker: int) -> list[int]:
    """SIGKILL ``worker`` and wait until the supervisor has two workers again, not it."""
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = srv.workers()
        if len(now) == 2 and worker not in now:
            return now
        time.sleep(0.1)  # polling the supervisor, bounded by the deadline
    pytest.fail(f"no replacement worker: {srv.workers()}")


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
        before = srv.workers()
        assert len(before) == 2
        kill_and_wait_for_replacement(srv, before[0])
        with srv.client() as c:
            assert c.get("/healthz").status == 200
        assert srv.stop() == 0


def listening_sockets(pid: int, port: int) -> set[str]:
    """The identities (``socket:[inode]``) of the sockets ``pid`` listens on at ``port``."""
    import psutil

    proc = psutil.Process(pid)
    fds = {c.fd for c in proc.net_connections("tcp")
           if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
    return {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds}


@needs_reuseport
def test_each_worker_has_its_own_accept_queue_and_connections_spread() -> None:
    with start_server("socket", "--workers", "2") as srv:
        kids = srv.workers()
        queues = [listening_sockets(k, srv.port) for k in kids]
        assert all(len(q) == 1 for q in queues) and queues[0] != queues[1], queues
        clients = srv.fresh_clients(64)
        try:
            spread = worker_connections(srv.pid)
        finally:
            for c in clients:
                c.close()
        # the kernel hashes each connection to a queue: 64 + 0 has odds of 2**-63
        assert spread is not None and len(spread) == 2 and min(spread) > 0, spread
        assert srv.stop() == 0


def test_shared_socket_is_one_socket_for_every_worker() -> None:
    with start_server("socket", "--workers", "2", "--shared-socket") as srv:
        queues = [listening_sockets(k, srv.port) for k in srv.workers()]
        assert len(queues) == 2 and queues[0] == queues[1] and len(queues[0]) == 1, queues
        assert "one accept queue each" not in srv.stdout_lines[0]
        assert srv.stop() == 0


@needs_reuseport
def test_a_replaced_worker_takes_over_its_accept_queue() -> None:
    """Connections the kernel hashes to a dead worker's queue are answered by its
    replacement: none is stranded in a queue nobody accepts on."""
    with start_server("socket", "--workers", "2") as srv:
        before = srv.workers()
        queue = listening_sockets(before[0], srv.port)
        now = kill_and_wait_for_replacement(srv, before[0])
        new = next(k for k in now if k not in before)
        assert listening_sockets(new, srv.port) == queue
        for c in srv.fresh_clients(32):
            c.close()
        assert srv.stop() == 0


@needs_reuseport
def test_a_port_another_process_shares_is_refused() -> None:
    """A SO_REUSEPORT listener of the same user would let a group join it silently."""
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {port} on 127.0.0.1 is already in use"):
            listen("127.0.0.1", port, 2)


@needs_reuseport
def test_listen_gives_one_port_for_the_group() -> None:
    group = listen("127.0.0.1", 0, 3)
    try:
        ports = {s.getsockname()[1] for s in group}
        assert len(group) == 3 and len(ports) == 1 and 0 not in ports
    finally:
        for s in group:
            s.close()


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
