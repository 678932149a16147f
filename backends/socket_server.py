"""The socket backend's server: one asyncio Server per worker, a sweeper, a drain.

Timeouts cost nothing per request: each connection keeps one ``deadline``
float, and a sweeper task wakes every fraction of the shortest timeout,
refreshes a coarse clock and the cached ``Date`` line, and tells the
connections whose deadline has passed. With ``--workers N`` each worker runs
its own asyncio Server over the listening socket it inherited (its own accept
queue, or one shared by all with ``--shared-socket``); closing that Server
closes only this worker's copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
from typing import Final

from fishpredict.contract import Service

from . import socket_wire as wire
from .socket_protocol import HttpProtocol

log = logging.getLogger("fishpredict.socket")

#: most bytes of a request head (request line + header fields); more -> 431
MAX_HEAD_BYTES: Final = 16 * 1024
#: most header fields in a request; more -> 431
MAX_HEADERS: Final = 100
#: listen backlog (asyncio calls listen() again on the socket it is given);
#: the same as :func:`fishpredict.serve.bind`
BACKLOG: Final = 4096


def _seconds(value: float) -> float:
    """A timeout from the config: 0 means none."""
    return float(value) if value > 0 else math.inf


class ServerState:
    """What every connection of one worker shares: limits, counters, the coarse clock."""

    __slots__ = (
        "_second",
        "conns",
        "date",
        "drained",
        "draining",
        "header_timeout",
        "inflight",
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
        "retry_after_header",
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
        self.metrics = service.metrics
        #: every open connection, counted or refused
        self.conns: set[HttpProtocol] = set()
        #: connections counted against max_connections
        self.open = 0
        #: requests answered in a Task right now
        self.inflight = 0
        self.draining = False
        self.drained = asyncio.Event()
        self.max_head_bytes = max_head_bytes
        self.max_headers = max_headers
        self.max_body_bytes = cfg.max_body_bytes
        self.max_connections = cfg.max_connections
        self.max_inflight = cfg.max_inflight
        self.header_timeout = _seconds(cfg.header_timeout)
        self.keepalive_timeout = _seconds(cfg.keepalive_timeout)
        self.request_timeout = _seconds(cfg.request_timeout)
        self.retry_after_header: tuple[tuple[str, str], ...] = (
            ("Retry-After", str(cfg.retry_after)),
        )
        shortest = min(self.header_timeout, self.keepalive_timeout, self.request_timeout, 2.5)
        #: sweeper period: a fifth of the shortest timeout, between 10 ms and 0.5 s
        self.tick = min(max(shortest / 5, 0.01), 0.5)
        self.now = loop.time()
        self._second = -1
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
        """Count a request or connection refused by a limit (``fishpredict_rejected``)."""
        if self.metrics is not None:
            self.metrics.rejected.labels(reason).inc()


async def _sweep(state: ServerState) -> None:
    while True:
        await asyncio.sleep(state.tick)
        state.refresh()
        now = state.now
        for conn in [c for c in state.conns if c.deadline <= now]:
            try:
                conn.on_deadline()
            except Exception:
                log.exception("socket backend: error on a connection deadline; aborting it")
                conn.abort()


async def _drain(state: ServerState, timeout: float) -> None:
    state.draining = True
    state.drained.clear()
    for conn in list(state.conns):
        conn.drain()
    if state.conns:
        try:
            await asyncio.wait_for(state.drained.wait(), timeout)
        except TimeoutError:
            log.warning(
                "socket backend: %d connections still open after %.1f s; closing them",
                len(state.conns),
                timeout,
            )
    for conn in list(state.conns):
        conn.abort()


async def run(
    service: Service,
    sock: socket.socket,
    stop: asyncio.Event,
    *,
    max_head_bytes: int = MAX_HEAD_BYTES,
    max_headers: int = MAX_HEADERS,
) -> None:
    """Serve ``service`` on the listening ``sock`` until ``stop`` is set, then drain."""
    loop = asyncio.get_running_loop()
    state = ServerState(service, loop, max_head_bytes=max_head_bytes, max_headers=max_headers)
    server = await loop.create_server(lambda: HttpProtocol(state), sock=sock, backlog=BACKLOG)
    sweeper = loop.create_task(_sweep(state))
    try:
        await stop.wait()
    finally:
        server.close()  # stop accepting: closes this worker's copy of the socket only
        try:
            await _drain(state, service.config.drain_timeout)
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
