"""fishpredict.ops.cluster and ``fishpredict cluster``: replicas behind a real nginx.

The tests marked ``nginx`` start real processes (replicas of the socket
backend and the system nginx) on loopback ports and stop them by pid in
fixtures, also when a test fails. Every load loop is bounded in count and time.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fishpredict.cli import main
from fishpredict.errors import ClusterError, ConfigError
from fishpredict.ops import nginx as nginxconf
from fishpredict.ops import procs
from fishpredict.ops.cluster import Cluster, ClusterConfig
from fishpredict.ops.health import check_port_free
from fishpredict.ops.nginx import find_nginx
from fishpredict.ops.procs import ProcessRecord, live_process
from fishpredict.ops.state import log_tail
from fishpredict.server.ports import free_port

NGINX: str | None
try:
    NGINX = find_nginx()
except ClusterError:
    NGINX = None

#: the backend the replicas run (the default one); override to try another
BACKEND = os.environ.get("FISHPREDICT_TEST_CLUSTER_BACKEND", "socket")

needs_nginx = pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed (apt-get install nginx-light)"
)


def _backend_available() -> bool:
    from fishpredict.errors import FishpredictError
    from fishpredict.plugins import registry

    try:
        registry().get_available_backend(BACKEND)
    except FishpredictError:
        return False
    return True


needs_backend = pytest.mark.skipif(
    not _backend_available(), reason=f"backend {BACKEND!r} is not installed"
)


def cluster_test(test: Callable[..., None]) -> Callable[..., None]:
    """Mark a test that starts replicas and a real nginx."""
    return pytest.mark.nginx(needs_nginx(needs_backend(test)))


def running(pid: int, create_time: float) -> bool:
    """True if ``pid`` is still the process started at ``create_time`` (zombies are dead)."""
    rec = ProcessRecord("x", pid, [], create_time, "", "")
    return live_process(rec) is not None


def get(port: int, path: str, conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        if own:
            c.close()


def fish_requests(port: int) -> float:
    """How many ``GET /fish`` the server on ``port`` answered, from its /metrics."""
    status, body = get(port, "/metrics")
    assert status == 200
    total = 0.0
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "fishpredict_requests_total" and sample.labels["route"] == "/fish":
                total += sample.value
    return total


def fish_path(rng: random.Random) -> str:
    length = round(rng.uniform(8.0, 45.0), 1)
    weight = round(rng.uniform(5.0, 1100.0), 1)
    return f"/fish?length={length}&weight={weight}&k={rng.choice([1, 5, 15, 25, 49])}"


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """Build Clusters in tmp_path; afterwards stop them and prove no process is left."""
    made: list[Cluster] = []

    def make(**options: Any) -> Cluster:
        options.setdefault("backend", BACKEND)
        options.setdefault("replicas", 2)
        options.setdefault("port", free_port())
        options.setdefault("run_dir", tmp_path / f"run{len(made)}")
        options.setdefault("nginx_worker_processes", "1")
        options.setdefault("startup_timeout", 30.0)
        c = Cluster(ClusterConfig(**options))
        made.append(c)
        return c

    try:
        yield make
    finally:
        for c in made:
            try:
                c.down()
            finally:
                for rec in c.started:  # by pid, and only if still that very process
                    proc = live_process(rec)
                    if proc is not None:
                        os.killpg(rec.pid, signal.SIGKILL)
                        pytest.fail(f"{rec.role} (pid {rec.pid}) survived down()")


def assert_nothing_running(c: Cluster) -> None:
    assert c.started, "the cluster started nothing"
    left = [r.role for r in c.started if running(r.pid, r.create_time)]
    assert left == [], f"still running: {left}"


# ---- no processes ------------------------------------------------------------------------


def test_find_nginx_missing_says_how_to_install() -> None:
    with pytest.raises(ClusterError, match="apt-get install nginx-light"):
        find_nginx("/nonexistent/bin/nginx")


def test_check_port_free_rejects_a_port_in_use() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ClusterError, match=f"port {port} on 127.0.0.1 is already in use"):
            check_port_free("127.0.0.1", port)
    check_port_free("127.0.0.1", port)  # free again once closed


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="replicas"):
        ClusterConfig(replicas=0)
    with pytest.raises(ConfigError, match="port"):
        ClusterConfig(port=70000)


def test_status_and_down_without_a_cluster(tmp_path: Path) -> None:
    c = Cluster(ClusterConfig(run_dir=tmp_path))
    with pytest.raises(ClusterError, match="no cluster in"):
        c.status()
    assert c.down() == []


def test_log_tail_joins_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("one\n\ntwo\nthree\nfour\n")
    assert log_tail(log) == "two | three | four"
    assert log_tail(tmp_path / "missing.log") == "(no log)"


@pytest.mark.nginx
@needs_nginx
def test_rendered_main_config_passes_nginx_t(tmp_path: Path) -> None:
    assert NGINX is not None
    site = nginxconf.render_site(["127.0.0.1:9001", "127.0.0.1:9002"], f"127.0.0.1:{free_port()}")
    for d in nginxconf.temp_dirs(tmp_path):
        d.parent.mkdir(parents=True, exist_ok=True)
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginxconf.render_main(site, tmp_path))
    nginxconf.check_config(NGINX, conf, tmp_path)
    conf.write_text(conf.read_text().replace("keepalive 64;", "keepalive sixty-four;"))
    with pytest.raises(ConfigError, match="nginx rejected"):
        nginxconf.check_config(NGINX, conf, tmp_path)


# ---- real processes ------------------------------------------------------------------------


class Load:
    """``total`` GET /fish through nginx from ``threads`` keep-alive clients,
    bounded by ``seconds``; counts what failed."""

    def __init__(self, port: int, total: int, threads: int = 4, seconds: float = 20.0) -> None:
        self.port, self.total, self.seconds = port, total, seconds
        self.done = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, args=(i,)) for i in range(threads)]

    def _take(self) -> bool:
        with self._lock:
            if self.done >= self.total:
                return False
            self.done += 1
            return True

    def _client(self, seed: int) -> None:
        rng = random.Random(seed)
        deadline = time.monotonic() + self.seconds
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            while time.monotonic() < deadline and self._take():
                try:
                    status, body = get(self.port, fish_path(rng), conn)
                except (OSError, http.client.HTTPException) as exc:
                    self.failures.append(repr(exc))
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                    continue
                if status != 200:
                    self.failures.append(f"{status} {body[:120]!r}")
        finally:
            conn.close()

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def wait_done(self, at_least: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.done < at_least and time.monotonic() < deadline:
            time.sleep(0.005)

    def join(self) -> None:
        for t in self._threads:
            t.join(self.seconds + 15)


@cluster_test
def test_up_balances_reports_status_and_down_leaves_nothing(
    make_cluster: Callable[..., Cluster],
) -> None:
    c = make_cluster()
    port = c.config.port
    assert c.up() == f"http://127.0.0.1:{port}"
    assert len(set(c.replica_pids())) == 2
    assert len(set(c.replica_ports())) == 2

    load = Load(port, total=200, threads=2).start()
    load.join()
    assert load.failures == []
    assert load.done == 200
    served = [fish_requests(p) for p in c.replica_ports()]
    assert sum(served) == 200
    assert all(n > 0 for n in served), f"nginx sent every request to one replica: {served}"

    st = c.status()
    assert st.healthy
    assert [p.role for p in st.processes] == ["nginx", "replica-0", "replica-1"]
    assert all(p.alive and p.health == "ready" for p in st.processes)
    conf = (c.run_dir / "nginx.conf").read_text()
    assert all(f"server 127.0.0.1:{p} " in conf for p in c.replica_ports())

    c.down()
    assert_nothing_running(c)
    assert not c.state_path.exists()
    assert (c.run_dir / "replica-0.log").exists(), "logs stay after down"
    with pytest.raises(ClusterError, match="no cluster"):
        c.status()


@cluster_test
def test_port_taken_fails_before_starting_anything(make_cluster: Callable[..., Cluster]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        c = make_cluster(port=s.getsockname()[1])
        with pytest.raises(ClusterError, match="already in use"):
            c.up()
    assert c.started == []
    assert not c.state_path.exists()


@cluster_test
def test_missing_nginx_fails_before_starting_anything(
    make_cluster: Callable[..., Cluster],
) -> None:
    c = make_cluster(nginx="/nonexistent/sbin/nginx")
    with pytest.raises(ClusterError, match="nginx not found at /nonexistent/sbin/nginx"):
        c.up()
    assert c.started == []


@cluster_test
def test_replica_that_fails_to_start_is_reported_and_nothing_is_left(
    make_cluster: Callable[..., Cluster],
) -> None:
    c = make_cluster(models="/nonexistent/models")
    expected = r"replica-\d exited with code \d+ before it served"
    with pytest.raises(ClusterError, match=expected) as e:
        c.up()
    message = str(e.value)
    assert "/nonexistent/models" in message, "the error quotes the tail of the replica's log"
    assert "\n" not in message
    assert_nothing_running(c)
    assert not c.state_path.exists()


@cluster_test
def test_nginx_that_fails_stops_the_replicas_already_running(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    fake = tmp_path / "fake-nginx"
    fake.write_text("#!/bin/sh\necho 'nginx: [emerg] simulated failure' >&2\nexit 1\n")
    fake.chmod(0o755)
    c = make_cluster(nginx=str(fake))
    with pytest.raises(ClusterError, match="simulated failure"):
        c.up()
    assert [r.role for r in c.started] == ["replica-0", "replica-1"]
    assert_nothing_running(c)
    assert not c.state_path.exists()


@cluster_test
def test_sigkill_of_a_replica_under_load_fails_no_request_and_restart_serves_again(
    make_cluster: Callable[..., Cluster],
) -> None:
    c = make_cluster()
    c.up()
    port = c.config.port
    old_pid = c.replica_pids()[0]
    old_port = c.replica_ports()[0]
    old = psutil.Process(old_pid)

    load = Load(port, total=2000, threads=4).start()
    try:
        load.wait_done(300)
        done_at_kill = load.done
        assert c.kill_replica(0, signal.SIGKILL)
    finally:
        load.join()
    assert done_at_kill < 1000, "the replica died while the load was running"
    assert load.done == 2000
    assert load.failures == [], f"{len(load.failures)} failed, e.g. {load.failures[:3]}"
    assert not procs.running(old)
    # nginx did meet the dead replica, and passed those requests to the live one
    assert f"127.0.0.1:{old_port}" in (c.run_dir / "nginx-error.log").read_text()
    assert not c.status().healthy

    new_pid = c.restart_replica(0)
    assert new_pid != old_pid
    assert c.replica_pids()[0] == new_pid
    assert c.status().healthy
    # nginx takes replica 0 back once its fail_timeout is over; wait for that, bounded
    replica_port = c.replica_ports()[0]
    deadline = time.monotonic() + 15
    while fish_requests(replica_port) == 0 and time.monotonic() < deadline:
        again = Load(port, total=50, threads=1, seconds=5).start()
        again.join()
        assert again.failures == []
    assert fish_requests(replica_port) > 0, "the restarted replica got no traffic"


@cluster_test
def test_second_up_is_refused_while_up_and_allowed_once_all_died(
    make_cluster: Callable[..., Cluster],
) -> None:
    c = make_cluster(replicas=1)
    c.up()
    again = make_cluster(replicas=1, run_dir=c.run_dir)
    with pytest.raises(ClusterError, match="a cluster is already up in"):
        again.up()
    assert again.started == []
    assert c.status().healthy

    # everything dies without `down`: the state left behind is stale, not a lock
    assert c.kill_replica(0)
    nginx = next(r for r in c.started if r.role == "nginx")
    assert procs.signal_record(nginx, signal.SIGKILL, whole_family=True)
    assert procs.wait_gone([psutil.Process(nginx.pid)], 10) == []
    assert again.up() == f"http://127.0.0.1:{again.config.port}"
    assert again.status().healthy
    assert again.replica_pids() != [r.pid for r in c.started if r.role != "nginx"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fishpredict", "cluster", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@cluster_test
def test_cli_up_status_down(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``up`` in its own process returns with everything still running (detached);
    ``status`` and ``down`` run here, through the same ``main`` the console script calls."""
    run_dir = tmp_path / "cli"
    port = free_port()
    up = _cli(
        "up",
        "--backend",
        BACKEND,
        "--replicas",
        "2",
        "--port",
        str(port),
        "--run-dir",
        str(run_dir),
    )
    procs: list[psutil.Process] = []
    try:
        assert up.returncode == 0, up.stderr
        assert f"behind nginx on http://127.0.0.1:{port}" in up.stdout
        state = json.loads((run_dir / "cluster.json").read_text())
        records = [ProcessRecord.from_json(r) for r in [state["nginx"], *state["replicas"]]]
        procs = [p for p in (live_process(r) for r in records) if p is not None]
        assert len(procs) == 3, "up returned with everything still running"
        capsys.readouterr()

        assert main(["cluster", "status", "--run-dir", str(run_dir)]) == 0
        out = capsys.readouterr().out
        assert "healthy" in out and out.count(" alive ") == 3 and out.count(" ready") == 3
        assert main(["cluster", "status", "--run-dir", str(run_dir), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["healthy"] is True

        busy = ["cluster", "up", "--port", str(free_port()), "--run-dir", str(run_dir)]
        assert main(busy) == 1
        err = capsys.readouterr().err
        assert err.startswith("fishpredict cluster: error: a cluster is already up in")
        assert len(err.strip().splitlines()) == 1

        assert main(["cluster", "down", "--run-dir", str(run_dir)]) == 0
        assert "stopped" in capsys.readouterr().out
        assert [p.pid for p in procs if running(p.pid, p.create_time())] == []
        assert main(["cluster", "status", "--run-dir", str(run_dir)]) == 1
        assert "no cluster in" in capsys.readouterr().err
        assert main(["cluster", "down", "--run-dir", str(run_dir)]) == 0
        assert "nothing to stop" in capsys.readouterr().out
    finally:
        for p in procs:  # by pid, only if it is still the process up started
            if running(p.pid, p.create_time()):
                os.killpg(p.pid, signal.SIGKILL)


def test_cli_up_reports_missing_nginx_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["cluster", "up", "--nginx", "/nonexistent/nginx", "--run-dir", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        "fishpredict cluster: error: nginx not found at /nonexistent/nginx: "
        "install it (apt-get install nginx-light) or pass --nginx PATH"
    )
