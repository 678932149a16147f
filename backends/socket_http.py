"""The socket backend's HTTP/1.1: one connection, from bytes in to bytes out, and its server.

Read top to bottom: what a connection owes its client (:class:`Connection`: answer
order, back-pressure, refusals, closing), how bytes become requests
(:class:`HttpProtocol`, llhttp through ``httptools``), and the server of one worker
(:class:`ServerState` and :func:`run`: the asyncio Server, the sweep, the drain).

**Parsing.** Bytes from the transport go to ``httptools.HttpRequestParser`` (the
llhttp binding), whose callbacks collect one request at a time; framing
(Content-Length, chunked, keep-alive, smuggling shapes) is llhttp's job, never
ours. A finished request goes to
:meth:`fishpredict.app.service.Service.handle_async`, stepped *eagerly*: if the
coroutine finishes on its first step (every request but a micro-batched
scikit-learn prediction) the answer is encoded at once and no Task is created;
only a request that really awaits gets one (``Connection._defer``). Limits
enforced while parsing: head size and header count (431), body size (413, before
reading when Content-Length says so, else as chunks stream), protocol upgrades
(400). llhttp's own refusals (bad request line, bad chunk size, Content-Length
with Transfer-Encoding, two Content-Lengths, bad bytes) answer 400.

**Answering.** Answers go out in request order: answers made while one data chunk
is parsed are joined into one ``transport.write``; answers behind an unfinished
one (a request answered in a Task) wait in ``_pending`` until it is done.
Reading pauses while the transport's write buffer is over its high-water mark
(``pause_writing``) or too many answers wait in ``_pending``.

**Closing.** A refusal answers JSON via :func:`fishpredict.app.messages.error` with
``Connection: close``; then the connection *lingers*: our side is shut for
writing, input is discarded until the client closes, a short deadline passes or
too much arrives, so a client still sending is not reset before it has read the
answer (:mod:`fishpredict.server.flow`, shared with every backend). A connection
closing after a large answer lingers while the client is still reading it.

**Timeouts** cost nothing per request: each connection keeps one ``deadline``
float, and the core's sweep (:meth:`fishpredict.server.flow.Limits.sweep`) wakes
every fraction of the shortest timeout, refreshes a coarse clock and the cached
``Date`` line, and tells the connections whose deadline has passed. With
``--workers N`` each worker runs its own asyncio Server over the listening socket
it inherited (its own accept queue, or one shared by all with
``--shared-socket``); closing that Server closes only this worker's copy.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Coroutine, Generator, Mapping
from types import MappingProxyType
from typing import Any, Final, cast
from urllib.parse import unquote

import httptools

from fishpredict.app.messages import Response, error
from fishpredict.app.service import Service
from fishpredict.server import binding, flow, wire
from fishpredict.server.flow import (
    BODY,
    HEAD,
    IDLE,
    INF,
    LINGER,
    LINGER_SECONDS,
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    Limits,
    discard,
    half_close,
)

log = logging.getLogger("fishpredict.socket")

#: most answers queued behind an unfinished one before reading pauses
MAX_PIPELINE: Final = 64

# why reading is paused (bit flags)
WRITE_FULL, PIPELINE_FULL = 1, 2


class _Slot:
    """The place, in answer order, of a request whose answer is still being made."""

    __slots__ = ("connection", "data", "expired", "head_only", "task", "timer")

    def __init__(self, connection: bytes, head_only: bool) -> None:
        self.connection = connection
        self.head_only = head_only
        self.data: bytes | None = None
        self.task: asyncio.Task[None] | None = None
        #: cancels the task when the request's time is up (``request_timeout``)
        self.timer: asyncio.TimerHandle | None = None
        self.expired = False

    def expire(self) -> None:
        """The request's time is up: cancel its Task, which then answers 503."""
        task = self.task
        if task is not None and not task.done():
            self.expired = True
            task.cancel()


class _Resume:
    """Awaitable that finishes a coroutine whose first step already ran.

    ``first`` is what the coroutine yielded (an asyncio future); it is passed on
    to the Task unchanged, so the Task waits on it as if it had run the first
    step itself. The same idea as Python 3.12's eager tasks.
    """

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, Response], first: Any) -> None:
        self._coro = coro
        self._first = first

    def __await__(self) -> Generator[Any, Any, Response]:
        coro = self._coro
        value = self._first
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # cancellation goes into the coroutine
                try:
                    value = coro.throw(exc)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]


