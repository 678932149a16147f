"""aiohttp's low-level server with the limits and the words aiohttp lacks.

aiohttp 3.14 has no connection limit, no limit on a request head as a whole
(only on each line, and on the number of fields), no deadline for receiving a
head (a slow head is closed at ``keepalive_timeout`` without an answer), and the
400 it writes for a request it cannot parse (``RequestHandler.handle_error``) is
text/plain, echoes the bad bytes, carries ``Server: Python/3.x aiohttp/3.y`` and
is logged at ERROR with a traceback. Here, as in every backend, by the rules and
in the words of the core's :mod:`fishpredict.server.flow`:

- past ``max_connections``: **503** ``too_many_connections`` + ``Retry-After``
  as soon as the connection is accepted;
- a head over ``MAX_HEAD_BYTES`` in all or ``MAX_HEADERS`` fields
  (trailers count as fields): **431** ``headers_too_large``;
- a head not complete within ``header_timeout`` of the read it began in:
  **408** ``request_timeout``; a connection that sends nothing at all is
  closed after ``header_timeout``;
- any other request aiohttp cannot parse: **400** ``bad_request``, one WARNING
  log line (not aiohttp's traceback), the bad bytes neither echoed nor logged;

each with ``Connection: close`` and no ``Server`` header, after the answers to
the requests pipelined before it. Then the connection *lingers*
(:func:`fishpredict.server.flow.half_close`), so a client still sending reads the answer.
A body over ``max_body_bytes`` gets the handler's 413 (``Service.read_body``), after
which aiohttp's own lingering close (``lingering_time``) reads the rest of it.

The connection side is :class:`GuardedRequestHandler`, the server
:class:`GuardedServer`. What is hooked, and why (:func:`check_aiohttp` refuses
to serve if an aiohttp upgrade moved any of it; tests/backends/test_aiohttp_guard.py
checks the behaviour):

- ``web.Server.__call__`` makes guarded protocols, and the ``request_factory``
  argument :class:`QuietRequest` requests, whose ``_prepare_hook`` drops the
  ``Server`` header: aiohttp's extension points for both.
- ``RequestHandler.connection_made`` / ``connection_lost`` count connections
  and refuse those past the limit before aiohttp sees them.
- ``RequestHandler.data_received`` follows each request head: aiohttp's C
  parser has no Python callback per head, so the guard counts the bytes of the
  reads a head spans, and reads aiohttp's queue of parsed requests
  (``_messages``) to see a head complete and measure it.
- A refusal is queued as aiohttp queues its own parse errors (a
  ``web_protocol._ErrInfo`` in ``_messages``, ``_waiter`` woken), so it is
  answered in order, by ``RequestHandler.handle_error``, overridden to answer
  the contract's JSON; that answer's ``web.Response.write_eof`` then takes
  the transport from aiohttp (``transport = None``: aiohttp closes only a
  transport it holds) and lingers; ``web.Server.shutdown`` aborts what still
  lingers.
- The head deadline is one float per connection, checked by the core's sweep
  (:meth:`fishpredict.server.flow.Limits.sweep`). While a head is under way,
  ``_next_keepalive_close_time`` is moved past the head's deadline, so
  aiohttp's keep-alive close does not come before the 408; a head is not
  timed while aiohttp holds parsed requests back (``_buffer_paused``).
- ``web_protocol.ERROR`` (the request aiohttp makes up for bytes it could not
  parse) says HTTP/1.0; it is replaced by an HTTP/1.1 one, so the answer is too.

Limits: a head that begins in the same read as the end of a request with a
``Content-Length`` body, and then stalls, is closed at ``keepalive_timeout``
without an answer (the parser does not say a head began; after a request
without a body or a chunked one, the read's last bytes tell); after a protocol
upgrade request (``Upgrade:`` or ``CONNECT``) the connection is aiohttp's alone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import aiohttp
from aiohttp import web, web_protocol
from aiohttp.http import HttpVersion11
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import RequestHandler

from fishpredict.app.messages import Response
from fishpredict.app.service import Service
from fishpredict.errors import BackendUnavailableError
from fishpredict.server import flow
from fishpredict.server.flow import (
    INF,
    LINGER_SECONDS,
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    Limits,
    discard,
    half_close,
)

log = logging.getLogger("fishpredict.backends.aiohttp")

#: seconds aiohttp's keep-alive close is held off past a head's deadline (so the 408 comes first)
KEEPALIVE_SLACK: Final = 1.0
#: aiohttp's private RequestHandler state read or set here
STATE: Final = ("_messages", "_waiter", "_next_keepalive_close_time", "_buffer_paused")
#: how aiohttp queues a request it could not parse
_ErrInfo: Final[Any] = getattr(web_protocol, "_ErrInfo", None)

# connection phases
FRESH, IDLE, HEAD, BODY, OFF, REFUSED, LINGER = range(7)

# aiohttp's own method, called directly on the per-request path (cheaper than super())
_data_received = RequestHandler.data_received



def to_aiohttp(response: Response, close: bool = False) -> web.Response:
    """The contract's ``response`` as an aiohttp response (closing the connection if ``close``)."""
    reply = web.Response(
        status=response.status, body=response.body, headers=_headers(response, close)
    )
    if close:
        reply.force_close()
    return reply


