"""MLServer as a peer to measure against: its settings, and a running process.

:func:`write_repository` lays out an MLServer model repository for model files
that already exist: ``settings.json`` (HTTP on a given loopback port, gRPC on
another free port since MLServer always starts it, Prometheus metrics off, so
MLServer does less than fishpredict does per request) and one folder per model
with ``model-settings.json``: the ``mlserver_sklearn.SKLearnModel`` runtime,
adaptive batching (``max_batch_size`` 64, ``max_batch_time`` 5 ms) and the
model file's absolute path as ``parameters.uri``. Everything else is MLServer's
default (one parallel inference worker).

:func:`mlserver` starts ``mlserver start REPO``, waits until ``/v2/health/ready``
and every model's ``/v2/models/NAME/ready`` answer 200, and stops it by pid on
exit (its inference workers too, by their pids, should any outlive it).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fishpredict.errors import ConfigError
from fishpredict.server.ports import free_port

MAX_BATCH_SIZE: Final = 64
MAX_BATCH_TIME_S: Final = 0.005
START_TIMEOUT_S: Final = 180.0
STOP_TIMEOUT_S: Final = 20.0
LOG_NAME: Final = "mlserver.log"


def server_settings(http_port: int, grpc_port: int) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_endpoint": None,
        "load_models_at_startup": True,
        "debug": False,
    }


def model_settings(name: str, model_file: Path) -> dict[str, Any]:
    return {
        "name": name,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "max_batch_size": MAX_BATCH_SIZE,
        "max_batch_time": MAX_BATCH_TIME_S,
        "parameters": {"uri": str(model_file.resolve())},
    }


def write_repository(repo: Path, models: Sequence[tuple[str, Path]], http_port: int,
                     grpc_port: int) -> None:
    """``repo/settings.json`` and ``repo/NAME/model-settings.json`` for each model."""
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "settings.json").write_text(
        json.dumps(server_settings(http_port, grpc_port), indent=2) + "\n")
    for name, path in models:
        (repo / name).mkdir(exist_ok=True)
        (repo / name / "model-settings.json").write_text(
            json.dumps(model_settings(name, path), indent=2) + "\n")


@dataclass(frozen=True)
class RunningPeer:
    """A started peer server."""

    pid: int
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _status(port: int, path: str) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _descendants(pid: int) -> list[int]:
    try:
        import psutil
    except ImportError:
        return []
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the peer and wait; SIGKILL it if it does not go; then any of its children
    still alive, each by pid."""
    kids = _descendants(proc.pid)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    for kid in kids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(kid, signal.SIGKILL)


@contextlib.contextmanager
def mlserver(executable: Path, repo: Path, models: Sequence[tuple[str, Path]],
             timeout_s: float = START_TIMEOUT_S) -> Iterator[RunningPeer]:
    """``EXECUTABLE start REPO`` serving ``models`` on a free loopback port, ready;
    stopped on exit. Raises :class:`ConfigError` with the log's tail if it exits or is
    not ready within ``timeout_s``."""
    port, grpc_port = free_port(), free_port()
    write_repository(repo, models, port, grpc_port)
    log_path = repo / LOG_NAME
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.Popen([str(executable), "start", str(repo)], cwd=repo,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    try:
        paths = ["/v2/health/ready", *(f"/v2/models/{n}/ready" for n, _p in models)]
        deadline = time.monotonic() + timeout_s
        while not all(_status(port, p) == 200 for p in paths):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                tail = log_path.read_text("utf-8", "replace").strip().splitlines()[-8:]
                why = "exited" if proc.poll() is not None else f"not ready in {timeout_s:g} s"
                raise ConfigError(f"MLServer {why}: " + " | ".join(tail))
            time.sleep(0.2)  # poll interval of a bounded readiness loop
        yield RunningPeer(proc.pid, "127.0.0.1", port)
    finally:
        _stop(proc)
        log.close()
