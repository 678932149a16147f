"""The socket backend's server: one asyncio Server per worker, a sweeper, a drain.

Timeouts cost nothing per request: each connection keeps one ``deadline``
float, and the core's sweep (:meth:`fishpredict.server.flow.Limits.sweep`) wakes every
fraction of the shortest timeout, refreshes a coarse clock and the cached
``Date`` line, and tells the connections whose deadline has passed. With
``--workers N`` each worker runs its own asyncio Server over the listening socket
it inherited (its own accept queue, or one shared by all with
``--shared-socket``); closing that Server closes only this worker's copy.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Final

from fishpredict.app.service import Service
from fishpredict.server import binding
from fishpredict.server.flow import MAX_HEAD_BYTES, MAX_HEADERS, Limits

from .socket_protocol import HttpProtocol

log = logging.getLogger("fishpredict.socket")

#: listen backlog (asyncio calls listen() again on the socket it is given):
#: the one fishpredict binds with
BACKLOG: Final = binding.BACKLOG


class ServerState(Limits):
    """What every connection of one worker shares: the core's
    :class:`~fishpredict.server.flow.Limits`
    plus the requests in flight and the drain."""

    __slots__ = ("drained", "draining", "inflight")

    def __init__(
        self, service: Service, loop: asyncio.AbstractEventLoop, **head_limits: int
    ) -> None:
        super().__init__(service, loop, **head_limits)
        #: requests answered in a Task right now
        self.inflight = 0
        self.draining = False
        self.drained = asyncio.Event()


async def _drain(state: ServerState, timeout: float) -> None:
    state.draining = True
    state.drained.clear()
    for conn in list(state.conns):
        conn.drain()
    if state.conns:
        try:
            await asyncio.wait_for(state.drained.wait(), timeout)
        except TimeoutError:
            open_now = len(state.conns)
            log.warning("socket backend: %d connections still open after %.1f s; "
                        "closing them", open_now, timeout)
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
    async with state.sweeping():
        try:
            await stop.wait()
        finally:
            await _take_queued(loop, sock, state)
            server.close()  # stop accepting: closes this worker's copy of the socket only
            await _drain(state, service.config.drain_timeout)


async def _take_queued(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, state: ServerState
) -> None:
    """Serve the connections already in the kernel's accept queue, and what they sent.

    Closing the listening socket resets every connection still queued on it: a
    client that connected (and sent half a body) just before SIGTERM, but that
    this worker had not accepted yet, would see "Connection reset" instead of
    its answer. So they are accepted first, and the bytes they already sent are
    parsed now, so that the drain sees their requests under way.
    """
    for _ in range(BACKLOG):
        try:
            conn, _ = sock.accept()
        except OSError:  # BlockingIOError: the queue is empty
            return
        conn.setblocking(False)
        try:
            first = conn.recv(1 << 16)
            if not first:  # the client has closed already
                conn.close()
                continue
        except BlockingIOError:
            first = b""  # connected, nothing sent yet
        except OSError:
            conn.close()
            continue
        protocol = HttpProtocol(state)
        try:
            await loop.connect_accepted_socket(lambda p=protocol: p, sock=conn)
        except OSError:
            conn.close()
            continue
        if first:
            protocol.data_received(first)
