"""``--workers N``: a reload that every worker makes together, through the supervisor.

Each worker has a control socket to the supervisor (a ``socketpair`` made at fork;
JSON lines). ``POST /admin/reload`` on any worker, SIGHUP to any worker, and SIGHUP
to the supervisor all end in one *transaction* the supervisor runs:

1. it sends ``prepare`` to every worker, and loads the models itself too (a worker
   it forks later, to replace one that died, starts from its models);
2. each worker loads what the model sources hold now, without serving it, and
   answers ``prepared`` with the new version, or the error;
3. only if every worker and the supervisor loaded them does it send ``commit``, and
   each worker swaps its table and answers ``committed``; otherwise ``abort``, and
   every one of them keeps the old models;
4. the worker that was asked gets ``done`` (the versions every worker serves now,
   or the error) and answers the 200 or the 409.

So the 200 comes after every worker has swapped: any request sent after it is
answered by the new models, on every connection. The asking worker waits for the
transaction in its event loop's thread (a reload blocks a worker's loop as a
one-process reload does), handling its own ``prepare`` and ``commit`` meanwhile.
Each worker loads the new models itself, so they are no longer shared
copy-on-write with the supervisor: memory grows by one copy per worker until the
next restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Final

from fishpredict.app import reloading
from fishpredict.app.messages import Response, error
from fishpredict.app.service import Service
from fishpredict.errors import ModelLoadError
from fishpredict.predictor import Predictor, models_version

log = logging.getLogger("fishpredict.server.serve")

#: seconds a transaction waits for the workers to load the models, then to swap
RELOAD_TIMEOUT: Final = 300.0


class Channel:
    """One end of a control socket: JSON messages, one a line."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.closed = False
        self._buf = b""

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, msg: dict[str, Any]) -> None:
        data = json.dumps(msg).encode() + b"\n"
        try:
            self.sock.setblocking(True)
            self.sock.sendall(data)
        except OSError:
            self.closed = True
        finally:
            with contextlib.suppress(OSError):
                self.sock.setblocking(False)

    def read(self) -> list[dict[str, Any]]:
        """Every whole message that has arrived (never blocks)."""
        while not self.closed:
            try:
                chunk = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                break
            self._buf += chunk
        out = []
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def wait(self, deadline: float) -> list[dict[str, Any]]:
        """The next messages, waiting until ``deadline`` (monotonic) at most."""
        left = deadline - time.monotonic()
        if left > 0 and not self.closed:
            with contextlib.suppress(InterruptedError):
                select.select([self.sock], [], [], min(left, 1.0))
        return self.read()

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()


# ---- the worker's side ----------------------------------------------------------------

#: this worker's channel to its supervisor (set in the child right after fork)
worker_channel: Channel | None = None


class WorkerLink:
    """A worker's part in the transactions, and its way to ask for one."""

    def __init__(self, channel: Channel, service: Service) -> None:
        self.channel = channel
        self.service = service
        self._pending: dict[int, tuple[Any, reloading.Change]] = {}
        self._asked = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self.channel.fileno(), self._readable)
        self.service.cluster_reload = self.request

    def detach(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self.channel.fileno())
        self._loop = None

    def _readable(self) -> None:
        for msg in self.channel.read():
            self.handle(msg)
        if self.channel.closed:  # the supervisor is gone
            self.detach()

    def handle(self, msg: dict[str, Any]) -> None:
        op, txn = msg.get("op"), msg.get("txn")
        if op == "prepare" and isinstance(txn, int):
            try:
                models, version = reloading.prepare(self.service, msg.get("change"))
            except Exception as exc:  # ModelLoadError, or anything a bad file raises
                text = str(exc) if isinstance(exc, ModelLoadError) else \
                    f"{type(exc).__name__}: {exc}"
                self.channel.send({"op": "prepared", "txn": txn, "ok": False, "error": text})
                return
            self._pending[txn] = (models, msg.get("change"))
            self.channel.send({"op": "prepared", "txn": txn, "ok": True, "version": version})
        elif op == "commit" and isinstance(txn, int) and txn in self._pending:
            models, change = self._pending.pop(txn)
            changed = reloading.install(self.service, models, change)
            predictor = self.service.require_predictor()
            self.channel.send({"op": "committed", "txn": txn, "changed": changed,
                               "version": predictor.version, "pid": os.getpid()})
        elif op == "abort" and isinstance(txn, int):
            self._pending.pop(txn, None)
            if self.service.predictor is not None and msg.get("error"):
                self.service.predictor.last_reload_error = str(msg["error"])

    def request(self, change: reloading.Change = None) -> Response:
        """Ask the supervisor for a reload of every worker; its 200 or 409 (blocking)."""
        self._asked += 1
        asked = self._asked
        self.channel.send({"op": "reload", "id": asked, "change": change})
        deadline = time.monotonic() + 2 * RELOAD_TIMEOUT + 30.0
        while time.monotonic() < deadline and not self.channel.closed:
            for msg in self.channel.wait(deadline):
                if msg.get("op") == "done" and msg.get("id") == asked:
                    if msg.get("ok"):
                        return reloading.answered(self.service, list(msg["changed"]),
                                                  list(msg["workers"]))
                    return reloading.refused(self.service, str(msg.get("error")))
                self.handle(msg)
        return error(503, "reload_failed", "the supervisor did not answer the reload; "
                     "the models may not have changed", headers=self.service.retry_after())


