"""A hypothesis-driven raw-bytes fuzzer against the socket backend (issue 6, item 3).

Hypothesis builds near-valid HTTP requests (mutated request lines, header
fields, framing, chunked bodies, line endings, pipelining, byte flips) and pure
random bytes, and sends each on a fresh connection to one real server of the
socket backend. The property: what comes back is only well-formed HTTP
responses, each below 500 and without traceback text, or a clean close, within
a timeout; and after every example the server is alive and answers
``GET /healthz`` on a new connection.

Bounded: ``FISHPREDICT_FUZZ_EXAMPLES`` examples per test (default 150; set it
higher for a longer run), derandomized when ``CI=true``. The same variable sets
the schemathesis depth in tests/app/test_openapi.py.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fishpredict.plugins import list_backends
from fishpredict.soak.faults import (
    RawReply,
    RawResponse,
    configured_server,
    exchange,
    healthy,
    leaked,
)
from fishpredict.testing import ServerProcess

BACKEND = "socket"
EXAMPLES = int(os.environ.get("FISHPREDICT_FUZZ_EXAMPLES") or 150)
IN_CI = os.environ.get("CI", "").lower() == "true"
#: short server timeouts: an incomplete request is cut off quickly
TIMEOUTS = {"header_timeout": 0.5, "keepalive_timeout": 0.5, "request_timeout": 1.0}
#: the client's wait for an answer or a close: the longest server timeout + margin
CLIENT_TIMEOUT = 3.0

pytestmark = pytest.mark.skipif(
    not any(i.name == BACKEND and i.available for i in list_backends()),
    reason=f"the {BACKEND} backend is not installed",
)

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=CLIENT_TIMEOUT * 3),
    derandomize=IN_CI,
    database=None if IN_CI else settings.default.database,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with configured_server(BACKEND, max_body_bytes=16 * 1024, **TIMEOUTS) as srv:
        yield srv
        assert srv.stop() == 0, srv.stderr_text()[-3000:]


# ---- strategies ----------------------------------------------------------------------


def mostly(
    valid: st.SearchStrategy[bytes], odd: st.SearchStrategy[bytes]
) -> st.SearchStrategy[bytes]:
    """``valid`` nine times in ten, else ``odd``: near-valid, so most requests get
    past the parser and into the Service, and the odd part is the one being tested."""
    return st.integers(0, 9).flatmap(lambda n: odd if n == 0 else valid)


small_bytes = st.binary(max_size=24)
method = mostly(
    st.sampled_from([b"GET", b"POST", b"DELETE", b"PUT", b"OPTIONS"]),
    st.sampled_from([b"PATCH", b"CONNECT", b"TRACE", b"PRI", b"get", b"G\x00T", b"", b"A B"])
    | small_bytes,
)
path = mostly(
    st.sampled_from([b"/fish", b"/predict", b"/healthz", b"/models", b"/metrics", b"/readyz"]),
    st.sampled_from(
        [
            b"/admin/reload",
            b"*",
            b"http://fish/fish",
            b"//",
            b"/../etc",
            b"/%00",
            b"/%zz",
            b"/fish#frag",
            b"",
            b"/openapi.json",
        ]
    )
    | small_bytes,
)
value = mostly(
    st.sampled_from([b"30", b"600", b"5", b"12.5", b"1", b"15"]),
    st.sampled_from([b"-1", b"nan", b"1e309", b"ko", b"", b"0x10", b"%ff", b"1,2"]) | small_bytes,
)
name = mostly(
    st.sampled_from([b"length", b"weight", b"k"]),
    st.sampled_from([b"model", b"labels", b"", b"k[]", b"%00"]) | small_bytes,
)
query = st.lists(st.tuples(name, value), max_size=4).map(
    lambda pairs: b"&".join(k + b"=" + v for k, v in pairs)
)
version = mostly(
    st.just(b"HTTP/1.1"),
    st.sampled_from(
        [
            b"HTTP/1.0",
            b"HTTP/2.0",
            b"HTTP/0.9",
            b"HTTP/1.1 x",
            b"HTTP/1",
            b"http/1.1",
            b"HTTP/1.10",
            b"",
        ]
    ),
)
header = st.tuples(
    mostly(
        st.sampled_from([b"Host", b"Content-Type", b"Accept", b"Connection", b"X-A"]),
        st.sampled_from(
            [
                b"Content-Length",
                b"Transfer-Encoding",
                b"Expect",
                b"Authorization",
                b"Upgrade",
                b"Host ",
                b"",
                b"\x00",
                b"\xff",
            ]
        )
        | small_bytes,
    ),
    mostly(
        st.sampled_from(
            [b"fish", b"application/json", b"application/x-npy", b"*/*", b"keep-alive"]
        ),
        st.sampled_from(
            [
                b"0",
                b"-1",
                b"99999999999999999999",
                b"chunked",
                b"gzip, chunked",
                b"close",
                b"100-continue",
                b"Bearer x",
                b"websocket",
                b"\xff\xfe",
                b"a\x00b",
                b"",
                b"text/plain",
            ]
        )
        | small_bytes,
    ),
)
BODIES = [
    b'{"length":30,"weight":600}',
    b'{"instances":[[30,600],[10,8]]}',
    b'{"instances":[[NaN,1]]}',
    b"[" * 64,
    b"{",
    b"\x93NUMPY\x01\x00",
    b"",
]
body = mostly(st.sampled_from(BODIES), st.binary(max_size=64))
eol = mostly(st.just(b"\r\n"), st.sampled_from([b"\n", b"\r", b"\r\r\n"]))


@st.composite
def chunked(draw: st.DrawFn) -> bytes:
    """A chunked body whose sizes, extensions and trailers may be wrong."""
    out = b""
    for part in draw(st.lists(body, max_size=3)):
        good = b"%x" % len(part)
        odd = [
            b"%X" % len(part),
            b"zz",
            b"-1",
            b"%x" % (len(part) + 1),
            b"f" * 20,
            b"%x;ext=1" % len(part),
        ]
        out += draw(mostly(st.just(good), st.sampled_from(odd))) + b"\r\n" + part
        out += draw(mostly(st.just(b"\r\n"), st.sampled_from([b"", b"\n"])))
    end = mostly(st.just(b"0\r\n\r\n"), st.sampled_from([b"0\r\nX-T: 1\r\n\r\n", b"0\r\n", b""]))
    return out + draw(end)


@st.composite
def near_http(draw: st.DrawFn) -> bytes:
    """One to three almost-valid requests (pipelined), then maybe a byte or two changed."""
    requests = []
    for _ in range(draw(st.integers(1, 3))):
        nl = draw(eol)
        m = draw(method)
        q = draw(query)
        target = draw(path) + (b"?" + q if q else b"")
        headers = [(b"Host", b"fish"), *draw(st.lists(header, max_size=4))]
        framing = draw(st.sampled_from(["length", "chunked", "none", "wrong_length"]))
        payload = draw(chunked()) if framing == "chunked" else draw(body)
        if framing == "length":
            headers.append((b"Content-Length", b"%d" % len(payload)))
        elif framing == "wrong_length":
            headers.append(
                (b"Content-Length", b"%d" % max(0, len(payload) + draw(st.integers(-3, 3))))
            )
        elif framing == "chunked":
            headers.append((b"Transfer-Encoding", b"chunked"))
        else:
            payload = b"" if m in (b"GET", b"DELETE", b"OPTIONS") else payload
        line = b" ".join([m, target, draw(version)])
        head = nl.join([line, *(n + b": " + v for n, v in draw(st.permutations(headers)))])
        requests.append(head + nl + nl + payload)
    raw = bytearray(b"".join(requests))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        at = draw(st.integers(0, len(raw) - 1))
        how = draw(st.sampled_from(["flip", "drop", "insert"]))
        if how == "flip":
            raw[at] = draw(st.integers(0, 255))
        elif how == "drop":
            del raw[at]
        else:
            raw[at:at] = draw(st.sampled_from([b"\r\n", b"\x00", b" ", b":", b"\xff"]))
    return bytes(raw)


# ---- the property --------------------------------------------------------------------


def _outcome(response: RawResponse) -> str:
    """``"400 bad_request"``: the status and the contract's error code, if any."""
    code = re.search(rb'"code":"([a-z_]+)"', response.body)
    return f"{response.status}" + (f" {code[1].decode()}" if code else "")


