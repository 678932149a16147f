"""One connection's answering side for the socket backend: order, back-pressure, closing.

:class:`Connection` holds a connection's state and everything that is not
parsing (the subclass :class:`~fishpredict_backends.socket_protocol.HttpProtocol`
parses). Answers go out in request order: answers made while one data chunk is
parsed are joined into one ``transport.write``; answers behind an unfinished one
(a request answered in a Task) wait in ``_pending`` until it is done.

Back-pressure: reading pauses while the transport's write buffer is over its
high-water mark (``pause_writing``) or too many answers wait in ``_pending``.

Closing: a refusal answers JSON via :func:`fishpredict.app.service.error` with
``Connection: close``; then the connection *lingers*: our side is shut for
writing, input is discarded until the client closes, a short deadline passes or
too much arrives, so a client still sending is not reset before it has read the
answer (:mod:`fishpredict.server.flow`, shared with every backend). A connection
closing after a large answer lingers while the client is still reading it.
Deadlines are one float per connection, checked by the core's sweep.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine, Generator
from typing import TYPE_CHECKING, Any, Final

from fishpredict.app.messages import Response, error
from fishpredict.server import flow, wire
from fishpredict.server.flow import (
    BODY,
    HEAD,
    IDLE,
    INF,
    LINGER,
    LINGER_SECONDS,
    discard,
    half_close,
)

if TYPE_CHECKING:
    from .socket_server import ServerState

log = logging.getLogger("fishpredict.socket")

#: most answers queued behind an unfinished one before reading pauses
MAX_PIPELINE: Final = 64
__all__ = ["BODY", "HEAD", "IDLE", "LINGER", "Connection"]

# why reading is paused (bit flags)
WRITE_FULL, PIPELINE_FULL = 1, 2


class _Slot:
    """The place, in answer order, of a request whose answer is still being made."""

    __slots__ = ("connection", "data", "head_only", "task")

    def __init__(self, connection: bytes, head_only: bool) -> None:
        self.connection = connection
        self.head_only = head_only
        self.data: bytes | None = None
        self.task: asyncio.Task[None] | None = None


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
        self.deadline = INF  # the Task keeps its own time
        state.inflight += 1
        slot.task = state.loop.create_task(self._answer(slot, coro, first, deadline))

    async def _answer(
        self, slot: _Slot, coro: Coroutine[Any, Any, Response], first: Any, deadline: float
    ) -> None:
        state = self._state
        try:
            async with asyncio.timeout_at(None if deadline == INF else deadline):
                response = await _Resume(coro, first)
        except TimeoutError:
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
