"""The pre-built request pool and the answer readers."""

from __future__ import annotations

import io
import json
from urllib.parse import parse_qs, urlsplit

import httptools
import numpy as np
import pytest

from fishpredict.bench.config import BenchConfig
from fishpredict.bench.payloads import batch_answers, build_pool, fish_answer
from fishpredict.bench.source import Rows


class _Req:
    """Parses one raw request with httptools, as a server would."""

    def __init__(self, raw: bytes) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.body = b""
        self.url = b""
        self.complete = False
        p = httptools.HttpRequestParser(self)
        p.feed_data(raw)
        self.method = p.get_method()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


ROWS = Rows(X=np.array([[30.5, 600.0], [10.1, 8.25], [35.0, 700.0]]), y=np.array([1, 0, 1]))


def test_fish_pool_varies_rows_and_cycles_k() -> None:
    cfg = BenchConfig("http://127.0.0.1:8123/api", ks=(1, 5, 15), pool_size=6)
    pool = build_pool(cfg, ROWS)
    assert len(pool) == 6 and pool.rows_per_request == 1 and pool.checks_answers
    seen = []
    for raw, exp in zip(pool.requests, pool.expected, strict=True):
        req = _Req(raw)
        assert req.complete and req.method == b"GET"
        assert req.headers[b"host"] == b"127.0.0.1:8123"
        url = urlsplit(req.url.decode())
        assert url.path == "/api/fish"
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        seen.append((float(q["length"]), float(q["weight"]), int(q["k"]), exp))
    assert seen[:3] == [(30.5, 600.0, 1, 1), (10.1, 8.25, 5, 0), (35.0, 700.0, 15, 1)]
    assert [s[2] for s in seen[3:]] == [1, 5, 15]


def test_unchecked_pool_expects_nothing() -> None:
    pool = build_pool(BenchConfig("http://127.0.0.1:1", pool_size=4, check_answers=False), ROWS)
    assert not pool.checks_answers
    unlabelled = Rows(X=ROWS.X, y=None)
    assert not build_pool(BenchConfig("http://127.0.0.1:1", pool_size=4), unlabelled).checks_answers


def test_batch_json_pool() -> None:
    cfg = BenchConfig("http://127.0.0.1:1", endpoint="batch", batch_rows=2, pool_size=3, ks=(5,))
    pool = build_pool(cfg, ROWS)
    assert pool.rows_per_request == 2
    req = _Req(pool.requests[1])
    assert req.complete and req.method == b"POST" and req.url == b"/predict?k=5"
    assert req.headers[b"content-type"] == b"application/json"
    assert int(req.headers[b"content-length"]) == len(req.body)
    assert json.loads(req.body) == {"instances": [[35.0, 700.0], [30.5, 600.0]]}
    assert pool.expected[1] == (1, 1)


def test_batch_npy_pool() -> None:
    cfg = BenchConfig("http://127.0.0.1:1", endpoint="batch", body="npy", batch_rows=3, pool_size=1)
    req = _Req(build_pool(cfg, ROWS).requests[0])
    assert req.headers[b"content-type"] == b"application/x-npy"
    arr = np.load(io.BytesIO(req.body), allow_pickle=False)
    assert arr.dtype == np.float64 and (arr == ROWS.X).all()


def test_get_pool_sends_the_url_as_given() -> None:
    pool = build_pool(BenchConfig("http://127.0.0.1:1/healthz?verbose=1", endpoint="get"))
    req = _Req(pool.requests[0])
    assert req.url == b"/healthz?verbose=1" and not pool.checks_answers


def test_generated_rows_are_used_without_data() -> None:
    pool = build_pool(BenchConfig("http://127.0.0.1:1", pool_size=50, seed=3))
    assert len(set(pool.requests)) == 50
    assert set(pool.expected) <= {0, 1} and len(set(pool.expected)) == 2


@pytest.mark.parametrize(
    "body, label",
    [
        (b'{"prediction":"bream"}', 1),
        (b'{"prediction": "smelt", "length": 10.0}', 0),
        (b'{"length": 1, "prediction" :  "bream"}', 1),
        ('{"prediction":"빙어"}'.encode(), 0),
        (b'{"prediction":"\\ub3c4\\ubbf8"}', 1),  # escaped Korean: 도미
        (b'{"prediction":"tuna"}', None),
        (b'{"error":{"code":"x"}}', None),
        (b'{"prediction":', None),
    ],
)
def test_fish_answer(body: bytes, label: int | None) -> None:
    assert fish_answer(body) == label


def test_batch_answers() -> None:
    body = json.dumps({"predictions": ["bream", "smelt", "bream"]}).encode()
    assert batch_answers(body, (1, 0, 1)) == 3
    assert batch_answers(body, (1, 1, 1)) == 2
    assert batch_answers(body, (1, 0)) == 0  # wrong length: nothing counts
    assert batch_answers(b"not json", (1,)) == 0
