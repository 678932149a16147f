"""BenchConfig: targets, the loopback rule, bounds and the ramp-up schedule."""

from __future__ import annotations

import pytest

from fishpredict.bench.config import (
    DEFAULT_DURATION_S,
    MAX_DURATION_S,
    BenchConfig,
    is_loopback,
    parse_target,
)
from fishpredict.errors import ConfigError


def test_parse_target() -> None:
    t = parse_target("http://127.0.0.1:8080/api?x=1")
    assert (t.host, t.port, t.path, t.query) == ("127.0.0.1", 8080, "/api", "x=1")
    assert t.host_header == "127.0.0.1:8080"
    assert parse_target("localhost:9000").port == 9000
    assert parse_target("http://[::1]:81").host_header == "[::1]:81"
    with pytest.raises(ConfigError, match="only http"):
        parse_target("https://127.0.0.1")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.4.5", "::1", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["10.0.0.1", "192.168.1.1", "8.8.8.8", "::2"])
def test_non_loopback_hosts(host: str) -> None:
    assert not is_loopback(host)


def test_remote_target_refused_without_allow_remote() -> None:
    with pytest.raises(ConfigError, match="--allow-remote"):
        BenchConfig("http://10.1.2.3:8000").validated()
    # allowed only when asked for (validation only: nothing is sent here)
    assert BenchConfig("http://10.1.2.3:8000", allow_remote=True).validated()


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"duration_s": MAX_DURATION_S + 1}, "duration"),
        ({"duration_s": 0}, "duration"),
        ({"requests": 0}, "requests"),
        ({"threads": 0}, "threads"),
        ({"rate": -1.0}, "rate"),
        ({"rate": 100.0, "ramp_up_s": 1.0}, "ramp-up"),
        ({"ks": (0,)}, "k values"),
        ({"timeout_s": 0}, "timeout"),
        ({"endpoint": "nope"}, "endpoint"),
        ({"model": "iris"}, "--endpoint fish does not send one"),
        ({"model": "iris", "endpoint": "get"}, "--endpoint get does not send one"),
        ({"data": "/no/such/file.csv"}, "not found"),
        ({"rate": 10.0, "processes": 4, "connections": 2}, "one connection per process"),
    ],
)
def test_bad_values_are_config_errors(changes: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        BenchConfig("http://127.0.0.1:1", **changes).validated()  # type: ignore[arg-type]


def test_every_run_is_bounded_in_time() -> None:
    assert BenchConfig("http://127.0.0.1:1").effective_duration_s == DEFAULT_DURATION_S
    assert BenchConfig("http://127.0.0.1:1", requests=10).effective_duration_s == MAX_DURATION_S
    assert BenchConfig("http://127.0.0.1:1", duration_s=3).effective_duration_s == 3


def test_ramp_up_schedule_is_stepwise() -> None:
    cfg = BenchConfig(
        "http://127.0.0.1:1", processes=2, threads=5, ramp_up_s=5.0, ramp_step=2, ramp_initial=3
    )
    starts = [cfg.user_start_s(u) for u in range(cfg.users)]
    assert starts == [0, 0, 0, 5, 5, 10, 10, 15, 15, 20]
    # defaults: a tenth of the users per step, one step at the start
    cfg = BenchConfig("http://127.0.0.1:1", threads=100, ramp_up_s=1.0)
    assert cfg.effective_ramp_step == 10
    assert [cfg.user_start_s(u) for u in (0, 9, 10, 99)] == [0, 0, 1, 9]
    # no ramp-up: everyone at once
    assert BenchConfig("http://127.0.0.1:1", threads=4).user_start_s(3) == 0


def test_open_model_default_connections() -> None:
    assert BenchConfig("http://127.0.0.1:1", rate=100.0).users == 16
    assert BenchConfig("http://127.0.0.1:1", rate=1e6).users == 256
    assert BenchConfig("http://127.0.0.1:1", rate=100.0, connections=7).users == 7


def test_a_mix_item_for_fish_drops_the_runs_model() -> None:
    from fishpredict.bench.mix import item_config

    run = BenchConfig("http://127.0.0.1:1", endpoint="v2", model="iris").validated()
    assert item_config(run, "endpoint=fish,k=5", 16).model is None
    assert item_config(run, "k=5", 16).model == "iris"  # still a v2 item
