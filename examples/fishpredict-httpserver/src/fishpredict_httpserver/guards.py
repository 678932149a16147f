"""The checks ``http.server`` leaves out, run by :class:`~fishpredict_httpserver.server.Handler`.

``http.server`` is lenient by design, and on a network leniency is a hole:

- a request line it cannot read makes it speak HTTP/0.9 (a bare body, no status
  line), and it accepts ``GET /`` with no version at all;
- it hands the header lines to :mod:`email.parser`, which keeps a NUL byte in a
  value and files ``Host : fish`` away as a "defect" instead of refusing it;
- it leaves body framing to the handler, so a request with two
  ``Content-Length`` headers, or ``Content-Length`` and ``Transfer-Encoding``
  together, can hide a second request inside its body (request smuggling);
- it reads with a timeout per ``recv`` at best, so a client sending one byte of
  the head every second holds a thread for ever (slowloris).

:data:`REQUEST_LINE` and :func:`read_head` read a request strictly instead;
:func:`framing_problem` and :func:`chunk_size` leave one reading of where a body
ends; :class:`DeadlineReader` puts one deadline on a whole phase of reading (the
head, the body) instead of on each ``recv``.
"""

from __future__ import annotations

import email.parser
import http.client
import io
import math
import re
import socket
import time
from email.message import Message
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

#: Most bytes of header fields in a request head, and most fields (as the socket backend).
MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 100

#: RFC 9110 5.6.2: a method or a header field name is a "token".
TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
#: RFC 9112 3: ``method SP request-target SP HTTP-version CRLF``, and only the
#: versions we speak (a bare LF is tolerated, as RFC 9112 2.2 allows).
REQUEST_LINE = re.compile(
    rf"(?P<method>{TOKEN}) (?P<target>[^\x00-\x20\x7f]+) (?P<version>HTTP/1\.[01])\r?\n"
)
#: RFC 9112 5: ``field-name ":" OWS field-value OWS``; a name is a token (no space
#: before the colon) and a value holds no control character but HTAB. Obsolete
#: line folding (a line starting with a space) does not match either.
_FIELD_LINE = re.compile(rf"{TOKEN}:[^\x00-\x08\x0a-\x1f\x7f]*\r?\n".encode())
_DIGITS = re.compile(r"[0-9]+")
#: a chunk-size line: 1 to 16 hex digits, optional extensions, line end
#: (``int(x, 16)`` alone would also take ``-1``, ``0x1a`` and ``1_0``)
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:;[^\r\n]*)?\r?\n")


class BadHead(Exception):
    """The request head is refused: answer ``status`` with this message and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def read_head(rfile: io.BufferedIOBase) -> http.client.HTTPMessage:
    """Read the header fields after the request line, strictly, up to the blank line.

    Every line must be ``name: value`` (:data:`_FIELD_LINE`), the head at most
    :data:`MAX_HEAD_BYTES` and :data:`MAX_HEADERS` fields (431), and the body
    framing unambiguous (:func:`framing_problem`). Only then are the lines
    parsed into the message ``http.server`` handlers know as ``self.headers``.
    """
    lines: list[bytes] = []
    size = 0
    while True:
        line = rfile.readline(MAX_HEAD_BYTES + 1)
        size += len(line)
        if size > MAX_HEAD_BYTES or len(lines) > MAX_HEADERS:
            raise BadHead(
                431, f"request head is over {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} header fields"
            )
        if line in (b"\r\n", b"\n"):
            break
        if not line:
            raise BadHead(400, "the request head ended before its blank line")
        if not _FIELD_LINE.fullmatch(line):  # the refusal does not echo the bytes back
            raise BadHead(400, f"malformed header field {len(lines) + 1} (expected 'name: value')")
        lines.append(line)
    # What http.client.parse_headers does, minus its own (now redundant) limits.
    text = b"".join(lines).decode("iso-8859-1")
    headers = email.parser.Parser(_class=http.client.HTTPMessage).parsestr(text)
    problem = framing_problem(headers)
    if problem is not None:
        raise BadHead(400, problem)
    return headers


def framing_problem(headers: Message) -> str | None:
    """Why the body framing is ambiguous, or ``None``.

    Only one reading of where the body ends may exist, or a proxy in front
    and this server can disagree and the rest of the body is answered as a
    request of its own. So: one ``Content-Length`` of digits only, or exactly
    ``Transfer-Encoding: chunked``, never both (RFC 9112 6.1, 6.3).
    """
    lengths = headers.get_all("Content-Length") or []
    codings = headers.get_all("Transfer-Encoding") or []
    if lengths and codings:
        return "Content-Length and Transfer-Encoding together"
    if len(lengths) > 1:
        return "more than one Content-Length"
    if lengths and not _DIGITS.fullmatch(lengths[0].strip(" \t")):
        return "Content-Length must be a non-negative integer"
    if codings and (len(codings) > 1 or codings[0].strip(" \t").lower() != "chunked"):
        return "Transfer-Encoding must be exactly 'chunked'"
    return None


def chunk_size(line: bytes) -> int | None:
    """The size a chunk-size line announces, or ``None`` if it is malformed."""
    match = _CHUNK_SIZE.fullmatch(line)
    return int(match[1], 16) if match else None


class ReadTimeout(Exception):
    """The current phase's deadline passed before its bytes arrived.

    Deliberately not a :class:`TimeoutError`: ``http.server`` catches those
    and closes in silence, and we want to answer 408 first.
    """


class DeadlineReader(io.RawIOBase):
    """The connection's bytes, with one deadline for a whole phase of reading.

    A socket timeout bounds each ``recv`` alone; a slowloris client sending one
    byte per second never trips it. Before each ``recv`` this sets the socket
    timeout to the time left until the deadline. Wrap it in an
    :class:`io.BufferedReader` and use it as the handler's ``rfile``.
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self._what = "request"
        self._deadline = math.inf

    def expect(self, what: str, seconds: float) -> None:
        """Start a phase: ``what`` must arrive within ``seconds`` from now."""
        self._what = what
        self._deadline = time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise ReadTimeout(f"{self._what} not received in time")
        self._sock.settimeout(left)
        try:
            return self._sock.recv_into(buffer)
        except TimeoutError:
            raise ReadTimeout(f"{self._what} not received in time") from None
