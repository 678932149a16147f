"""What every backend keeps alike: connection and head limits, refusals, deadlines, linger.

The contract (:mod:`fishpredict.app.service`) answers requests. This module holds
the rules a backend applies *before* a request reaches the contract, so that
every backend (built in or a plugin) refuses alike, in the same words, counted
under the same ``fishpredict_rejected_total{reason}``:

=============================  ======  ========================  ===================
what                           status  error code                reason counted
=============================  ======  ========================  ===================
past ``max_connections``       503     ``too_many_connections``  ``max_connections``
head over 16 KiB or 100 fields 431     ``headers_too_large``     ``headers_too_large``
head not in ``header_timeout`` 408     ``request_timeout``       ``header_timeout``
bytes that are not HTTP/1.1    400     ``bad_request``           ``bad_request``
``Upgrade:`` or ``CONNECT``    400     ``upgrade_not_supported`` ``upgrade``
body over ``max_body_bytes``   413     ``payload_too_large``     ``body_too_large``
=============================  ======  ========================  ===================

(The 413 itself, and the 408 of a body too slow, come from
:meth:`Service.body_limit_response <fishpredict.app.service.Service.body_limit_response>`
and :meth:`Service.read_body <fishpredict.app.service.Service.read_body>`; the 503s
past ``max_inflight`` and after the drain timeout from ``Service.overloaded()``
and ``Service.cut_off()``.)

A head is counted as the target plus, per field (trailers too), name + value + 4
bytes (:func:`field_bytes`); the Host field counts against the 100.

Every refusal says ``Connection: close`` (:meth:`Limits.refusal`), and then the
connection *lingers* rather than closes: closing a socket that still holds unread
bytes makes the kernel send a reset, and a reset destroys an answer the client
has not read yet (urllib and requests send a whole body before they read). So:

1. :func:`half_close` shuts our side for writing once the answer is sent (the
   client sees the answer, then FIN) and keeps reading, to see the client's end;
2. what still arrives is dropped (:func:`discard`), up to :data:`LINGER_BYTES`
   (more than a 36 MB body refused at the default 16 MiB limit); past it the
   connection is aborted;
3. the client's close ends it; if it has not come :data:`LINGER_SECONDS` after
   the answer left, the connection is aborted (:func:`still_sending` gives a
   large answer the client is still reading more time).

A backend on asyncio streams does all three with :func:`linger_stream`.

:class:`Limits` is what one worker's connections share: the limits from the
config, the open-connection count (:meth:`Limits.admit`), a coarse clock, the
``Date`` line, and :meth:`Limits.sweep`, one task that tells each connection
whose ``deadline`` passed (``on_deadline()``): deadlines cost a float store per
phase instead of a timer per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Final, Protocol

from fishpredict.app.messages import Response, error
from fishpredict.server import wire

if TYPE_CHECKING:
    from fishpredict.app.metrics import Metrics
    from fishpredict.app.service import Service

log = logging.getLogger("fishpredict.server.flow")

#: most bytes of a request head (target + fields, see :func:`field_bytes`); more -> 431
MAX_HEAD_BYTES: Final = 16 * 1024
#: most header fields in a request (Host and trailers included); more -> 431
MAX_HEADERS: Final = 100
#: how long (s) a connection may linger after its last answer left before it is aborted
LINGER_SECONDS: Final = 2.0
#: how many bytes a lingering connection may still send (dropped) before it is aborted
LINGER_BYTES: Final = 64 << 20
#: connection phases: what a passing deadline means
IDLE, HEAD, BODY, LINGER = 0, 1, 2, 3
INF: Final = math.inf

#: what resume_reading raises on a transport without flow control
_NO_FLOW_CONTROL: Final = (AttributeError, NotImplementedError, RuntimeError)


def seconds(value: float) -> float:
    """A timeout from the config: 0 means none (infinite)."""
    return float(value) if value > 0 else INF


def field_bytes(name: bytes | str, value: bytes | str) -> int:
    """What one header field counts against :data:`MAX_HEAD_BYTES`."""
    return len(name) + len(value) + 4


def head_bytes(target: bytes, fields: Iterable[tuple[bytes | str, bytes | str]]) -> int:
    """What a whole request head counts against :data:`MAX_HEAD_BYTES`."""
    return len(target) + sum(field_bytes(name, value) for name, value in fields)


# -- the refusals (the contract's JSON error; each closes its connection) --


def headers_too_large(
    max_head_bytes: int = MAX_HEAD_BYTES, max_headers: int = MAX_HEADERS
) -> Response:
    return error(
        431,
        "headers_too_large",
        f"request head is over {max_head_bytes} bytes or {max_headers} header fields",
    )


def head_timeout() -> Response:
    return error(408, "request_timeout", "request head not received in time")


def body_timeout() -> Response:
    return error(408, "request_timeout", "request body not received in time")


def bad_request(message: str = "malformed HTTP request") -> Response:
    """The 400 for bytes that are not HTTP/1.1 (never echo them: ``message`` is ours)."""
    return error(400, "bad_request", message)


def upgrade_refused() -> Response:
    return error(400, "upgrade_not_supported", "protocol upgrades (and CONNECT) are not served")


def internal_error() -> Response:
    return error(500, "internal_error", "internal server error")


class Swept(Protocol):
    """A connection :meth:`Limits.sweep` looks after."""

    deadline: float

    def on_deadline(self) -> None: ...

    def abort(self) -> None: ...


class Limits:
    """What the connections of one worker share: limits, counters, the coarse clock.

    A backend makes one per server (``Limits(service, loop)``), runs
    :meth:`sweep` while it serves (``async with limits.sweeping():``), and per connection calls
    :meth:`admit` when it is made and :meth:`release` when it is lost.
    """

    __slots__ = (
        "_second",
        "conns",
        "date",
        "header_timeout",
        "keepalive_timeout",
        "loop",
        "max_body_bytes",
        "max_connections",
        "max_head_bytes",
        "max_headers",
        "max_inflight",
        "metrics",
        "now",
        "open",
        "request_timeout",
        "retry_after",
        "service",
        "tick",
    )

    def __init__(
        self,
        service: Service,
        loop: asyncio.AbstractEventLoop,
        *,
        max_head_bytes: int = MAX_HEAD_BYTES,
        max_headers: int = MAX_HEADERS,
    ) -> None:
        cfg = service.config
        self.service = service
        self.loop = loop
        self.metrics: Metrics | None = service.metrics
        #: every open connection, counted or refused (what the sweep looks at)
        self.conns: set[Swept] = set()
        #: connections counted against max_connections
        self.open = 0
        self.max_head_bytes = max_head_bytes
        self.max_headers = max_headers
        self.max_body_bytes = cfg.max_body_bytes
        self.max_connections = cfg.max_connections
        self.max_inflight = cfg.max_inflight
        self.header_timeout = seconds(cfg.header_timeout)
        self.keepalive_timeout = seconds(cfg.keepalive_timeout)
        self.request_timeout = seconds(cfg.request_timeout)
        self.retry_after: tuple[tuple[str, str], ...] = service.retry_after()
        shortest = min(self.header_timeout, self.keepalive_timeout, self.request_timeout, 2.5)
        #: sweep period: a fifth of the shortest timeout, between 10 ms and 0.5 s
        self.tick = min(max(shortest / 5, 0.01), 0.5)
        #: loop time, refreshed every tick (deadlines need no finer clock)
        self.now = loop.time()
        self._second = -1
        #: the ``Date:`` line of answers, rebuilt when the second changes
        self.date = b""
        self.refresh()

    def refresh(self) -> None:
        """Advance the coarse clock; rebuild the Date line when the second changes."""
        self.now = self.loop.time()
        wall = time.time()
        if int(wall) != self._second:
            self._second = int(wall)
            self.date = wire.date_line(wall)

    def rejected(self, reason: str) -> None:
        """Count a request or connection refused (``fishpredict_rejected_total{reason}``)."""
        if self.metrics is not None:
            self.metrics.rejected.labels(reason).inc()

    # -- connections --

    def admit(self, conn: Swept) -> bool:
        """A new connection: swept from now on, and counted unless the worker is full.
        False if full: the caller answers :meth:`too_many_connections` and lingers."""
        self.conns.add(conn)
        if self.open >= self.max_connections:
            self.rejected("max_connections")
            return False
        self.open += 1
        return True

    def release(self, conn: Swept, counted: bool) -> None:
        """A connection is gone (``counted``: :meth:`admit` said True for it)."""
        self.conns.discard(conn)
        if counted:
            self.open -= 1

    # -- refusals with this worker's numbers --

    def too_many_connections(self) -> Response:
        return error(
            503,
            "too_many_connections",
            f"this worker already has {self.max_connections} connections; retry later",
            headers=self.retry_after,
        )

    def headers_too_large(self) -> Response:
        return headers_too_large(self.max_head_bytes, self.max_headers)

    def refusal(self, response: Response) -> bytes:
        """A refusal's bytes: ``response`` with ``Connection: close``."""
        return wire.encode(response, self.date, wire.CLOSE)

    # -- deadlines --

    def deadline(self, seconds: float) -> float:
        """The loop time ``seconds`` from now, on the coarse clock."""
        return self.now + seconds

    @contextlib.asynccontextmanager
    async def sweeping(self) -> AsyncIterator[Limits]:
        """Run :meth:`sweep` as a task while the ``async with`` block runs."""
        task = asyncio.ensure_future(self.sweep())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def sweep(self) -> None:
        """Tell every connection whose deadline has passed; runs until cancelled."""
        while True:
            await asyncio.sleep(self.tick)
            self.refresh()
            now = self.now
            for conn in [c for c in self.conns if c.deadline <= now]:
                try:
                    conn.on_deadline()
                except Exception:
                    log.exception("error on a connection deadline; aborting it")
                    conn.abort()


