"""The request checks http.server leaves out (fishpredict_httpserver.guards), one by one."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator

import pytest
from fishpredict_httpserver.guards import (
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    REQUEST_LINE,
    BadHead,
    DeadlineReader,
    ReadTimeout,
    chunk_size,
    framing_problem,
    read_head,
)


@pytest.mark.parametrize(
    "line",
    [
        "GET /fish?length=30&weight=600 HTTP/1.1\r\n",
        "POST /predict HTTP/1.0\r\n",
        "GET http://fish/healthz HTTP/1.1\r\n",
        "GET /fish HTTP/1.1\n",
        "GET /fish\xff HTTP/1.1\r\n",  # obs-text in the target: the Service answers 404
    ],
)
def test_request_line_accepts_http_1x(line: str) -> None:
    assert REQUEST_LINE.fullmatch(line)


@pytest.mark.parametrize(
    "line",
    [
        "GET /\r\n",  # HTTP/0.9
        "GET /healthz HTTP/1.x\r\n",
        "GET /healthz HTTP/2.0\r\n",
        "GET\x7f /healthz HTTP/1.1 extra\r\n",
        "GET /heal\x00thz HTTP/1.1\r\n",
        "GET  /healthz HTTP/1.1\r\n",  # two spaces
        "GET /healthz HTTP/1.1",  # no line end
        "\r\n",
    ],
)
def test_request_line_refuses_the_rest(line: str) -> None:
    assert REQUEST_LINE.fullmatch(line) is None


def test_read_head_parses_fields_and_stops_at_the_blank_line() -> None:
    rfile = io.BytesIO(b"Host: fish\r\nX-Name: \xff\xfe\tv \r\n\r\nBODY")
    headers = read_head(rfile)
    assert headers["Host"] == "fish"
    assert headers["X-Name"].startswith("\xff\xfe\tv")
    assert rfile.read() == b"BODY"


@pytest.mark.parametrize(
    "head",
    [
        b"Host: fi\x00sh\r\n\r\n",  # NUL in a value
        b"Host : fish\r\n\r\n",  # space before the colon
        b"X-A: a\r\n folded\r\n\r\n",  # obsolete line folding
        b"Host: fish\r\nFrom evil\r\n\r\n",  # email.parser would drop this line silently
        b"Ho@st: fish\r\n\r\n",  # not a token
        b": empty\r\n\r\n",
        b"Host: fish\r\n",  # the head ends before its blank line
    ],
)
def test_read_head_refuses_malformed_fields_with_400(head: bytes) -> None:
    with pytest.raises(BadHead) as info:
        read_head(io.BytesIO(head))
    assert info.value.status == 400


@pytest.mark.parametrize(
    "head",
    [
        b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS + 1)) + b"\r\n",
        b"X-Big: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n",
    ],
    ids=["too_many_fields", "too_many_bytes"],
)
def test_read_head_refuses_a_large_head_with_431(head: bytes) -> None:
    with pytest.raises(BadHead) as info:
        read_head(io.BytesIO(head))
    assert info.value.status == 431


def test_read_head_allows_exactly_the_field_limit() -> None:
    head = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS)) + b"\r\n"
    assert len(read_head(io.BytesIO(head))) == MAX_HEADERS


@pytest.mark.parametrize(
    "fields",
    [
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        b"Content-Length: 4\r\nContent-Length: 4\r\n",
        b"Content-Length: 4\r\nContent-Length: 0\r\n",
        b"Transfer-Encoding: chunked, identity\r\n",
        b"Transfer-Encoding: gzip\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        b"Content-Length: -1\r\n",
        b"Content-Length: +4\r\n",
        b"Content-Length: 0x10\r\n",
        b"Content-Length: \xb2\r\n",  # a digit to str.isdigit(), not to HTTP
    ],
)
def test_ambiguous_framing_is_refused(fields: bytes) -> None:
    with pytest.raises(BadHead) as info:
        read_head(io.BytesIO(b"Host: fish\r\n" + fields + b"\r\n"))
    assert info.value.status == 400


@pytest.mark.parametrize(
    "fields",
    [b"", b"Content-Length: 26\r\n", b"Content-Length:  7 \r\n", b"Transfer-Encoding: Chunked\r\n"],
)
def test_one_framing_is_accepted(fields: bytes) -> None:
    headers = read_head(io.BytesIO(fields + b"\r\n"))
    assert framing_problem(headers) is None


@pytest.mark.parametrize(
    ("line", "size"),
    [(b"1a\r\n", 26), (b"0\r\n", 0), (b"A;name=value\r\n", 10), (b"ff\n", 255)],
)
def test_chunk_size_reads_hex(line: bytes, size: int) -> None:
    assert chunk_size(line) == size


@pytest.mark.parametrize(
    "line", [b"zz\r\n", b"-1\r\n", b"0x1a\r\n", b"1_0\r\n", b" 1a\r\n", b"f" * 40 + b"\r\n", b"1a"]
)
def test_chunk_size_refuses_what_int_would_take(line: bytes) -> None:
    assert chunk_size(line) is None


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_deadline_reader_reads_what_arrives_in_time(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    reader = DeadlineReader(ours)
    reader.expect("request head", 5.0)
    theirs.sendall(b"GET / HTTP/1.1\r\n")
    assert io.BufferedReader(reader).readline() == b"GET / HTTP/1.1\r\n"


def test_deadline_reader_times_out_on_silence(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _ = pair
    reader = DeadlineReader(ours)
    reader.expect("request head", 0.05)
    start = time.monotonic()
    with pytest.raises(ReadTimeout, match="request head not received in time"):
        io.BufferedReader(reader).readline()
    assert time.monotonic() - start < 2.0


def test_deadline_reader_bounds_the_phase_not_each_recv(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """A trickle of bytes does not extend the deadline: once it has passed, the
    next read fails even with bytes waiting (a per-recv timeout would not)."""
    ours, theirs = pair
    reader = DeadlineReader(ours)
    reader.expect("request head", 0.0)
    theirs.sendall(b"G")
    with pytest.raises(ReadTimeout):
        reader.read(1)
