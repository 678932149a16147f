"""The wrk engine: the Lua script, parsing wrk's output, and a real wrk run."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from fishpredict.bench import BenchConfig, run_bench
from fishpredict.bench.fixedserver import fixed_nginx
from fishpredict.bench.payloads import build_pool
from fishpredict.bench.wrk import BEGIN, END, lua_script, parse_wrk_output, wrk_command, wrk_path
from fishpredict.errors import ConfigError, FishpredictError
from fishpredict.ops.nginx import nginx_path

SAMPLE = f"""Running 2s test @ http://127.0.0.1:8080/
  1 threads and 8 connections
{BEGIN}
{{"duration_us": 2000000, "requests": 1000, "bytes": 99000,\
 "errors": {{"connect": 1, "read": 2, "write": 0, "status": 10, "timeout": 3}},\
 "latency_us": {{"min": 50, "max": 9000, "mean": 250.5, "stdev": 30.0,\
 "percentiles": {{"50": 200, "90": 400, "99": 800, "99.9": 1600}}}}}}
{END}
  1000 requests in 2.00s, 96.68KB read
  Non-2xx or 3xx responses: 10
Requests/sec:    500.00
"""


def _unlua(literal: str) -> bytes:
    assert literal[0] == literal[-1] == '"'
    return re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1))), literal[1:-1]).encode("latin-1")


def test_lua_script_holds_the_pool_byte_for_byte() -> None:
    cfg = BenchConfig("http://127.0.0.1:8080", endpoint="batch", batch_rows=2, pool_size=5)
    pool = build_pool(cfg)
    script = lua_script(pool)
    literals = re.findall(r'^  (".*?")(?:,)?$', script, flags=re.M)
    assert [_unlua(lit) for lit in literals] == list(pool.requests)
    assert "function done(summary, latency, requests)" in script


def test_parse_wrk_output_and_result_shape() -> None:
    from fishpredict.bench.wrk import result_from_wrk

    data = parse_wrk_output(SAMPLE)
    assert data["requests"] == 1000 and data["non2xx"] == 10
    cfg = BenchConfig("http://127.0.0.1:8080", threads=8, duration_s=2)
    r = result_from_wrk(cfg, build_pool(cfg.with_(pool_size=4)), data)
    assert r.successes == 990
    assert r.errors == {"connect": 1, "disconnect": 2, "timeout": 3, "status_non2xx": 10}
    assert r.requests == r.successes + r.error_count
    assert r.rps == pytest.approx(495.0)
    assert r.latency_ms["p99"] == 0.8 and r.latency_ms["min"] == 0.05
    with pytest.raises(FishpredictError):
        parse_wrk_output("no summary here")


def test_wrk_command_maps_processes_and_users() -> None:
    cfg = BenchConfig("http://127.0.0.1:8080", processes=2, threads=32, duration_s=3)
    cmd = wrk_command(cfg, "/tmp/x.lua")
    assert cmd[cmd.index("-t") + 1] == "2" and cmd[cmd.index("-c") + 1] == "64"
    assert cmd[cmd.index("-d") + 1] == "3s" and "--latency" in cmd


@pytest.mark.parametrize("changes", [{"rate": 100.0}, {"requests": 10}, {"ramp_up_s": 1.0}])
def test_wrk_refuses_what_it_cannot_do(changes: dict[str, object]) -> None:
    if wrk_path() is None:
        pytest.skip("wrk is not installed")
    with pytest.raises(ConfigError, match="wrk"):
        run_bench(BenchConfig("http://127.0.0.1:1", engine="wrk", **changes))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def nginx() -> Iterator[str]:
    if nginx_path() is None or wrk_path() is None:
        pytest.skip("needs nginx and wrk")
    with fixed_nginx() as server:
        yield server.url


def test_real_wrk_run(nginx: str) -> None:
    r = run_bench(BenchConfig(nginx, threads=8, duration_s=1, engine="wrk"))
    assert r.engine == "wrk" and r.errors == {} and r.successes > 100
    lat = r.latency_ms
    assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]
    assert r.generator_cpu_s > 0


def test_real_wrk_counts_non_2xx(nginx: str) -> None:
    r = run_bench(
        BenchConfig(nginx + "/missing", endpoint="get", threads=2, duration_s=1, engine="wrk")
    )
    assert r.successes == 0 and r.errors["status_non2xx"] == r.requests > 0
