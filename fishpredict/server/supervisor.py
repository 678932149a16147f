"""``--workers N``: fork the workers, replace one that dies, forward the signals.

The parent loads the models and binds before forking, so the workers share the
model pages copy-on-write (``gc.freeze`` keeps the collector from dirtying
them) and a replacement takes over the same listening socket.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from fishpredict.server import signals
from fishpredict.server.signals import HANDLED_SIGNALS

if TYPE_CHECKING:
    from fishpredict.server.reload import Coordinator

log = logging.getLogger("fishpredict.server.serve")


def fork_worker(work: Callable[[], int]) -> int:
    # A signal that reached the child before Python's after-fork reset would be
    # dropped, so the child starts with them blocked (kept pending by the kernel)
    # and unblocks once its start-up handler is in place.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            signals.remember_signals(forget=False)  # until this worker's event loop handles them
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            code = work()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return pid


def _spawn(work: Callable[[int], int], index: int, coordinator: Coordinator | None) -> int:
    if coordinator is None:
        return fork_worker(functools.partial(work, index))
    mine, theirs = coordinator.pair()

    def child() -> int:
        mine.close()
        coordinator.in_child(theirs)
        return work(index)

    pid = fork_worker(child)
    theirs.close()
    coordinator.add(pid, index, mine)
    return pid


def supervise(work: Callable[[int], int], workers: int, drain_timeout: float,
              coordinator: Coordinator | None = None) -> int:
    """Fork ``workers`` children, child ``i`` running ``work(i)``; replace any that
    dies with a new child of the same index, and forward SIGTERM/SIGINT. SIGHUP (and
    a worker's ``/admin/reload``) reloads every worker together through
    ``coordinator`` (:mod:`fishpredict.server.reload`), or, without one, is forwarded.
    Returns 0 when every worker drained cleanly."""
    gc.collect()
    gc.freeze()  # keep model pages shared: the collector won't touch frozen objects
    #: pid -> (worker index, start time)
    children: dict[int, tuple[int, float]] = {}
    stopping = False
    received: list[int] = []

    supervisor = os.getpid()

    def on_signal(signum: int, _frame: object) -> None:
        if os.getpid() != supervisor:  # a child just forked, before its own handlers
            signals.early.append(signum)
        else:
            received.append(signum)

    old = {s: signal.signal(s, on_signal) for s in HANDLED_SIGNALS}
    received.extend(signals.early)
    signals.early.clear()
    try:
        for index in range(workers):
            children[_spawn(work, index, coordinator)] = (index, time.monotonic())
        failures = 0
        deadline: float | None = None
        while children:
            while received:
                signum = received.pop(0)
                if signum == signal.SIGHUP and coordinator is not None:
                    if not stopping:
                        coordinator.transaction()
                    continue
                if signum == signal.SIGHUP:
                    for pid in children:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGHUP)
                    continue
                if not stopping:
                    stopping = True
                    deadline = time.monotonic() + drain_timeout + 5.0
                    for pid in children:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGTERM)
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                if deadline is not None and time.monotonic() > deadline:
                    for p in children:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(p, signal.SIGKILL)
                    failures += 1
                    deadline = None
                if coordinator is not None and not stopping:
                    coordinator.poll(0.05)  # a tick, and the reloads workers asked for
                else:
                    time.sleep(0.05)  # a supervisor tick; signals are handled on the next pass
                continue
            index, started = children.pop(pid)
            if coordinator is not None:
                coordinator.remove(pid)
            code = os.waitstatus_to_exitcode(status)
            if stopping:
                failures += code != 0
                continue
            log.warning("worker %d exited with %d; starting a new one", pid, code)
            if time.monotonic() - started < 1.0:
                time.sleep(1.0)  # a worker that dies at once: don't spin
            children[_spawn(work, index, coordinator)] = (index, time.monotonic())
        return 0 if failures == 0 else 1
    finally:
        if coordinator is not None:
            coordinator.close()
        for s, handler in old.items():
            signal.signal(s, handler)