class Connection(asyncio.Protocol):
    """A connection's state and answering side; subclasses parse and call ``_queue``/``_defer``."""

    __slots__ = (
        "_closing",
        "_counted",
        "_eof",
        "_linger_bytes",
        "_lost",
        "_out",
        "_paused",
        "_pending",
        "_phase",
        "_state",
        "_transport",
        "_unsent",
        "deadline",
    )

    _transport: asyncio.Transport

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._phase = IDLE
        #: loop time when the current phase has run too long (the sweeper checks it)
        self.deadline = state.now + state.header_timeout
        self._out: list[bytes] = []
        self._pending: deque[bytes | _Slot] | None = None
        self._closing = False  # no more requests are read: close once answers are out
        self._eof = False
        self._lost = False
        self._counted = False  # counted against max_connections
        self._paused = 0
        self._linger_bytes = 0
        self._unsent = 0  # bytes of the last answer still unsent at the last linger deadline

    def eof_received(self) -> bool:
        self._eof = True
        if self._pending and not self._lost:
            self._closing = True  # the client half-closed: write what it is owed, then close
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._closing = True
        self._phase = LINGER
        self.deadline = INF
        state = self._state
        state.release(self, self._counted)
        self._counted = False
        pending = self._pending
        if pending:
            for slot in pending:
                if isinstance(slot, _Slot) and slot.task is not None:
                    slot.task.cancel()
            pending.clear()
        self._out.clear()
        if state.draining and not state.conns:
            state.drained.set()

    def pause_writing(self) -> None:
        self._pause(WRITE_FULL)

    def resume_writing(self) -> None:
        self._resume(WRITE_FULL)

    # -- answers --

    def _queue(self, data: bytes) -> None:
        pending = self._pending
        if pending:
            pending.append(data)
            if len(pending) > MAX_PIPELINE:
                self._pause(PIPELINE_FULL)
        else:
            self._out.append(data)
            self.deadline = self._state.now + self._state.keepalive_timeout

    def _defer(
        self,
        coro: Coroutine[Any, Any, Response],
        first: Any,
        connection: bytes,
        head_only: bool,
    ) -> None:
        """Answer a request that has to await (micro-batching) in a Task, in order."""
        state = self._state
        if state.inflight >= state.max_inflight:
            if isinstance(first, asyncio.Future):
                first.cancel()
            coro.close()
            state.rejected("max_inflight")
            self._queue(
                wire.encode(
                    state.service.overloaded(),
                    state.date,
                    connection,
                    head_only,
                )
            )
            return
        deadline = self.deadline  # set when the head was complete: now + request_timeout
        slot = _Slot(connection, head_only)
        if self._pending is None:
            self._pending = deque()
        self._pending.append(slot)
        if len(self._pending) > MAX_PIPELINE:
            self._pause(PIPELINE_FULL)
        self.deadline = INF  # the slot keeps its own time
        state.inflight += 1
        loop = state.loop
        slot.task = loop.create_task(self._answer(slot, coro, first))
        if deadline != INF:  # one timer (asyncio.timeout_at costs several times more)
            slot.timer = loop.call_at(deadline, slot.expire)

    async def _answer(self, slot: _Slot, coro: Coroutine[Any, Any, Response], first: Any
                      ) -> None:
        state = self._state
        try:
            response = await _Resume(coro, first)
        except asyncio.CancelledError:
            if not slot.expired:
                raise  # the connection is gone, or the server is stopping
            slot.task.uncancel()  # type: ignore[union-attr]  # ours, answered below
            state.rejected("request_timeout")
            response = error(
                503,
                "timeout",
                f"request took longer than {state.request_timeout:g} s",
                headers=state.retry_after,
            )
        except Exception:
            log.exception("unexpected error while answering a request")
            response = flow.internal_error()
        finally:
            state.inflight -= 1
            if slot.timer is not None:
                slot.timer.cancel()
        if self._lost:
            return
        connection = slot.connection
        pending = self._pending
        if state.draining and pending and pending[-1] is slot:
            connection = wire.CLOSE  # the last answer of a draining connection says so
            self._closing = True
        slot.data = wire.encode(response, state.date, connection, slot.head_only)
        try:
            self._flush()
        except Exception:
            log.exception("socket backend: unexpected error; closing the connection")
            self._transport.abort()

    def _flush(self) -> None:
        """Write every answer that is ready, in order; close when the connection is done."""
        if self._lost:
            self._out.clear()
            return
        out = self._out
        pending = self._pending
        if pending:
            while pending:
                head = pending[0]
                if isinstance(head, _Slot):
                    if head.data is None:
                        break
                    out.append(head.data)
                else:
                    out.append(head)
                pending.popleft()
            if not pending:
                self._resume(PIPELINE_FULL)
                if self._phase == IDLE:
                    self.deadline = self._state.now + self._state.keepalive_timeout
        if out:
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()
        if pending:
            return
        if self._closing:
            self._linger()
        elif self._state.draining and self._phase == IDLE:
            self._close_idle()

    def _reject(self, response: Response, reason: str | None) -> None:
        """Queue a refusal that closes the connection; parsing stops. ``reason``: what
        ``fishpredict_rejected`` counts (None: counted already)."""
        state = self._state
        if reason is not None:
            state.rejected(reason)
        self._closing = True
        data = state.refusal(response)
        if self._pending:
            self._pending.append(data)
        else:
            self._out.append(data)

    def _reject_head(self) -> None:
        self._reject(self._state.headers_too_large(), "headers_too_large")

    # -- closing --

    def _linger(self) -> None:
        """Shut our side for writing, then wait briefly for the client to close."""
        if self._phase == LINGER:
            return
        self._phase = LINGER
        self._closing = True
        self.deadline = self._state.now + LINGER_SECONDS
        self._unsent = self._transport.get_write_buffer_size()
        if half_close(self._transport, peer_closed=self._eof):
            self._paused = 0  # half_close resumed reading, to see the client's EOF

    def _discard(self, n: int) -> None:
        self._linger_bytes = discard(self._transport, self._linger_bytes, n)

    def _close_idle(self) -> None:
        self._closing = True
        self._phase = LINGER
        self.deadline = self._state.now + LINGER_SECONDS
        transport = self._transport
        if transport.get_write_buffer_size():
            transport.abort()  # a client that stopped reading gets no more time
        else:
            transport.close()

    def _pause(self, why: int) -> None:
        if not self._paused and not self._lost:
            self._transport.pause_reading()
        self._paused |= why

    def _resume(self, why: int) -> None:
        if self._paused & why:
            self._paused &= ~why
            if not self._paused and not self._lost:
                self._transport.resume_reading()

    # -- called by the server --

    def on_deadline(self) -> None:
        """The sweeper saw ``deadline`` pass: close idle, refuse slow, abort lingering."""
        phase = self._phase
        self.deadline = INF
        if self._lost:
            return
        if phase == LINGER:
            self._unsent = flow.still_sending(self._transport, self._unsent)
            if self._unsent:  # the client is still reading the last answer: let it
                self.deadline = self._state.now + LINGER_SECONDS
            else:
                self._transport.abort()
        elif phase == IDLE:
            if not self._pending:
                self._close_idle()
        else:
            if phase == HEAD:
                self._reject(flow.head_timeout(), "header_timeout")
            else:
                self._reject(flow.body_timeout(), "request_timeout")
            self._flush()

    def drain(self) -> None:
        """The server is stopping: close at once if idle, else after the current answer."""
        if self._lost or self._closing or self._pending or self._phase != IDLE:
            return
        if flow.unread(self._transport):
            return  # its request is on its way: read it, answer it, then close
        self._close_idle()

    def abort(self) -> None:
        if not self._lost:
            self._transport.abort()


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
#: header names as clients commonly spell them -> the kept name, or None: one look-up
#: instead of lower-casing every name (any other spelling is lower-cased)
_SPELLED: Final[dict[bytes, str | None]] = {
    spelled: _WANTED.get(name)
    for name in (*_WANTED, b"host", b"user-agent", b"accept-encoding", b"accept-language",
                 b"cache-control", b"cookie", b"origin", b"referer", b"x-request-id")
    for spelled in (name, name.title())
}
_METHODS: Final = {m.encode(): m for m in ("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS")}
_NO_HEADERS: Final[Mapping[str, str]] = MappingProxyType({})


