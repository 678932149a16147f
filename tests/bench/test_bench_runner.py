"""run_bench end to end against real servers: nginx with a fixed response, and a
tiny asyncio server that answers by a rule (so answers can be right or wrong)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator

import pytest

from fishpredict.bench import BenchConfig, BenchResult, run_bench
from fishpredict.bench.fixedserver import fixed_nginx
from fishpredict.ops.nginx import nginx_path
from fishpredict.server.ports import free_port, wait_for_port

needs_nginx = pytest.mark.skipif(nginx_path() is None, reason="nginx is not installed")

# A minimal HTTP/1.1 keep-alive server: /fish and /predict answer bream for a length
# above 20 cm (right for the generated fish), /slow never answers, a /close prefix
# answers with "Connection: close", anything else is a 404 with the contract's error.
TINY_SERVER = r"""
import asyncio, json, sys
from urllib.parse import parse_qs, urlsplit
import httptools

def name(length):
    return "bream" if length > 20 else "smelt"

class P(asyncio.Protocol):
    def connection_made(self, t):
        self.t, self.p = t, httptools.HttpRequestParser(self)
    def data_received(self, d):
        try:
            self.p.feed_data(d)
        except httptools.HttpParserError:
            self.t.close()
    def on_message_begin(self):
        self.url, self.body = b"", b""
    def on_url(self, u):
        self.url += u
    def on_body(self, b):
        self.body += b
    def on_message_complete(self):
        u = urlsplit(self.url.decode())
        q = parse_qs(u.query)
        close = u.path.startswith("/close")
        if u.path.endswith("/fish"):
            status, doc = 200, {"prediction": name(float(q["length"][0]))}
        elif u.path.endswith("/predict"):
            rows = json.loads(self.body)["instances"]
            status, doc = 200, {"predictions": [name(r[0]) for r in rows]}
        elif u.path == "/slow":
            return
        else:
            status, doc = 404, {"error": {"code": "not_found", "message": "no"}}
        data = json.dumps(doc).encode()
        head = (f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n" + ("Connection: close\r\n" if close else "")
                + "\r\n")
        self.t.write(head.encode() + data)
        if close:
            self.t.close()

async def main():
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(P, "127.0.0.1", int(sys.argv[1]), backlog=2048)
    await srv.serve_forever()

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def nginx() -> Iterator[str]:
    if nginx_path() is None:
        pytest.skip("nginx is not installed")
    with fixed_nginx() as server:
        yield server.url