def _headers(response: Response, close: bool) -> dict[str, str]:
    headers = {"Content-Type": response.content_type}
    if response.headers:
        headers.update(response.headers)
    if close:
        headers["Connection"] = "close"  # aiohttp would leave it out in an HTTP/1.0 answer
    return headers


class GuardRefusal(HttpProcessingError):
    """A request the guard refuses (head too large or too slow), queued as a parse
    error: carries the contract's answer and the ``fishpredict_rejected`` reason."""

    def __init__(self, response: Response, reason: str) -> None:
        super().__init__(code=response.status, message=reason)
        self.response = response
        self.reason = reason


def head_refusal(exc: BaseException | None) -> tuple[Response, str]:
    """The contract's answer to a request refused before it reached the handler
    (by the guard, or because aiohttp could not parse it), and the metric reason."""
    if isinstance(exc, GuardRefusal):
        return exc.response, exc.reason
    if isinstance(exc, LineTooLong) or (
        isinstance(exc, BadHttpMessage) and "too many headers" in str(exc).lower()
    ):
        return flow.headers_too_large(), "headers_too_large"
    # aiohttp's message quotes the bad bytes: they are neither echoed nor logged
    return flow.bad_request(), "bad_request"


def head_size(message: Any) -> int:
    """Bytes of a parsed request head (``RawRequestMessage``), counted as every
    backend counts them (:func:`fishpredict.server.flow.head_bytes`)."""
    return flow.head_bytes(message.path.encode("utf-8", "surrogateescape"), message.raw_headers)


#: a head over the limits, queued as a parse error
_HEAD_TOO_LARGE: Final = GuardRefusal(flow.headers_too_large(), "headers_too_large")


class _Refusal(web.Response):
    """A refusal's answer (``Connection: close``); once it is written, its connection lingers."""

    def __init__(self, response: Response, protocol: GuardedRequestHandler) -> None:
        headers = _headers(response, close=True)
        super().__init__(status=response.status, body=response.body, headers=headers)
        self.force_close()
        self._guarded = protocol

    async def write_eof(self, data: bytes = b"") -> None:
        await super().write_eof(data)
        self._guarded.linger()