# -- lingering close --


def half_close(transport: asyncio.Transport, *, peer_closed: bool = False) -> bool:
    """Shut our side of ``transport`` for writing and keep reading, to see the client's end.

    Returns True if the connection now lingers: the caller drops what still
    arrives (:func:`discard`) and aborts the transport :data:`LINGER_SECONDS`
    later unless the client closed first. Returns False if there is nothing to
    wait for: the transport was already closing, or it was closed now because
    the client already ended its side (``peer_closed``) or the transport
    cannot half-close (TLS).
    """
    if transport.is_closing():
        return False
    if peer_closed or not transport.can_write_eof():
        transport.close()
        return False
    with contextlib.suppress(*_NO_FLOW_CONTROL):
        transport.resume_reading()  # reading may be paused (back-pressure); the EOF must be seen
    transport.write_eof()  # sent once the answers written before it are
    return True


def discard(transport: asyncio.Transport, dropped: int, size: int) -> int:
    """Drop ``size`` more bytes read from a lingering connection that already
    dropped ``dropped``; abort it once over :data:`LINGER_BYTES`. Returns the new total."""
    dropped += size
    if dropped > LINGER_BYTES:
        transport.abort()
    return dropped


def still_sending(transport: asyncio.Transport, unsent: int) -> int:
    """At a lingering connection's deadline: the bytes of its answer still unsent if
    fewer than ``unsent`` (those at the deadline before): the client is reading
    it, linger on. 0: nothing left to send, or no progress; abort."""
    size = transport.get_write_buffer_size()
    return size if 0 < size < unsent else 0


