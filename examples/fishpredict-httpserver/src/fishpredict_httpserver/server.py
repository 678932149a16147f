"""The fishpredict HTTP contract on asyncio streams, parsed by httptools (llhttp).

One coroutine per connection reads bytes, feeds them to
``httptools.HttpRequestParser`` (strict framing: no smuggling shapes, no
HTTP/0.9) and answers each complete request, in order, with
:meth:`fishpredict.app.service.Service.handle_async`. Routing, validation, errors
and encoding happen in ``Service``; the limits and refusals every backend
shares come from :mod:`fishpredict.server.flow` (``Limits.admit`` and
``too_many_connections()`` 503, ``headers_too_large()`` 431 counted with
``field_bytes``, ``head_timeout()``/``body_timeout()`` 408, ``bad_request()``
400, ``upgrade_refused()``), the 413 from ``Service.body_limit_response``, the
503s from ``Service.overloaded()`` and ``cut_off()``, the bytes from
:mod:`fishpredict.server.wire`. Each refusal is counted (``Limits.rejected``), says
``Connection: close`` (``Limits.refusal``) and ends with ``flow.linger_stream``:
the rest of the body is read and dropped, so a client still sending reads it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import NamedTuple
from urllib.parse import unquote

import httptools

from fishpredict.app.messages import Response
from fishpredict.app.service import Service
from fishpredict.server import flow, wire
from fishpredict.server.flow import BODY, HEAD, IDLE, Limits

log = logging.getLogger("fishpredict_httpserver")


class Request(NamedTuple):
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    connection: bytes  # the Connection line of its answer (wire.CLOSE to end)


class Refused(Exception):
    """The input is refused: answer ``response`` (counted as ``reason``) and close."""

    def __init__(self, response: Response, reason: str) -> None:
        self.response, self.reason = response, reason


def target_parts(target: bytes) -> tuple[str, str]:
    """The percent-decoded path and the raw query of a request target."""
    parsed = httptools.parse_url(target)  # origin-form and absolute-form alike
    path = unquote((parsed.path or b"/").decode("latin-1"), errors="replace")
    return path, (parsed.query or b"").decode("latin-1")


class Reader:
    """The httptools callbacks: complete requests in ``ready``, the limits checked as
    the head and body arrive. ``until`` is the loop time the current phase must end by.
    (``deadline`` and ``abort`` are what the core's sweep sees: this backend keeps
    its deadlines with ``asyncio.timeout_at`` instead.)"""

    deadline = flow.INF

    def __init__(self, limits: Limits, writer: asyncio.StreamWriter) -> None:
        self.limits, self.writer = limits, writer
        self.parser = httptools.HttpRequestParser(self)
        self.ready: list[Request] = []
        self.phase = IDLE
        self.until = limits.loop.time() + limits.header_timeout  # a first request must begin
        self.carry = self.size = self.fields = self.body_size = 0
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []

    def on_deadline(self) -> None:
        pass

    def abort(self) -> None:
        self.writer.transport.abort()

    def feed(self, data: bytes) -> None:
        """Parse ``data``; raises :class:`Refused` once the input is refused."""
        if self.phase == HEAD:
            self.carry += len(data)  # a head still incomplete after that many bytes is too big
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, Refused):
                raise exc.__context__ from None
            log.error("error in a parser callback", exc_info=exc.__context__ or exc)
            raise Refused(flow.internal_error(), "internal") from None
        except httptools.HttpParserError:  # llhttp's message may quote the bytes: not echoed
            raise Refused(flow.bad_request(), "bad_request") from None
        if self.phase == HEAD and self.carry > self.limits.max_head_bytes:
            raise Refused(self.limits.headers_too_large(), "headers_too_large")

    def _count(self, size: int) -> None:
        self.size += size
        if self.size > self.limits.max_head_bytes or self.fields > self.limits.max_headers:
            raise Refused(self.limits.headers_too_large(), "headers_too_large")

    def on_message_begin(self) -> None:
        self.phase, self.until = HEAD, self.limits.loop.time() + self.limits.header_timeout
        self.carry = self.size = self.fields = self.body_size = 0
        self.url, self.headers, self.body = b"", {}, []

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields += 1
        self._count(flow.field_bytes(name, value))
        if self.phase == HEAD:  # not the trailers of a chunked body
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        self.phase, self.until = BODY, self.limits.loop.time() + self.limits.request_timeout
        if self.parser.should_upgrade():
            raise Refused(flow.upgrade_refused(), "upgrade")
        length = int(self.headers.get("content-length", "0"))  # llhttp checked the digits
        too_big = self.limits.service.body_limit_response(length)
        if too_big is not None:
            raise Refused(too_big, "body_too_large")
        if self.headers.get("expect", "").lower() == "100-continue" and length:
            self.writer.write(wire.CONTINUE)

    def on_body(self, chunk: bytes) -> None:
        self.body.append(chunk)
        self.body_size += len(chunk)
        too_big = self.limits.service.body_limit_response(self.body_size)  # chunked: as it streams
        if too_big is not None:
            raise Refused(too_big, "body_too_large")

    def on_message_complete(self) -> None:
        self.phase, self.until = IDLE, self.limits.loop.time() + self.limits.keepalive_timeout
        parser = self.parser
        if not parser.should_keep_alive() or self.limits.service.draining:
            connection = wire.CLOSE
        elif parser.get_http_version() == "1.0":
            connection = wire.KEEP_ALIVE  # an HTTP/1.0 client that asked for keep-alive
        else:
            connection = wire.NO_CONNECTION
        try:
            path, query = target_parts(self.url)
        except httptools.HttpParserInvalidURLError:
            raise Refused(flow.bad_request("malformed request target"), "bad_request") from None
        method = parser.get_method().decode("latin-1")
        body = b"".join(self.body)
        self.ready.append(Request(method, path, query, self.headers, body, connection))


class Server:
    """One worker's connections: accepting, answering, draining."""

    def __init__(self, service: Service, loop: asyncio.AbstractEventLoop) -> None:
        self.service = service
        self.limits = Limits(service, loop)
        self.inflight = 0
        self.idle: set[asyncio.StreamWriter] = set()  # connections waiting for a request
        self.tasks: set[asyncio.Task[None]] = set()

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            writer.transport.abort()  # the client went away
        finally:
            self.tasks.discard(task)
            self.idle.discard(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        limits = self.limits
        parse = Reader(limits, writer)
        if not limits.admit(parse):
            writer.write(limits.refusal(limits.too_many_connections()))
            await flow.linger_stream(reader, writer)
            limits.release(parse, False)
            return
        try:
            await self._requests(parse, reader, writer)
        finally:
            limits.release(parse, True)

    async def _requests(
        self, parse: Reader, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        limits = self.limits
        while True:
            if parse.phase == IDLE:
                self.idle.add(writer)
            refused: Refused | None = None
            try:
                async with asyncio.timeout_at(parse.until):
                    data = await reader.read(1 << 16)
                self.idle.discard(writer)
                if not data:
                    return writer.close()
                parse.feed(data)
            except TimeoutError:
                if parse.phase == IDLE:
                    return writer.close()  # an idle keep-alive connection: closed silently
                refused = (Refused(flow.head_timeout(), "header_timeout") if parse.phase == HEAD
                           else Refused(flow.body_timeout(), "request_timeout"))
            except Refused as exc:
                refused = exc
            closing = await self._answer(parse, writer)
            if refused is not None and not closing:
                limits.rejected(refused.reason)
                writer.write(limits.refusal(refused.response))
                closing = True
            if closing:
                return await flow.linger_stream(reader, writer)
            await writer.drain()

    async def _answer(self, parse: Reader, writer: asyncio.StreamWriter) -> bool:
        """Answer the complete requests in order; True if the last one ends the connection."""
        ready, parse.ready = parse.ready, []
        for request in ready:
            response = await self._respond(request)
            writer.write(wire.encode(response, self.limits.date, request.connection,
                                     request.method == "HEAD"))
            if request.connection is wire.CLOSE:
                return True
        return False

    async def _respond(self, request: Request) -> Response:
        service = self.service
        if self.inflight >= self.limits.max_inflight:
            self.limits.rejected("max_inflight")
            return service.overloaded()
        self.inflight += 1
        try:
            return await service.handle_async(
                request.method, request.path, request.query, request.headers, request.body
            )
        except asyncio.CancelledError:
            if not service.draining:
                raise
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            return service.cut_off()
        finally:
            self.inflight -= 1

    async def drain(self, timeout: float) -> None:
        """Close idle connections; let busy ones finish within ``timeout``, then cut them off."""
        for writer in list(self.idle):
            writer.close()
        if self.tasks:
            _, late = await asyncio.wait(set(self.tasks), timeout=timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)


async def serve_until(service: Service, sock: socket.socket, stop: asyncio.Event) -> None:
    """Serve on ``sock`` until ``stop`` is set, then drain; the Backend contract."""
    server = Server(service, asyncio.get_running_loop())
    listener = await asyncio.start_server(server.connection, sock=sock, backlog=4096)
    async with server.limits.sweeping():  # the coarse clock and the Date line
        try:
            await stop.wait()
        finally:
            listener.close()  # stop accepting
            await server.drain(service.config.drain_timeout)
