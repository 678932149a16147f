"""The client engine: one asyncio Protocol per keep-alive connection.

Responses are parsed by ``httptools`` (C); the next request is written from
inside the parser's ``on_message_complete`` callback, so a request costs one
clock read, one array append and one ``transport.write`` of pre-built bytes:
no coroutine, future or timer per request.

:class:`Connection` owns the connection's life (connect, reconnect with
backoff, timeouts, close); :class:`ClosedUser` is a virtual user of the closed
model: one request in flight, the next sent as soon as the answer is in. The
open model's driver lives in :mod:`fishpredict.bench.openloop`.

Every request ends as exactly one of: a success (2xx and, when checked, the
right answer), or one error kind: ``connect``, ``timeout``, ``disconnect``,
``protocol``, ``status_<code>`` or ``wrong_answer``.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections import Counter
from typing import Any

import httptools

from fishpredict.bench.payloads import Pool, batch_answers, fish_answer

now_ns = time.monotonic_ns

#: first and longest wait before reconnecting after a failed connection
RECONNECT_MIN_S = 0.001
RECONNECT_MAX_S = 0.25


class Recorder:
    """What happened in the current second, in this process (the hot path writes here)."""

    __slots__ = ("checked", "correct", "errors", "lat", "late", "max_lag_ns", "sent")

    def __init__(self) -> None:
        self.lat = array("I")  # latencies of successes, whole microseconds
        self.errors: Counter[str] = Counter()
        self.sent = 0
        self.late = 0
        self.max_lag_ns = 0
        self.checked = 0
        self.correct = 0

    def take_latencies(self) -> array[int]:
        """Hand over the latencies recorded so far and start a new array."""
        lat, self.lat = self.lat, array("I")
        return lat

    def take(self) -> dict[str, Any]:
        """Hand over this second's counters (not the latencies) and start afresh."""
        out = {
            "errors": dict(self.errors),
            "sent": self.sent,
            "late": self.late,
            "checked": self.checked,
            "correct": self.correct,
        }
        self.errors = Counter()
        self.sent = self.late = self.checked = self.correct = 0
        return out


