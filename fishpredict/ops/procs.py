"""Processes a cluster started: how they are recorded, recognised and stopped.

A pid alone is not an identity: once a process exits its pid can be reused
by anything. So every record keeps the process's start time and a piece of
its command line (the *marker*), and nothing is signalled unless the live
process at that pid still has both. Every process is started in a session of
its own, so it leads a process group that also holds whatever it forks
(nginx's workers, ``fishpredict serve --workers N``'s workers); stopping
reaches those too.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import psutil

#: how far a recorded start time may be from the live one (psutil rounds to ticks)
START_TIME_TOLERANCE = 0.05


@dataclass
class ProcessRecord:
    """One process a cluster started, as the state file keeps it."""

    #: ``"nginx"`` or ``"replica-<i>"``
    role: str
    pid: int
    argv: list[str]
    #: psutil's ``create_time()`` right after the start (0.0: it died at once)
    create_time: float
    #: a substring of the live command line that proves it is still ours
    marker: str
    log: str
    port: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessRecord:
        return cls(
            role=str(data["role"]),
            pid=int(data["pid"]),
            argv=[str(a) for a in data["argv"]],
            create_time=float(data["create_time"]),
            marker=str(data["marker"]),
            log=str(data["log"]),
            port=int(data.get("port", 0)),
        )


def start_time(pid: int) -> float:
    """The start time of ``pid`` as psutil reports it, or 0.0 if it is gone."""
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return 0.0


def live_process(record: ProcessRecord) -> psutil.Process | None:
    """The running process ``record`` describes, or None if it exited (or the
    pid now belongs to another process, or is a zombie)."""
    if record.pid <= 0 or record.create_time <= 0:
        return None
    try:
        proc = psutil.Process(record.pid)
        if abs(proc.create_time() - record.create_time) > START_TIME_TOLERANCE:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        # Right after exec the kernel may not have set the new command line up
        # yet (it reads empty); the start time alone identifies the process then.
        command = " ".join(proc.cmdline())
        if command and record.marker not in command:
            return None
    except psutil.Error:
        return None
    return proc


def family(proc: psutil.Process) -> list[psutil.Process]:
    """``proc`` and every process it forked (still running)."""
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return [proc]


def running(proc: psutil.Process) -> bool:
    """True while ``proc`` runs (a zombie has exited: it only waits to be reaped)."""
    try:
        return bool(proc.is_running()) and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` seconds for ``procs`` to exit; the ones still running."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in procs if running(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.02)


def _signal_all(procs: list[psutil.Process], sig: int) -> None:
    for p in procs:
        # psutil checks the pid still belongs to the same process before signalling
        with contextlib.suppress(psutil.Error):
            p.send_signal(sig)


def signal_record(record: ProcessRecord, sig: int, *, whole_family: bool) -> bool:
    """Send ``sig`` to the recorded process (and, with ``whole_family``, to
    everything it forked). False if it was no longer running."""
    proc = live_process(record)
    if proc is None:
        return False
    _signal_all(family(proc) if whole_family else [proc], sig)
    return True


def stop(
    records: list[ProcessRecord],
    timeout: float,
    popens: Mapping[int, subprocess.Popen[Any]] | None = None,
) -> list[str]:
    """Stop every recorded process that is still ours: SIGTERM to each, wait up
    to ``timeout`` seconds, then SIGKILL whatever is left of each family.

    ``popens`` are the handles of processes started by this Python process;
    they are reaped so no zombie outlives the call. Returns the roles that
    had to be killed.
    """
    leaders: dict[str, psutil.Process] = {}
    members: list[psutil.Process] = []
    for rec in records:
        proc = live_process(rec)
        if proc is not None:
            leaders[rec.role] = proc
            members.extend(family(proc)[1:])
    _signal_all(list(leaders.values()), signal.SIGTERM)
    alive = wait_gone(list(leaders.values()), timeout)
    killed = [role for role, p in leaders.items() if p in alive]
    _signal_all(alive, signal.SIGKILL)
    # A leader that exited cleanly has reaped its own children; anything left
    # of a family (a leader that was killed, a worker that hung) goes now.
    stragglers = wait_gone(members, 0.5 if not alive else 0.0)
    _signal_all(stragglers, signal.SIGKILL)
    wait_gone([*alive, *stragglers], 5.0)
    for rec in records:
        popen = (popens or {}).get(rec.pid)
        if popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=1.0)
    return killed


__all__ = [
    "ProcessRecord",
    "family",
    "live_process",
    "running",
    "signal_record",
    "start_time",
    "stop",
    "wait_gone",
]
