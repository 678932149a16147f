"""The guard suite: the limits every backend sets on request heads and connections.

The limits, their answers and the linger are the core's
(:mod:`fishpredict.server.flow`: ``MAX_HEAD_BYTES``, ``MAX_HEADERS``, ``LINGER_SECONDS``);
the socket backend keeps them itself, for uvicorn and aiohttp a guard adds them
(``backends/uvicorn_guard.py``, ``backends/aiohttp_guard.py``), a plugin keeps
them with the same helpers (docs/plugins.md). Every backend must answer alike,
in the contract's words (docs/reliability.md):

- a head over :data:`MAX_HEAD_BYTES` or :data:`MAX_HEADERS` fields (trailers
  count as fields): **431**, exact at the limit however the head is split into
  reads, and a body in the same read as its head is not head;
- a head not complete within ``header_timeout``: **408**, also after a request
  answered on the same connection; a connection that sends nothing is closed;
- bytes that are not HTTP: the contract's JSON **400**, nothing echoed, no
  traceback and at most one log line;
- past ``max_connections``: **503** + ``Retry-After``, then served again;
- each refusal with ``Connection: close`` and no ``Server`` header, counted in
  ``/metrics``, then a linger: a client still sending (a whole refused body)
  reads the answer and the connection ends within ``LINGER_SECONDS``.

Subclass it and name the backend::

    from fishpredict.testing.guards import GuardSuite

    class TestMyGuard(GuardSuite):
        backend = "mine"

The suite starts one server per class with :data:`SETTINGS` (through
:func:`fishpredict.soak.faults.configured_server`, as the timeouts have no flag).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import pytest

from fishpredict.server.flow import LINGER_SECONDS, MAX_HEAD_BYTES, MAX_HEADERS
from fishpredict.server.process import ServerProcess
from fishpredict.soak.faults import RawReply, configured_server, exchange, healthy

#: the server the suite starts: short timeouts, so the deadlines show within seconds
SETTINGS: dict[str, Any] = {
    "header_timeout": 1.0,
    "keepalive_timeout": 2.0,
    "request_timeout": 1.0,
    "max_connections": 6,
    "max_body_bytes": 256 * 1024,
}
#: how late past a timeout a cut-off may come (a sweeper's tick, a loaded 2-core machine)
MARGIN = 1.0
#: bytes that are not HTTP, with a marker that must be neither echoed nor logged
JUNK = b"\x16\x03\x01\x00<script>secret-junk</script>\r\n\r\n"


def head(*fields: bytes, target: bytes = b"/healthz") -> bytes:
    """A GET head with ``fields`` (plus Host)."""
    return b"GET %s HTTP/1.1\r\nHost: fish\r\n%s\r\n" % (
        target,
        b"".join(f + b"\r\n" for f in fields),
    )


def fields(n: int, size: int = 1) -> list[bytes]:
    """``n`` header fields with values of ``size`` bytes."""
    return [b"X-F%d: %s" % (i, b"v" * size) for i in range(n)]


def ask(
    server: ServerProcess, chunks: bytes | Sequence[bytes], responses: int = 1, **kw: Any
) -> RawReply:
    """Send ``chunks`` on a new connection and read ``responses`` answers (or a close)."""
    return exchange(server.host, server.port, chunks, timeout=5.0, responses=responses, **kw)


def assert_refused(reply: RawReply, status: int, code: str, index: int = 0) -> None:
    """``reply``'s answer number ``index`` is the contract's refusal: ``status``,
    JSON error ``code``, HTTP/1.1, ``Connection: close``, no ``Server`` header."""
    assert len(reply.statuses) > index and reply.statuses[index] == status, (
        status,
        reply.statuses,
        reply.raw[:300],
    )
    assert reply.raw.startswith(b"HTTP/1.1 "), reply.raw[:100]
    response = reply.responses[index]
    assert response.header(b"content-type") == b"application/json", response.headers
    assert response.header(b"connection") == b"close", response.headers
    assert response.header(b"server") is None, response.headers
    assert json.loads(response.body)["error"]["code"] == code, response.body


def wait_healthy(server: ServerProcess, seconds: float = 5.0) -> bool:
    """Poll ``/healthz`` on new connections until 200 (bounded)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if healthy(server.host, server.port, timeout=2.0):
            return True
        time.sleep(0.05)  # poll interval of a bounded wait
    return False


