"""The ``starlette`` backend: a Starlette ASGI app served by uvicorn (httptools).

The app is one catch-all route whose endpoint is a plain ASGI callable: it
turns the ASGI scope into ``(method, path, query, headers, body)``, awaits
:meth:`fishpredict.app.service.Service.handle_async` and writes the answer back.
Routing, validation and errors all live in the Service, so this module only
adapts the transport.

uvicorn runs inside the event loop :mod:`fishpredict.server.serve` owns, on the
socket it already bound, and without its own signal handlers: fishpredict
sets ``stop`` on SIGTERM/SIGINT and this backend then asks uvicorn to drain.
Its HTTP protocol is :class:`~fishpredict_backends.uvicorn_guard.GuardedHttpToolsProtocol`,
uvicorn's httptools protocol plus the limits uvicorn lacks (connections, head
size and fields, head timeout), answered like the socket backend answers them.

Nothing here imports starlette or uvicorn at module import time, so
``fishpredict backends`` can list this backend when they are missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, ClassVar

from fishpredict import hookimpl
from fishpredict.app.messages import Response, error
from fishpredict.app.service import Service
from fishpredict.backend import Backend
from fishpredict.server import binding
from fishpredict.server.flow import Limits

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.types import Message, Receive, Scope, Send

log = logging.getLogger("fishpredict.backends.starlette")

#: listen backlog handed to the server (asyncio re-listens on the given socket):
#: the one fishpredict binds with
BACKLOG = binding.BACKLOG

_CONNECTION_CLOSE = (b"connection", b"close")
#: the request headers the Service reads, and transfer-encoding (a body follows)
KEPT_HEADERS = frozenset({
    b"content-type", b"accept", b"authorization", b"content-length", b"expect",
    b"connection", b"inference-header-content-length", b"transfer-encoding",
})


class _Disconnected(Exception):
    """The client went away while its request body was being read."""


class ServiceEndpoint:
    """The ASGI callable behind the catch-all route: one Service call per request.

    A class instance rather than a function, so Starlette's ``Route`` treats
    it as a raw ASGI app and adds no ``Request``/``Response`` objects of its own.
    """

    def __init__(self, service: Service) -> None:
        self.service = service
        config = service.config
        self.max_body = config.max_body_bytes
        self.max_inflight = config.max_inflight
        self.body_timeout = config.request_timeout
        self.inflight = 0
        self._content_types: dict[str, bytes] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # websockets are not served (uvicorn runs with ws="none")
            return
        close = False
        if self.inflight >= self.max_inflight:
            response = self.service.overloaded()
            await self._send(send, response, close)
            return
        self.inflight += 1
        try:
            response, close = await self._answer(scope, receive)
        except _Disconnected:
            return
        except asyncio.CancelledError:
            # uvicorn cancels what is still running when drain_timeout runs out.
            if not self.service.draining:
                raise
            _uncancel()
            response, close = self.service.cut_off(), True
        except Exception:
            log.exception(
                "starlette adapter failed on %s %s", scope.get("method"), scope.get("path")
            )
            response, close = error(500, "internal_error", "internal server error"), True
        finally:
            self.inflight -= 1
        await self._send(send, response, close)

    async def _answer(self, scope: Scope, receive: Receive) -> tuple[Response, bool]:
        """The Service's response, and whether to close the connection after it."""
        method: str = scope["method"]
        # uvicorn hands header names lower-cased, as ASGI requires; the Service reads
        # only these (the socket backend keeps the same)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                   if k in KEPT_HEADERS}
        body = b""
        if method == "POST" or "content-length" in headers or "transfer-encoding" in headers:
            length = headers.get("content-length")
            more = True

            async def next_chunk() -> bytes:
                nonlocal more
                while more:
                    message: Message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _Disconnected
                    more = message.get("more_body", False)
                    chunk: bytes = message.get("body", b"")
                    if chunk:
                        return chunk
                return b""

            declared = int(length) if length is not None and length.isdigit() else None
            read = await self.service.read_body(declared, next_chunk)
            if isinstance(read, Response):
                return read, True  # a body too slow (the guard refused one too large): close
            body = read
        query: bytes = scope["query_string"]
        answer = self.service.respond(method, scope["path"], query.decode("latin-1"), headers,
                                      body)
        if answer.__class__ is not Response:  # only a micro-batched prediction waits
            answer = await answer  # type: ignore[misc]
        return answer, False  # type: ignore[return-value]

    async def _send(self, send: Send, response: Response, close: bool) -> None:
        content_type = self._content_types.get(response.content_type)
        if content_type is None:
            content_type = self._content_types[response.content_type] = (
                response.content_type.encode("latin-1")
            )
        raw_headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(response.body)).encode()),
        ]
        for name, value in response.headers:
            raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        if close:
            raw_headers.append(_CONNECTION_CLOSE)
        await send(
            {"type": "http.response.start", "status": response.status, "headers": raw_headers}
        )
        await send({"type": "http.response.body", "body": response.body})




def _uncancel() -> None:
    """Accept the cancellation we just caught, so the task can send its answer."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


def build_app(service: Service) -> Starlette:
    """The Starlette app: one route, matching every path and method, into the Service."""
    import re

    from starlette.applications import Starlette
    from starlette.routing import Route

    route = Route("/{path:path}", ServiceEndpoint(service), methods=None)
    # every path, also one holding a (percent-encoded) newline, which `.*` would not match
    route.path_regex = re.compile(r"^/(?P<path>.*)$", re.DOTALL)
    return Starlette(routes=[route])


class StarletteBackend(Backend):
    """Starlette on uvicorn with httptools; graceful drain through uvicorn's shutdown."""

    name: ClassVar[str] = "starlette"
    summary: ClassVar[str] = "Starlette ASGI app on uvicorn (httptools)"
    requires: ClassVar[tuple[str, ...]] = ("starlette", "uvicorn", "httptools")

    async def serve(self, service: Service, sock: socket.socket, stop: asyncio.Event) -> None:
        import uvicorn

        from .uvicorn_guard import check_uvicorn, guarded_protocol

        check_uvicorn()

        class Server(uvicorn.Server):
            """uvicorn's server without its signal handlers: fishpredict.server owns signals."""

            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        config = service.config
        guard = Limits(service, asyncio.get_running_loop())
        uv_config = uvicorn.Config(
            build_app(service),
            loop="none",  # we already run inside fishpredict's loop
            http=guarded_protocol(guard),  # httptools, plus our limits
            ws="none",
            lifespan="off",
            interface="asgi3",
            log_config=None,  # keep fishpredict's logging setup
            access_log=False,
            server_header=False,
            proxy_headers=False,
            limit_concurrency=None,  # the guard answers max_connections in the contract's words
            backlog=BACKLOG,
            timeout_keep_alive=config.keepalive_timeout,  # type: ignore[arg-type]
            timeout_graceful_shutdown=config.drain_timeout,  # type: ignore[arg-type]
        )
        server = Server(uv_config)
        async with guard.sweeping():
            serving = asyncio.ensure_future(server.serve(sockets=[sock]))
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                # Stop accepting, close idle keep-alive connections, let in-flight
                # requests finish within drain_timeout: uvicorn's own shutdown.
                server.should_exit = True
                await serving
            finally:
                stopping.cancel()
                if not serving.done():
                    server.force_exit = True
                    serving.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await serving


@hookimpl
def register_backends(register: Callable[[Backend], None]) -> None:
    """Register the starlette backend (its dependencies are imported only when it serves)."""
    register(StarletteBackend())
