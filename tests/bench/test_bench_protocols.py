"""``fishpredict bench`` in the V2 and V1 protocols (``endpoint="v2"``/``"v1"``): the
pool's requests are what the protocols take, the answers are checked, and a short
real run against a server has no error and every answer right."""

from __future__ import annotations

import json

import pytest

from fishpredict import Predictor
from fishpredict.app.service import Service
from fishpredict.bench.config import BenchConfig
from fishpredict.bench.payloads import batch_answers, build_pool
from fishpredict.bench.runner import run_bench
from fishpredict.errors import ConfigError
from fishpredict.testing import start_server


def _split(raw: bytes) -> tuple[str, str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return method, target, headers, body


@pytest.mark.parametrize("endpoint", ["v2", "v1"])
def test_pool_requests_are_answered_right(endpoint: str) -> None:
    config = BenchConfig("http://127.0.0.1:9", endpoint=endpoint,  # type: ignore[arg-type]
                         batch_rows=3, pool_size=8, ks=(1, 5))
    pool = build_pool(config)
    assert pool.rows_per_request == 3 and len(pool) == 8
    service = Service(Predictor())
    for raw, expected in zip(pool.requests, pool.expected, strict=True):
        method, target, headers, body = _split(raw)
        assert int(headers["content-length"]) == len(body)
        path, _, query = target.partition("?")
        assert path.startswith("/v2/models/knn-k" if endpoint == "v2" else "/v1/models/knn-k")
        answer = service.handle(method, path, query, headers, body)
        assert answer.status == 200, answer.body
        assert isinstance(expected, tuple)
        assert batch_answers(answer.body, expected) == 3


def test_named_model_and_validation() -> None:
    config = BenchConfig("http://127.0.0.1:9", endpoint="v2", model="knn-k15", batch_rows=1,
                         pool_size=2)
    assert b"/v2/models/knn-k15/infer" in build_pool(config).requests[0]
    batch = build_pool(config.with_(endpoint="batch"))
    assert batch.requests[0].startswith(b"POST /predict?model=knn-k15 ")
    assert "model=knn-k15" in batch.description
    with pytest.raises(ConfigError, match="unknown endpoint"):
        BenchConfig("http://127.0.0.1:9", endpoint="v3").validated()  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="model"):
        BenchConfig("http://127.0.0.1:9", endpoint="v2", model="a/b").validated()


def test_wrong_answers_are_counted_wrong() -> None:
    body = json.dumps({"model_name": "m", "outputs": [{"name": "predict", "datatype": "INT64",
                                                       "shape": [2, 1], "data": [1, 0]}]})
    assert batch_answers(body.encode(), (1, 1)) == 1
    assert batch_answers(b'{"predictions":[0,true]}', (0, 1)) == 1
    assert batch_answers(b'{"outputs":[]}', (0,)) == 0


@pytest.mark.parametrize("endpoint", ["v2", "v1"])
def test_real_run_has_no_error(endpoint: str) -> None:
    with start_server("socket") as server:
        config = BenchConfig(server.url, endpoint=endpoint,  # type: ignore[arg-type]
                             batch_rows=1, threads=4, requests=400, duration_s=20.0,
                             pool_size=64)
        result = run_bench(config)
        assert server.stop() == 0
    assert result.error_count == 0, result.errors
    assert result.successes == 400 and result.checked == 400 and result.correct == 400
