"""What a serving backend is: the one class a backend plugin implements.

A backend adapts one transport (an ASGI server, aiohttp, a raw asyncio
socket, ...) to :class:`fishpredict.app.service.Service`, which owns the whole
HTTP contract. The process model (loading models once, binding the socket,
forking workers, signals) lives in :mod:`fishpredict.server.serve`; a backend only
serves one already-bound listening socket in one event loop until told to stop.
"""

from __future__ import annotations

import abc
import asyncio
import importlib.util
import socket
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from fishpredict.app.service import Service


class Backend(abc.ABC):
    """A way of serving the fishpredict HTTP contract.

    Subclasses set ``name`` (what ``fishpredict serve --backend`` takes),
    ``summary`` (one line for ``fishpredict backends``) and ``requires``
    (the importable modules it needs, checked without importing them), and
    implement :meth:`serve`.
    """

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()

    def missing(self) -> list[str]:
        """The modules in ``requires`` that cannot be imported here."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def available(self) -> bool:
        return not self.missing()

    @abc.abstractmethod
    async def serve(self, service: Service, sock: socket.socket, stop: asyncio.Event) -> None:
        """Serve ``service`` on the listening ``sock`` until ``stop`` is set.

        ``sock`` is bound, listening and non-blocking; the backend must not
        close it before ``stop`` is set. When ``stop`` is set the backend
        stops accepting connections, lets in-flight requests finish (at most
        ``service.config.drain_timeout`` seconds), closes idle keep-alive
        connections, and returns. Every request goes through
        ``await service.handle_async(...)`` (or ``service.handle``).
        """

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
