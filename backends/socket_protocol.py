"""One client connection of the socket backend: the llhttp side.

Bytes from the transport go to ``httptools.HttpRequestParser`` (the llhttp
binding), whose callbacks collect one request at a time; framing (Content-Length,
chunked, keep-alive, smuggling shapes) is llhttp's job, never ours. A finished
request goes to :meth:`fishpredict.app.service.Service.handle_async`, stepped
*eagerly*: if the coroutine finishes on its first step (every request but a
micro-batched scikit-learn prediction) the answer is encoded at once and no Task
is created; only a request that really awaits gets one (``Connection._defer``).

Limits enforced while parsing: head size and header count (431), body size
(413, before reading when Content-Length says so, else as chunks stream),
protocol upgrades (400). llhttp's own refusals (bad request line, bad chunk
size, Content-Length with Transfer-Encoding, two Content-Lengths, bad bytes)
answer 400. Every refusal closes the connection (see
:mod:`fishpredict_backends.socket_connection`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, cast
from urllib.parse import unquote

import httptools

from fishpredict.server import flow, wire

from .socket_connection import BODY, HEAD, IDLE, Connection

if TYPE_CHECKING:
    from .socket_server import ServerState

log = logging.getLogger("fishpredict.socket")

#: the only request headers kept; framing headers are llhttp's business
_WANTED: Final = {
    b"content-type": "content-type",
    b"accept": "accept",
    b"authorization": "authorization",
    b"content-length": "content-length",
    b"expect": "expect",
    b"connection": "connection",
    # the V2 binary tensor data extension: bytes of JSON before the binary tensors
    b"inference-header-content-length": "inference-header-content-length",
}
_METHODS: Final = {m.encode(): m for m in ("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS")}
_NO_HEADERS: Final[Mapping[str, str]] = MappingProxyType({})


class _Stop(Exception):
    """Raised in a parser callback to stop parsing (the refusal is already queued)."""


def _target(url: bytes) -> tuple[str, str]:
    """``(path, raw query)`` of a request target; the path is percent-decoded."""
    if url[:1] == b"/" and b"#" not in url:
        path, _, query = url.partition(b"?")
        if b"%" in path:
            return unquote(path.decode("latin-1"), errors="replace"), query.decode("latin-1")
        return path.decode("latin-1"), query.decode("latin-1")
    parsed = httptools.parse_url(url)  # absolute-form, '*', fragments
    raw_path = (parsed.path or b"/").decode("latin-1")
    return unquote(raw_path, errors="replace"), (parsed.query or b"").decode("latin-1")


class HttpProtocol(Connection):
    """One HTTP/1.1 connection: parse with llhttp, answer through the contract."""

    __slots__ = (
        "_body",
        "_body_size",
        "_carry",
        "_head_bytes",
        "_headers",
        "_nheaders",
        "_parser",
        "_service",
        "_url",
    )

    def __init__(self, state: ServerState) -> None:
        super().__init__(state)
        self._service = state.service
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: dict[str, str] | None = None
        self._head_bytes = 0
        self._nheaders = 0
        self._carry = 0  # bytes of a head that began in an earlier chunk
        self._body: list[bytes] | None = None
        self._body_size = 0

    # -- transport events --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self._transport = cast(asyncio.Transport, transport)
        state = self._state
        if not state.admit(self):
            self._reject(state.too_many_connections(), None)
            self._flush()
            return
        self._counted = True

    def data_received(self, data: bytes) -> None:
        if self._closing:
            self._discard(len(data))
            return
        if self._phase == HEAD:
            self._carry += len(data)
        try:
            try:
                self._parser.feed_data(data)
            except httptools.HttpParserCallbackError as exc:
                if not self._closing:  # not a refusal of ours: a bug; the client gets a 500
                    log.error("error in an HTTP parser callback", exc_info=exc.__context__ or exc)
                    self._reject(flow.internal_error(), "internal")
            except httptools.HttpParserError as exc:
                if not self._closing:
                    self._reject(
                        flow.bad_request(f"malformed HTTP request: {str(exc)[:120]}"), "bad_request"
                    )
            except httptools.HttpParserUpgrade:
                pass  # refused in on_headers_complete already
            else:
                if self._phase == HEAD and self._carry > self._state.max_head_bytes:
                    self._reject_head()
            self._flush()
        except Exception:  # never let an exception out of a transport callback
            log.exception("socket backend: unexpected error; closing the connection")
            self._transport.abort()

    # -- parser callbacks (llhttp calls them from inside feed_data) --

    def on_message_begin(self) -> None:
        if self._closing:
            raise _Stop  # input after a request we answer with "Connection: close"
        state = self._state
        self._phase = HEAD
        self.deadline = state.now + state.header_timeout
        self._url = b""
        self._headers = None
        self._head_bytes = 0
        self._nheaders = 0
        self._carry = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)
        if self._head_bytes > self._state.max_head_bytes:
            self._reject_head()
            raise _Stop

    def on_header(self, name: bytes, value: bytes) -> None:
        state = self._state
        self._nheaders += 1
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > state.max_head_bytes or self._nheaders > state.max_headers:
            self._reject_head()
            raise _Stop
        key = _WANTED.get(name.lower())
        if key is None or self._phase != HEAD:  # chunked trailers never change the request
            return
        text = value.decode("latin-1")
        headers = self._headers
        if headers is None:
            self._headers = {key: text}
        elif key in headers:
            headers[key] = f"{headers[key]}, {text}"
        else:
            headers[key] = text

    def on_headers_complete(self) -> None:
        state = self._state
        parser = self._parser
        self._phase = BODY
        self.deadline = state.now + state.request_timeout
        self._body = None
        self._body_size = 0
        if parser.should_upgrade():
            self._reject(flow.upgrade_refused(), "upgrade")
            raise _Stop
        headers = self._headers
        if headers is None:
            return
        length = headers.get("content-length")
        if length is not None:
            too_big = self._service.body_limit_response(int(length))  # llhttp checked the digits
            if too_big is not None:
                self._reject(too_big, "body_too_large")
                raise _Stop
        expect = headers.get("expect")
        if (
            expect is not None
            and expect.lower() == "100-continue"
            and length != "0"
            and not self._out
            and not self._pending
            and parser.get_http_version() == "1.1"
        ):
            self._transport.write(wire.CONTINUE)

    def on_body(self, chunk: bytes) -> None:
        size = self._body_size + len(chunk)
        if size > self._state.max_body_bytes:  # chunked bodies are cut as they stream
            too_big = self._service.body_limit_response(size)
            assert too_big is not None
            self._reject(too_big, "body_too_large")
            raise _Stop
        self._body_size = size
        if self._body is None:
            self._body = [chunk]
        else:
            self._body.append(chunk)

    def on_message_complete(self) -> None:
        state = self._state
        parser = self._parser
        headers = self._headers
        self._phase = IDLE
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("latin-1")
        try:
            path, query = _target(self._url)
        except httptools.HttpParserInvalidURLError:
            self._reject(flow.bad_request("malformed request target"), "bad_request")
            raise _Stop from None
        parts = self._body
        body = b"" if parts is None else parts[0] if len(parts) == 1 else b"".join(parts)
        if parser.should_keep_alive() and not state.draining:
            connection = wire.NO_CONNECTION
            if (
                headers is not None
                and "connection" in headers
                and parser.get_http_version() == "1.0"
            ):
                connection = wire.KEEP_ALIVE  # an HTTP/1.0 client that asked for keep-alive
        else:
            connection = wire.CLOSE
            self._closing = True
        head_only = method == "HEAD"
        coro = self._service.handle_async(method, path, query, headers or _NO_HEADERS, body)
        try:
            first = coro.send(None)
        except StopIteration as done:  # answered without awaiting: no Task at all
            self._queue(wire.encode(done.value, state.date, connection, head_only))
            return
        self._defer(coro, first, connection, head_only)
