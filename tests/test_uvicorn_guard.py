"""The limits backends/uvicorn_guard.py adds to uvicorn, against a real starlette server.

tests/test_limits.py and tests/test_hostile.py check the limits as a client sees
them on every backend; this module checks what is specific to the guard: the
uvicorn methods it hooks still exist, the head limits are exact (100 fields
pass, 101 do not) however the head is split into chunks, a body in the same
chunk as a head is not counted as head, trailers count as fields, a
connection that sends nothing is closed, the refusals are counted in
``/metrics``, and uvicorn's own words never reach a client.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("httptools")

from fishpredict_backends import uvicorn_guard

from fishpredict.errors import BackendUnavailableError
from fishpredict.faults import RawReply, configured_server, exchange, healthy
from fishpredict.testing import ServerProcess

HEADER_TIMEOUT = 1.0
MAX_CONNECTIONS = 6
#: how late past a timeout a cut-off may come (the sweeper's tick, a loaded machine)
MARGIN = 1.0


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    proc = configured_server(
        "starlette",
        header_timeout=HEADER_TIMEOUT,
        keepalive_timeout=2.0,
        request_timeout=3.0,
        max_connections=MAX_CONNECTIONS,
    )
    try:
        yield proc
    finally:
        proc.close()


def head(*fields: bytes, target: bytes = b"/healthz") -> bytes:
    """A GET head with ``fields`` (plus Host)."""
    return b"GET %s HTTP/1.1\r\nHost: fish\r\n%s\r\n" % (
        target,
        b"".join(f + b"\r\n" for f in fields),
    )


def fields(n: int, size: int = 1) -> list[bytes]:
    return [b"X-F%d: %s" % (i, b"v" * size) for i in range(n)]


def ask(server: ServerProcess, chunks: bytes | list[bytes], **kw: object) -> RawReply:
    return exchange(server.host, server.port, chunks, timeout=5.0, responses=1, **kw)  # type: ignore[arg-type]


def assert_refused(reply: RawReply, status: int, code: str) -> None:
    assert reply.statuses == [status], reply.raw[:300]
    response = reply.responses[0]
    assert response.header(b"content-type") == b"application/json"
    assert response.header(b"connection") == b"close"
    assert json.loads(response.body)["error"]["code"] == code


def test_every_hooked_method_is_still_uvicorns() -> None:
    uvicorn_guard.check_uvicorn()  # the installed uvicorn has them all


def test_a_moved_hook_refuses_to_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uvicorn_guard, "HOOKS", (*uvicorn_guard.HOOKS, "on_gone"))
    with pytest.raises(BackendUnavailableError, match="on_gone"):
        uvicorn_guard.check_uvicorn()


def test_header_field_limit_is_exact(server: ServerProcess) -> None:
    limit = uvicorn_guard.MAX_HEADERS
    assert ask(server, head(*fields(limit - 1))).statuses == [200]  # + Host = the limit
    assert_refused(ask(server, head(*fields(limit))), 431, "headers_too_large")


@pytest.mark.parametrize("split", [False, True], ids=["one_chunk", "many_chunks"])
def test_head_size_limit(server: ServerProcess, split: bool) -> None:
    """Under the limit: served; over it: 431, whether the head comes in one chunk
    (counted when it completes) or trickles in (counted as it arrives)."""
    limit = uvicorn_guard.MAX_HEAD_BYTES
    small = head(*fields(8, size=(limit - 300) // 8))
    big = head(*fields(8, size=(limit + 100) // 8))
    assert len(small) < limit < len(big)
    for raw, status in ((small, 200), (big, 431)):
        chunks = [raw[i : i + 4096] for i in range(0, len(raw), 4096)] if split else raw
        reply = ask(server, chunks, gap=0.05 if split else 0.0)
        assert reply.statuses == [status], (split, len(raw), reply.raw[:200])


def test_a_body_in_the_same_chunk_is_not_head(server: ServerProcess) -> None:
    """A head near the limit and a body of 4x the limit, sent together: served."""
    body = json.dumps({"instances": [[30.0, 600.0]] * 6000}).encode()
    assert len(body) > 4 * uvicorn_guard.MAX_HEAD_BYTES
    raw = (
        b"POST /predict HTTP/1.1\r\nHost: fish\r\nContent-Type: application/json\r\n"
        b"X-Pad: %s\r\nContent-Length: %d\r\n\r\n%s"
        % (b"p" * (uvicorn_guard.MAX_HEAD_BYTES - 400), len(body), body)
    )
    reply = ask(server, raw)
    assert reply.statuses == [200], reply.raw[:200]
    assert len(json.loads(reply.responses[0].body)["predictions"]) == 6000


def test_trailer_fields_count(server: ServerProcess) -> None:
    """Chunked trailers count as header fields: a flood of them is refused mid-body."""
    body = b'{"instances":[[30,600]]}'
    trailers = b"".join(f + b"\r\n" for f in fields(uvicorn_guard.MAX_HEADERS + 10))
    raw = (
        b"POST /predict HTTP/1.1\r\nHost: fish\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n%s\r\n" % (len(body), body, trailers)
    )
    assert_refused(ask(server, raw), 431, "headers_too_large")
    assert healthy(server.host, server.port)


def test_slow_head_gets_408_and_silent_connection_is_closed(server: ServerProcess) -> None:
    slow = ask(server, [b"GET /healthz HTTP/1.1\r\n", b"X-A: 1\r\n"], gap=0.3)
    assert_refused(slow, 408, "request_timeout")
    assert slow.elapsed <= HEADER_TIMEOUT + MARGIN, slow.elapsed
    start = time.monotonic()
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        assert sock.recv(1) == b""  # closed, without an answer: there was no request
    assert time.monotonic() - start <= HEADER_TIMEOUT + MARGIN


def test_junk_gets_the_contracts_400_not_uvicorns(server: ServerProcess) -> None:
    reply = ask(server, b"\x16\x03\x01\x00junk\r\n\r\n")
    assert_refused(reply, 400, "bad_request")
    assert b"Invalid HTTP request" not in reply.raw


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


def test_refusals_are_counted_in_metrics(server: ServerProcess) -> None:
    assert ask(server, head(*fields(uvicorn_guard.MAX_HEADERS + 1))).statuses == [431]
    metrics = (
        exchange(server.host, server.port, head(target=b"/metrics"), timeout=5.0, responses=1)
        .responses[0]
        .body
    )
    assert b'fishpredict_rejected_total{reason="headers_too_large"}' in metrics
