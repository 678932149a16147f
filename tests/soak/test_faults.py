"""Faults behind nginx under the project's own bench load (issue 6, item 5; issue 4's "done when").

Two replicas of the socket backend run behind a real nginx (:class:`Cluster`).
The project's load generator (:func:`fishpredict.bench.run_bench`, closed
model, 16 users, GET /fish over a pool of generated fish and k = 1, 5, 15, 25,
every answer checked against the fish's species) runs against nginx while one
replica is killed (SIGKILL) or restarted with a drain (SIGTERM, then started
again). The bench must report zero failed requests, and a restarted replica
must rejoin: its own ``/metrics`` count of answered requests grows.

Needs nginx (``apt-get install nginx-light``); skipped with that reason if absent.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fishpredict.bench import BenchConfig, BenchResult, run_bench
from fishpredict.errors import ClusterError
from fishpredict.ops.cluster import Cluster, ClusterConfig
from fishpredict.ops.nginx import find_nginx
from fishpredict.ops.procs import live_process
from fishpredict.server.ports import free_port

try:
    NGINX: str | None = find_nginx()
except ClusterError:
    NGINX = None

pytestmark = [
    pytest.mark.nginx,
    pytest.mark.skipif(
        NGINX is None, reason="nginx is not installed (apt-get install nginx-light)"
    ),
]

#: the bench: closed model, 16 users, varied inputs, answers checked
USERS = 16
KS = (1, 5, 15, 25)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Two socket-backend replicas behind nginx; stopped afterwards, by pid."""
    c = Cluster(
        ClusterConfig(
            backend="socket",
            replicas=2,
            port=free_port(),
            run_dir=tmp_path / "cluster",
            nginx_worker_processes="1",
            startup_timeout=30.0,
        )
    )
    c.up()
    try:
        yield c
    finally:
        try:
            c.down()
        finally:
            for rec in c.started:  # anything down() missed, by pid and only if still ours
                if live_process(rec) is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(rec.pid, signal.SIGKILL)


def answered(port: int) -> float:
    """How many GET /fish the replica on ``port`` answered, from its own /metrics."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        body = response.read().decode()
    finally:
        conn.close()
    assert response.status == 200
    return sum(
        sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == "fishpredict_requests_total" and sample.labels.get("route") == "/fish"
    )


class Bench:
    """``run_bench`` in a thread, so a fault can be injected while it runs."""

    def __init__(self, url: str, seconds: float, seed: int = 6) -> None:
        self.config = BenchConfig(
            url=url,
            threads=USERS,
            duration_s=seconds,
            ks=KS,
            seed=seed,
            pool_size=1024,
            check_answers=True,
            timeout_s=10.0,
        )
        self.result: BenchResult | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        try:
            self.result = run_bench(self.config)
        except BaseException as exc:  # surfaced by finish()
            self.error = exc

    def start(self) -> Bench:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def finish(self) -> BenchResult:
        self._thread.join(self.config.duration_s + 60)
        assert not self._thread.is_alive(), "the bench did not finish"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)  # poll interval of a bounded wait


def assert_no_failures(result: BenchResult) -> None:
    assert result.errors == {}, f"failed requests by kind: {result.errors}"
    assert result.successes > 1000, result.successes
    assert result.checked == result.correct == result.successes


def assert_rejoins(cluster: Cluster, index: int) -> None:
    """The replica at ``index`` answers requests that come through nginx again
    (short bench runs until its own count grows; bounded)."""
    port = cluster.replica_ports()[index]
    before = answered(port)
    deadline = time.monotonic() + 20
    while answered(port) <= before:
        assert time.monotonic() < deadline, "the restarted replica got no traffic from nginx"
        result = Bench(cluster.url, 1.0).start().finish()
        assert result.errors == {}, result.errors


def report(what: str, result: BenchResult) -> None:
    """One line of figures (shown with ``pytest -s``; docs/reliability.md quotes them)."""
    print(
        f"\n{what}: {result.requests} requests, {result.successes} ok, errors {result.errors}, "
        f"{result.rps:,.0f} req/s, p99 {result.percentiles.get('p99', float('nan')):.1f} ms"
    )


def test_issue4_sigkill_of_one_of_two_replicas_under_bench_load_fails_no_request(
    cluster: Cluster,
) -> None:
    victim = cluster.replica_ports()[0]
    old_pid = cluster.replica_pids()[0]
    bench = Bench(cluster.url, 6.0).start()
    wait_until(lambda: answered(victim) >= 200, 10.0, "replica 0 serves the bench")
    assert cluster.kill_replica(0, signal.SIGKILL)
    assert bench.running, "the bench ended before the kill"
    result = bench.finish()
    report("SIGKILL of replica 0 of 2", result)
    assert_no_failures(result)
    assert not cluster.status().healthy  # replica 0 really is gone
    new_pid = cluster.restart_replica(0)
    assert new_pid != old_pid
    assert cluster.status().healthy
    assert_rejoins(cluster, 0)


def test_issue4_sigterm_restart_of_one_of_two_replicas_under_bench_load_fails_no_request(
    cluster: Cluster,
) -> None:
    victim = cluster.replica_ports()[1]
    old_pid = cluster.replica_pids()[1]
    bench = Bench(cluster.url, 8.0).start()
    wait_until(lambda: answered(victim) >= 200, 10.0, "replica 1 serves the bench")
    new_pid = cluster.restart_replica(1)  # SIGTERM: drain, exit; then start again
    assert bench.running, "the bench ended before the restart was over"
    result = bench.finish()
    report("SIGTERM restart of replica 1 of 2", result)
    assert new_pid != old_pid
    assert_no_failures(result)
    assert cluster.status().healthy
    assert_rejoins(cluster, 1)