def link_for(service: Service) -> WorkerLink | None:
    """This worker's link to its supervisor, if it has one (``--workers`` > 1)."""
    if worker_channel is None:
        return None
    return WorkerLink(worker_channel, service)


# ---- the supervisor's side ------------------------------------------------------------


@dataclass
class Coordinator:
    """The supervisor's half: one channel per worker, and the transactions."""

    predictor: Predictor
    channels: dict[int, tuple[int, Channel]] = field(default_factory=dict)
    _asked: list[tuple[int, int, reloading.Change]] = field(default_factory=list)
    _txn: int = 0

    def pair(self) -> tuple[socket.socket, socket.socket]:
        """A new control socket pair (supervisor's end, worker's end)."""
        return socket.socketpair()

    def in_child(self, mine: socket.socket) -> None:
        """In a worker just forked: keep its own end, close the siblings'."""
        global worker_channel
        for _, ch in self.channels.values():
            with contextlib.suppress(OSError):
                ch.sock.close()
        worker_channel = Channel(mine)

    def add(self, pid: int, index: int, sock: socket.socket) -> None:
        self.channels[pid] = (index, Channel(sock))

    def remove(self, pid: int) -> None:
        entry = self.channels.pop(pid, None)
        if entry is not None:
            entry[1].close()

    def close(self) -> None:
        for pid in list(self.channels):
            self.remove(pid)

    def poll(self, timeout: float) -> None:
        """Wait up to ``timeout`` for messages; run the reloads workers asked for."""
        socks = [ch.sock for _, ch in self.channels.values() if not ch.closed]
        if socks:
            with contextlib.suppress(InterruptedError, OSError):
                select.select(socks, [], [], timeout)
        else:
            time.sleep(timeout)
        self._drain()
        while self._asked:
            pid, asked, change = self._asked.pop(0)
            self.transaction((pid, asked), change)

    def _drain(self) -> None:
        for pid, (_, ch) in list(self.channels.items()):
            for msg in ch.read():
                self._note(pid, msg)

    def _note(self, pid: int, msg: dict[str, Any]) -> None:
        if msg.get("op") == "reload" and isinstance(msg.get("id"), int):
            change = msg.get("change")
            self._asked.append((pid, int(msg["id"]), change if isinstance(change, dict)
                                else None))

    def _collect(self, live: dict[int, tuple[int, Channel]], op: str, txn: int,
                 deadline: float) -> dict[int, dict[str, Any]]:
        got: dict[int, dict[str, Any]] = {}
        while len(got) < len(live) and time.monotonic() < deadline:
            waiting = [ch for pid, (_, ch) in live.items() if pid not in got and not ch.closed]
            if not waiting:
                break
            with contextlib.suppress(InterruptedError, OSError):
                select.select([ch.sock for ch in waiting], [], [], 0.5)
            for pid, (_, ch) in live.items():
                if pid in got:
                    continue
                for msg in ch.read():
                    if msg.get("op") == op and msg.get("txn") == txn:
                        got[pid] = msg
                    else:
                        self._note(pid, msg)
        return got

    def transaction(self, asker: tuple[int, int] | None = None,
                    change: reloading.Change = None) -> None:
        """One reload of every worker and of the supervisor, or of none of them."""
        self._txn += 1
        txn = self._txn
        live = {pid: entry for pid, entry in self.channels.items() if not entry[1].closed}
        for _, ch in live.values():
            ch.send({"op": "prepare", "txn": txn, "change": change})
        problem: str | None = None
        load, unload = (change or {}).get("load"), (change or {}).get("unload")
        try:
            models = [m for m, _ in self.predictor.repository()] if unload is not None \
                else self.predictor.prepare()
            self.predictor.check_change(models, load=load, unload=unload)
        except Exception as exc:
            models, problem = [], str(exc)
        prepared = self._collect(live, "prepared", txn, time.monotonic() + RELOAD_TIMEOUT)
        if problem is None:
            failed = [m for m in prepared.values() if not m.get("ok")]
            if failed:
                problem = str(failed[0].get("error"))
            elif len(prepared) < len(live):
                problem = "a worker did not load the models in time (or exited)"
            elif any(m.get("version") != models_version(models) for m in prepared.values()):
                problem = "the model files changed while the workers loaded them; try again"
        if problem is not None:
            for _, ch in live.values():
                ch.send({"op": "abort", "txn": txn, "error": problem})
            self.predictor.last_reload_error = problem
            log.error("reload refused, old models keep serving: %s", problem)
            self._done(asker, {"ok": False, "error": problem})
            return
        for _, ch in live.values():
            ch.send({"op": "commit", "txn": txn})
        changed = self.predictor.install(models, load=load, unload=unload)
        committed = self._collect(live, "committed", txn, time.monotonic() + RELOAD_TIMEOUT)
        workers = sorted(
            ({"worker": index, "pid": pid, "version": committed.get(pid, {}).get("version")}
             for pid, (index, _) in live.items()),
            key=lambda w: (w["worker"], w["pid"]),
        )
        log.info("every worker reloaded: %s", ", ".join(changed) or "no change")
        self._done(asker, {"ok": True, "changed": changed, "workers": workers})

    def _done(self, asker: tuple[int, int] | None, result: dict[str, Any]) -> None:
        if asker is None:
            return
        pid, asked = asker
        entry = self.channels.get(pid)
        if entry is not None:
            entry[1].send({"op": "done", "id": asked, **result})