class GuardSuite:
    """Guard checks for one backend; set ``backend`` in a subclass."""

    backend: ClassVar[str] = ""
    #: log lines the server writes for one request it cannot parse (0 or 1; never a traceback)
    junk_log_lines: ClassVar[int] = 0
    #: a refusal behind pipelined requests is answered after their answers (True), or
    #: the last of those answers closes the connection instead (False: the uvicorn guard)
    answers_refusal_after_pipelined: ClassVar[bool] = True
    #: words of the backend's own error pages that must never reach a client
    foreign_words: ClassVar[tuple[bytes, ...]] = ()

    @pytest.fixture(scope="class")
    @classmethod
    def server(cls) -> Iterator[ServerProcess]:
        if not cls.backend:
            pytest.fail(f"{cls.__name__} must set `backend = <name>`")
        proc = configured_server(cls.backend, **SETTINGS)
        try:
            yield proc
        finally:
            proc.close()

    # -- head size and fields --

    def test_header_field_limit_is_exact(self, server: ServerProcess) -> None:
        assert ask(server, head(*fields(MAX_HEADERS - 1))).statuses == [200]  # + Host = the limit
        assert_refused(ask(server, head(*fields(MAX_HEADERS))), 431, "headers_too_large")

    @pytest.mark.parametrize("split", [False, True], ids=["one_read", "many_reads"])
    def test_head_size_limit(self, server: ServerProcess, split: bool) -> None:
        """Under the limit: served; over it: 431, whether the head comes in one read
        (counted when it completes) or trickles in (counted as it arrives)."""
        small = head(*fields(8, size=(MAX_HEAD_BYTES - 300) // 8))
        big = head(*fields(8, size=(MAX_HEAD_BYTES + 100) // 8))
        assert len(small) < MAX_HEAD_BYTES < len(big)
        for raw, status in ((small, 200), (big, 431)):
            chunks = [raw[i : i + 4096] for i in range(0, len(raw), 4096)] if split else raw
            reply = ask(server, chunks, gap=0.05 if split else 0.0)
            assert reply.statuses == [status], (split, len(raw), reply.raw[:200])

    def test_one_field_counts_against_the_whole_head(self, server: ServerProcess) -> None:
        """One field of nearly the head limit passes; one over it gets 431."""
        assert ask(server, head(*fields(1, size=MAX_HEAD_BYTES - 300))).statuses == [200]
        reply = ask(server, head(*fields(1, size=MAX_HEAD_BYTES + 1)))
        assert_refused(reply, 431, "headers_too_large")

    def test_a_body_in_the_same_read_is_not_head(self, server: ServerProcess) -> None:
        """A head near the limit and a body of 4x the limit, sent together: served."""
        body = json.dumps({"instances": [[30.0, 600.0]] * 6000}).encode()
        assert len(body) > 4 * MAX_HEAD_BYTES
        raw = (
            b"POST /predict HTTP/1.1\r\nHost: fish\r\nContent-Type: application/json\r\n"
            b"X-Pad: %s\r\nContent-Length: %d\r\n\r\n%s"
            % (b"p" * (MAX_HEAD_BYTES - 400), len(body), body)
        )
        reply = ask(server, raw)
        assert reply.statuses == [200], reply.raw[:200]
        assert len(json.loads(reply.responses[0].body)["predictions"]) == 6000

    def test_trailer_fields_count(self, server: ServerProcess) -> None:
        """Chunked trailers count as header fields: a flood of them is refused mid-body."""
        body = b'{"instances":[[30,600]]}'
        trailers = b"".join(f + b"\r\n" for f in fields(MAX_HEADERS + 10))
        raw = (
            b"POST /predict HTTP/1.1\r\nHost: fish\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n%s\r\n"
            % (len(body), body, trailers)
        )
        assert_refused(ask(server, raw), 431, "headers_too_large")
        assert healthy(server.host, server.port)

    def test_pipelined_requests_are_answered_before_the_431(self, server: ServerProcess) -> None:
        big = head(*fields(8, size=(MAX_HEAD_BYTES + 100) // 8))
        reply = ask(server, head() * 2 + big, responses=3)
        assert reply.statuses[:2] == [200, 200], reply.raw[:300]
        if self.answers_refusal_after_pipelined:
            assert_refused(reply, 431, "headers_too_large", index=2)
        else:
            assert reply.statuses == [200, 200], reply.statuses
            assert reply.closed or reply.reset, reply.raw[-300:]

    # -- head time --

    def test_slow_head_gets_408_and_silent_connection_is_closed(
        self, server: ServerProcess
    ) -> None:
        timeout = SETTINGS["header_timeout"]
        slow = ask(server, [b"GET /healthz HTTP/1.1\r\n", b"X-A: 1\r\n"], gap=0.3)
        assert_refused(slow, 408, "request_timeout")
        assert slow.elapsed <= timeout + MARGIN, slow.elapsed
        start = time.monotonic()
        with socket.create_connection((server.host, server.port), timeout=5) as sock:
            assert sock.recv(1) == b""  # closed, without an answer: there was no request
        assert time.monotonic() - start <= timeout + MARGIN

    @pytest.mark.parametrize("after", ["next_read", "same_read", "same_read_as_a_chunked_body"])
    def test_a_stalled_head_after_an_answer_gets_408(
        self, server: ServerProcess, after: str
    ) -> None:
        """A request answered, then a head that stops half way (sent in its own read,
        or in the same read as the end of the request before it): 408 at
        ``header_timeout``, not a silent close at ``keepalive_timeout``."""
        rest = b"GET /healthz HTTP/1.1\r\nHost: fish\r\n"
        body = b'{"instances":[[30,600]]}'
        chunked = (
            b"POST /predict HTTP/1.1\r\nHost: fish\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(body), body)
        )
        chunks = {
            "next_read": [head(), rest],
            "same_read": [head() + rest],
            "same_read_as_a_chunked_body": [chunked, b"0\r\n\r\n" + rest],
        }[after]
        reply = ask(server, chunks, responses=2, gap=0.2)
        assert reply.statuses[:1] == [200], reply.raw[:300]
        assert_refused(reply, 408, "request_timeout", index=1)
        assert reply.elapsed <= SETTINGS["header_timeout"] + 0.2 + MARGIN, reply.elapsed

    # -- what is not HTTP --

    def test_junk_gets_the_contracts_400_and_at_most_one_log_line(
        self, server: ServerProcess
    ) -> None:
        before = server.stderr_text()
        reply = ask(server, JUNK)
        assert_refused(reply, 400, "bad_request")
        assert b"secret-junk" not in reply.raw
        for word in self.foreign_words:
            assert word not in reply.raw, word
        deadline = time.monotonic() + 2
        while server.stderr_text().count("\n") < before.count("\n") + self.junk_log_lines:
            assert time.monotonic() < deadline, "the refusal was not logged"
            time.sleep(0.02)  # poll interval of a bounded wait for the log line
        logged = server.stderr_text()[len(before) :]
        assert logged.count("\n") == self.junk_log_lines, logged
        assert "Traceback" not in logged and "secret-junk" not in logged, logged

    # -- connections --

    def test_connections_past_the_limit_get_503_then_are_served(
        self, server: ServerProcess
    ) -> None:
        limit = SETTINGS["max_connections"]
        held = [
            socket.create_connection((server.host, server.port), timeout=5) for _ in range(limit)
        ]
        try:
            for sock in held:  # each one accepted and served: the limit is reached
                sock.sendall(head())
                assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            reply = ask(server, head())
            assert_refused(reply, 503, "too_many_connections")
            assert reply.responses[0].header(b"retry-after") == b"1"
        finally:
            for sock in held:
                sock.close()
        assert wait_healthy(server), "not served again after the connections closed"

    def test_a_refused_client_still_sending_reads_the_answer(self, server: ServerProcess) -> None:
        """A head over the limit announcing a body, and the body sent on after the
        refusal: the 431 arrives intact (no reset destroys it) and the server ends
        its side right after it."""
        over = head(*fields(8, size=(MAX_HEAD_BYTES + 100) // 8), b"Content-Length: 400000")
        post = over.replace(b"GET", b"POST", 1)
        reply = exchange(
            server.host, server.port, [post] + [b"x" * 65536] * 4, timeout=10.0, gap=0.05
        )
        assert_refused(reply, 431, "headers_too_large")
        assert reply.closed or reply.reset, reply.raw[-200:]
        assert reply.elapsed <= 0.2 + MARGIN, reply.elapsed

    def test_a_client_sending_a_refused_body_whole_reads_the_413(
        self, server: ServerProcess
    ) -> None:
        """A body 16 times ``max_body_bytes``, sent whole before reading (as urllib and
        requests do): the early 413 arrives intact, because the server reads and drops
        the rest of the body (the linger) instead of resetting the connection."""
        size = 16 * SETTINGS["max_body_bytes"]
        post = (
            b"POST /predict HTTP/1.1\r\nHost: fish\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % size
        )
        reply = exchange(server.host, server.port, [post, b" " * size], timeout=10.0)
        assert not reply.reset, reply.raw[:200]
        assert_refused(reply, 413, "payload_too_large")

    def test_a_lingering_connection_is_aborted_in_time(self, server: ServerProcess) -> None:
        """After a refusal, a client that neither closes nor stops sending is cut
        off within ``LINGER_SECONDS``."""
        with socket.create_connection((server.host, server.port), timeout=5) as sock:
            sock.sendall(JUNK)
            got = b""
            while not got.endswith(b"}"):
                chunk = sock.recv(65536)
                assert chunk, got
                got += chunk
            assert got.startswith(b"HTTP/1.1 400"), got[:200]
            start = time.monotonic()
            with pytest.raises(OSError):  # the server's reset, once it aborts
                while time.monotonic() - start < LINGER_SECONDS + 2 * MARGIN:
                    sock.sendall(b"x" * 64)
                    time.sleep(0.05)  # the pace of a client still sending is what is tested
            took = time.monotonic() - start
        assert LINGER_SECONDS - MARGIN <= took <= LINGER_SECONDS + MARGIN, took

    def test_refusals_are_counted_in_metrics(self, server: ServerProcess) -> None:
        assert ask(server, head(*fields(MAX_HEADERS + 1))).statuses == [431]
        metrics = ask(server, head(target=b"/metrics")).responses[0].body
        assert b'fishpredict_rejected_total{reason="headers_too_large"}' in metrics
