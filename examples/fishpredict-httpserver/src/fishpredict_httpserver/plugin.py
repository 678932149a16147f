"""The fishpredict plugin: one hook that registers the ``httpserver`` backend.

This module is what the entry point names, so it stays light: importing it
(which ``fishpredict backends`` does) must not start anything or import the
server code. The server lives in :mod:`fishpredict_httpserver.server` and is
imported only when ``serve`` runs.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from fishpredict import hookimpl
from fishpredict.backend import Backend

from .commands import register_commands  # noqa: F401 (the hook adding `httpserver-info`)

if TYPE_CHECKING:
    from fishpredict.app.service import Service


class HTTPServerBackend(Backend):
    """Serves the fishpredict contract on asyncio streams, parsed by httptools.

    One coroutine per connection; each request calls ``Service.handle_async``; the
    limits and refusals are the core's (:mod:`fishpredict.server.flow`).
    """

    name: ClassVar[str] = "httpserver"
    summary: ClassVar[str] = (
        "asyncio streams + httptools, a coroutine per connection (example plugin)"
    )
    requires: ClassVar[tuple[str, ...]] = ("httptools",)

    async def serve(self, service: Service, sock: socket.socket, stop: asyncio.Event) -> None:
        from .server import serve_until

        await serve_until(service, sock, stop)


@hookimpl
def register_backends(register: Callable[[Backend], None]) -> None:
    """Give fishpredict the ``httpserver`` backend."""
    register(HTTPServerBackend())
