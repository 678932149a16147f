"""A refusal a client can read (issue 12.6), on every backend, with real clients.

urllib and requests send a whole request body before they read the answer. A
server that answers 413 early (the declared length is over ``max_body_bytes``)
and then closes with the body still arriving makes the kernel reset the
connection, and the client sees "Broken pipe" or "Connection reset" instead of
the 413. Every backend must linger instead: read and drop the rest of the body
(up to :data:`fishpredict.server.flow.LINGER_BYTES` and ``LINGER_SECONDS``), then close.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from fishpredict.plugins import list_backends
from fishpredict.server.flow import LINGER_BYTES
from fishpredict.testing import ServerProcess, start_server

requests = pytest.importorskip("requests")

BACKENDS = [info.name for info in list_backends() if info.available]
#: 36 MB: over the default 16 MiB body limit, under the linger's byte bound
BODY = b'{"instances": [' + b"[30.0, 600.0], " * (36_000_000 // 15) + b"[30.0, 600.0]]}"


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with start_server(request.param) as proc:
        yield proc


def _assert_413(status: int, body: bytes) -> None:
    assert status == 413, (status, body[:200])
    assert json.loads(body)["error"]["code"] == "payload_too_large", body[:200]


def test_the_body_is_over_the_limit_and_under_the_linger_bound() -> None:
    assert 16 * 1024 * 1024 < len(BODY) < LINGER_BYTES


def test_urllib_reads_the_413_of_a_36_mb_body(server: ServerProcess) -> None:
    request = urllib.request.Request(
        f"{server.url}/predict",
        data=BODY,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    start = time.monotonic()
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    _assert_413(info.value.code, info.value.read())
    assert time.monotonic() - start < 20


def test_requests_reads_the_413_of_a_36_mb_body(server: ServerProcess) -> None:
    start = time.monotonic()
    reply = requests.post(
        f"{server.url}/predict",
        data=BODY,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    _assert_413(reply.status_code, reply.content)
    assert reply.headers.get("Connection", "").lower() == "close"
    assert time.monotonic() - start < 20


def test_the_server_serves_on_after_the_refusals(server: ServerProcess) -> None:
    reply = requests.get(f"{server.url}/healthz", timeout=10)
    assert reply.status_code == 200
