"""Hostile HTTP against every backend: the cross-backend matrix of issue 6.

Each request of :func:`fishpredict.soak.faults.catalogue` (smuggling shapes, bad
chunk sizes, oversized and malformed heads, non-UTF-8 bytes, pipelining, a body
that stops mid-way, deep and huge JSON, NaN literals, junk, NUL bytes) goes to
a real server of every available backend over a raw socket, plus two limits
every backend enforces alike (:data:`EXTRA`: a head over 16 KiB in short lines,
a head that stops half way). The answer must be a 4xx or a closed connection
(a 2xx only where the request is legal), never a 5xx, never a smuggled second
answer, never traceback text, and never silence past the server's timeouts;
and it must be the same on every backend (:data:`EXPECTED`, the table in
docs/reliability.md). Afterwards the server still answers on a new connection
and stops cleanly.

Where a backend falls short, the case is ``xfail(strict=True)`` with the
precise gap (see :data:`GAPS` and docs/reliability.md), so a fix shows up as
an unexpected pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from fishpredict.plugins import list_backends
from fishpredict.soak.faults import (
    VERSION_BANNER,
    Hostile,
    catalogue,
    exchange,
    healthy,
    leaked,
    problems,
    send_case,
)
from fishpredict.soak.faults import configured_server as start
from fishpredict.testing import ServerProcess

BACKENDS = [info.name for info in list_backends() if info.available]
MAX_BODY = 256 * 1024
#: short server timeouts, so a hang shows within seconds
TIMEOUTS = {"header_timeout": 2.0, "keepalive_timeout": 2.0, "request_timeout": 3.0}
#: seconds a client waits for an answer or a close: the longest server timeout + margin
CLIENT_TIMEOUT = 6.0
CASES = catalogue(MAX_BODY)
_GET = b"GET /healthz HTTP/1.1\r\nHost: fish\r\n"
#: 40 fields of 500 bytes: no line is long, the head is (over 16 KiB)
_SHORT_LINES = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 500) for i in range(40))
#: requests sent in the matrix only (the stalled head takes a header_timeout each)
EXTRA = (
    Hostile("head_over_16k_in_short_lines", (_GET + _SHORT_LINES + b"\r\n",)),
    Hostile("stalled_head", (_GET,)),
)

#: what every backend answers to each request: its statuses; () = closed without an answer
EXPECTED: dict[str, tuple[int, ...]] = {
    "content_length_and_transfer_encoding": (400,),
    "two_content_lengths": (400,),
    "transfer_encoding_not_chunked_last": (400,),
    "bad_chunk_size": (400,),
    "chunk_size_overflow": (400,),
    "oversized_header": (431,),
    "thousand_headers": (431,),
    "malformed_request_line": (400,),
    "bad_http_version": (400,),
    "non_utf8_path": (400,),
    "non_utf8_header": (200,),
    "non_utf8_body": (400,),
    "pipelined": (200, 200, 200),
    "body_stops_midway": (),
    "deep_json": (400,),
    "huge_json": (413,),
    "nan_infinity": (400,),
    "http09_junk": (400,),
    "absolute_form_uri": (200,),
    "nul_byte_in_path": (400,),
    "nul_byte_in_header": (400,),
    "space_before_colon": (400,),
    "obsolete_line_folding": (400,),
    "head_over_16k_in_short_lines": (431,),
    "stalled_head": (408,),
}
#: where a backend answers otherwise, and that answer is fine too
EXPECTED_BY_BACKEND: dict[tuple[str, str], tuple[int, ...]] = {}

GAPS: dict[tuple[str, str], str] = {}
#: backends whose responses to some requests carry a Server header with a version
BANNER_GAPS: dict[str, str] = {}


def _matrix() -> list[object]:
    params: list[object] = []
    for backend in BACKENDS:
        for case in CASES + EXTRA:
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
    """A 4xx or a close, no 5xx, no smuggled answer, no traceback, no hang: the
    answer every backend gives."""
    server = servers(backend)
    reply = send_case(server.host, server.port, case, timeout=CLIENT_TIMEOUT)
    assert server.proc.poll() is None, f"{backend} died on {case.name}: {server.stderr_text()}"
    found = problems(
        reply, allow_success=case.allow_success, max_responses=case.max_responses, banner=False
    )
    assert not found, f"{backend} / {case.name}: {found}"
    expected = EXPECTED_BY_BACKEND.get((backend, case.name), EXPECTED[case.name])
    assert tuple(reply.statuses) == expected, f"{backend} / {case.name}: {reply.raw[:300]!r}"
    if not expected:
        assert reply.closed or reply.reset, f"{backend} / {case.name}: neither answered nor closed"


def test_every_request_has_its_expected_answer() -> None:
    assert set(EXPECTED) == {case.name for case in CASES + EXTRA}
    assert {name for _, name in EXPECTED_BY_BACKEND} <= set(EXPECTED)


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
