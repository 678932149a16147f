"""Metrics shared between the workers of one server: merging, files, real servers."""

from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fishpredict.app.metrics import Metrics
from fishpredict.app.metrics_share import (
    Family,
    Snapshot,
    decode,
    encode,
    exposition,
    is_alive,
    merge,
    start_token,
    take,
)
from fishpredict.perf.loads import worker_connections
from fishpredict.server.client import Client
from fishpredict.server.process import ServerProcess, start_server
from fishpredict.server.serve import HAVE_REUSEPORT

#: seconds a test waits for the workers' snapshots to show a count
DEADLINE_S = 10.0

Key = tuple[str, frozenset[tuple[str, str]]]


def parse(text: str | bytes) -> dict[Key, float]:
    """Every sample of a Prometheus text page, by (sample name, labels)."""
    if isinstance(text, bytes):
        text = text.decode()
    out: dict[Key, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


def counts(samples: dict[Key, float]) -> dict[Key, float]:
    """The samples that add up over workers (no timestamps, no gauges)."""
    return {
        k: v
        for k, v in samples.items()
        if not k[0].endswith("_created")
        and k[0] not in ("fishpredict_worker_info", "fishpredict_models_loaded")
    }


def added(*pages: bytes) -> dict[Key, float]:
    """The counts of several scrapes, added key by key (what merging must give)."""
    out: dict[Key, float] = {}
    for page in pages:
        for key, value in counts(parse(page)).items():
            out[key] = out.get(key, 0.0) + value
    return out


def pids(samples: dict[Key, float]) -> set[int]:
    return {
        int(dict(labels)["pid"]) for (name, labels) in samples if name == "fishpredict_worker_info"
    }


# Latencies that add up exactly in binary floating point, in several buckets.
WORK_A = [("/fish", 2.0**-14), ("/fish", 2.0**-10), ("/predict", 0.5)]
WORK_B = [("/fish", 2.0**-10), ("/fish", 3.0), ("/models", 2.0**-3)]


def answer(m: Metrics, work: list[tuple[str, float]], models: int = 5) -> Metrics:
    """``m`` after answering ``work`` (and loading ``models`` models)."""
    for route, seconds in work:
        m.observe(route, "GET", 200, seconds)
        if route == "/fish":
            m.predicted("knn-k5", 1)
    m.batch_size.observe(len(work))
    m.model_loads.labels("ok").inc(models)
    m.models_loaded.set(models)
    m.rejected.labels("too_many_connections").inc()
    return m


def worker(work: list[tuple[str, float]], models: int = 5, pid: int = 101) -> Metrics:
    """A worker's metrics (process ``pid``) after answering ``work``."""
    m = Metrics()
    m.info.clear()
    m.info.labels(pid=str(pid)).set(1)
    return answer(m, work, models)


def snap(m: Metrics, pid: int) -> Snapshot:
    return take(pid, pid * 10, m.families())


def render(families: list[Family]) -> dict[Key, float]:
    """Merged families through prometheus-client's text format, parsed back."""
    return parse(exposition(families))


# -- merging --


def test_merging_two_workers_sums_counters_and_histograms_exactly() -> None:
    a, b = worker(WORK_A, pid=101), worker(WORK_B, models=3, pid=102)
    merged = render(merge(snap(a, 101), [snap(b, 102)], alive=lambda s: True))
    assert counts(merged) == added(a.render(), b.render())
    # and the same as one worker that answered everything
    one = counts(parse(worker(WORK_A + WORK_B).render()))
    for name in (
        "fishpredict_requests_total",
        "fishpredict_predictions_total",
        "fishpredict_request_duration_seconds_bucket",
        "fishpredict_request_duration_seconds_sum",
        "fishpredict_request_duration_seconds_count",
    ):
        assert {k: v for k, v in counts(merged).items() if k[0] == name} == {
            k: v for k, v in one.items() if k[0] == name
        }
    fish = ("fishpredict_request_duration_seconds_count", frozenset({("route", "/fish")}))
    assert merged[fish] == 4
    assert pids(merged) == {101, 102}


def test_gauges_are_per_live_worker_and_counters_stay_after_a_worker_dies() -> None:
    a, b = worker(WORK_A, models=5, pid=101), worker(WORK_B, models=7, pid=102)
    loaded = ("fishpredict_models_loaded", frozenset())
    live = render(merge(snap(a, 101), [snap(b, 102)], alive=lambda s: True))
    assert pids(live) == {101, 102}
    assert live[loaded] == 7  # the largest over live workers, not 12
    dead = render(merge(snap(a, 101), [snap(b, 102)], alive=lambda s: False))
    assert pids(dead) == {101}
    assert dead[loaded] == 5
    assert counts(dead) == counts(live)  # the dead worker's counts are still in the total


def test_created_timestamps_take_the_earliest() -> None:
    a, b = worker(WORK_A), worker(WORK_B)
    key = ("fishpredict_model_loads_created", frozenset({("outcome", "ok")}))
    merged = render(merge(snap(b, 102), [snap(a, 101)], alive=lambda s: True))
    assert merged[key] == min(parse(a.render())[key], parse(b.render())[key])


def test_a_snapshot_survives_encoding() -> None:
    s = snap(worker(WORK_A), 101)
    assert decode(encode(s)) == s


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"[]",
        b"null",
        b'{"format": 99, "pid": 1, "started": 1, "families": []}',
        b'{"format": 1, "pid": "1", "started": 1, "families": []}',
        b'{"format": 1, "pid": 1, "started": 1, "families": [{"name": "x"}]}',
        b'{"format": 1, "pid": 1, "started": 1, "families": [{"name": "x", "type": "counter",'
        b' "help": "", "samples": [["x_total", {}, "7"]]}]}',
        b'{"format": 1, "pid": 1, "started": 1, "families": [{"name": "x", "type": "counter",'
        b' "help": "", "samples": [["x_total", {"a": 1}, 7]]}]}',
        b"\xff\xfe",
    ],
)
def test_decode_refuses_what_is_not_a_whole_snapshot(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode(data)


def test_decode_refuses_a_half_written_file() -> None:
    data = encode(snap(worker(WORK_A), 101))
    with pytest.raises(ValueError):
        decode(data[: len(data) // 2])


# -- the shared directory, in this process --


def test_a_scrape_adds_sibling_files_and_skips_corrupt_ones(tmp_path: Path) -> None:
    sibling = worker(WORK_B, pid=999999)
    (tmp_path / "999999-1.json").write_bytes(encode(snap(sibling, 999999)))
    (tmp_path / "999998-1.json").write_bytes(b'{"format": 1, "pid": 9')  # half written
    (tmp_path / "999997-1.json").write_bytes(b"\x00garbage")
    (tmp_path / ".tmp123.tmp").write_bytes(b"ignored: not a snapshot name")
    m = Metrics(share_dir=tmp_path)
    try:
        answer(m, WORK_A)
        scraped = counts(parse(m.render()))
        errors = ("fishpredict_metrics_share_errors_total", frozenset({("operation", "read")}))
        assert scraped.pop(errors) == 0
        assert scraped.pop((errors[0], frozenset({("operation", "write")}))) == 0
        assert scraped == added(worker(WORK_A).render(), sibling.render())
        after = parse(m.render())
        assert after[errors] == 2  # the first scrape's two skipped files, counted
        assert pids(after) == {os.getpid()}  # pid 999999 is not running: no gauges
    finally:
        m.close()


def test_snapshots_are_written_only_when_something_changed(tmp_path: Path) -> None:
    m = Metrics(share_dir=tmp_path)
    try:
        (path,) = tmp_path.glob(f"{os.getpid()}-*.json")
        first = path.stat().st_ino
        m.render()
        assert path.stat().st_ino == first  # nothing changed: no new file
        m.observe("/fish", "GET", 200, 0.001)
        m.render()
        assert path.stat().st_ino != first
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        m.close()


def test_close_writes_the_last_counts(tmp_path: Path) -> None:
    m = Metrics(share_dir=tmp_path)
    m.observe("/fish", "GET", 200, 0.001)
    m.close()
    (path,) = tmp_path.glob(f"{os.getpid()}-*.json")
    samples = {
        (name, tuple(sorted(labels.items()))): value
        for f in decode(path.read_bytes()).families
        for name, labels, value in f.samples
    }
    fish = (("method", "GET"), ("route", "/fish"), ("status", "200"))
    assert samples[("fishpredict_requests_total", fish)] == 1
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_one_process_metrics_share_nothing() -> None:
    assert b"fishpredict_metrics_share_errors" not in Metrics().render()


def test_liveness_tells_a_new_process_with_the_same_pid_apart() -> None:
    me = os.getpid()
    assert is_alive(Snapshot(me, start_token(me), ()))
    assert not is_alive(Snapshot(me, start_token(me) + 1, ()))


# -- real servers --


def scrape(srv: ServerProcess, client: Client | None = None) -> dict[Key, float]:
    """One scrape, on a fresh connection unless ``client`` is given."""
    if client is not None:
        reply = client.get("/metrics")
    else:
        with Client(srv.host, srv.port, timeout=10) as c:
            reply = c.get("/metrics")
    assert reply.status == 200, reply
    return parse(reply.body)


def fish_total(samples: dict[Key, float]) -> float:
    return sum(
        v
        for (name, labels), v in samples.items()
        if name == "fishpredict_requests_total" and ("route", "/fish") in labels
    )


def wait_for_total(srv: ServerProcess, want: int) -> dict[Key, float]:
    """Scrape on fresh connections until the /fish total is ``want``; totals never drop."""
    deadline = time.monotonic() + DEADLINE_S
    last = 0.0
    while True:
        samples = scrape(srv)
        total = fish_total(samples)
        assert total >= last, f"the total went back from {last} to {total}"
        last = total
        if total == want:
            return samples
        assert total < want, f"counted {total} of {want} requests"
        if time.monotonic() > deadline:
            pytest.fail(f"/metrics shows {total} of {want} /fish requests after {DEADLINE_S}s")
        time.sleep(0.1)  # poll interval; the deadline bounds the wait


FISH = "/fish?length=30&weight=600"


@pytest.mark.parametrize("backend", ["socket", "aiohttp"])
def test_every_worker_answers_with_the_whole_servers_counts(backend: str) -> None:
    with start_server(backend, "--workers", "2") as srv:
        clients = srv.fresh_clients(64, FISH, 3)
        try:
            if HAVE_REUSEPORT:
                spread = worker_connections(srv.pid)
                assert spread is not None and len(spread) == 2 and min(spread) > 0, spread
            samples = wait_for_total(srv, 64 * 3)
            assert pids(samples) == set(srv.workers())
            # the 64 connections reach both workers: each one answers with the total
            for c in clients:
                assert fish_total(scrape(srv, c)) == 64 * 3
        finally:
            for c in clients:
                c.close()
        assert srv.stop() == 0


def test_a_killed_workers_counts_stay_and_its_replacement_joins(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    with start_server("socket", "--workers", "2", env=env) as srv:
        (share,) = tmp_path.glob("fishpredict-metrics-*")
        assert stat.S_IMODE(share.stat().st_mode) == 0o700
        for c in srv.fresh_clients(32, FISH, 2):
            c.close()
        before = wait_for_total(srv, 64)
        victim, survivor = srv.workers()
        assert pids(before) == {victim, survivor}
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + DEADLINE_S + 10
        while True:
            kids = srv.workers()
            samples = scrape(srv)
            assert fish_total(samples) == 64, "the total changed when a worker died"
            if len(kids) == 2 and victim not in kids and pids(samples) == set(kids):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"workers {kids}, /metrics shows {pids(samples)}")
            time.sleep(0.1)  # polling the supervisor, bounded by the deadline
        assert survivor in kids
        assert len(list(share.glob("*.json"))) == 3  # the dead worker's file stays
        for _ in range(8):
            assert fish_total(scrape(srv)) == 64
        assert srv.stop() == 0
    assert not share.exists()
