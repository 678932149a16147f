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
    from fishpredict.contract import Service


class HTTPServerBackend(Backend):
    """Serves the fishpredict contract with the standard library's ``http.server``.

    One thread per connection (``ThreadingHTTPServer``); each request calls
    ``Service.handle`` synchronously. No dependencies beyond the standard library.
    """

    name: ClassVar[str] = "httpserver"
    summary: ClassVar[str] = "stdlib http.server, a thread per connection (example plugin)"
    requires: ClassVar[tuple[str, ...]] = ("http.server",)

    async def serve(self, service: Service, sock: socket.socket, stop: asyncio.Event) -> None:
        from .server import serve_until

        await serve_until(service, sock, stop)


@hookimpl
def register_backends(register: Callable[[Backend], None]) -> None:
    """Give fishpredict the ``httpserver`` backend."""
    register(HTTPServerBackend())
