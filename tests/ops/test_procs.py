"""fishpredict.ops.procs: a recorded pid is signalled only while it is the same process."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest

from fishpredict.ops.procs import ProcessRecord, live_process, signal_record, start_time, stop

SLEEPER = "import time; time.sleep(30)"
# ignores SIGTERM, forks a child that ignores it too, and reports the child's pid
STUBBORN = (
    "import os, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    time.sleep(30); os._exit(0)\n"
    "print(pid, flush=True)\n"
    "time.sleep(30)\n"
)


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; killed by pid (with their group) afterwards."""
    started: list[subprocess.Popen[str]] = []
    try:
        yield started
    finally:
        for p in started:
            if p.poll() is None:
                for proc in [psutil.Process(p.pid), *psutil.Process(p.pid).children(True)]:
                    proc.kill()
            p.wait(10)


def spawn(started: list[subprocess.Popen[str]], code: str) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    started.append(p)
    return p


def record(p: subprocess.Popen[str], marker: str) -> ProcessRecord:
    """A record of ``p`` once its command line is readable (right after exec it is empty)."""
    deadline = time.monotonic() + 10
    while not psutil.Process(p.pid).cmdline() and time.monotonic() < deadline:
        time.sleep(0.001)
    return ProcessRecord("test", p.pid, [], start_time(p.pid), marker, "")


def test_an_imposter_at_a_recorded_pid_is_left_alone(
    spawned: list[subprocess.Popen[str]],
) -> None:
    p = spawn(spawned, SLEEPER)
    rec = record(p, "time.sleep(30)")
    assert live_process(rec) is not None
    older = dataclasses.replace(rec, create_time=rec.create_time - 100)
    other = dataclasses.replace(rec, marker="fishpredict serve")
    for wrong in (older, other):
        assert live_process(wrong) is None
        assert signal_record(wrong, signal.SIGKILL, whole_family=True) is False
    assert p.poll() is None, "the process at that pid was not ours, and still runs"


def test_stop_terminates_then_reaps(spawned: list[subprocess.Popen[str]]) -> None:
    p = spawn(spawned, SLEEPER)
    rec = record(p, "time.sleep(30)")
    assert stop([rec], timeout=10, popens={p.pid: p}) == []
    assert p.returncode == -signal.SIGTERM
    assert live_process(rec) is None


def test_stop_kills_a_family_that_ignores_sigterm(spawned: list[subprocess.Popen[str]]) -> None:
    p = spawn(spawned, STUBBORN)
    assert p.stdout is not None
    child = psutil.Process(int(p.stdout.readline()))
    rec = record(p, "SIGTERM")
    assert stop([rec], timeout=0.5, popens={p.pid: p}) == ["test"]
    assert p.returncode == -signal.SIGKILL
    with contextlib.suppress(psutil.NoSuchProcess):
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


def test_a_process_that_died_at_once_is_not_live() -> None:
    rec = ProcessRecord("test", 0, [], 0.0, "x", "")
    assert live_process(rec) is None
    assert stop([rec], timeout=1) == []