class Driver:
    """State one process's connections share: budget, stop flag, recorder."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        host: str,
        port: int,
        pool: Pool,
        recorder: Recorder,
        timeout_s: float,
        budget: int | None,
    ) -> None:
        self.loop = loop
        self.host, self.port = host, port
        self.pool = pool.requests
        self.npool = len(pool.requests)
        self.expected = pool.expected
        self.rec = recorder
        self.timeout_ns = int(timeout_s * 1e9)
        #: requests this process may still send; set to 0 to stop sending
        self.remaining = budget if budget is not None else 1 << 62
        self.stopping = False
        self.conns: set[Connection] = set()
        self.connects = 0
        self.finished = asyncio.Event()

    def stop(self) -> None:
        """Send no more; idle connections close now, busy ones after their answer."""
        self.stopping = True
        self.remaining = 0
        for conn in list(self.conns):
            if not conn.busy:
                conn.finish()
        self._check_finished()

    def sweep_timeouts(self) -> None:
        """Abort connections whose request has waited longer than the timeout."""
        limit = now_ns() - self.timeout_ns
        for conn in list(self.conns):
            if conn.busy and conn.sent_at < limit:
                self.rec.errors["timeout"] += 1
                conn.busy = False
                conn.abort()

    def forget(self, conn: Connection) -> None:
        self.conns.discard(conn)
        self._check_finished()

    def _check_finished(self) -> None:
        if (self.stopping or self.remaining <= 0) and not self.conns:
            self.stopping = True
            self.finished.set()

    @property
    def active(self) -> int:
        return len(self.conns)


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with at most one request in flight."""

    #: closed model: a connect attempt holds one unit of the request budget, which a
    #: failure spends (so ``--requests N`` also ends against a dead port) and a success
    #: gives back; the open model's budget counts scheduled sends only
    connect_spends_budget = False

    def __init__(self, driver: Driver, first: int) -> None:
        self.d = driver
        self.rec = driver.rec
        self.idx = first % len(driver.pool)
        self.transport: Any = None
        self.parser: Any = None
        self.busy = False
        self.sent_at = 0
        self.body = b""
        self.expect: Any = None
        self.failures = 0
        self.closed = True
        self.done = False
        self._pending: Any = None  # connect task or reconnect timer
        self._reserved = False

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        """Join the driver and open the connection."""
        if self.d.stopping:
            return
        self.d.conns.add(self)
        self._connect()

    def _connect(self) -> None:
        self._pending = self.d.loop.create_task(self._open())

    async def _open(self) -> None:
        d = self.d
        if self.connect_spends_budget:
            if d.remaining <= 0:
                self.finish()
                return
            d.remaining -= 1  # held until connection_made gives it back
            self._reserved = True
        try:
            await asyncio.wait_for(
                d.loop.create_connection(lambda: self, d.host, d.port), d.timeout_ns / 1e9
            )
        except (TimeoutError, OSError):
            self.rec.errors["connect"] += 1
            self._reserved = False  # a failed connect was a failed attempt: budget spent
            self._retry_later()
        except asyncio.CancelledError:
            pass

    def _retry_later(self) -> None:
        if self.done or self.d.stopping or self.d.remaining <= 0:
            self.finish()
            return
        self.failures += 1
        delay = min(RECONNECT_MAX_S, RECONNECT_MIN_S * 2 ** min(self.failures, 16))
        self._pending = self.d.loop.call_later(delay, self._connect)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.closed = False
        self.parser = httptools.HttpResponseParser(self)
        self.d.connects += 1
        if self._reserved:
            self._reserved = False
            if not self.d.stopping:
                self.d.remaining += 1  # the request sent next spends it instead
        if self.done:
            transport.close()
            return
        self.ready(now_ns())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        if self.busy:
            self.busy = False
            self.rec.errors["disconnect"] += 1
            self.failures += 1
        if self.done:
            self.d.forget(self)
        elif self.d.stopping:
            self.finish()
        elif self.failures:
            self._retry_later()
        else:
            self._connect()

    def finish(self) -> None:
        """Close for good (run over, or this user is done)."""
        if self.done:
            return
        self.done = True
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
        if self.transport is not None:
            self.transport.close()  # connection_lost -> forget
        else:
            self.d.forget(self)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- requests -----------------------------------------------------------------------
    def ready(self, now: int) -> None:  # overridden by the drivers
        raise NotImplementedError

    def send(self, sent_at: int) -> None:
        """Write the next pool request; its latency counts from ``sent_at``."""
        i = self.idx
        self.expect = self.d.expected[i]
        self.transport.write(self.d.pool[i])
        i += 1
        self.idx = 0 if i == len(self.d.pool) else i
        self.sent_at = sent_at
        self.busy = True
        self.rec.sent += 1

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.busy:
                self.busy = False
                self.rec.errors["protocol"] += 1
            self.abort()

    def on_message_complete(self) -> None:
        now = now_ns()
        self.busy = False
        status = self.parser.get_status_code()
        if 200 <= status < 300:
            if self.expect is None:
                self.rec.lat.append((now - self.sent_at) // 1000)
            else:
                self._check(now)
        else:
            self.rec.errors[f"status_{status}"] += 1
        if self.parser.should_keep_alive():
            self.ready(now)
        else:
            self.failures = 0
            self.transport.close()  # connection_lost reconnects

    def _check(self, now: int) -> None:
        body = self.body
        exp = self.expect
        rec = self.rec
        if isinstance(exp, int):
            rec.checked += 1
            ok = fish_answer(body) == exp
            rec.correct += ok
        else:
            good = batch_answers(body, exp)
            rec.checked += len(exp)
            rec.correct += good
            ok = good == len(exp)
        if ok:
            rec.lat.append((now - self.sent_at) // 1000)
        else:
            rec.errors["wrong_answer"] += 1


class CheckingMixin:
    """Keeps response bodies (only when answers are checked: ``on_body`` costs)."""

    body: bytes

    def on_message_begin(self) -> None:
        self.body = b""

    def on_body(self, body: bytes) -> None:
        self.body += body


class ClosedUser(Connection):
    """A virtual user of the closed model: send, wait for the answer, send again."""

    connect_spends_budget = True

    def ready(self, now: int) -> None:
        self.failures = 0
        d = self.d
        if d.remaining <= 0:
            self.finish()
            return
        d.remaining -= 1
        self.send(now)

    def on_message_complete(self) -> None:
        # The hot path, inlined: no answer check, next request written at once.
        now = now_ns()
        parser = self.parser
        status = parser.get_status_code()
        rec = self.rec
        if 200 <= status < 300:
            rec.lat.append((now - self.sent_at) // 1000)
        else:
            rec.errors[f"status_{status}"] += 1
        d = self.d
        if d.remaining <= 0 or not parser.should_keep_alive():
            self.busy = False
            if d.remaining <= 0:
                self.finish()
            else:
                self.transport.close()  # the server closes: connection_lost reconnects
            return
        d.remaining -= 1
        i = self.idx
        self.transport.write(d.pool[i])
        i += 1
        self.idx = 0 if i == d.npool else i
        self.sent_at = now
        rec.sent += 1


class CheckingClosedUser(CheckingMixin, ClosedUser):
    on_message_complete = Connection.on_message_complete