def check(server: ServerProcess, data: bytes, half_close: bool) -> RawReply:
    reply = exchange(server.host, server.port, data, timeout=CLIENT_TIMEOUT, half_close=half_close)
    assert server.proc.poll() is None, f"the server died: {server.stderr_text()[-3000:]}"
    assert reply.malformed is None, (reply.malformed, reply.raw[:300])
    assert not reply.timed_out, f"no answer and no close in {CLIENT_TIMEOUT} s"
    assert all(s < 500 for s in reply.statuses), (reply.statuses, reply.raw[:300])
    assert leaked(reply.raw) == [], reply.raw[:300]
    assert healthy(server.host, server.port), "the server stopped answering /healthz"
    return reply


def outcome_event(reply: RawReply) -> None:
    """Count the outcome for ``--hypothesis-show-statistics`` (how far requests got)."""
    event(" ".join(map(_outcome, reply.responses)) or ("closed" if reply.closed else "reset"))


@FUZZ
@given(data=near_http(), half_close=st.booleans())
def test_near_valid_http_never_gets_a_5xx_or_a_hang(
    server: ServerProcess, data: bytes, half_close: bool
) -> None:
    outcome_event(check(server, data, half_close))


@FUZZ
@given(data=st.binary(min_size=1, max_size=2048), half_close=st.booleans())
def test_random_bytes_never_get_a_5xx_or_a_hang(
    server: ServerProcess, data: bytes, half_close: bool
) -> None:
    outcome_event(check(server, data, half_close))


def test_fuzzer_reaches_the_service(server: ServerProcess) -> None:
    """The strategies are not all noise: a plain example from them is answered 200."""
    reply = check(server, b"GET /fish?length=30&weight=600 HTTP/1.1\r\nHost: fish\r\n\r\n", True)
    assert reply.statuses == [200]
