"""The open model: requests at fixed intended times, whatever the server does.

Request ``i`` of a process is due at ``start + phase + i / rate``. A due
request goes out on an idle connection at once, or, when every connection is
busy, on the next one to free up. Its latency counts from the *intended* time,
so a slow server cannot hide its queueing delay behind a generator that waits
for it (no coordinated omission). A send more than ``late_ms`` after its
intended time counts as *late*; requests still waiting when the run ends are
reported as *unsent*. A timer wakes the scheduler for the next due time
(millisecond resolution), and every request due by then goes out together.
"""

from __future__ import annotations

from typing import Any

from fishpredict.bench.engine import CheckingMixin, Connection, Driver, now_ns


class OpenConnection(Connection):
    """A connection of the open model: takes due requests from the scheduler."""

    scheduler: OpenScheduler

    def ready(self, now: int) -> None:
        self.failures = 0
        self.scheduler.on_idle(self, now)


class CheckingOpenConnection(CheckingMixin, OpenConnection):
    pass


class OpenScheduler:
    """Sends request ``i`` at ``start + phase + i * interval`` on an idle connection."""

    def __init__(self, driver: Driver, rate: float, phase_ns: int, late_ms: float) -> None:
        self.d = driver
        self.interval_ns = 1e9 / rate
        self.start_ns = phase_ns
        self.sent_index = 0
        self.late_ns = int(late_ms * 1e6)
        self.idle: list[OpenConnection] = []
        self._timer: Any = None
        #: every request due by this time has been sent or is waiting for a connection
        self.checked_until = 0
        self.started = False

    def begin(self, start_ns: int) -> None:
        """Start the clock: request 0 is due at ``start_ns`` plus this process's phase."""
        self.start_ns += start_ns
        self.started = True
        self.pump()

    def due_at(self, i: int) -> int:
        return self.start_ns + int(i * self.interval_ns)

    def on_idle(self, conn: OpenConnection, now: int) -> None:
        d = self.d
        if d.remaining <= 0:
            conn.finish()
            return
        if not self.started:
            self.idle.append(conn)
            return
        due = self.due_at(self.sent_index)
        if due <= now:
            self._send(conn, due, now)
        else:
            self.idle.append(conn)
            self._arm(due, now)

    def _send(self, conn: OpenConnection, due: int, now: int) -> None:
        lag = now - due
        rec = self.d.rec
        if lag > self.late_ns:
            rec.late += 1
            if lag > rec.max_lag_ns:
                rec.max_lag_ns = lag
        self.sent_index += 1
        self.d.remaining -= 1
        conn.send(due)
        if self.d.remaining <= 0:
            self.close()  # budget spent: idle connections are done

    def _arm(self, due: int, now: int) -> None:
        if self._timer is None:
            self._timer = self.d.loop.call_later(max(0.0, (due - now) / 1e9), self.pump)

    def pump(self, horizon: int | None = None) -> None:
        """Send every due request (due by ``horizon`` at the latest) an idle connection
        can take; re-arm for the next."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()  # harmless when it is the timer running this call
        d = self.d
        now = now_ns()
        until = now if horizon is None else min(now, horizon)
        self.checked_until = until
        idle = self.idle
        while d.remaining > 0:
            due = self.due_at(self.sent_index)
            if due > until:
                if idle:
                    self._arm(due, now)
                return
            conn = None
            while idle:
                c = idle.pop()  # may hold stale entries of reconnected connections
                if not (c.closed or c.done or c.busy):
                    conn = c
                    break
            if conn is None:
                return  # backlog: the next connection to free up takes it
            self._send(conn, due, now)

    def unsent(self, until_ns: int, budget: int | None) -> int:
        """Intended sends due before ``until_ns`` (within the budget) that never left."""
        if until_ns < self.start_ns:
            return 0
        due = int((until_ns - self.start_ns) / self.interval_ns) + 1
        if budget is not None:
            due = min(due, budget)
        return max(0, due - self.sent_index)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for c in self.idle:
            c.finish()
        self.idle.clear()
