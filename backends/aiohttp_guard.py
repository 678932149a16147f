"""aiohttp's low-level server with the limits and the words aiohttp lacks.

aiohttp 3.14 has no connection limit, and the 400 it writes for a request it
cannot parse (``RequestHandler.handle_error``) is text/plain, echoes the bad
bytes, carries ``Server: Python/3.x aiohttp/3.y`` and is logged at ERROR with a
traceback. Here, as in the socket backend
(:mod:`fishpredict_backends.socket_connection`), and in the same words from
:func:`fishpredict.contract.error`:

- past ``max_connections``: **503** ``too_many_connections`` + ``Retry-After``
  as soon as the connection is accepted, then a short linger and a close;
- a request head over aiohttp's parser limits, set from :data:`MAX_HEADERS`
  fields of at most :data:`MAX_FIELD_BYTES` bytes: **431**; any other request
  aiohttp cannot parse: **400** ``bad_request``; both with
  ``Connection: close``, no ``Server`` header, one WARNING line in the log;
- after a refusal that leaves a body unread, aiohttp reads (and drops) what
  still comes for :data:`LINGER_SECONDS`, not its default 10 s.

:class:`GuardedServer` is a :class:`aiohttp.web.Server` (the protocol factory
``web.ServerRunner`` hands the event loop) that makes
:class:`GuardedRequestHandler` protocols and :class:`QuietRequest` requests.
:func:`check_aiohttp` refuses to serve if an aiohttp upgrade moved a method
these subclasses hook; tests/test_aiohttp_guard.py checks the behaviour.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

import aiohttp
from aiohttp import web, web_protocol
from aiohttp.http import HttpVersion11
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler

from fishpredict.contract import Response, Service, error
from fishpredict.errors import BackendUnavailableError

from . import socket_wire as wire

log = logging.getLogger("fishpredict.backends.aiohttp")

#: most header fields in a request (the socket backend's ``MAX_HEADERS``); more -> 431
MAX_HEADERS: Final = 100
#: most bytes of the request line and of one header field (aiohttp's own default;
#: aiohttp limits each line, not the head as a whole); more -> 431
MAX_FIELD_BYTES: Final = 8190
#: after a refusal, how long (s) and how much input is read and dropped before closing
#: (the socket backend's ``LINGER_SECONDS`` / ``LINGER_BYTES``)
LINGER_SECONDS: Final = 2.0
LINGER_BYTES: Final = 1 << 20

#: the aiohttp methods the subclasses here override, by class
HOOKS: Final = {
    RequestHandler: ("connection_made", "connection_lost", "data_received", "handle_error"),
    web.BaseRequest: ("_prepare_hook",),
    web.Server: ("__call__",),
}
#: the request aiohttp makes up for bytes it could not parse (``web_protocol.ERROR``);
#: it says HTTP/1.0, so its answer would too: we answer HTTP/1.1, as for any request
_UNPARSED: Final = getattr(web_protocol, "ERROR", None)
_UNPARSED_11: Final = _UNPARSED._replace(version=HttpVersion11) if _UNPARSED else None

__all__ = [
    "HOOKS",
    "LINGER_BYTES",
    "LINGER_SECONDS",
    "MAX_FIELD_BYTES",
    "MAX_HEADERS",
    "GuardedRequestHandler",
    "GuardedServer",
    "QuietRequest",
    "check_aiohttp",
    "head_refusal",
    "to_aiohttp",
]


def check_aiohttp() -> None:
    """Raise :class:`~fishpredict.errors.BackendUnavailableError` if aiohttp no
    longer defines every method the subclasses here hook."""
    missing = [
        f"{cls.__name__}.{name}" for cls, names in HOOKS.items() for name in names
        if name not in vars(cls)
    ]  # fmt: skip
    if _UNPARSED is None:
        missing.append("web_protocol.ERROR")
    if missing:
        raise BackendUnavailableError(
            f"aiohttp {aiohttp.__version__} no longer defines {', '.join(missing)}; the "
            "aiohttp backend cannot enforce its limits (see backends/aiohttp_guard.py)"
        )


def to_aiohttp(response: Response, close: bool = False) -> web.Response:
    """The contract's ``response`` as an aiohttp response (closing the connection if ``close``)."""
    headers = {"Content-Type": response.content_type}
    if response.headers:
        headers.update(response.headers)
    if close:
        headers["Connection"] = "close"  # aiohttp would leave it out in an HTTP/1.0 answer
    reply = web.Response(status=response.status, body=response.body, headers=headers)
    if close:
        reply.force_close()
    return reply


