"""The servers a benchmark compares, started as real processes on loopback.

* :func:`fishpredict_server` — ``fishpredict serve`` with any backend and options;
* :func:`seed_server` — the seed's FastAPI server from ``examples/seed_server``
  (unpickling per request, or ``load_once``), the baseline of every ratio.

Both are context managers that stop what they started, by pid, on exit.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from fishpredict.errors import ConfigError
from fishpredict.server.ports import free_port
from fishpredict.server.process import ServerProcess, start_server

SEED_APP = Path(__file__).resolve().parents[2] / "examples" / "seed_server" / "app.py"


@contextlib.contextmanager
def fishpredict_server(backend: str, *args: str, timeout: float = 60.0
                       ) -> Iterator[ServerProcess]:
    """``fishpredict serve --backend BACKEND --port 0 ARGS``, ready; stopped on exit."""
    with start_server(backend, *args, timeout=timeout) as srv:
        yield srv


class SeedServer:
    """A running copy of the seed's server."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc = proc
        self.port = port
        self.pid = proc.pid
        self.url = f"http://127.0.0.1:{port}"


def _fish_ok(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/fish?length=30&weight=600&k=5")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


@contextlib.contextmanager
def seed_server(load_once: bool = False, timeout: float = 60.0) -> Iterator[SeedServer]:
    """The seed's FastAPI server on a free loopback port, answering; stopped on exit."""
    if not SEED_APP.exists():
        raise ConfigError(f"the seed's server is not at {SEED_APP}; run from a source checkout")
    with tempfile.TemporaryDirectory(prefix="fishpredict-seed-") as models:
        port = free_port()
        argv = [sys.executable, str(SEED_APP), "--port", str(port), "--models", models]
        if load_once:
            argv.append("--load-once")
        log = open(os.path.join(models, "server.log"), "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + timeout
            while not _fish_ok(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    tail = Path(models, "server.log").read_text("utf-8", "replace")[-2000:]
                    raise ConfigError(f"the seed's server did not start: {tail.strip()}")
                time.sleep(0.1)  # poll interval of a bounded readiness loop
            yield SeedServer(proc, port)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
            log.close()