class GuardedRequestHandler(RequestHandler):
    """aiohttp's protocol, plus the connection limit, the head limits and deadline,
    the contract's answers to what it refuses, and a lingering close after them."""

    __slots__ = (
        "_body",
        "_chunked",
        "_counted",
        "_dropped",
        "_extra",
        "_guard",
        "_lingering",
        "_phase",
        "_seen",
        "deadline",
    )

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = manager
        self._counted = False  # counted against max_connections
        self._phase = FRESH
        #: loop time when the current phase has run too long (the sweep checks it)
        self.deadline = INF
        self._seen = 0  # bytes of the reads of the head under way that completed no head
        self._extra = 0  # bytes of the read that ended the last request (a head may begin there)
        self._body: Any = None  # the payload of the request whose body is arriving
        self._chunked = False  # that body is chunked
        self._dropped = 0  # bytes discarded since a refusal
        #: the transport once the guard owns it (refused at accept, or lingering)
        self._lingering: asyncio.Transport | None = None

    # -- transport events --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        limits = self._guard.limits
        if not limits.admit(self):
            self._refuse_connection(transport)  # type: ignore[arg-type]
            return
        self._counted = True
        super().connection_made(transport)
        self.deadline = limits.now + limits.header_timeout  # for a first request

    def connection_lost(self, exc: BaseException | None) -> None:
        self._phase = LINGER
        self.deadline = INF
        self._lingering = None
        counted, self._counted = self._counted, False
        self._guard.limits.release(self, counted)
        if counted:  # else refused at accept: aiohttp never saw this connection
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        phase = self._phase
        if phase >= REFUSED:  # an answer closes this connection: drop what still comes
            transport = self._lingering or self.transport
            if transport is not None:
                self._dropped = discard(transport, self._dropped, len(data))
            return
        messages = self._messages
        queued = len(messages)
        _data_received(self, data)
        if phase == OFF:
            return
        size = len(data)
        if len(messages) != queued:
            self._parsed(phase, queued, data)  # one head or more completed
        elif phase == BODY:
            if self._body.is_eof():  # the body ended in this read
                self._body = None
                self._ended(data, self._chunked)
        elif size:  # every byte of this read belongs to a head not complete yet
            if phase != HEAD:
                self._phase = HEAD
                self._seen = 0
                self._start_head_clock()
            self._seen += size
            if self._seen > MAX_HEAD_BYTES:
                self._refuse(_HEAD_TOO_LARGE, len(messages))

    def _parsed(self, phase: int, queued: int, data: bytes) -> None:
        """Check the requests queued by the read ``data``; follow the last one's body."""
        messages = self._messages
        size = len(data)
        # Most bytes any of their heads can have: this read, plus the bytes before
        # it of a head that may have begun earlier (a head under way, or the read
        # that ended the last request). A resumed parse (size 0) re-reads bytes
        # aiohttp held back: measure those heads whatever their size.
        if phase == HEAD:
            bound = self._extra + self._seen + size
        elif phase == IDLE:
            bound = self._extra + size
        else:  # FRESH, BODY: the head began in this read
            bound = size
        measure = bound > MAX_HEAD_BYTES or not size
        payload: Any = None
        for index in range(queued, len(messages)):
            message: Any
            message, payload = messages[index]
            if type(message) is _ErrInfo:  # aiohttp could not parse: it answers (handle_error)
                self._phase = REFUSED
                self.deadline = INF
                return
            if measure and head_size(message) > MAX_HEAD_BYTES:
                self._refuse(_HEAD_TOO_LARGE, index)
                return
            if message.upgrade:  # what follows is no longer HTTP/1.1 requests
                self._phase = OFF
                self.deadline = INF
                return
        self.deadline = INF
        if payload.is_eof():
            self._ended(data, payload is EMPTY_PAYLOAD or message.chunked)
        else:
            self._phase = BODY
            self._body = payload
            self._chunked = bool(message.chunked)

    def _ended(self, data: bytes, crlf_last: bool) -> None:
        """A request ended in the read ``data``: wait for the next head, or time the
        one that began after it. ``crlf_last``: the request's last bytes are CRLF CRLF
        (no body, or a chunked one), so a read that does not end so goes on after it."""
        self._extra = len(data)  # the next head may have begun in this read
        self._seen = 0
        if (
            crlf_last
            and not data.endswith(b"\r\n\r\n")
            and not b"\r\n\r\n".endswith(data)  # the request's end spans reads
            and not self._buffer_paused  # aiohttp holds bytes back: they are not a head yet
        ):
            self._phase = HEAD  # the parser took the start of the next head
            self._start_head_clock()
        else:
            self._phase = IDLE

    # -- the deadline --

    def _start_head_clock(self) -> None:
        """A head is under way: answer 408 unless it completes within ``header_timeout``."""
        limits = self._guard.limits
        if limits.header_timeout == INF:
            return  # no head deadline: aiohttp's keep-alive timer is the only bound
        self.deadline = deadline = limits.now + limits.header_timeout
        if self._next_keepalive_close_time < deadline + KEEPALIVE_SLACK:
            self._next_keepalive_close_time = deadline + KEEPALIVE_SLACK

    def on_deadline(self) -> None:
        """The sweep saw ``deadline`` pass: close a connection that sent nothing,
        answer 408 to a head still arriving, abort a lingering connection."""
        self.deadline = INF
        phase = self._phase
        if phase == FRESH:
            self.force_close()  # nothing sent since the connection was made
        elif phase == HEAD:
            self._refuse(GuardRefusal(flow.head_timeout(), "header_timeout"), len(self._messages))
        elif phase == LINGER:
            self.abort()

    # -- refusing and closing --

    def _refuse(self, refusal: GuardRefusal, index: int) -> None:
        """Answer ``refusal`` after the requests queued before ``index`` (those from
        ``index`` on are dropped), as aiohttp answers a parse error; parse no more."""
        self._phase = REFUSED
        self.deadline = INF
        messages = self._messages
        while len(messages) > index:
            messages.pop()
        messages.append(
            (_ErrInfo(status=refusal.code, exc=refusal, message=refusal.reason), EMPTY_PAYLOAD)
        )
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The contract's JSON answer to a refused request (or a 5xx), with no echo of
        the request's bytes and at most one log line."""
        if request.writer.output_size > 0:  # as aiohttp: an answer is already on its way
            raise ConnectionError("an answer was already sent; cannot send an error")
        if status >= 500:
            log.error("aiohttp answered %d on its own", status, exc_info=exc)
            return to_aiohttp(flow.internal_error(), close=True)
        response, reason = head_refusal(exc)
        self._guard.limits.rejected(reason)
        self._phase = REFUSED
        if not isinstance(exc, GuardRefusal):  # aiohttp's parser refused it
            log.warning(
                "refused a malformed request from %s with %d: %s",
                request.remote,
                response.status,
                type(exc).__name__ if exc is not None else "bad request",
            )
        return _Refusal(response, self)

    def _refuse_connection(self, transport: asyncio.Transport) -> None:
        """Answer 503 + Retry-After at once and linger; aiohttp never sees the connection."""
        limits = self._guard.limits  # admit() counted it
        transport.write(limits.refusal(limits.too_many_connections()))
        self._linger(transport)

    def linger(self) -> None:
        """A refusal was written: take the transport from aiohttp and linger."""
        transport = self.transport
        if transport is None or self._lingering is not None:
            return
        self.transport = None  # aiohttp closes only a transport it holds: this one is ours now
        self._linger(transport)

    def _linger(self, transport: asyncio.Transport) -> None:
        self._phase = LINGER
        self._lingering = transport
        if half_close(transport):  # aiohttp's eof_received then lets the transport close
            self.deadline = self._guard.limits.now + LINGER_SECONDS

    def stop_lingering(self) -> None:
        """Abort the connection if it lingers (the server shuts down)."""
        if self._lingering is not None:
            self._lingering.abort()

    def abort(self) -> None:
        """Abort the connection at once (a lingering one included)."""
        transport = self._lingering or self.transport
        if transport is not None:
            transport.abort()


