"""What backends/aiohttp_guard.py adds to aiohttp, against a real aiohttp server.

tests/test_limits.py and tests/test_hostile.py check the limits as a client sees
them on every backend; this module checks what is specific to the guard: the
aiohttp methods it hooks still exist, its limits are the socket backend's, a
request aiohttp cannot parse gets the contract's JSON (431 for an oversized
head) with no banner, no echo and one log line, the connection limit, a short
linger after a refused body, and ``Expect: 100-continue`` without aiohttp's router.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("aiohttp")

from aiohttp.http_exceptions import BadHttpMessage, BadStatusLine, LineTooLong
from fishpredict_backends import aiohttp_guard

from fishpredict.errors import BackendUnavailableError
from fishpredict.faults import RawReply, configured_server, exchange, healthy
from fishpredict.testing import ServerProcess

MAX_CONNECTIONS = 6
REQUEST_TIMEOUT = 1.0
MARGIN = 1.0
JUNK = b"\x16\x03\x01\x00<script>secret-junk</script>\r\n\r\n"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    proc = configured_server(
        "aiohttp",
        keepalive_timeout=3.0,
        request_timeout=REQUEST_TIMEOUT,
        max_connections=MAX_CONNECTIONS,
        max_body_bytes=4096,
    )
    try:
        yield proc
    finally:
        proc.close()


def head(*fields: bytes) -> bytes:
    return b"GET /healthz HTTP/1.1\r\nHost: fish\r\n%s\r\n" % b"".join(f + b"\r\n" for f in fields)


def fields(n: int, size: int = 1) -> list[bytes]:
    return [b"X-F%d: %s" % (i, b"v" * size) for i in range(n)]


def ask(server: ServerProcess, raw: bytes, **kw: object) -> RawReply:
    return exchange(server.host, server.port, raw, timeout=5.0, responses=1, **kw)  # type: ignore[arg-type]


def assert_refused(reply: RawReply, status: int, code: str) -> None:
    assert reply.statuses == [status], reply.raw[:300]
    response = reply.responses[0]
    assert reply.raw.startswith(b"HTTP/1.1 ")
    assert response.header(b"content-type") == b"application/json"
    assert response.header(b"connection") == b"close"
    assert response.header(b"server") is None
    assert json.loads(response.body)["error"]["code"] == code


def test_every_hooked_method_is_still_aiohttps() -> None:
    aiohttp_guard.check_aiohttp()


def test_a_moved_hook_refuses_to_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    hooks = dict(aiohttp_guard.HOOKS)
    hooks[BadHttpMessage] = ("gone_method",)
    monkeypatch.setattr(aiohttp_guard, "HOOKS", hooks)
    with pytest.raises(BackendUnavailableError, match="gone_method"):
        aiohttp_guard.check_aiohttp()


def test_limits_are_the_socket_backends() -> None:
    pytest.importorskip("httptools")
    from fishpredict_backends import socket_connection, socket_server

    assert aiohttp_guard.MAX_HEADERS == socket_server.MAX_HEADERS
    assert aiohttp_guard.MAX_FIELD_BYTES <= socket_server.MAX_HEAD_BYTES
    assert aiohttp_guard.LINGER_SECONDS == socket_connection.LINGER_SECONDS
    assert aiohttp_guard.LINGER_BYTES == socket_connection.LINGER_BYTES


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (LineTooLong(b"x" * 100, 8190), 431),
        (BadHttpMessage("Too many headers received"), 431),
        (BadStatusLine("secret-junk"), 400),
        (BadHttpMessage("Duplicate 'Content-Length' header found."), 400),
        (None, 400),
    ],
)
def test_parse_errors_map_to_431_or_400_without_echo(
    exc: BaseException | None, status: int
) -> None:
    response, reason = aiohttp_guard.head_refusal(exc)
    assert response.status == status
    assert reason == ("headers_too_large" if status == 431 else "bad_request")
    assert b"secret" not in response.body and b"xxxx" not in response.body


def test_junk_gets_one_json_400_and_one_log_line(server: ServerProcess) -> None:
    before = server.stderr_text()
    reply = ask(server, JUNK)
    assert_refused(reply, 400, "bad_request")
    assert b"secret-junk" not in reply.raw
    logged = server.stderr_text()[len(before) :]
    assert logged.count("\n") == 1 and " WARNING " in logged, logged
    assert "Traceback" not in logged and "secret-junk" not in logged


def test_header_limits(server: ServerProcess) -> None:
    limit = aiohttp_guard.MAX_HEADERS
    assert ask(server, head(*fields(limit - 1))).statuses == [200]  # + Host = the limit
    assert_refused(ask(server, head(*fields(limit))), 431, "headers_too_large")
    line = aiohttp_guard.MAX_FIELD_BYTES
    assert ask(server, head(*fields(1, size=line - 100))).statuses == [200]
    assert_refused(ask(server, head(*fields(1, size=line + 1))), 431, "headers_too_large")


def test_connections_past_the_limit_get_503_then_are_served(server: ServerProcess) -> None:
    held = [
        socket.create_connection((server.host, server.port), timeout=5)
        for _ in range(MAX_CONNECTIONS)
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
    deadline = time.monotonic() + 5
    while not healthy(server.host, server.port) and time.monotonic() < deadline:
        time.sleep(0.05)  # poll interval of a bounded wait
    assert healthy(server.host, server.port)


def test_a_stalled_body_is_closed_soon_after_its_408(server: ServerProcess) -> None:
    """aiohttp would keep reading for 10 s (its lingering_time); the guard's is 2 s."""
    raw = b"POST /predict HTTP/1.1\r\nHost: fish\r\nContent-Length: 100\r\n\r\n{"
    reply = exchange(server.host, server.port, raw, timeout=10.0)
    assert reply.statuses == [408], reply.raw[:200]
    assert reply.closed or reply.reset
    assert reply.elapsed <= REQUEST_TIMEOUT + aiohttp_guard.LINGER_SECONDS + MARGIN


def test_expect_100_continue(server: ServerProcess) -> None:
    body = b'{"instances":[[30,600]]}'
    post = (
        b"POST /predict HTTP/1.1\r\nHost: fish\r\nContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n"
    )
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(post % len(body))
        assert sock.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    # over the body limit: 413 at once, no "100 Continue"
    reply = ask(server, post % 10_000)
    assert reply.statuses == [413] and b"100 Continue" not in reply.raw
