"""Accepting every queued connection per loop turn (fishpredict.server.accept), on real sockets."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Iterator

import pytest

from fishpredict.bench import BenchConfig, run_bench
from fishpredict.server.accept import RETRY_AFTER_EMFILE_S, AcceptingServer
from fishpredict.server.process import start_server
from fishpredict.server.serve import new_event_loop

uvloop = pytest.importorskip("uvloop")


class Counting(asyncio.Protocol):
    made = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        Counting.made += 1


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = new_event_loop()
    try:
        yield lp
    finally:
        lp.close()


def listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    return sock


def turns(loop: asyncio.AbstractEventLoop, n: int) -> None:
    for _ in range(n):
        loop.run_until_complete(asyncio.sleep(0))


def test_one_wake_up_accepts_the_whole_queue(loop: asyncio.AbstractEventLoop) -> None:
    """300 clients queued in the kernel are all connected after a few loop turns (a
    uvloop server since libuv 1.45 takes one per turn)."""
    sock = listening()
    port = sock.getsockname()[1]
    server = loop.run_until_complete(loop.create_server(Counting, sock=sock, backlog=4096))
    assert isinstance(server, AcceptingServer) and server.is_serving()
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
    try:
        Counting.made = 0
        turns(loop, 5)
        assert Counting.made == 300
    finally:
        for c in clients:
            c.close()
        server.close()
        loop.run_until_complete(server.wait_closed())
    assert not server.is_serving() and server.sockets == ()


def test_close_stops_accepting(loop: asyncio.AbstractEventLoop) -> None:
    sock = listening()
    port = sock.getsockname()[1]
    server = loop.run_until_complete(loop.create_server(Counting, sock=sock))
    server.close()
    turns(loop, 2)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_host_and_port_servers_are_uvloops_own(loop: asyncio.AbstractEventLoop) -> None:
    server = loop.run_until_complete(loop.create_server(Counting, "127.0.0.1", 0))
    try:
        assert not isinstance(server, AcceptingServer)
    finally:
        server.close()


class _Exhausted:
    """A listening socket whose accept() fails as a process out of descriptors does."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real
        self.attempts = 0

    def fileno(self) -> int:
        return self.real.fileno()

    def setblocking(self, flag: bool) -> None:
        self.real.setblocking(flag)

    def accept(self) -> tuple[socket.socket, object]:
        self.attempts += 1
        raise OSError(errno.EMFILE, "Too many open files")

    def close(self) -> None:
        self.real.close()


def test_out_of_descriptors_pauses_accepting_then_resumes(
    loop: asyncio.AbstractEventLoop,
) -> None:
    real = listening()
    exhausted = _Exhausted(real)
    server = AcceptingServer(loop, exhausted, Counting)  # type: ignore[arg-type]
    server._start()
    client = socket.create_connection(real.getsockname())
    try:
        turns(loop, 20)
        # one failed accept, then paused: not spinning on a readable socket
        assert exhausted.attempts == 1 and not server.is_serving()
        loop.run_until_complete(asyncio.sleep(RETRY_AFTER_EMFILE_S + 0.3))
        assert exhausted.attempts == 2  # tried again after the pause, and paused again
    finally:
        client.close()
        server.close()


def test_a_thousand_users_at_once_get_answers_without_timeouts() -> None:
    """The burst that stalled uvloop's one-accept-per-turn: 1,000 keep-alive users
    connecting together to one busy worker, every request answered within 2 s."""
    with start_server("socket") as srv:
        result = run_bench(BenchConfig(srv.url, processes=2, threads=500, duration_s=3.0,
                                       timeout_s=2.0, check_answers=False))
        assert result.error_count == 0, result.errors
        assert result.successes > 1000
