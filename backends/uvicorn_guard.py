"""The limits uvicorn's httptools protocol lacks, added in a subclass of it.

uvicorn 0.54 (``http="httptools"``) sets no limit on a request head's size or
number of fields, has no deadline for receiving a head (its keep-alive timer
stops at the first byte, and is not armed before a connection's first
request), and answers its own ``limit_concurrency`` with a text/plain 503
without ``Retry-After``. :class:`GuardedHttpToolsProtocol` closes those gaps
the way the socket backend does (:mod:`fishpredict_backends.socket_http`),
in the same words, from the core's :mod:`fishpredict.server.flow`:

- past ``max_connections``: **503** ``too_many_connections`` + ``Retry-After``
  as soon as the connection is accepted;
- a head over ``MAX_HEAD_BYTES`` or ``MAX_HEADERS`` fields: **431**;
- a body over ``max_body_bytes`` (declared, or growing as chunks stream):
  **413** from the guard, before the app sees it;
- a head not complete within ``header_timeout`` of its first byte: **408**; a
  connection that sends nothing at all is closed after ``header_timeout``;
- a request llhttp cannot parse: the contract's JSON **400**, not uvicorn's
  text/plain one.

Each refusal says ``Connection: close``; then the connection *lingers*
(:func:`fishpredict.server.flow.half_close`: our side shut for writing, input discarded
until the client closes, at most ``LINGER_SECONDS`` or ``LINGER_BYTES``), so a
client still sending (a whole refused body) reads the answer before it is reset.
Deadlines cost two float stores per request: the core's
:meth:`~fishpredict.server.flow.Limits.sweep` (one task per server) checks them a few
times per ``header_timeout``.

:func:`check_uvicorn` refuses to serve if a uvicorn upgrade moved a method this
subclass hooks; tests/backends/test_uvicorn_guard.py checks the behaviour itself.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Final

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from fishpredict.app.messages import Response
from fishpredict.errors import BackendUnavailableError
from fishpredict.server import flow
from fishpredict.server.flow import BODY, HEAD, IDLE, INF, LINGER, LINGER_SECONDS, Limits

#: the uvicorn methods :class:`GuardedHttpToolsProtocol` overrides (and calls)
HOOKS: Final = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_header",
    "on_headers_complete",
    "on_body",
    "send_400_response",
)

# uvicorn's own methods, called directly on the hot path (cheaper than super() per call)
_data_received = HttpToolsProtocol.data_received
_on_message_begin = HttpToolsProtocol.on_message_begin
_on_header = HttpToolsProtocol.on_header
_on_headers_complete = HttpToolsProtocol.on_headers_complete
_on_body = HttpToolsProtocol.on_body

__all__ = ["HOOKS", "GuardedHttpToolsProtocol", "check_uvicorn", "guarded_protocol"]


class _Refused(Exception):
    """Raised in a parser callback to stop llhttp; the refusal is already answered."""


def check_uvicorn() -> None:
    """Raise :class:`~fishpredict.errors.BackendUnavailableError` if uvicorn's
    httptools protocol no longer defines every method the guard hooks."""
    missing = [name for name in HOOKS if name not in vars(HttpToolsProtocol)]
    if missing:
        raise BackendUnavailableError(
            f"uvicorn {uvicorn.__version__}: HttpToolsProtocol no longer defines "
            f"{', '.join(missing)}; the starlette backend cannot enforce its limits "
            "(see backends/uvicorn_guard.py)"
        )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus connection, head-size and head-time limits.

    Bind it to a worker's :class:`~fishpredict.server.flow.Limits` with :func:`guarded_protocol`.
    """

    # Slots, not the instance dict: uvicorn already keeps 28 attributes there, and
    # more than 30 would cost every attribute access CPython's shared-key dict.
    __slots__ = (
        "_body_size",
        "_carry",
        "_chunk",
        "_counted",
        "_first",
        "_length",
        "_linger_bytes",
        "_nheaders",
        "_phase",
        "_refused",
        "deadline",
    )

    guard: ClassVar[Limits]
    #: the guard's limits, copied here for the per-request checks
    max_head_bytes: ClassVar[int]
    max_headers: ClassVar[int]
    max_body_bytes: ClassVar[int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = IDLE
        #: loop time when the current phase has run too long (the sweeper checks it)
        self.deadline = INF
        self._counted = False  # counted against max_connections
        self._refused = False  # a refusal was answered (or is due): input is discarded
        self._nheaders = 0  # header fields (and trailer fields) of the current request
        self._carry = 0  # bytes of the chunks after the one a head began in, while incomplete
        self._chunk = 0  # bytes of the chunk being parsed
        self._first = 0  # bytes of the chunk the current head began in
        self._linger_bytes = 0
        self._length = 0  # the Content-Length of the request whose head is arriving
        self._body_size = 0  # bytes of its body so far

    # -- transport events --

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        guard = self.guard
        if not guard.admit(self):
            self._refuse(guard.too_many_connections(), None)
            return
        self._counted = True
        self.deadline = guard.now + guard.header_timeout  # for the first request to begin

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.release(self, self._counted)
        self._counted = False
        self.deadline = INF
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._linger_bytes = flow.discard(self.transport, self._linger_bytes, len(data))
            return
        size = self._chunk = len(data)
        if self._phase == HEAD:
            self._carry += size
        _data_received(self, data)
        if self._phase == HEAD and self._carry > self.max_head_bytes:
            self._refuse_head()  # a head still incomplete after that much input

    # -- parser callbacks (llhttp calls them from inside feed_data) --

    def on_message_begin(self) -> None:
        _on_message_begin(self)
        guard = self.guard
        self._phase = HEAD
        self.deadline = guard.now + guard.header_timeout
        self._nheaders = 0
        self._carry = 0
        self._first = self._chunk
        self._length = 0
        self._body_size = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._nheaders += 1
        if self._nheaders > self.max_headers:
            self._refuse_head()
            raise _Refused
        if len(name) == 14 and self._phase == HEAD and name.lower() == b"content-length":
            self._length = int(value)  # llhttp checked the digits (and refuses two of them)
        _on_header(self, name, value)

    def on_headers_complete(self) -> None:
        # The head is at most the input since its first chunk: count it only if that is more.
        limit = self.max_head_bytes
        if self._first + self._carry > limit and self._head_size() > limit:
            self._refuse_head()
            raise _Refused
        if self._length > self.max_body_bytes:  # refused before the app (or the body) comes
            self._refuse_body(self._length)
        self._phase = BODY  # the body's time is the Service's request_timeout
        self.deadline = INF
        _on_headers_complete(self)

    def on_body(self, body: bytes) -> None:
        size = self._body_size + len(body)
        if size > self.max_body_bytes:  # a chunked body is cut as it streams
            self._refuse_body(size)
        self._body_size = size
        _on_body(self, body)

    def _head_size(self) -> int:
        """Bytes of the request head, counted as every backend counts them."""
        return flow.head_bytes(self.url, self.headers)

    def send_400_response(self, msg: str) -> None:
        """uvicorn calls this when llhttp refuses the input (or a callback raised)."""
        if not self._refused:
            self._refuse(flow.bad_request(), "bad_request")

    # -- refusing and closing --

    def _refuse_head(self) -> None:
        self._refuse(self.guard.headers_too_large(), "headers_too_large")

    def _refuse_body(self, size: int) -> None:
        refusal = self.guard.service.body_limit_response(size)
        assert refusal is not None
        self._refuse(refusal, "body_too_large")
        raise _Refused

    def _refuse(self, response: Response, reason: str | None) -> None:
        """Answer ``response`` with ``Connection: close`` and read no more requests.

        If an answer is still being made, the refusal is not sent (it would
        overtake that answer): the last answer then closes the connection instead.
        """
        if self._refused:
            return
        self._refused = True
        if reason is not None:  # None: counted already
            self.guard.rejected(reason)
        cycle = self.cycle  # the last request whose head was complete
        if cycle is not None and not cycle.response_complete:
            if self.pipeline or cycle.response_started or not cycle.more_body:
                # An answer is still to come before the refusal; it closes the connection.
                cycle.keep_alive = False
                self._phase = BODY
                self.deadline = INF
                return
            # Refused while its own body arrives: the app stops waiting for the body,
            # as if the client had gone (what uvicorn's connection_lost does).
            cycle.disconnected = True
            cycle.message_event.set()
        transport = self.transport
        if not transport.is_closing():
            transport.write(self.guard.refusal(response))
        self._linger()

    def _linger(self) -> None:
        """Shut our side for writing, then wait briefly for the client to close."""
        self._phase = LINGER
        self.deadline = self.guard.now + LINGER_SECONDS
        flow.half_close(self.transport)  # uvicorn's eof_received then lets the transport close

    def on_deadline(self) -> None:
        """The sweeper saw ``deadline`` pass: abort a lingering connection, close
        one that never began a request, answer 408 to a head still arriving."""
        phase = self._phase
        self.deadline = INF
        transport = self.transport
        if phase == LINGER:
            transport.abort()
        elif transport.is_closing():
            return
        elif phase == IDLE:
            transport.close()
        elif phase == HEAD:
            self._refuse(flow.head_timeout(), "header_timeout")

    def abort(self) -> None:
        self.transport.abort()


def guarded_protocol(guard: Limits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to pass as ``uvicorn.Config(http=...)``, bound to ``guard``."""

    class BoundProtocol(GuardedHttpToolsProtocol):
        __slots__ = ()

    BoundProtocol.guard = guard
    BoundProtocol.max_head_bytes = guard.max_head_bytes
    BoundProtocol.max_headers = guard.max_headers
    BoundProtocol.max_body_bytes = guard.max_body_bytes
    return BoundProtocol