def head_refusal(exc: BaseException | None) -> tuple[Response, str]:
    """The contract's answer to a request aiohttp could not parse, and the metric reason."""
    if isinstance(exc, LineTooLong) or (
        isinstance(exc, BadHttpMessage) and "too many headers" in str(exc).lower()
    ):
        return (
            error(
                431,
                "headers_too_large",
                f"a request line or header field is over {MAX_FIELD_BYTES} bytes, "
                f"or there are over {MAX_HEADERS} header fields",
            ),
            "headers_too_large",
        )
    # aiohttp's message quotes the bad bytes: they are neither echoed nor logged
    return error(400, "bad_request", "malformed HTTP request"), "bad_request"


class QuietRequest(web.BaseRequest):
    """A request whose responses carry no ``Server`` banner (aiohttp adds
    ``Python/x aiohttp/y``), error responses included."""

    async def _prepare_hook(self, response: web.StreamResponse) -> None:
        response.headers.popall("Server", None)


class GuardedServer(web.Server):
    """``web.Server`` that counts connections and makes guarded handlers and quiet requests.

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
        config = service.config
        self.loop = loop
        self.metrics = service.metrics
        self.max_connections = config.max_connections
        self.retry_after: tuple[tuple[str, str], ...] = (("Retry-After", str(config.retry_after)),)
        #: connections counted against max_connections
        self.open = 0
        self.handler_kwargs: dict[str, Any] = {
            "max_line_size": MAX_FIELD_BYTES,
            "max_field_size": MAX_FIELD_BYTES,
            "max_headers": MAX_HEADERS,
            "lingering_time": LINGER_SECONDS,
            **handler_kwargs,
        }

    def __call__(self) -> GuardedRequestHandler:
        return GuardedRequestHandler(self, loop=self.loop, **self.handler_kwargs)

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

    def rejected(self, reason: str) -> None:
        """Count a request or connection refused by a limit (``fishpredict_rejected``)."""
        if self.metrics is not None:
            self.metrics.rejected.labels(reason).inc()


class GuardedRequestHandler(RequestHandler):
    """aiohttp's protocol, plus the connection limit and the contract's parse errors."""

    __slots__ = ("_counted", "_guard", "_linger", "_linger_bytes", "_refused_transport")

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = manager
        self._counted = False  # counted against max_connections
        #: the transport of a connection refused at accept (None if served)
        self._refused_transport: asyncio.Transport | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._linger_bytes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        if guard.open >= guard.max_connections:
            self._refuse_connection(transport)  # type: ignore[arg-type]
            return
        guard.open += 1
        self._counted = True
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refused_transport is not None:
            self._refused_transport = None
            if self._linger is not None:
                self._linger.cancel()
            return  # aiohttp never saw this connection
        if self._counted:
            self._counted = False
            self._guard.open -= 1
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        transport = self._refused_transport
        if transport is None:
            super().data_received(data)
            return
        self._linger_bytes += len(data)  # a refused connection: drop what comes
        if self._linger_bytes > LINGER_BYTES:
            transport.abort()

    def _refuse_connection(self, transport: asyncio.Transport) -> None:
        """Answer 503 + Retry-After at once, shut our side, close when the client
        does (or after :data:`LINGER_SECONDS`); aiohttp never sees the connection."""
        guard = self._guard
        guard.rejected("max_connections")
        self._refused_transport = transport
        response = error(
            503,
            "too_many_connections",
            f"this worker already has {guard.max_connections} connections; retry later",
            headers=guard.retry_after,
        )
        transport.write(wire.encode(response, wire.date_line(time.time()), wire.CLOSE))
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()  # eof_received (aiohttp's) then lets the transport close
        self._linger = guard.loop.call_later(LINGER_SECONDS, transport.abort)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The contract's JSON answer to a request aiohttp could not parse (or a 5xx),
        with one log line and no echo of the request's bytes."""
        if request.writer.output_size > 0:  # as aiohttp: an answer is already on its way
            raise ConnectionError("an answer was already sent; cannot send an error")
        if status == 400:
            response, reason = head_refusal(exc)
            self._guard.rejected(reason)
            log.warning(
                "refused a malformed request from %s with %d: %s",
                request.remote,
                response.status,
                type(exc).__name__ if exc is not None else "bad request",
            )
        else:
            log.error("aiohttp answered %d on its own", status, exc_info=exc)
            response = error(500, "internal_error", "internal server error")
        return to_aiohttp(response, close=True)
