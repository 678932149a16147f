"""Hostile HTTP, sent over raw sockets: the catalogue and the probe that reads the answer.

A real client library cannot send a request with two ``Content-Length``
headers or a chunk size of ``zz``; a hostile one can. :func:`exchange` writes
raw bytes to a server and reads back whatever comes, parsed strictly by
llhttp (``httptools``): every complete response, whether the server closed
or reset the connection, and whether it went silent (a hang).
:func:`catalogue` lists the hostile requests tests/server/test_hostile.py sends to
every backend; :func:`problems` says what is wrong with an answer (a 5xx, a
traceback, a version banner, a hang, a smuggled request).
:func:`configured_server` starts a real server with any ServeConfig, including
the timeouts ``fishpredict serve`` has no flags for.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from fishpredict.server.process import ServerProcess

if TYPE_CHECKING:
    from fishpredict.server.process import ServerProcess

#: text that must never reach a client: Python tracebacks and exception reprs
TRACEBACK_MARKERS: Final = (b"Traceback (most recent call last)", b'File "/', b'.py", line ')
#: a ``Server`` header carrying a version number (``uvicorn/0.30``, ``Python/3.11``)
VERSION_BANNER: Final = re.compile(rb"\d+\.\d+")
#: a request path that only a smuggled (second, hidden) request would ask for
SMUGGLED_PATH: Final = "/smuggled-request"


@dataclass(frozen=True)
class RawResponse:
    """One complete HTTP response read off the wire."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)


@dataclass
class RawReply:
    """Everything a server sent back on one connection."""

    responses: list[RawResponse] = field(default_factory=list)
    #: the server closed the connection (EOF)
    closed: bool = False
    #: the server reset the connection (RST), or refused it
    reset: bool = False
    #: the server neither answered everything expected nor closed in time
    timed_out: bool = False
    #: bytes that are not a well-formed HTTP response (llhttp's error), if any
    malformed: str | None = None
    raw: bytes = b""
    elapsed: float = 0.0

    @property
    def statuses(self) -> list[int]:
        return [r.status for r in self.responses]


class _ResponseCollector:
    """httptools callbacks: collect each response's status, headers and body."""

    def __init__(self) -> None:
        self.done: list[RawResponse] = []
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self.parser: Any = None

    def on_message_begin(self) -> None:
        self._headers = []
        self._body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        self.done.append(RawResponse(int(status), tuple(self._headers), b"".join(self._body)))


def exchange(
    host: str,
    port: int,
    chunks: bytes | Sequence[bytes],
    *,
    timeout: float = 5.0,
    gap: float = 0.0,
    half_close: bool = False,
    responses: int | None = None,
    settle: float = 0.0,
) -> RawReply:
    """Send ``chunks`` (``gap`` seconds apart), then read until the server closes,
    ``responses`` complete responses have arrived, or ``timeout`` seconds pass.

    ``half_close`` shuts our side for writing after the last chunk, as a client
    that has nothing more to say. ``settle`` seconds more are read after the
    expected responses, to catch any answer to a request hidden in the bytes.
    A connection refused or reset counts as ``reset``; silence until
    ``timeout`` (before the expected responses) counts as ``timed_out``.
    """
    import httptools

    parts = [chunks] if isinstance(chunks, bytes) else list(chunks)
    reply = RawReply()
    collector = _ResponseCollector()
    parser = httptools.HttpResponseParser(collector)
    collector.parser = parser
    start = time.monotonic()
    deadline = start + timeout
    received = bytearray()
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        reply.reset = True
        reply.elapsed = time.monotonic() - start
        return reply
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for i, part in enumerate(parts):
                if i and gap:
                    time.sleep(gap)  # the pacing of a slow client is what is tested
                sock.sendall(part)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may refuse mid-send; what it answered is still read below
        settled: float | None = None
        while True:
            if settled is None and responses is not None and len(collector.done) >= responses:
                settled = time.monotonic() + settle
            left = (deadline if settled is None else settled) - time.monotonic()
            if left <= 0:
                reply.timed_out = settled is None
                break
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                reply.timed_out = settled is None
                break
            except OSError:
                reply.reset = True
                break
            if not data:
                reply.closed = True
                break
            received += data
            if reply.malformed is None:
                try:
                    parser.feed_data(data)
                except httptools.HttpParserError as exc:
                    reply.malformed = f"{type(exc).__name__}: {exc}"
    reply.responses = collector.done
    reply.raw = bytes(received)
    reply.elapsed = time.monotonic() - start
    return reply


