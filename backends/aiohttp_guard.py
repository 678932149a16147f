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

The connection side is :class:`~fishpredict_backends.aiohttp_connection.GuardedRequestHandler`;
this module makes the server. What is hooked, and why (:func:`check_aiohttp`
refuses to serve if an aiohttp upgrade moved any of it;
tests/test_aiohttp_guard.py checks the behaviour):

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
from typing import Any, Final

import aiohttp
from aiohttp import web, web_protocol
from aiohttp.http import HttpVersion11
from aiohttp.web_protocol import RequestHandler

from fishpredict.app.service import Service
from fishpredict.errors import BackendUnavailableError
from fishpredict.server.flow import LINGER_SECONDS, MAX_HEAD_BYTES, MAX_HEADERS, Limits

from .aiohttp_connection import (
    STATE,
    GuardedRequestHandler,
    GuardRefusal,
    head_refusal,
    head_size,
    to_aiohttp,
)

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
