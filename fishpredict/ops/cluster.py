"""A local cluster: N ``fishpredict serve`` replicas behind a real nginx.

``fishpredict cluster up`` does by one command what the seed did by hand
(two containers, ``docker run --link``, a hand-written nginx config): it
starts the replicas on free loopback ports, renders nginx's configuration
from the same template as ``docker/nginx/default.conf``, starts nginx in
front, waits until everything answers ``/readyz``, and returns with all of
it still running. Everything it started is recorded (pid, start time,
command line, port, log) in ``cluster.json`` in the run directory, so
``cluster status`` and ``cluster down`` can find it again from another
process, and ``down`` signals only processes that are provably its own.

Use it from Python as a context manager::

    with Cluster(ClusterConfig(backend="socket", replicas=2, port=8070)) as c:
        ...  # c.url is nginx; c.replica_pids(), c.kill_replica(0), ...
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from fishpredict.errors import ClusterError, ConfigError
from fishpredict.ops import nginx as nginxconf
from fishpredict.ops.health import ClusterStatus, ProcessStatus, check_port_free, probe
from fishpredict.ops.nginx import find_nginx
from fishpredict.ops.procs import ProcessRecord, live_process, signal_record, start_time, stop
from fishpredict.ops.state import ClusterState, RunDir, check_shape, log_tail

DEFAULT_RUN_DIR = ".fishpredict-cluster"
NGINX_CONF = "nginx.conf"
NGINX_ERROR_LOG = "nginx-error.log"
LOOPBACK = "127.0.0.1"
_ANNOUNCE = re.compile(r"fishpredict: serving .* on http://[^\s/]+:(\d+)")


@dataclass(frozen=True)
class ClusterConfig:
    """What ``fishpredict cluster up`` starts."""

    backend: str = "socket"
    replicas: int = 2
    #: nginx's port on ``host``
    port: int = 8070
    host: str = LOOPBACK
    workers_per_replica: int = 1
    models: str | None = None
    fast_path: bool = True
    run_dir: Path | str = Path(DEFAULT_RUN_DIR)
    #: the nginx binary; None: ``nginx`` on PATH, else /usr/sbin/nginx
    nginx: str | None = None
    nginx_worker_processes: str = "auto"
    #: more ``fishpredict serve`` options for every replica
    serve_args: tuple[str, ...] = ()
    startup_timeout: float = 60.0
    stop_timeout: float = 15.0

    def __post_init__(self) -> None:
        check_shape(self.replicas, self.workers_per_replica, self.port)


class Cluster:
    """Replicas behind nginx, recorded in a run directory.

    A ``Cluster`` made with the same ``run_dir`` in another process sees the
    same cluster: :meth:`status`, :meth:`down`, :meth:`replica_pids` read the
    state file. Only :meth:`up` needs the rest of the config.
    """

    def __init__(self, config: ClusterConfig | None = None) -> None:
        self.config = config or ClusterConfig()
        self.dir = RunDir(self.config.run_dir)
        self.run_dir = self.dir.path
        self.state_path = self.dir.state_path
        self._popens: dict[int, subprocess.Popen[bytes]] = {}
        #: every process this object started, in order (for tests and post-mortems)
        self.started: list[ProcessRecord] = []

    def __enter__(self) -> Cluster:
        self.up()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    # -- the three commands --

    def up(self) -> str:
        """Start the replicas and nginx, wait until all are ready, return nginx's URL.

        After any failure nothing this call started is left running.
        """
        cfg = self.config
        nginx = find_nginx(cfg.nginx)
        with self.dir.locked():
            self._refuse_if_running()
            check_port_free(cfg.host, cfg.port)
            state = ClusterState(
                url=f"http://{cfg.host}:{cfg.port}",
                backend=cfg.backend,
                started=datetime.now(UTC).isoformat(timespec="seconds"),
                python=sys.executable,
                serve_argv=self._serve_argv(),
            )
            try:
                self._start_all(state, nginx)
            except BaseException:
                self._stop(state.records())
                self.dir.remove_state()
                raise
        return state.url

    def status(self) -> ClusterStatus:
        """Each process alive or dead, each replica's and nginx's ``/readyz``."""
        state = self.dir.load()
        nginx_host = urlsplit(state.url).hostname or LOOPBACK
        out = []
        for rec in state.records():
            alive = live_process(rec) is not None
            host = nginx_host if rec.role == "nginx" else LOOPBACK
            health = probe(host, rec.port) if alive else "down"
            out.append(ProcessStatus(rec.role, rec.pid, rec.port, alive, health))
        return ClusterStatus(state.url, self.run_dir, out)

    def down(self) -> list[str]:
        """Stop everything the cluster started (nginx first) and remove its state.

        Returns the roles that ignored SIGTERM and had to be killed. Log files
        stay. With no cluster in the run directory there is nothing to do.
        """
        if not self.dir.has_state():
            return []
        with self.dir.locked():
            killed = self._stop(self.dir.load().records())
            self.dir.remove_state()
            for name in (NGINX_CONF, "nginx.pid"):
                with contextlib.suppress(FileNotFoundError):
                    (self.run_dir / name).unlink()
            shutil.rmtree(self.run_dir / "nginx-tmp", ignore_errors=True)
        return killed

    # -- for fault tests and experiment runners --

    @property
    def url(self) -> str:
        return self.dir.load().url

    def replica_pids(self) -> list[int]:
        return [r.pid for r in self.dir.load().replicas]

    def replica_ports(self) -> list[int]:
        return [r.port for r in self.dir.load().replicas]

    def nginx_pid(self) -> int:
        nginx = self.dir.load().nginx
        return nginx.pid if nginx else 0

    def kill_replica(self, index: int, sig: int = signal.SIGKILL) -> bool:
        """Send ``sig`` to replica ``index``; SIGKILL reaches its forked workers
        too (the whole replica dies at once, as in a crash). False if it was
        not running."""
        rec = self.dir.load().replica(index)
        sent = signal_record(rec, sig, whole_family=sig == signal.SIGKILL)
        popen = self._popens.get(rec.pid)
        if sent and popen is not None and sig == signal.SIGKILL:
            popen.wait(timeout=self.config.stop_timeout)
        return sent

    def restart_replica(self, index: int) -> int:
        """Stop replica ``index`` if it runs, start it again on its port, wait
        until it answers ``/readyz``; the new pid."""
        with self.dir.locked():
            state = self.dir.load()
            old = state.replica(index)
            self._stop([old])
            new = self._start_replica(index, old.port, state.serve_argv)
            state.replicas[index] = new
            self.dir.save(state)
            self._wait_ready(new, LOOPBACK, time.monotonic() + self.config.startup_timeout)
            return new.pid

    # -- starting --

    def _start_all(self, state: ClusterState, nginx: str) -> None:
        cfg = self.config
        deadline = time.monotonic() + cfg.startup_timeout
        for i in range(cfg.replicas):
            state.replicas.append(self._start_replica(i, 0, state.serve_argv))
            self.dir.save(state)
        for rec in state.replicas:
            rec.port = self._wait_announced(rec, deadline)
        self.dir.save(state)
        conf = self._write_nginx_conf([r.port for r in state.replicas])
        try:
            nginxconf.check_config(nginx, conf, self.run_dir)
        except ConfigError as exc:
            raise ClusterError(str(exc)) from None
        state.nginx = self._start_nginx(nginx, conf)
        self.dir.save(state)
        for rec in state.replicas:
            self._wait_ready(rec, LOOPBACK, deadline)
        self._wait_ready(state.nginx, cfg.host, deadline)

    def _serve_argv(self) -> list[str]:
        cfg = self.config
        argv = ["--backend", cfg.backend, "--host", LOOPBACK]
        argv += ["--workers", str(cfg.workers_per_replica)]
        if cfg.models is not None:
            argv += ["--models", str(Path(cfg.models).expanduser().resolve())]
        if not cfg.fast_path:
            argv.append("--no-fast-path")
        return argv + list(cfg.serve_args)

    def _spawn(
        self, role: str, argv: list[str], output: Path, marker: str, log: Path, port: int
    ) -> ProcessRecord:
        """Start ``argv`` in a session of its own, output to ``output``; its record."""
        self.dir.create()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(output, "wb") as out:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                close_fds=True,
            )
        self._popens[popen.pid] = popen
        rec = ProcessRecord(
            role=role,
            pid=popen.pid,
            argv=argv,
            create_time=start_time(popen.pid),
            marker=marker,
            log=str(log),
            port=port,
        )
        self.started.append(rec)
        return rec

    def _start_replica(self, index: int, port: int, serve_argv: list[str]) -> ProcessRecord:
        argv = [sys.executable, "-m", "fishpredict", "serve", "--port", str(port), *serve_argv]
        log = self.run_dir / f"replica-{index}.log"
        return self._spawn(f"replica-{index}", argv, log, " fishpredict serve ", log, port)

    def _write_nginx_conf(self, ports: list[int]) -> Path:
        for d in nginxconf.temp_dirs(self.run_dir):
            d.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        site = nginxconf.render_site(
            [f"{LOOPBACK}:{p}" for p in ports], f"{self.config.host}:{self.config.port}"
        )
        conf = self.run_dir / NGINX_CONF
        text = nginxconf.render_main(
            site, self.run_dir, worker_processes=self.config.nginx_worker_processes
        )
        conf.write_text(text, "utf-8")
        return conf

    def _start_nginx(self, nginx: str, conf: Path) -> ProcessRecord:
        error_log = self.run_dir / NGINX_ERROR_LOG
        argv = [nginx, "-p", str(self.run_dir), "-c", str(conf)]
        if nginxconf.has_error_log_flag(nginx):
            argv += ["-e", str(error_log)]
        output = self.run_dir / "nginx.log"
        return self._spawn("nginx", argv, output, str(conf), error_log, self.config.port)

    # -- waiting --

    def _exited(self, rec: ProcessRecord) -> int | None:
        popen = self._popens.get(rec.pid)
        if popen is not None:
            return popen.poll()
        return None if live_process(rec) is not None else -1

    def _fail(self, rec: ProcessRecord, what: str) -> ClusterError:
        return ClusterError(f"{rec.role} {what} (log {rec.log}): {log_tail(rec.log)}")

    def _wait_announced(self, rec: ProcessRecord, deadline: float) -> int:
        """The port a replica started with ``--port 0`` printed it serves on."""
        while True:
            with contextlib.suppress(OSError):
                match = _ANNOUNCE.search(Path(rec.log).read_text("utf-8", errors="replace"))
                if match:
                    return int(match.group(1))
            code = self._exited(rec)
            if code is not None:
                raise self._fail(rec, f"exited with code {code} before it served")
            if time.monotonic() > deadline:
                raise self._fail(rec, f"did not start within {self.config.startup_timeout:g}s")
            time.sleep(0.05)

    def _wait_ready(self, rec: ProcessRecord, host: str, deadline: float) -> None:
        while True:
            health = probe(host, rec.port, timeout=1.0)
            if health == "ready":
                return
            code = self._exited(rec)
            if code is not None:
                raise self._fail(rec, f"exited with code {code} before it was ready")
            if time.monotonic() > deadline:
                raise self._fail(
                    rec,
                    f"not ready within {self.config.startup_timeout:g}s, last /readyz: {health}",
                )
            time.sleep(0.05)

    # -- stopping --

    def _stop(self, records: list[ProcessRecord]) -> list[str]:
        """nginx first (no new requests reach a draining replica), then the replicas."""
        nginx = [r for r in records if r.role == "nginx"]
        killed = stop(nginx, self.config.stop_timeout, self._popens)
        killed += stop(
            [r for r in records if r.role != "nginx"], self.config.stop_timeout, self._popens
        )
        for rec in records:
            self._popens.pop(rec.pid, None)
        return killed

    def _refuse_if_running(self) -> None:
        if not self.dir.has_state():
            return
        try:
            records = self.dir.load().records()
        except ClusterError:
            records = []
        running = [r for r in records if live_process(r) is not None]
        if running:
            raise ClusterError(
                f"a cluster is already up in {self.run_dir} ({running[0].role} pid "
                f"{running[0].pid}); stop it with: fishpredict cluster down "
                f"--run-dir {self.run_dir}"
            )
        self.dir.remove_state()  # stale: everything it names has exited


__all__ = [
    "DEFAULT_RUN_DIR",
    "Cluster",
    "ClusterConfig",
    "ClusterStatus",
    "ProcessStatus",
    "check_port_free",
    "find_nginx",
    "log_tail",
    "probe",
]