_OTHER: Final = "other"  # not in _SPELLED (a sentinel: no header is kept under it)


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
        "_max_fields",
        "_max_head",
        "_nheaders",
        "_parser",
        "_service",
        "_url",
    )

    def __init__(self, state: ServerState) -> None:
        super().__init__(state)
        self._service = state.service
        self._max_head = state.max_head_bytes
        self._max_fields = state.max_headers
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: dict[str, str] | None = None
        self._head_bytes = 0
        self._nheaders = 0
        self._carry = 0  # bytes of a head that began in an earlier chunk
        self._body: bytes | list[bytes] | None = None
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
            out = self._out
            if out and not (self._pending or self._closing or self._lost):
                # _flush's usual case: every answer made, none waiting, the connection open
                self._transport.write(out[0] if len(out) == 1 else b"".join(out))
                out.clear()
                if self._state.draining and self._phase == IDLE:
                    self._close_idle()
            else:
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
        fields = self._nheaders = self._nheaders + 1
        size = self._head_bytes = self._head_bytes + len(name) + len(value) + 4
        if size > self._max_head or fields > self._max_fields:
            self._reject_head()
            raise _Stop
        key = _SPELLED.get(name, _OTHER)
        if key is _OTHER:
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
        if length is not None and int(length) > state.max_body_bytes:  # llhttp checked it
            too_big = self._service.body_limit_response(int(length))
            assert too_big is not None
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
        body = self._body
        if body is None:
            self._body = chunk  # one chunk, the usual case: kept as it is
        elif body.__class__ is bytes:
            self._body = [body, chunk]  # type: ignore[list-item]
        else:
            body.append(chunk)  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        state = self._state
        parser = self._parser
        headers = self._headers
        self._phase = IDLE
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("latin-1")
        url = self._url
        raw_path, _, raw_query = url.partition(b"?")
        if url[:1] == b"/" and b"%" not in raw_path and b"#" not in url:  # the usual target
            path, query = raw_path.decode("latin-1"), raw_query.decode("latin-1")
        else:
            try:
                path, query = _target(url)
            except httptools.HttpParserInvalidURLError:
                self._reject(flow.bad_request("malformed request target"), "bad_request")
                raise _Stop from None
        parts = self._body
        body = b"" if parts is None else parts if parts.__class__ is bytes else b"".join(parts)
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
        answer = self._service.respond(method, path, query, headers or _NO_HEADERS, body)
        if answer.__class__ is Response:  # answered now: no coroutine, no Task
            data = wire.encode(answer, state.date, connection, head_only)  # type: ignore[arg-type]
            if self._pending:
                self._queue(data)
            else:  # _queue's usual case
                self._out.append(data)
                self.deadline = state.now + state.keepalive_timeout
            return
        coro = cast(Coroutine[Any, Any, Response], answer)
        try:
            first = coro.send(None)
        except StopIteration as done:  # answered without awaiting: no Task at all
            self._queue(wire.encode(done.value, state.date, connection, head_only))
            return
        self._defer(coro, first, connection, head_only)


