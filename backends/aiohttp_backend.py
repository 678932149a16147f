"""The ``aiohttp`` backend: aiohttp's low-level web server, every request to one handler.

The handler turns an aiohttp request into ``(method, path, query, headers,
body)``, awaits :meth:`fishpredict.app.service.Service.handle_async` and writes
the answer back. Routing, validation and errors all live in the Service, so
this module only adapts the transport (no aiohttp ``Application`` or router:
there is nothing for them to route).

aiohttp runs through its runner API (``ServerRunner`` + ``SockSite``) inside
the event loop :mod:`fishpredict.server.serve` owns, on the socket it already
bound, with signal handling left to fishpredict. Its server is
:class:`~fishpredict_backends.aiohttp_guard.GuardedServer`: aiohttp's, plus the
limits aiohttp lacks (connections, the whole request head, a head deadline),
the contract's JSON answers to what it refuses or cannot parse, a lingering
close after them, and no ``Server`` banner. When ``stop`` is set the site stops accepting,
:meth:`ServiceHandler.drain` waits (up to ``drain_timeout``) for in-flight
requests, bodies still uploading included, and only then ``runner.cleanup()``
closes the idle keep-alive connections: aiohttp's cleanup alone would stop
reading from every connection at once.

Nothing here imports aiohttp at module import time, so ``fishpredict
backends`` can list this backend when aiohttp is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from fishpredict import hookimpl
from fishpredict.app.messages import Response, error
from fishpredict.app.service import Service
from fishpredict.backend import Backend
from fishpredict.server import binding

if TYPE_CHECKING:
    from aiohttp import web

    from .aiohttp_guard import GuardedServer

log = logging.getLogger("fishpredict.backends.aiohttp")

#: listen backlog handed to the site (asyncio re-listens on the given socket;
#: aiohttp's default is 128): the one fishpredict binds with
BACKLOG = binding.BACKLOG

#: seconds ``runner.cleanup()`` may take after our own drain (a request that
#: raced the stop, a cut-off request's unread body); with the 0.5 s a cancelled
#: handler gets, the drain stays within drain_timeout + 1.5 s, inside the
#: 2 s margin fishpredict.server.serve allows
CLEANUP_TIMEOUT = 1.0

#: how much of a streamed body to take per read
_CHUNK = 256 * 1024
#: the interim answer to ``Expect: 100-continue``
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: the request headers the Service reads, and transfer-encoding (a body follows)
KEPT_HEADERS = frozenset({
    "content-type", "accept", "authorization", "content-length", "expect", "connection",
    "inference-header-content-length", "transfer-encoding",
})


class ServiceHandler:
    """The aiohttp handler behind the catch-all route: one Service call per request."""

    def __init__(self, service: Service) -> None:
        from .aiohttp_guard import to_aiohttp

        self._to_aiohttp = to_aiohttp
        self.service = service
        config = service.config
        self.max_body = config.max_body_bytes
        self.max_inflight = config.max_inflight
        self.body_timeout = config.request_timeout
        #: the tasks running a request right now (for the limit and the drain)
        self._inflight: set[asyncio.Task[Any]] = set()
        #: set by :meth:`drain`: every answer then closes its connection
        self.draining = False
        self._idle = asyncio.Event()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer one request (the route's handler)."""
        close = False
        if len(self._inflight) >= self.max_inflight:
            response = self.service.overloaded()
            return self._to_aiohttp(response, close)
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        try:
            response, close = await self._answer(request)
        except asyncio.CancelledError:
            # drain() cancels what is still running when drain_timeout runs out.
            if not self.draining:
                raise
            task.uncancel()
            response, close = self.service.cut_off(), True
        except Exception:
            log.exception("aiohttp adapter failed on %s %s", request.method, request.path)
            response, close = error(500, "internal_error", "internal server error"), True
        finally:
            self._inflight.discard(task)
            if self.draining and not self._inflight:
                self._idle.set()
        return self._to_aiohttp(response, close or self.draining)

    async def drain(self, timeout: float) -> None:
        """Wait until no request is in flight (at most ``timeout`` seconds), then
        cancel any still running. From now on every answer closes its connection.

        aiohttp's own shutdown stops reading from every connection at once, so a
        request whose body is still arriving would be lost; call this after the
        site stopped accepting and before ``runner.cleanup()``.
        """
        self.draining = True
        if not self._inflight:
            return
        self._idle.clear()
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            log.warning(
                "%d requests still in flight after %gs of draining; cancelling them",
                len(self._inflight),
                timeout,
            )
            for task in list(self._inflight):
                task.cancel()
            # Let the cancelled handlers send their 503 before the runner closes up.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await self._idle.wait()

    async def _answer(self, request: web.BaseRequest) -> tuple[Response, bool]:
        """The Service's response, and whether to close the connection after it."""
        method = request.method
        # the request headers the Service reads (the socket backend keeps the same)
        headers = {low: value for name, value in request.headers.items()
                   if (low := name.lower()) in KEPT_HEADERS}
        body = b""
        if method == "POST" or "content-length" in headers or "transfer-encoding" in headers:
            content = request.content
            expect = headers.get("expect")
            # "100 Continue" once the body is wanted (after the declared length passed)
            interim = expect is not None and expect.lower() == "100-continue"
            interim = interim and request.version >= (1, 1)

            async def next_chunk() -> bytes:
                nonlocal interim
                if interim:
                    interim = False
                    writer = request.writer
                    await writer.write(_CONTINUE)
                    writer.output_size = 0  # the answer itself has not started
                return await content.read(_CHUNK)

            read = await self.service.read_body(request.content_length, next_chunk)
            if isinstance(read, Response):
                return read, True  # refused: close rather than read (or wait for) the rest
            body = read
        # The raw request target keeps the query undecoded, as the Service expects;
        # request.path is the percent-decoded path.
        query = request.raw_path.partition("?")[2]
        answer = self.service.respond(method, request.path, query, headers, body)
        if answer.__class__ is not Response:  # only a micro-batched prediction waits
            answer = await answer  # type: ignore[misc]
        return answer, False  # type: ignore[return-value]




