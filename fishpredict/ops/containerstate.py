"""A container cluster's state file, ``containers.json`` in its run directory: the
network and each container (role, name, host port) that ``cluster up --containers``
created, so that ``status`` and ``down`` find them again from another process. It
is written atomically after every step, so even an interrupted ``up`` leaves a
state ``down`` can clean up."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fishpredict.ops.state import nth_replica, read_state

STATE_FILE = "containers.json"
STATE_VERSION = 1


@dataclass
class Container:
    """One container the cluster created."""

    role: str
    name: str
    #: the host port it is reached on (a replica's published 8080, nginx's --port)
    port: int = 0


@dataclass
class ContainerState:
    url: str
    backend: str
    engine: str
    started: str
    network: str
    tag: str
    nginx: Container | None = None
    replicas: list[Container] = field(default_factory=list)

    def containers(self) -> list[Container]:
        """nginx first, then the replicas: the order to stop them in."""
        return ([self.nginx] if self.nginx else []) + self.replicas

    def replica(self, index: int) -> Container:
        return nth_replica(self.replicas, index)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["version"] = STATE_VERSION
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerState:
        nginx = data.get("nginx")
        return cls(
            url=str(data["url"]), backend=str(data["backend"]), engine=str(data["engine"]),
            started=str(data["started"]), network=str(data["network"]), tag=str(data["tag"]),
            nginx=Container(**nginx) if nginx else None,
            replicas=[Container(**r) for r in data.get("replicas", [])],
        )

def load_state(path: Path) -> ContainerState:
    """The state in ``path``; :class:`ClusterError` if there is none or it is unreadable."""
    return read_state(path, ContainerState.from_json, STATE_VERSION, "container cluster",
                      "fishpredict cluster up --containers", file_kind="container")


def save_state(path: Path, state: ContainerState) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n", "utf-8")
    os.replace(tmp, path)


__all__ = ["STATE_FILE", "Container", "ContainerState", "load_state", "save_state"]