#: the aiohttp methods the subclasses here override, by class
HOOKS: Final = {
    RequestHandler: ("connection_made", "connection_lost", "data_received", "handle_error"),
    web.BaseRequest: ("_prepare_hook",),
    web.Response: ("write_eof",),
    web.Server: ("__call__", "shutdown"),
}
#: the request aiohttp makes up for bytes it could not parse (``web_protocol.ERROR``):
#: it says HTTP/1.0, so its answer would too; we answer HTTP/1.1, as for any request
_UNPARSED: Final = getattr(web_protocol, "ERROR", None)
_UNPARSED_11: Final = _UNPARSED._replace(version=HttpVersion11) if _UNPARSED else None

__all__ = [
    "HOOKS",
    "STATE",
    "GuardRefusal",
    "GuardedRequestHandler",
    "GuardedServer",
    "QuietRequest",
    "check_aiohttp",
    "head_refusal",
    "head_size",
    "to_aiohttp",
]


def check_aiohttp() -> None:
    """Raise :class:`~fishpredict.errors.BackendUnavailableError` if aiohttp no
    longer defines every method and attribute the guard hooks."""
    missing = [
        f"{cls.__name__}.{name}" for cls, names in HOOKS.items() for name in names
        if name not in vars(cls)
    ]  # fmt: skip
    slots = {name for cls in RequestHandler.__mro__ for name in getattr(cls, "__slots__", ())}
    missing += [f"RequestHandler.{name}" for name in STATE if name not in slots]
    missing += [
        f"web_protocol.{name}" for name in ("ERROR", "_ErrInfo") if not hasattr(web_protocol, name)
    ]
    if missing:
        raise BackendUnavailableError(
            f"aiohttp {aiohttp.__version__} no longer defines {', '.join(missing)}; the "
            "aiohttp backend cannot enforce its limits (see backends/aiohttp_guard.py)"
        )


