"""A cluster's run directory: its state file, its lock, its logs.

``cluster.json`` says what a cluster started (nginx and each replica: pid,
start time, command line, port, log), so that ``fishpredict cluster status``
and ``down``, run later from another process, find exactly those processes.
It is written atomically (write, then rename) after every process starts, so
even an ``up`` that is killed half-way leaves a state ``down`` can clean up.
A lock file serialises ``up``, ``down`` and restarts on one run directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fishpredict.errors import ClusterError, ConfigError
from fishpredict.ops.procs import ProcessRecord

STATE_FILE = "cluster.json"
LOCK_FILE = "cluster.lock"
STATE_VERSION = 1

T = TypeVar("T")
S = TypeVar("S")


def check_shape(replicas: int, workers_per_replica: int, port: int) -> None:
    """What every cluster is: at least one replica of at least one worker, behind a port."""
    if replicas < 1:
        raise ConfigError(f"replicas must be at least 1, got {replicas}")
    if workers_per_replica < 1:
        raise ConfigError(f"workers per replica must be at least 1, got {workers_per_replica}")
    if not 1 <= port <= 65535:
        raise ConfigError(f"port must be 1..65535, got {port}")


def nth_replica(replicas: Sequence[T], index: int) -> T:
    """Replica ``index`` (0-based), or a ClusterError that says which there are."""
    if not 0 <= index < len(replicas):
        count = len(replicas)
        raise ClusterError(f"no replica {index}: the cluster has {count} (0..{count - 1})")
    return replicas[index]

def read_state(path: Path, from_json: Callable[[dict[str, Any]], S], version: int,
               kind: str, up_command: str, file_kind: str | None = None) -> S:
    """A cluster's state file read back; :class:`ClusterError` naming ``up_command`` if
    there is none, or saying the file is unreadable, of another kind, or damaged."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ClusterError(
            f"no {kind} in {path.parent} (no {path.name}); start one with: {up_command}"
        ) from None
    except (OSError, ValueError) as exc:
        raise ClusterError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != version:
        raise ClusterError(f"{path} is not a fishpredict {file_kind or kind} state file")
    try:
        return from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ClusterError(f"{path} is damaged: {exc!r}") from None



@dataclass
class ClusterState:
    """What one ``cluster up`` started."""

    url: str
    backend: str
    started: str
    python: str
    #: the ``fishpredict serve`` options every replica got (``--port`` aside)
    serve_argv: list[str] = field(default_factory=list)
    nginx: ProcessRecord | None = None
    replicas: list[ProcessRecord] = field(default_factory=list)

    def records(self) -> list[ProcessRecord]:
        """nginx (if started) first, then the replicas: the order to stop them in."""
        return ([self.nginx] if self.nginx else []) + self.replicas

    def replica(self, index: int) -> ProcessRecord:
        return nth_replica(self.replicas, index)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "url": self.url,
            "backend": self.backend,
            "started": self.started,
            "python": self.python,
            "serve_argv": self.serve_argv,
            "nginx": self.nginx.to_json() if self.nginx else None,
            "replicas": [r.to_json() for r in self.replicas],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClusterState:
        nginx = data.get("nginx")
        return cls(
            url=str(data["url"]),
            backend=str(data["backend"]),
            started=str(data["started"]),
            python=str(data["python"]),
            serve_argv=[str(a) for a in data.get("serve_argv", [])],
            nginx=ProcessRecord.from_json(nginx) if nginx else None,
            replicas=[ProcessRecord.from_json(r) for r in data.get("replicas", [])],
        )


class RunDir:
    """The directory holding one cluster's state, nginx config and logs."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().resolve()
        self.state_path = self.path / STATE_FILE

    def create(self) -> None:
        # 0755: nginx's workers (``nobody`` under root) must reach their temp dirs
        self.path.mkdir(parents=True, exist_ok=True, mode=0o755)

    def has_state(self) -> bool:
        return self.state_path.exists()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run directory's lock: one ``up``/``down``/restart at a time."""
        self.create()
        with open(self.path / LOCK_FILE, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ClusterError(
                    f"another fishpredict cluster command is working on {self.path}"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def load(self) -> ClusterState:
        """The state; :class:`ClusterError` if there is none or it is unreadable."""
        return read_state(self.state_path, ClusterState.from_json, STATE_VERSION,
                          "cluster", "fishpredict cluster up")

    def save(self, state: ClusterState) -> None:
        tmp = self.state_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n", "utf-8")
        os.replace(tmp, self.state_path)

    def remove_state(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()


def log_tail(path: str | Path, lines: int = 3) -> str:
    """The last non-empty lines of a log file, joined on one line."""
    try:
        text = Path(path).read_text("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    tail = [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]
    return " | ".join(tail) or "(empty log)"


__all__ = ["STATE_FILE", "ClusterState", "RunDir", "log_tail"]
