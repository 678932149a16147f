"""Loopback ports: one that is free now, and waiting until a server listens on one."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time

from fishpredict.errors import FishpredictError


def free_port() -> int:
    """A loopback TCP port that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, timeout_s: float = 10.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Return once 127.0.0.1:``port`` accepts a connection; raise after ``timeout_s``
    (or as soon as ``proc``, the server, exits)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise FishpredictError(f"server exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise FishpredictError(f"nothing listened on 127.0.0.1:{port} within {timeout_s:g} s")
