"""The limits uvicorn's httptools protocol lacks, added in a subclass of it.

uvicorn 0.54 (``http="httptools"``) sets no limit on a request head's size or
number of fields, has no deadline for receiving a head (its keep-alive timer
stops at the first byte, and is not armed before a connection's first
request), and answers its own ``limit_concurrency`` with a text/plain 503
without ``Retry-After``. :class:`GuardedHttpToolsProtocol` closes those gaps
the way the socket backend does (:mod:`fishpredict_backends.socket_connection`),
in the same words, through :func:`fishpredict.contract.error`:

- past ``max_connections``: **503** ``too_many_connections`` + ``Retry-After``
  as soon as the connection is accepted;
- a head over :data:`MAX_HEAD_BYTES` or :data:`MAX_HEADERS` fields: **431**;
- a head not complete within ``header_timeout`` of its first byte: **408**; a
  connection that sends nothing at all is closed after ``header_timeout``;
- a request llhttp cannot parse: the contract's JSON **400**, not uvicorn's
  text/plain one.

Each refusal says ``Connection: close``; then the connection *lingers*
(:mod:`fishpredict_backends.linger`: our side shut for writing, input discarded
until the client closes, at most :data:`LINGER_SECONDS` or :data:`LINGER_BYTES`),
so a client still sending is not reset before it has read the answer.
Deadlines cost two float stores per request: :meth:`Guard.sweep` (one task per
server) checks them a few times per ``header_timeout``, as the socket
backend's sweeper does.

:func:`check_uvicorn` refuses to serve if a uvicorn upgrade moved a method this
subclass hooks; tests/test_uvicorn_guard.py checks the behaviour itself.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any, ClassVar, Final

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from fishpredict.contract import Response, Service, error
from fishpredict.errors import BackendUnavailableError

from . import socket_wire as wire
from .linger import LINGER_BYTES, LINGER_SECONDS, discard, half_close
from .socket_server import MAX_HEAD_BYTES, MAX_HEADERS

log = logging.getLogger("fishpredict.backends.starlette")

#: the uvicorn methods :class:`GuardedHttpToolsProtocol` overrides (and calls)
HOOKS: Final = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_header",
    "on_headers_complete",
    "send_400_response",
)

# uvicorn's own methods, called directly on the hot path (cheaper than super() per call)
_data_received = HttpToolsProtocol.data_received
_on_message_begin = HttpToolsProtocol.on_message_begin
_on_header = HttpToolsProtocol.on_header
_on_headers_complete = HttpToolsProtocol.on_headers_complete

# connection phases: what a passing deadline means
IDLE, HEAD, BODY, LINGER = 0, 1, 2, 3
INF: Final = math.inf

__all__ = [
    "HOOKS",
    "LINGER_BYTES",
    "LINGER_SECONDS",
    "MAX_HEADERS",
    "MAX_HEAD_BYTES",
    "Guard",
    "GuardedHttpToolsProtocol",
    "check_uvicorn",
    "guarded_protocol",
]


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


def _seconds(value: float) -> float:
    """A timeout from the config: 0 means none."""
    return float(value) if value > 0 else INF


class Guard:
    """What the connections of one server share: limits, counters, a coarse clock."""

    def __init__(
        self,
        service: Service,
        loop: asyncio.AbstractEventLoop,
        *,
        max_head_bytes: int = MAX_HEAD_BYTES,
        max_headers: int = MAX_HEADERS,
    ) -> None:
        config = service.config
        self.loop = loop
        self.metrics = service.metrics
        self.max_connections = config.max_connections
        self.max_head_bytes = max_head_bytes
        self.max_headers = max_headers
        self.header_timeout = _seconds(config.header_timeout)
        self.retry_after: tuple[tuple[str, str], ...] = (("Retry-After", str(config.retry_after)),)
        #: every open connection (the sweeper's list)
        self.conns: set[GuardedHttpToolsProtocol] = set()
        #: connections counted against max_connections
        self.open = 0
        #: sweeper period: a fifth of the header timeout, between 10 ms and 0.5 s
        self.tick = min(max(self.header_timeout / 5, 0.01), 0.5)
        #: loop time, refreshed every tick (deadlines need no finer clock)
        self.now = loop.time()

    def rejected(self, reason: str) -> None:
        """Count a request or connection refused by a limit (``fishpredict_rejected``)."""
        if self.metrics is not None:
            self.metrics.rejected.labels(reason).inc()

    async def sweep(self) -> None:
        """Tell every connection whose deadline has passed; runs until cancelled."""
        while True:
            await asyncio.sleep(self.tick)
            self.now = now = self.loop.time()
            for conn in [c for c in self.conns if c.deadline <= now]:
                try:
                    conn.on_deadline()
                except Exception:
                    log.exception("starlette backend: error on a connection deadline; aborting it")
                    conn.transport.abort()


def encode(response: Response) -> bytes:
    """A refusal's bytes: the contract's answer with ``Connection: close``."""
    return wire.encode(response, wire.date_line(time.time()), wire.CLOSE)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus connection, head-size and head-time limits.

    Bind it to a :class:`Guard` with :func:`guarded_protocol`.
    """

    # Slots, not the instance dict: uvicorn already keeps 28 attributes there, and
    # more than 30 would cost every attribute access CPython's shared-key dict.
    __slots__ = (
        "_carry",
        "_chunk",
        "_counted",
        "_first",
        "_linger_bytes",
        "_nheaders",
        "_phase",
        "_refused",
        "deadline",
    )

    guard: ClassVar[Guard]
    #: the guard's head limits, copied here for the per-request checks
    max_head_bytes: ClassVar[int]
    max_headers: ClassVar[int]

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

    # -- transport events --

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        guard = self.guard
        guard.conns.add(self)
        if guard.open >= guard.max_connections:
            self._refuse(
                error(
                    503,
                    "too_many_connections",
                    f"this worker already has {guard.max_connections} connections; retry later",
                    headers=guard.retry_after,
                ),
                "max_connections",
            )
            return
        guard.open += 1
        self._counted = True
        self.deadline = guard.now + guard.header_timeout  # for the first request to begin

    def connection_lost(self, exc: Exception | None) -> None:
        guard = self.guard
        guard.conns.discard(self)
        self.deadline = INF
        if self._counted:
            self._counted = False
            guard.open -= 1
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._linger_bytes = discard(self.transport, self._linger_bytes, len(data))
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

    def on_header(self, name: bytes, value: bytes) -> None:
        self._nheaders += 1
        if self._nheaders > self.max_headers:
            self._refuse_head()
            raise _Refused
        _on_header(self, name, value)

    def on_headers_complete(self) -> None:
        # The head is at most the input since its first chunk: count it only if that is more.
        limit = self.max_head_bytes
        if self._first + self._carry > limit and self._head_size() > limit:
            self._refuse_head()
            raise _Refused
        self._phase = BODY  # the body's time is the Service's request_timeout
        self.deadline = INF
        _on_headers_complete(self)

    def _head_size(self) -> int:
        """Bytes of the request head, counted as the socket backend counts them."""
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def send_400_response(self, msg: str) -> None:
        """uvicorn calls this when llhttp refuses the input (or a callback raised)."""
        if not self._refused:
            self._refuse(error(400, "bad_request", "malformed HTTP request"), "bad_request")

    # -- refusing and closing --

    def _refuse_head(self) -> None:
        guard = self.guard
        self._refuse(
            error(
                431,
                "headers_too_large",
                f"request head is over {guard.max_head_bytes} bytes "
                f"or {guard.max_headers} header fields",
            ),
            "headers_too_large",
        )

    def _refuse(self, response: Response, reason: str) -> None:
        """Answer ``response`` with ``Connection: close`` and read no more requests.

        If an answer is still being made, the refusal is not sent (it would
        overtake that answer): the last answer then closes the connection instead.
        """
        if self._refused:
            return
        self._refused = True
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
            transport.write(encode(response))
        self._linger()

    def _linger(self) -> None:
        """Shut our side for writing, then wait briefly for the client to close."""
        self._phase = LINGER
        self.deadline = self.guard.now + LINGER_SECONDS
        half_close(self.transport)  # uvicorn's eof_received then lets the transport close

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
            self._refuse(
                error(408, "request_timeout", "request head not received in time"),
                "header_timeout",
            )


def guarded_protocol(guard: Guard) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to pass as ``uvicorn.Config(http=...)``, bound to ``guard``."""

    class BoundProtocol(GuardedHttpToolsProtocol):
        __slots__ = ()

    BoundProtocol.guard = guard
    BoundProtocol.max_head_bytes = guard.max_head_bytes
    BoundProtocol.max_headers = guard.max_headers
    return BoundProtocol