def unread(transport: asyncio.BaseTransport) -> bool:
    """Whether bytes the client sent still wait, unread, in the kernel: a connection
    that looks idle to a draining server but whose request is on its way (closing it
    now would reset it). One peek, for the drain only."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    try:
        with socket.fromfd(sock.fileno(), sock.family, socket.SOCK_STREAM) as dup:
            return bool(dup.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:  # BlockingIOError: nothing waits; or the connection is gone
        return False


async def linger_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The lingering close for a backend on asyncio streams: call it after the last
    answer (a refusal) is written. Shuts our side once the answer is sent, drops
    what still arrives until the client closes, then closes; aborts past
    :data:`LINGER_BYTES` or :data:`LINGER_SECONDS`."""
    transport = writer.transport
    dropped = 0
    try:
        async with asyncio.timeout(LINGER_SECONDS):
            await writer.drain()
            if not half_close(transport):  # type: ignore[arg-type]
                return
            while chunk := await reader.read(1 << 16):
                dropped += len(chunk)
                if dropped > LINGER_BYTES:
                    break
            else:
                transport.close()  # the client closed its side: a clean end
                return
    except (TimeoutError, OSError):
        pass
    transport.abort()


__all__ = [
    "BODY",
    "HEAD",
    "IDLE",
    "INF",
    "LINGER",
    "LINGER_BYTES",
    "LINGER_SECONDS",
    "MAX_HEADERS",
    "MAX_HEAD_BYTES",
    "Limits",
    "Swept",
    "bad_request",
    "body_timeout",
    "discard",
    "field_bytes",
    "half_close",
    "head_bytes",
    "head_timeout",
    "headers_too_large",
    "internal_error",
    "linger_stream",
    "seconds",
    "still_sending",
    "unread",
    "upgrade_refused",
]
