"""What ``cluster status`` reports, and the probes it is made of: is a port free to
listen on, and does a process answer ``/readyz``."""

from __future__ import annotations

import errno
import http.client
import socket
from dataclasses import dataclass, field
from pathlib import Path

from fishpredict.errors import ClusterError


@dataclass(frozen=True)
class ProcessStatus:
    """One line of ``cluster status``."""

    role: str
    pid: int
    port: int
    alive: bool
    #: ``"ready"``, ``"not ready (503)"``, ``"unreachable (...)"``
    health: str

    @property
    def ok(self) -> bool:
        return self.alive and self.health == "ready"


@dataclass(frozen=True)
class ClusterStatus:
    """What ``cluster status`` reports."""

    url: str
    run_dir: Path
    processes: list[ProcessStatus] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return all(p.ok for p in self.processes)


def check_port_free(host: str, port: int) -> None:
    """:class:`ClusterError` unless ``host:port`` can be listened on (as nginx will)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ClusterError(
                    f"port {port} on {host} is already in use; pick another with --port"
                ) from None
            raise ClusterError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def probe(host: str, port: int, path: str = "/readyz", timeout: float = 2.0) -> str:
    """``"ready"`` if ``GET path`` answers 200, else what went wrong, in a few words."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"unreachable ({type(exc).__name__})"
    finally:
        conn.close()
    return "ready" if response.status == 200 else f"not ready ({response.status})"
