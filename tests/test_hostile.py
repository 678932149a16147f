"""Hostile HTTP against every backend: the cross-backend matrix of issue 6.

Each request of :func:`fishpredict.faults.catalogue` (smuggling shapes, bad
chunk sizes, oversized and malformed heads, non-UTF-8 bytes, pipelining, a body
that stops mid-way, deep and huge JSON, NaN literals, junk, NUL bytes) goes to
a real server of every available backend over a raw socket. The answer must be
a 4xx or a closed connection (a 2xx only where the request is legal), never a
5xx, never a smuggled second answer, never traceback text, and never silence
past the server's timeouts. Afterwards the server still answers on a new
connection and stops cleanly.

Where a backend falls short, the case is ``xfail(strict=True)`` with the
precise gap (see :data:`GAPS` and docs/reliability.md), so a fix shows up as
an unexpected pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from fishpredict.faults import (
    VERSION_BANNER,
    Hostile,
    catalogue,
    exchange,
    healthy,
    leaked,
    problems,
    send_case,
)
from fishpredict.faults import configured_server as start
from fishpredict.plugins import list_backends
from fishpredict.testing import ServerProcess

BACKENDS = [info.name for info in list_backends() if info.available]
MAX_BODY = 256 * 1024
#: short server timeouts, so a hang shows within seconds
TIMEOUTS = {"header_timeout": 2.0, "keepalive_timeout": 2.0, "request_timeout": 3.0}
#: seconds a client waits for an answer or a close: the longest server timeout + margin
CLIENT_TIMEOUT = 6.0
CASES = catalogue(MAX_BODY)

_UVICORN_HEAD = (
    "uvicorn's httptools protocol sets no limit on the request head's size or its number "
    "of header fields (llhttp's defaults are unbounded); backends/starlette_backend.py "
    "should refuse with 431 (e.g. count len(scope['headers']) and their bytes in "
    "ServiceEndpoint.__call__ against the socket backend's 16 KiB / 100 fields), or run "
    "uvicorn with http='h11' and h11_max_incomplete_event_size"
)
_HTTPSERVER = "examples/fishpredict-httpserver/src/fishpredict_httpserver/server.py"
_HTTPSERVER_SMUGGLE = (
    f"{_HTTPSERVER}: request smuggling; http.server frames the body itself and does not "
    "refuse {what}, so the bytes after it are answered as a second request; answer 400 "
    "and close instead"
)
_HTTPSERVER_09 = (
    f"{_HTTPSERVER}: for a request line http.server cannot parse it treats the client as "
    "HTTP/0.9 and sends a bare JSON body with no status line (a malformed response); set "
    "request_version to 'HTTP/1.1' before send_error / in the handler's error path"
)
_HTTPSERVER_HEAD = (
    f"{_HTTPSERVER}: http.server's header parser (email.parser) accepts {{what}}; "
    "RFC 9112 requires a 400"
)
GAPS: dict[tuple[str, str], str] = {
    ("starlette", "oversized_header"): _UVICORN_HEAD,
    ("starlette", "thousand_headers"): _UVICORN_HEAD,
    ("httpserver", "content_length_and_transfer_encoding"): _HTTPSERVER_SMUGGLE.format(
        what="Content-Length together with Transfer-Encoding (it answers both)"
    ),
    ("httpserver", "two_content_lengths"): _HTTPSERVER_SMUGGLE.format(
        what="two Content-Length headers"
    ),
    ("httpserver", "transfer_encoding_not_chunked_last"): _HTTPSERVER_SMUGGLE.format(
        what="'Transfer-Encoding: chunked, identity' (chunked not last)"
    ),
    ("httpserver", "malformed_request_line"): _HTTPSERVER_09,
    ("httpserver", "bad_http_version"): _HTTPSERVER_09,
    ("httpserver", "http09_junk"): _HTTPSERVER_09,
    ("httpserver", "nul_byte_in_header"): _HTTPSERVER_HEAD.format(what="a NUL byte in a value"),
    ("httpserver", "space_before_colon"): _HTTPSERVER_HEAD.format(
        what="whitespace between a field name and the colon"
    ),
}
#: backends whose responses to some requests carry a Server header with a version
BANNER_GAPS = {
    "aiohttp": (
        "backends/aiohttp_backend.py: the 400 aiohttp writes for a request it cannot parse "
        "(web_protocol.RequestHandler.handle_error) bypasses on_response_prepare, so it "
        "carries 'Server: Python/3.x aiohttp/3.y' and a text/plain body echoing the bad "
        "bytes; serve through a RequestHandler whose handle_error answers the contract's "
        "JSON 400 without a Server header"
    ),
    "httpserver": (
        f"{_HTTPSERVER}: every response carries 'Server: BaseHTTP/0.6 Python/3.x' "
        "(BaseHTTPRequestHandler.version_string); override version_string() or "
        "send_response() to send no Server header"
    ),
}


def _matrix() -> list[object]:
    params: list[object] = []
    for backend in BACKENDS:
        for case in CASES:
            reason = GAPS.get((backend, case.name))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(backend, case, id=f"{backend}-{case.name}", marks=marks))
    return params


@pytest.fixture(scope="module")
def servers() -> Iterator[Callable[[str], ServerProcess]]:
    """One server per backend for the whole module, started on first use."""
    running: dict[str, ServerProcess] = {}

    def get(backend: str) -> ServerProcess:
        if backend not in running:
            running[backend] = start(backend, max_body_bytes=MAX_BODY, **TIMEOUTS)
        return running[backend]

    try:
        yield get
    finally:
        for server in running.values():
            server.close()


@pytest.mark.parametrize(("backend", "case"), _matrix())
def test_hostile_request(
    backend: str, case: Hostile, servers: Callable[[str], ServerProcess]
) -> None:
    """A 4xx or a close, no 5xx, no smuggled answer, no traceback, no hang."""
    server = servers(backend)
    reply = send_case(server.host, server.port, case, timeout=CLIENT_TIMEOUT)
    assert server.proc.poll() is None, f"{backend} died on {case.name}: {server.stderr_text()}"
    found = problems(
        reply, allow_success=case.allow_success, max_responses=case.max_responses, banner=False
    )
    assert not found, f"{backend} / {case.name}: {found}"
    if case.allow_success and case.responses > 1:
        assert reply.statuses == [200] * case.responses, reply.statuses


def _banner_params() -> list[object]:
    return [
        pytest.param(
            b,
            marks=[pytest.mark.xfail(strict=True, reason=BANNER_GAPS[b])]
            if b in BANNER_GAPS
            else [],
        )
        for b in BACKENDS
    ]


@pytest.mark.parametrize("backend", _banner_params())
def test_no_version_banner_or_traceback(
    backend: str, servers: Callable[[str], ServerProcess]
) -> None:
    """Security default: no response, to good requests or hostile ones, names a
    server version, and none carries traceback text."""
    server = servers(backend)
    good = [
        b"GET /healthz HTTP/1.1\r\nHost: fish\r\n\r\n",
        b"GET /fish?length=30&weight=600 HTTP/1.1\r\nHost: fish\r\n\r\n",
        b"GET /nowhere HTTP/1.1\r\nHost: fish\r\n\r\n",
        b"DELETE /fish HTTP/1.1\r\nHost: fish\r\n\r\n",
    ]
    replies = [
        exchange(server.host, server.port, g, timeout=CLIENT_TIMEOUT, responses=1) for g in good
    ]
    replies += [send_case(server.host, server.port, c, timeout=CLIENT_TIMEOUT) for c in CASES]
    responses = [r for reply in replies for r in reply.responses]
    assert len(responses) >= len(good)
    servers_named = {r.header(b"server") for r in responses} - {None}
    banners = sorted(s.decode("latin-1") for s in servers_named if VERSION_BANNER.search(s or b""))
    tracebacks = [m for reply in replies for m in leaked(reply.raw)]
    assert banners == [], f"{backend} names its version: {banners}"
    assert tracebacks == [], f"{backend} leaked traceback text: {tracebacks}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_server_survives_every_hostile_request(
    backend: str, servers: Callable[[str], ServerProcess]
) -> None:
    """After the whole catalogue (sent again, if this test runs alone): alive, serving
    /healthz on a new connection, and a clean exit on SIGTERM."""
    server = servers(backend)
    for case in CASES:
        send_case(server.host, server.port, case, timeout=CLIENT_TIMEOUT)
    assert healthy(server.host, server.port), server.stderr_text()[-2000:]
    assert server.stop() == 0, server.stderr_text()[-2000:]