def problems(
    reply: RawReply, *, allow_success: bool = False, max_responses: int = 1, banner: bool = True
) -> list[str]:
    """What is wrong with ``reply`` to a hostile request; empty when it is fine.

    Fine means: every response is well-formed, below 500, and a 4xx unless
    ``allow_success``; no more than ``max_responses`` (more would be a smuggled
    request answered); no traceback text; no ``Server`` header with a version
    (checked only if ``banner``); and the server answered or closed in time.
    """
    found = []
    if reply.malformed:
        found.append(f"malformed response bytes ({reply.malformed}): {reply.raw[:200]!r}")
    if reply.timed_out:
        found.append(f"no answer and no close within {reply.elapsed:.1f} s (a hang)")
    if len(reply.responses) > max_responses:
        found.append(f"{len(reply.responses)} responses to {max_responses} request(s)")
    for r in reply.responses:
        if r.status >= 500:
            found.append(f"status {r.status}: {r.body[:200]!r}")
        elif not allow_success and not 400 <= r.status < 500:
            found.append(f"status {r.status} to a malformed request: {r.body[:200]!r}")
        server = r.header(b"server")
        if banner and server is not None and VERSION_BANNER.search(server):
            found.append(f"version banner Server: {server!r}")
    found += [f"traceback text in a response: {m!r}" for m in leaked(reply.raw)]
    return found


def leaked(raw: bytes) -> list[bytes]:
    """The traceback markers found in ``raw`` response bytes."""
    return [m for m in TRACEBACK_MARKERS if m in raw]


# ---- the catalogue -------------------------------------------------------------------


@dataclass(frozen=True)
class Hostile:
    """One hostile request: the bytes, how they are sent, and what may come back."""

    name: str
    chunks: tuple[bytes, ...]
    #: shut our side for writing after sending (a client that gives up mid-request)
    half_close: bool = False
    #: a 2xx is an acceptable answer (the request is odd but legal)
    allow_success: bool = False
    #: complete responses to wait for before closing (or the server closes, or time out)
    responses: int = 1
    #: most responses acceptable (more: a request was smuggled through)
    max_responses: int = 1
    #: seconds to keep reading after the expected responses (to see a smuggled one)
    settle: float = 0.0


def _head(lines: Sequence[bytes], body: bytes = b"") -> bytes:
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _predict(headers: Sequence[bytes], body: bytes, length: int | None = None) -> bytes:
    """A POST /predict with ``headers``; a Content-Length of ``length`` (default: the
    body's) unless the headers already frame the body."""
    framing = [h for h in headers if h.lower().startswith((b"content-length", b"transfer-enc"))]
    if not framing:
        headers = [*headers, b"Content-Length: %d" % (len(body) if length is None else length)]
    return _head([b"POST /predict HTTP/1.1", b"Host: fish", *headers], body)


#: seconds to keep reading after a refusal, to see whether a hidden request was answered
SETTLE: Final = 0.3
_SMUGGLE = f"GET {SMUGGLED_PATH} HTTP/1.1\r\nHost: fish\r\n\r\n".encode()
_ONE = b'{"length":30,"weight":600}'
_JSON = b"Content-Type: application/json"
_CHUNKED = b"Transfer-Encoding: chunked"


