"""``fishpredict cluster up --containers``: the replicas and nginx in containers.

The same cluster as :mod:`fishpredict.cluster` (N ``fishpredict serve``
replicas behind nginx, one nginx template), but each replica runs in the image
docker/Dockerfile builds and nginx in the one docker/nginx/Dockerfile builds,
on a network of their own, through Docker or podman. The images are built
where missing.

Readiness is waited for here, not left to the engine's health checks (podman
runs those only under systemd, and podman-compose ignores
``depends_on: condition: service_healthy``): every replica's port is
published on a random loopback port, and ``up`` returns only once each
replica and nginx answer ``GET /readyz`` 200.

What ``up`` created is recorded in ``containers.json`` in the run directory
(container names and ids, the network, ports); ``status`` and ``down`` read it
from any process. Everything also carries the label ``org.fishpredict.cluster``
with the run directory's tag, so ``down`` removes even what an interrupted
``up`` created before it could record it.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from fishpredict.errors import ClusterError
from fishpredict.ops import nginx as nginxconf
from fishpredict.ops.containerstate import (
    STATE_FILE,
    Container,
    ContainerState,
    load_state,
    save_state,
)
from fishpredict.ops.engine import NGINX_IMAGE, SERVER_IMAGE, Engine, ensure_images, last_words
from fishpredict.ops.health import ClusterStatus, ProcessStatus, check_port_free, probe
from fishpredict.ops.state import RunDir, check_shape

SITE_CONF = "nginx-site.conf"
LABEL = "org.fishpredict.cluster"
SERVER_PORT = 8080
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class ContainerConfig:
    """What ``fishpredict cluster up --containers`` starts."""

    #: ``docker``, ``podman``, or None: the first of them that runs
    engine: str | None = None
    backend: str = "socket"
    replicas: int = 2
    port: int = 8070
    host: str = LOOPBACK
    workers_per_replica: int = 1
    fast_path: bool = True
    #: more ``fishpredict serve`` options; ``--models`` paths are mounted read-only
    serve_args: tuple[str, ...] = ()
    run_dir: Path | str = Path(".fishpredict-cluster")
    #: the checkout whose docker/ the images are built from (default: found)
    source: str | None = None
    #: rebuild the images even if they exist
    build: bool = False
    startup_timeout: float = 60.0
    stop_timeout: float = 15.0

    def __post_init__(self) -> None:
        check_shape(self.replicas, self.workers_per_replica, self.port)


def has_containers(run_dir: str | Path) -> bool:
    """True if ``run_dir`` holds a container cluster's state."""
    return (RunDir(run_dir).path / STATE_FILE).exists()