@pytest.fixture(scope="module")
def tiny() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", TINY_SERVER, str(port)])
    try:
        wait_for_port(port, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def assert_consistent(r: BenchResult) -> None:
    """Counts add up and percentiles are ordered inside [min, max]."""
    assert r.requests == r.successes + r.error_count
    assert sum(row.successes for row in r.timeline) == r.successes
    assert sum(row.errors for row in r.timeline) == r.error_count
    if r.successes:
        lat = r.latency_ms
        seq = [lat["min"], lat["p50"], lat["p90"], lat["p99"], lat["p99.9"], lat["max"]]
        assert seq == sorted(seq), seq
        assert lat["min"] <= r.mean_ms <= lat["max"]
        assert r.rps == pytest.approx(r.successes / r.elapsed_s)
        assert r.peak_rps >= r.rps * 0.5


@needs_nginx
def test_closed_model_counts_add_up(nginx: str) -> None:
    r = run_bench(BenchConfig(nginx, threads=8, duration_s=1.5, check_answers=False))
    assert_consistent(r)
    assert r.successes > 100 and r.errors == {}
    assert r.elapsed_s == pytest.approx(1.5, abs=0.5)
    assert r.users == 8 and r.model == "closed" and r.engine == "native"


@needs_nginx
def test_request_budget_is_exact_over_processes(nginx: str) -> None:
    r = run_bench(
        BenchConfig(
            nginx, processes=2, threads=4, requests=3001, duration_s=30, check_answers=False
        )
    )
    assert_consistent(r)
    assert r.requests == 3001 and r.successes == 3001
    assert r.elapsed_s < 30


@needs_nginx
def test_ramp_up_adds_users_stepwise(nginx: str) -> None:
    r = run_bench(
        BenchConfig(
            nginx,
            processes=2,
            threads=4,
            duration_s=4.0,
            ramp_up_s=1.0,
            ramp_step=2,
            ramp_initial=2,
            check_answers=False,
        )
    )
    assert_consistent(r)
    active = [row.active_users for row in r.timeline if row.span_s >= 0.999]
    # 2 users from the start, 2 more at 1 s, 2 s and 3 s
    assert active[:4] == [2, 4, 6, 8], active
    assert active == sorted(active)


@needs_nginx
def test_many_users_without_errors(nginx: str) -> None:
    r = run_bench(
        BenchConfig(
            nginx, processes=2, threads=500, duration_s=2.0, check_answers=False, timeout_s=10.0
        )
    )
    assert_consistent(r)
    assert r.errors == {} and r.successes > 1000
    assert max(row.active_users for row in r.timeline) == 1000


@needs_nginx
def test_open_model_holds_the_rate(nginx: str) -> None:
    r = run_bench(
        BenchConfig(nginx, rate=2000.0, connections=16, duration_s=2.0, check_answers=False)
    )
    assert_consistent(r)
    assert r.model == "open" and r.errors == {}
    assert r.sent == pytest.approx(4000, rel=0.05)
    assert r.successes == r.sent
    assert r.unsent == 0


@needs_nginx
def test_open_model_over_processes_with_a_budget(nginx: str) -> None:
    r = run_bench(
        BenchConfig(
            nginx, processes=2, rate=1000.0, connections=8, requests=500, check_answers=False
        )
    )
    assert_consistent(r)
    assert r.sent == 500 and r.successes == 500
    assert r.elapsed_s == pytest.approx(0.5, abs=0.3)  # 500 at 1000/s


def test_closed_port_gives_connect_errors() -> None:
    port = free_port()  # nothing listens there
    r = run_bench(BenchConfig(f"http://127.0.0.1:{port}", threads=4, duration_s=1.0))
    assert_consistent(r)
    assert r.successes == 0 and r.errors.get("connect", 0) > 0
    assert set(r.errors) == {"connect"}


def test_closed_port_with_a_budget_stops_by_itself() -> None:
    port = free_port()
    r = run_bench(BenchConfig(f"http://127.0.0.1:{port}", threads=2, requests=20))
    assert r.errors == {"connect": 20}


@needs_nginx
def test_non_2xx_is_counted_by_status(nginx: str) -> None:
    r = run_bench(BenchConfig(nginx + "/missing", endpoint="get", threads=2, duration_s=1.0))
    assert_consistent(r)
    assert r.successes == 0 and set(r.errors) == {"status_404"}
    assert r.errors["status_404"] == r.requests > 0


@needs_nginx
def test_wrong_answers_are_errors_and_lower_accuracy(nginx: str) -> None:
    # nginx always says bream; the generated fish hold ~30% smelt
    r = run_bench(BenchConfig(nginx, threads=4, requests=2000, pool_size=200))
    assert_consistent(r)
    assert r.checked == 2000
    assert r.errors["wrong_answer"] == r.checked - r.correct
    assert 0.5 < (r.accuracy or 0) < 0.9


def test_right_answers_fish_and_batch(tiny: str) -> None:
    r = run_bench(BenchConfig(tiny, threads=4, requests=800, ks=(1, 5)))
    assert_consistent(r)
    assert r.errors == {} and r.accuracy == 1.0 and r.checked == 800
    b = run_bench(BenchConfig(tiny, threads=2, requests=100, endpoint="batch", batch_rows=8))
    assert_consistent(b)
    assert b.errors == {} and b.checked == 800 and b.accuracy == 1.0
    assert b.rows_per_request == 8 and b.rows_per_s == pytest.approx(8 * b.rps)


def test_timeouts_are_counted(tiny: str) -> None:
    r = run_bench(
        BenchConfig(tiny + "/slow", endpoint="get", threads=3, duration_s=1.0, timeout_s=0.3)
    )
    assert_consistent(r)
    assert r.successes == 0 and set(r.errors) == {"timeout"}
    # each user: about one timeout per 0.3 s until the end (the last ones in the drain)
    assert 6 <= r.errors["timeout"] <= 15
    assert r.elapsed_s < 1.0 + 0.3 + 0.5


def test_server_closing_each_connection_is_not_an_error(tiny: str) -> None:
    r = run_bench(BenchConfig(tiny + "/close", threads=4, requests=300))
    assert_consistent(r)
    assert r.successes == 300 and r.errors == {}


def test_runs_from_inside_an_event_loop(tiny: str) -> None:
    async def caller() -> BenchResult:
        return await asyncio.to_thread(
            run_bench, BenchConfig(tiny, threads=2, requests=50, start_method="spawn")
        )

    r = asyncio.run(caller())
    assert r.successes == 50


def test_remote_target_is_refused() -> None:
    from fishpredict.errors import ConfigError

    with pytest.raises(ConfigError, match="non-loopback"):
        run_bench(BenchConfig("http://192.0.2.1:80", duration_s=1))