class QuietRequest(web.BaseRequest):
    """A request whose responses carry no ``Server`` banner (aiohttp adds
    ``Python/x aiohttp/y``), error responses included."""

    async def _prepare_hook(self, response: web.StreamResponse) -> None:
        response.headers.popall("Server", None)


class GuardedServer(web.Server):
    """``web.Server`` that makes guarded handlers and quiet requests; its ``limits``
    (the core's :class:`~fishpredict.server.flow.Limits`) count connections, and its
    :meth:`~fishpredict.server.flow.Limits.sweep` must run while it serves.

    ``handler_kwargs`` go to every :class:`GuardedRequestHandler` (aiohttp's
    ``RequestHandler`` keyword arguments: ``keepalive_timeout`` and the like).
    """

    def __init__(
        self,
        handler: Any,
        service: Service,
        loop: asyncio.AbstractEventLoop,
        **handler_kwargs: Any,
    ) -> None:
        super().__init__(handler, request_factory=self._make_quiet_request, loop=loop)
        self.loop = loop
        self.limits = Limits(service, loop)
        self.handler_kwargs: dict[str, Any] = {
            "max_line_size": MAX_HEAD_BYTES,
            "max_field_size": MAX_HEAD_BYTES,
            "max_headers": MAX_HEADERS,
            "lingering_time": LINGER_SECONDS,
            **handler_kwargs,
        }

    def __call__(self) -> GuardedRequestHandler:
        return GuardedRequestHandler(self, loop=self.loop, **self.handler_kwargs)

    async def shutdown(self, timeout: float | None = None) -> None:
        for conn in list(self.limits.conns):
            conn.stop_lingering()  # type: ignore[attr-defined]
        await super().shutdown(timeout)

    def _make_quiet_request(
        self,
        message: Any,
        payload: Any,
        protocol: RequestHandler,
        writer: Any,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        if message is _UNPARSED:
            message = _UNPARSED_11
        return QuietRequest(message, payload, protocol, writer, task, self.loop)