#: listen backlog (asyncio calls listen() again on the socket it is given):
#: the one fishpredict binds with
BACKLOG: Final = binding.BACKLOG


class ServerState(Limits):
    """What every connection of one worker shares: the core's
    :class:`~fishpredict.server.flow.Limits`
    plus the requests in flight and the drain."""

    __slots__ = ("drained", "draining", "inflight")

    def __init__(
        self, service: Service, loop: asyncio.AbstractEventLoop, **head_limits: int
    ) -> None:
        super().__init__(service, loop, **head_limits)
        #: requests answered in a Task right now
        self.inflight = 0
        self.draining = False
        self.drained = asyncio.Event()


async def _drain(state: ServerState, timeout: float) -> None:
    state.draining = True
    state.drained.clear()
    for conn in list(state.conns):
        conn.drain()
    if state.conns:
        try:
            await asyncio.wait_for(state.drained.wait(), timeout)
        except TimeoutError:
            open_now = len(state.conns)
            log.warning("socket backend: %d connections still open after %.1f s; "
                        "closing them", open_now, timeout)
    for conn in list(state.conns):
        conn.abort()


async def run(
    service: Service,
    sock: socket.socket,
    stop: asyncio.Event,
    *,
    max_head_bytes: int = MAX_HEAD_BYTES,
    max_headers: int = MAX_HEADERS,
) -> None:
    """Serve ``service`` on the listening ``sock`` until ``stop`` is set, then drain."""
    loop = asyncio.get_running_loop()
    state = ServerState(service, loop, max_head_bytes=max_head_bytes, max_headers=max_headers)
    server = await loop.create_server(lambda: HttpProtocol(state), sock=sock, backlog=BACKLOG)
    async with state.sweeping():
        try:
            await stop.wait()
        finally:
            await _take_queued(loop, sock, state)
            server.close()  # stop accepting: closes this worker's copy of the socket only
            await _drain(state, service.config.drain_timeout)


async def _take_queued(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, state: ServerState
) -> None:
    """Serve the connections already in the kernel's accept queue, and what they sent.

    Closing the listening socket resets every connection still queued on it: a
    client that connected (and sent half a body) just before SIGTERM, but that
    this worker had not accepted yet, would see "Connection reset" instead of
    its answer. So they are accepted first, and the bytes they already sent are
    parsed now, so that the drain sees their requests under way.
    """
    for _ in range(BACKLOG):
        try:
            conn, _ = sock.accept()
        except OSError:  # BlockingIOError: the queue is empty
            return
        conn.setblocking(False)
        try:
            first = conn.recv(1 << 16)
            if not first:  # the client has closed already
                conn.close()
                continue
        except BlockingIOError:
            first = b""  # connected, nothing sent yet
        except OSError:
            conn.close()
            continue
        protocol = HttpProtocol(state)
        try:
            await loop.connect_accepted_socket(lambda p=protocol: p, sock=conn)
        except OSError:
            conn.close()
            continue
        if first:
            protocol.data_received(first)