def build_server(service: Service, handler: ServiceHandler | None = None) -> GuardedServer:
    """The aiohttp server (a protocol factory): every request, whatever its path and
    method, to ``handler`` (a new :class:`ServiceHandler` if not given)."""
    from .aiohttp_guard import GuardedServer

    return GuardedServer(
        (handler or ServiceHandler(service)).handle,
        service,
        asyncio.get_running_loop(),
        access_log=None,
        keepalive_timeout=service.config.keepalive_timeout,
    )


class AiohttpBackend(Backend):
    """aiohttp's low-level web server; graceful drain through ``ServerRunner.cleanup``."""

    name: ClassVar[str] = "aiohttp"
    summary: ClassVar[str] = "aiohttp web server (ServerRunner on the socket fishpredict bound)"
    requires: ClassVar[tuple[str, ...]] = ("aiohttp",)

    async def serve(self, service: Service, sock: socket.socket, stop: asyncio.Event) -> None:
        from aiohttp import web

        from .aiohttp_guard import check_aiohttp

        check_aiohttp()
        config = service.config
        handler = ServiceHandler(service)
        server = build_server(service, handler)
        runner = web.ServerRunner(
            server,
            handle_signals=False,  # fishpredict.server.serve owns signals
            # in-flight requests get drain_timeout in handler.drain(); this is the rest
            shutdown_timeout=min(CLEANUP_TIMEOUT, config.drain_timeout),
        )
        async with server.limits.sweeping():
            await runner.setup()
            try:
                site = web.SockSite(runner, sock, backlog=BACKLOG)
                await site.start()
                await stop.wait()
                await site.stop()  # stop accepting
                await handler.drain(config.drain_timeout)  # finish in-flight requests
            finally:
                # Close idle keep-alive connections (and anything left) and clean up.
                await runner.cleanup()


@hookimpl
def register_backends(register: Callable[[Backend], None]) -> None:
    """Register the aiohttp backend (aiohttp is imported only when it serves)."""
    register(AiohttpBackend())