def catalogue(max_body_bytes: int = 256 * 1024) -> tuple[Hostile, ...]:
    """Every hostile request, for a server whose body limit is ``max_body_bytes``
    (deep JSON is sent under the limit, so it reaches the JSON parser; huge JSON over it)."""
    rows = b"[30,600]," * (max_body_bytes // 9 + 1)
    huge = b'{"instances":[' + rows + b"[30,600]]}"
    depth = min(100_000, max(max_body_bytes // 2 - 8, 1))
    deep = b"[" * depth + b"]" * depth
    get = b"GET /healthz HTTP/1.1"
    host = b"Host: fish"
    return (
        Hostile(
            "content_length_and_transfer_encoding",
            (
                _predict(
                    [b"Content-Length: 4", _CHUNKED], b"1a\r\n" + _ONE + b"\r\n0\r\n\r\n" + _SMUGGLE
                ),
            ),
            settle=SETTLE,
        ),
        Hostile(
            "two_content_lengths",
            (_predict([b"Content-Length: %d" % len(_ONE), b"Content-Length: 0"], _ONE + _SMUGGLE),),
            settle=SETTLE,
        ),
        Hostile(
            "transfer_encoding_not_chunked_last",
            (_predict([b"Transfer-Encoding: chunked, identity"], b"0\r\n\r\n" + _SMUGGLE),),
            settle=SETTLE,
        ),
        Hostile("bad_chunk_size", (_predict([_CHUNKED], b"zz\r\n" + _ONE + b"\r\n0\r\n\r\n"),)),
        Hostile("chunk_size_overflow", (_predict([_CHUNKED], b"f" * 40 + b"\r\nxx\r\n0\r\n\r\n"),)),
        Hostile("oversized_header", (_head([get, host, b"X-Big: " + b"a" * 65536]),)),
        Hostile("thousand_headers", (_head([get, host, *(b"X-H%d: v" % i for i in range(1000))]),)),
        Hostile("malformed_request_line", (b"GET\x7f /healthz HTTP/1.1 extra\r\n\r\n",)),
        Hostile("bad_http_version", (_head([b"GET /healthz HTTP/1.x", host]),)),
        Hostile(
            "non_utf8_path",
            (_head([b"GET /fish\xff\xfe?length=\xc3\x28&weight=1 HTTP/1.1", host]),),
        ),
        Hostile(
            "non_utf8_header", (_head([get, host, b"X-Name: \xff\xfe\xfd"]),), allow_success=True
        ),
        Hostile("non_utf8_body", (_predict([_JSON], b'{"\xff\xfe":1}'),)),
        Hostile(
            "pipelined",
            (_head([get, host]) * 3,),
            allow_success=True,
            responses=3,
            max_responses=3,
        ),
        Hostile("body_stops_midway", (_predict([_JSON], _ONE, length=1000),), half_close=True),
        Hostile("deep_json", (_predict([_JSON], deep),)),
        Hostile("huge_json", (_predict([_JSON], huge),)),
        Hostile("nan_infinity", (_predict([_JSON], b'{"instances":[[NaN,600],[30,Infinity]]}'),)),
        Hostile("http09_junk", (b"GET /\r\n\x00\x01\x02junk\r\n\r\n",)),
        Hostile(
            "absolute_form_uri",
            (_head([b"GET http://fish/healthz HTTP/1.1", host]),),
            allow_success=True,
        ),
        Hostile("nul_byte_in_path", (_head([b"GET /heal\x00thz HTTP/1.1", host]),)),
        Hostile("nul_byte_in_header", (_head([get, b"Host: fi\x00sh"]),)),
        Hostile("space_before_colon", (_head([get, b"Host : fish"]),)),
        Hostile(
            "obsolete_line_folding",
            (_head([get, host, b"X-A: a", b" folded"]),),
            allow_success=True,
        ),
    )


def send_case(host: str, port: int, case: Hostile, timeout: float = 5.0) -> RawReply:
    """Send one catalogue entry the way it says."""
    return exchange(
        host,
        port,
        case.chunks,
        timeout=timeout,
        half_close=case.half_close,
        responses=case.responses,
        settle=case.settle,
    )


def healthy(host: str, port: int, timeout: float = 5.0) -> bool:
    """True if a new connection gets ``GET /healthz`` answered 200."""
    with contextlib.suppress(OSError):
        reply = exchange(
            host,
            port,
            b"GET /healthz HTTP/1.1\r\nHost: fish\r\n\r\n",
            timeout=timeout,
            responses=1,
        )
        return reply.statuses[:1] == [200]
    return False


# ---- a server with any ServeConfig ---------------------------------------------------

#: ``python -c`` program: serve with a ServeConfig given as JSON (argv[1]: backend,
#: argv[2]: ServeConfig fields, argv[3]: Predictor keyword arguments)
_LAUNCH: Final = """
import json, logging, sys
from fishpredict.app.config import ServeConfig
from fishpredict.predictor import Predictor
from fishpredict.server.serve import serve
logging.basicConfig(level="WARNING", stream=sys.stderr,
                    format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
raise SystemExit(serve(sys.argv[1], ServeConfig(**json.loads(sys.argv[2])),
                       Predictor(**json.loads(sys.argv[3]))))
"""


def configured_server(
    backend: str, *, models: str | None = None, fast_path: bool = True, **settings: object
) -> ServerProcess:
    """Start a real server process whose :class:`~fishpredict.app.config.ServeConfig`
    has ``settings`` (any field, including timeouts ``fishpredict serve`` has no
    flag for), on a free loopback port; ready when it returns. Stop it with
    ``.stop()`` or a ``with`` block. ``models`` and ``fast_path`` go to the
    :class:`~fishpredict.predictor.Predictor`."""
    import json
    import sys

    settings = {"host": "127.0.0.1", "port": 0, **settings}
    predictor = json.dumps({"models": models, "fast_path": fast_path})
    argv = [sys.executable, "-c", _LAUNCH, backend, json.dumps(settings), predictor]
    return ServerProcess(backend, argv)


__all__ = [
    "Hostile",
    "RawReply",
    "RawResponse",
    "catalogue",
    "configured_server",
    "exchange",
    "healthy",
    "leaked",
    "problems",
    "send_case",
]
