"""Listening sockets for ``fishpredict serve``, and the file-descriptor limit.

How the workers accept (``ServeConfig.reuse_port``): by default, where the
kernel has ``SO_REUSEPORT``, each worker has its own accept queue on the one
port (:func:`listen`) and the kernel spreads new connections over them by a
hash of the client's address. With one socket shared by every worker
(:func:`bind`), whichever worker wakes first takes every connection queued at
that moment: a burst of 64 keep-alive connections measured 64 + 0 in three runs
of five (docs/performance.md), leaving one worker idle for the whole load.
"""

from __future__ import annotations

import contextlib
import errno
import resource
import socket
import sys
from typing import Final

from fishpredict.errors import ConfigError

#: the listen backlog (the backends pass the same to asyncio, which listens again)
BACKLOG: Final = 4096
#: whether this kernel can give each worker its own accept queue on one port
HAVE_REUSEPORT = hasattr(socket, "SO_REUSEPORT") and sys.platform.startswith("linux")


def bind(host: str, port: int, backlog: int = BACKLOG, *, reuse_port: bool = False
         ) -> socket.socket:
    """A listening, non-blocking TCP socket; :class:`ConfigError` if the address is unusable.

    ``reuse_port`` sets ``SO_REUSEPORT``, so that more sockets may join the port
    (see :func:`listen`).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is already in use") from None
        if exc.errno == errno.EACCES:
            raise ConfigError(f"no permission to listen on {host}:{port}") from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def listen(host: str, port: int, count: int, backlog: int = BACKLOG) -> list[socket.socket]:
    """``count`` listening sockets on one port, joined with ``SO_REUSEPORT``: one accept
    queue per worker, the kernel spreading new connections over them.

    A plain socket binds first and is closed again, so that a port some other
    process listens on is refused as in :func:`bind` (a ``SO_REUSEPORT`` socket
    would join another process's group of the same user instead). With port 0
    it picks the free port that the group then binds.
    """
    probe = bind(host, port, backlog)
    port = probe.getsockname()[1]
    probe.close()
    group: list[socket.socket] = []
    try:
        for _ in range(count):
            group.append(bind(host, port, backlog, reuse_port=True))
    except ConfigError:
        for sock in group:
            sock.close()
        raise
    return group


def raise_fd_limit() -> None:
    """Let a worker hold as many connections as the hard limit allows."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
