"""The ``socket`` backend: a raw asyncio server speaking HTTP/1.1 through llhttp.

No web framework: an ``asyncio.Protocol`` per connection feeds bytes to
``httptools`` (the llhttp binding that Node.js uses) and hands each request to
:class:`fishpredict.app.service.Service`. Keep-alive, pipelining, every serving
limit and a graceful drain are built in; it is the fastest built-in backend
(see docs/socket-backend.md for the design and the measured figures).

Importing this module does not import httptools, so ``fishpredict backends``
lists the backend (as unavailable) even where httptools is missing.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, ClassVar

from fishpredict import hookimpl
from fishpredict.backend import Backend

if TYPE_CHECKING:
    from collections.abc import Callable

    from fishpredict.app.service import Service


class SocketBackend(Backend):
    """HTTP/1.1 on a raw asyncio Protocol, parsed by httptools (llhttp)."""

    name: ClassVar[str] = "socket"
    summary: ClassVar[str] = (
        "raw asyncio protocol + httptools (llhttp): keep-alive, pipelining, fastest"
    )
    requires: ClassVar[tuple[str, ...]] = ("httptools",)

    async def serve(self, service: Service, sock: socket.socket, stop: asyncio.Event) -> None:
        from .socket_http import run

        await run(service, sock, stop)


@hookimpl
def register_backends(register: Callable[[Backend], None]) -> None:
    """Register the socket backend."""
    register(SocketBackend())