class ContainerCluster:
    """Replicas and nginx in containers, recorded in a run directory."""

    def __init__(self, config: ContainerConfig | None = None) -> None:
        self.config = config or ContainerConfig()
        self.dir = RunDir(self.config.run_dir)
        self.run_dir = self.dir.path
        self.state_path = self.run_dir / STATE_FILE
        #: a name for this run directory's network and containers
        self.tag = hashlib.sha256(str(self.run_dir).encode()).hexdigest()[:10]
        self._engine: Engine | None = None

    def __enter__(self) -> ContainerCluster:
        self.up()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            recorded = self._load().engine if self.state_path.exists() else None
            self._engine = Engine.find(recorded or self.config.engine)
        return self._engine

    # -- the three commands --

    def up(self) -> str:
        """Build the images where missing, start the replicas and nginx, wait until
        all answer ``/readyz``; nginx's URL. After a failure nothing is left."""
        cfg = self.config
        engine = self.engine
        with self.dir.locked():
            self._refuse_if_up()
            check_port_free(cfg.host, cfg.port)
            argv, mounts = self._serve_argv()  # a missing --models path fails here
            ensure_images(engine, self.run_dir, cfg.source, cfg.build)
            state = ContainerState(
                url=f"http://{cfg.host}:{cfg.port}", backend=cfg.backend, engine=engine.name,
                started=datetime.now(UTC).isoformat(timespec="seconds"),
                network=f"fishpredict-{self.tag}", tag=self.tag,
            )
            try:
                self._start_all(state, argv, mounts)
            except BaseException:
                self._remove(state)
                raise
        return state.url

    def status(self) -> ClusterStatus:
        """Each container running or not, each replica's and nginx's ``/readyz``."""
        state = self._load()
        nginx_host = urlsplit(state.url).hostname or LOOPBACK
        out = []
        for c in state.containers():
            running, pid, _ = self.engine.state(c.name)
            host = nginx_host if c.role == "nginx" else LOOPBACK
            health = probe(host, c.port) if running and c.port else "down"
            out.append(ProcessStatus(c.role, pid, c.port, running, health))
        return ClusterStatus(state.url, self.run_dir, out)

    def down(self) -> list[str]:
        """Stop and remove every container (nginx first) and the network; their logs
        stay in the run directory. The roles that ignored SIGTERM and were killed."""
        if not self.state_path.exists():
            return []
        with self.dir.locked():
            return self._remove(self._load())

    # -- for fault tests --

    @property
    def url(self) -> str:
        return self._load().url

    def container_names(self) -> list[str]:
        return [c.name for c in self._load().replicas]

    def replica_ports(self) -> list[int]:
        return [c.port for c in self._load().replicas]

    def kill_replica(self, index: int, signal: str = "KILL") -> bool:
        """Send ``signal`` to replica ``index``'s container (SIGKILL: it dies at once,
        as in a crash). False if it was not running."""
        name = self._load().replica(index).name
        if not self.engine.state(name)[0]:
            return False
        self.engine.run(["kill", "--signal", signal, name], timeout=60)
        return True

    def restart_replica(self, index: int) -> int:
        """Start replica ``index``'s container again, wait for ``/readyz``, and have
        nginx look its address up again; its new host pid."""
        with self.dir.locked():
            state = self._load()
            c = state.replica(index)
            self.engine.run(["stop", "--time", str(int(self.config.stop_timeout)), c.name],
                            timeout=self.config.stop_timeout + 60)
            self.engine.run(["start", c.name], timeout=120)
            c.port = self.engine.host_port(c.name, SERVER_PORT)
            self._save(state)
            self._wait_ready(c, LOOPBACK, time.monotonic() + self.config.startup_timeout)
            if state.nginx is not None:
                self.engine.run(["exec", state.nginx.name, "nginx", "-s", "reload"], timeout=60)
            return self.engine.state(c.name)[1]

    # -- starting --

    def _start_all(self, state: ContainerState, argv: list[str], mounts: list[str]) -> None:
        cfg, engine = self.config, self.engine
        deadline = time.monotonic() + cfg.startup_timeout
        engine.run(["network", "create", "--label", f"{LABEL}={self.tag}", state.network])
        self._save(state)
        for i in range(cfg.replicas):
            name = f"fishpredict-{self.tag}-ml-{i + 1}"
            c = Container(f"replica-{i}", name)
            state.replicas.append(c)
            self._save(state)
            engine.run([
                "run", "--detach", "--name", name, *self._common(state),
                "--network-alias", f"ml-{i + 1}", "--publish", f"{LOOPBACK}::{SERVER_PORT}",
                "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
                "--security-opt", "no-new-privileges", *mounts, SERVER_IMAGE, *argv,
            ])
            c.port = engine.host_port(name, SERVER_PORT)
            self._save(state)
        for c in state.replicas:
            self._wait_ready(c, LOOPBACK, deadline)
        site = self.run_dir / SITE_CONF
        upstreams = [f"ml-{i + 1}:{SERVER_PORT}" for i in range(cfg.replicas)]
        site.write_text(nginxconf.render_site(upstreams, nginxconf.DOCKER_LISTEN), "utf-8")
        site.chmod(0o644)
        state.nginx = Container("nginx", f"fishpredict-{self.tag}-nginx", cfg.port)
        self._save(state)
        engine.run([
            "run", "--detach", "--name", state.nginx.name, *self._common(state),
            "--publish", f"{cfg.host}:{cfg.port}:80",
            "--volume", f"{site}:/etc/nginx/conf.d/default.conf:ro", NGINX_IMAGE,
        ])
        self._wait_ready(state.nginx, cfg.host, deadline)

    def _common(self, state: ContainerState) -> list[str]:
        # readiness is ours: health checks would want systemd under podman
        return ["--network", state.network, "--label", f"{LABEL}={self.tag}", "--no-healthcheck"]

    def _serve_argv(self) -> tuple[list[str], list[str]]:
        """The replicas' ``fishpredict serve`` command, and the ``--volume`` options
        that mount each ``--models`` path read-only where the command names it."""
        cfg = self.config
        argv = ["fishpredict", "serve", "--backend", cfg.backend, "--host", "0.0.0.0",
                "--port", str(SERVER_PORT), "--workers", str(cfg.workers_per_replica)]
        if not cfg.fast_path:
            argv.append("--no-fast-path")
        mounts: list[str] = []
        args = list(cfg.serve_args)
        for i, arg in enumerate(args):
            if i == 0 or args[i - 1] != "--models":
                continue
            name, sep, path = arg.partition("=") if "=" in arg else ("", "", arg)
            host = Path(path).expanduser().resolve()
            if not host.exists():
                raise ClusterError(f"--models {path}: no such file or directory")
            inside = f"/models/{len(mounts) // 2}/{host.name}"
            mounts += ["--volume", f"{host}:{inside}:ro"]
            args[i] = f"{name}{sep}{inside}"
        return argv + args, mounts

    # -- waiting --

    def _wait_ready(self, c: Container, host: str, deadline: float) -> None:
        next_check = 0.0
        while True:
            health = probe(host, c.port, timeout=1.0)
            if health == "ready":
                return
            if time.monotonic() >= next_check:  # an engine call costs ~50 ms: not every turn
                running, _, code = self.engine.state(c.name)
                if not running:
                    raise self._fail(c, f"exited with code {code} before it was ready")
                next_check = time.monotonic() + 0.5
            if time.monotonic() > deadline:
                raise self._fail(
                    c, f"not ready within {self.config.startup_timeout:g}s, last /readyz: {health}"
                )
            time.sleep(0.05)

    def _fail(self, c: Container, what: str) -> ClusterError:
        logs = last_words(self.engine.logs(c.name), 3)
        return ClusterError(f"{c.role} ({c.name}) {what}: {logs}")

    # -- stopping --

    def _remove(self, state: ContainerState) -> list[str]:
        """Stop nginx, then the replicas; keep their logs; remove them, the network
        and the state, also whatever carries this cluster's label."""
        engine, timeout = self.engine, self.config.stop_timeout
        killed = []
        for group in ([state.nginx] if state.nginx else [], state.replicas):
            running = [c for c in group if engine.state(c.name)[0]]
            if running:
                engine.run(["stop", "--time", str(int(timeout)), *[c.name for c in running]],
                           timeout=timeout + 60, check=False)
            for c in group:
                logs = engine.logs(c.name)
                if logs:
                    (self.run_dir / f"{c.role}.log").write_text(logs, "utf-8")
            killed += [c.role for c in running if engine.state(c.name)[2] == 137]
        label = f"label={LABEL}={self.tag}"
        ids = engine.out(["ps", "--all", "--quiet", "--filter", label], timeout=60).split()
        names = [c.name for c in state.containers()]
        engine.run(["rm", "--force", *ids, *names], timeout=120, check=False)
        networks = engine.out(
            ["network", "ls", "--quiet", "--filter", label], timeout=60).split()
        for net in {*networks, state.network}:
            engine.run(["network", "rm", net], timeout=60, check=False)
        left = engine.out(["ps", "--all", "--quiet", "--filter", label], timeout=60)
        if left:
            raise ClusterError(f"{engine.name} rm left containers behind: {left.split()}")
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()
        with contextlib.suppress(FileNotFoundError):
            (self.run_dir / SITE_CONF).unlink()
        return killed

    # -- the state file --

    def _refuse_if_up(self) -> None:
        if self.dir.has_state():
            raise ClusterError(
                f"a cluster of processes is recorded in {self.run_dir}; stop it with: "
                f"fishpredict cluster down --run-dir {self.run_dir}"
            )
        if self.state_path.exists():
            raise ClusterError(
                f"a container cluster is already up in {self.run_dir}; stop it with: "
                f"fishpredict cluster down --run-dir {self.run_dir}"
            )

    def _load(self) -> ContainerState:
        return load_state(self.state_path)

    def _save(self, state: ContainerState) -> None:
        self.dir.create()
        save_state(self.state_path, state)

__all__ = ["STATE_FILE", "ContainerCluster", "ContainerConfig", "has_containers"]
