"""Accepting every queued connection on each turn of a uvloop event loop.

Since libuv 1.45 (libuv pull request #3696, "don't accept() connections in a
loop"), a uvloop server accepts **one** connection per turn of its event loop
and relies on the next poll for the rest. A busy worker's turn is long: with
500 connections ready it answers 500 requests before it polls again, about
8 ms for the socket backend. 1,000 clients connecting at once then wait up to
8 s in the kernel's accept queue, and their first requests time out
(``fishpredict bench --processes 2 --threads 500`` measured 164 to 273
timeouts of 5 s and 475 connections queued 2 s into the run; docs/reliability.md).
asyncio's own loop accepts up to its backlog per wake-up and has no such stall.

:class:`AcceptingServer` is what :meth:`FairAcceptLoop.create_server` returns
for an already-bound socket (every fishpredict backend serves one): it watches
the listening socket with ``add_reader`` and, each time it is readable,
accepts until the queue is empty (at most :data:`ACCEPT_BATCH` at a time), and
hands each connection to the loop with ``connect_accepted_socket``, so the
transports are uvloop's own and the request path is unchanged. Everything else
(host/port servers, TLS) goes to uvloop as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable
from typing import Any

log = logging.getLogger("fishpredict.server.accept")

#: most connections accepted per wake-up before the loop runs other work
ACCEPT_BATCH = 1024
#: seconds to stop accepting after the process ran out of file descriptors
RETRY_AFTER_EMFILE_S = 1.0
#: accept() errors that mean "out of resources": pause, as asyncio does
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

ProtocolFactory = Callable[[], asyncio.BaseProtocol]


class AcceptingServer(asyncio.AbstractServer):
    """Serves ``protocol_factory`` on a listening socket, draining its accept queue on
    every wake-up. ``close()`` stops accepting; open connections are left to the
    protocols (each backend drains its own)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 protocol_factory: ProtocolFactory) -> None:
        self._loop = loop
        self._sock = sock
        self._factory = protocol_factory
        self._serving = False
        self._closed = False
        self._pending: set[asyncio.Task[Any]] = set()
        self._retry: asyncio.TimerHandle | None = None

    # -- asyncio.AbstractServer --

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return () if self._closed else (self._sock,)

    async def start_serving(self) -> None:
        self._start()

    async def serve_forever(self) -> None:
        self._start()
        while not self._closed:
            await asyncio.sleep(3600)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop()
        self._sock.close()  # this process's copy: a supervisor keeps its own

    async def wait_closed(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    # -- accepting --

    def _start(self) -> None:
        if self._serving or self._closed:
            return
        self._sock.setblocking(False)
        self._loop.add_reader(self._sock.fileno(), self._accept_ready)
        self._serving = True

    def _stop(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._serving:
            self._loop.remove_reader(self._sock.fileno())
            self._serving = False

    def _accept_ready(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return  # the queue is empty
            except ConnectionAbortedError:
                continue  # the client gave up while queued
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    log.error("cannot accept connections (%s); pausing accept for %.0f s",
                              exc.strerror, RETRY_AFTER_EMFILE_S)
                    self._stop()
                    self._retry = self._loop.call_later(RETRY_AFTER_EMFILE_S, self._start)
                    return
                log.warning("accept() failed: %s", exc)
                continue
            self._adopt(conn)

    def _adopt(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        with contextlib.suppress(OSError):  # not TCP (a UNIX socket), or already gone
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = self._loop.create_task(self._connect(conn))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except Exception as exc:  # the connection is lost, not the server
            log.debug("dropped an accepted connection: %s", exc)
            conn.close()


def fair_accept_loop_class(base: type[asyncio.AbstractEventLoop]) -> type[Any]:
    """``base`` (uvloop's Loop) with :meth:`create_server` on a given socket served by
    :class:`AcceptingServer`."""

    class FairAcceptLoop(base):  # type: ignore[valid-type,misc]
        async def create_server(self, protocol_factory: ProtocolFactory, host: Any = None,
                                port: Any = None, *, sock: socket.socket | None = None,
                                backlog: int = 100, ssl: Any = None,
                                start_serving: bool = True, **kwargs: Any) -> Any:
            if sock is None or ssl is not None:
                return await super().create_server(
                    protocol_factory, host, port, sock=sock, backlog=backlog, ssl=ssl,
                    start_serving=start_serving, **kwargs)
            sock.listen(backlog)
            server = AcceptingServer(self, sock, protocol_factory)
            if start_serving:
                server._start()
            return server

    FairAcceptLoop.__name__ = FairAcceptLoop.__qualname__ = f"FairAccept{base.__name__}"
    return FairAcceptLoop
