"""Limits and back-pressure on every backend (issue 6, item 1).

Each backend runs as a real server process with small limits: a body or a
batch over its limit gets 413; connections past ``max_connections`` get 503
with ``Retry-After`` and the server keeps serving; requests past
``max_inflight`` get 503 with ``Retry-After``; a slowloris client (one byte of
the request head every 200 ms) is cut off at the header timeout; an idle
keep-alive connection is closed after the keep-alive timeout; a body that stops
mid-way gets 408 (or a close) at the request timeout; and 500 oversized bodies
do not grow the server's memory.

Every limit has a ``fishpredict serve`` flag (see
:func:`test_every_limit_has_a_serve_flag`); these servers are started through
:func:`fishpredict.soak.faults.configured_server` with a full ServeConfig, which
sets them all at once. Where a
backend cannot enforce a limit the test is ``xfail(strict=True)`` with the gap;
docs/reliability.md has the table.
"""

from __future__ import annotations

import functools
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path

import pytest

from fishpredict.app.config import ServeConfig
from fishpredict.plugins import list_backends
from fishpredict.soak.faults import RawReply, configured_server, exchange, healthy
from fishpredict.testing import ServerProcess, start_server
from fishpredict.testing.guards import wait_healthy

BACKENDS = [info.name for info in list_backends() if info.available]
LIMITS = {
    "max_body_bytes": 64 * 1024,
    "max_batch_rows": 10,
    "max_connections": 20,
    "max_inflight": 1,
    "header_timeout": 2.0,
    "keepalive_timeout": 1.0,
    "request_timeout": 1.5,
    "batch_wait_us": 2000,
}
#: how late past a timeout a cut-off may come (the socket backend's sweeper ticks,
#: a loaded 2-core machine)
MARGIN = 1.0
GET = b"GET /healthz HTTP/1.1\r\nHost: fish\r\n\r\n"

GAPS: dict[tuple[str, str], str] = {}


def backends(limit: str) -> list[object]:
    """Every backend, with the known gap for ``limit`` as a strict xfail."""
    out: list[object] = []
    for b in BACKENDS:
        reason = GAPS.get((b, limit))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(b, marks=marks, id=b))
    return out


@pytest.fixture(scope="module")
def servers() -> Iterator[Callable[[str], ServerProcess]]:
    """One server per backend with the small LIMITS (no fast path, so GET /fish
    goes through the micro-batcher and can be in flight)."""
    running: dict[str, ServerProcess] = {}

    def get(backend: str) -> ServerProcess:
        if backend not in running:
            running[backend] = configured_server(backend, fast_path=False, **LIMITS)
        assert running[backend].proc.poll() is None, running[backend].stderr_text()
        return running[backend]

    try:
        yield get
    finally:
        for server in running.values():
            server.close()


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` from /proc/<pid>/status (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def post(body: bytes, *, chunked: bool = False, path: bytes = b"/predict") -> bytes:
    """A raw POST of a JSON ``body``, framed by Content-Length or chunked."""
    head = b"POST %s HTTP/1.1\r\nHost: fish\r\nContent-Type: application/json\r\n" % path
    if chunked:
        return head + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


# ---- the CLI -------------------------------------------------------------------------

#: ServeConfig fields that are limits or timeouts, and their ``fishpredict serve`` flag
LIMIT_FIELDS = [
    "max_body_bytes",
    "max_batch_rows",
    "max_connections",
    "max_inflight",
    "header_timeout",
    "keepalive_timeout",
    "request_timeout",
    "drain_timeout",
    "retry_after",
]
_NO_FLAG = (
    "fishpredict/cli.py _add_serve/_cmd_serve: ServeConfig.{field} has no --{flag} flag, "
    "so it is always the default ({default}); add the flag and pass it to ServeConfig"
)


def _flag_params() -> list[object]:
    help_text = _serve_help()
    defaults = ServeConfig()
    out: list[object] = []
    for name in LIMIT_FIELDS:
        flag = name.replace("_", "-")
        marks = []
        if f"--{flag}" not in help_text:
            reason = _NO_FLAG.format(field=name, flag=flag, default=getattr(defaults, name))
            marks = [pytest.mark.xfail(strict=True, reason=reason)]
        out.append(pytest.param(name, marks=marks, id=name))
    return out


@functools.cache
def _serve_help() -> str:
    """``fishpredict serve --help``, once per session."""
    return subprocess.run(
        [sys.executable, "-m", "fishpredict", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


def test_limit_fields_are_the_configs() -> None:
    """The list above covers every numeric limit ServeConfig has."""
    numeric = {
        f.name
        for f in fields(ServeConfig)
        if f.name.startswith(("max_", "retry_")) or f.name.endswith("_timeout")
    }
    assert numeric == set(LIMIT_FIELDS)


@pytest.mark.parametrize("field", _flag_params())
def test_every_limit_has_a_serve_flag(field: str) -> None:
    assert f"--{field.replace('_', '-')}" in _serve_help()


# ---- body and batch size, through the CLI flags --------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_body_and_batch_over_the_limit_get_413(backend: str) -> None:
    """``--max-body-bytes 4096 --max-batch-rows 10``: over either limit -> 413 with
    the contract's JSON error; at the limit -> 200; the server keeps serving."""
    with start_server(backend, "--max-body-bytes", "4096", "--max-batch-rows", "10") as server:
        rows = lambda n: b'{"instances":[' + b",".join([b"[30,600]"] * n) + b"]}"  # noqa: E731
        big = b'{"instances":[' + b"[30.0,600.0]," * 400 + b"[30,600]]}"
        assert len(big) > 4096
        cases = [
            (post(rows(10)), 200, None),
            (post(rows(11)), 413, b"batch_too_large"),
            (post(big), 413, b"payload_too_large"),
            (post(big, chunked=True), 413, b"payload_too_large"),
        ]
        for raw, status, code in cases:
            reply = exchange(server.host, server.port, raw, timeout=5.0, responses=1)
            assert reply.statuses == [status], (raw[:80], reply.raw[:300])
            if code is not None:
                assert code in reply.responses[0].body
        assert healthy(server.host, server.port)
        assert server.stop() == 0, server.stderr_text()


# ---- connections and requests in flight ----------------------------------------------


@pytest.mark.parametrize("backend", backends("max_connections"))
def test_max_connections_answers_503_retry_after_and_keeps_serving(
    backend: str, servers: Callable[[str], ServerProcess]
) -> None:
    """With 20 connections open, each further one gets 503 + Retry-After (or is
    closed); once they close, a new connection is served."""
    server = servers(backend)
    limit = int(LIMITS["max_connections"])
    held = [socket.create_connection((server.host, server.port), timeout=5) for _ in range(limit)]
    try:
        for s in held[:1]:  # the first ones are served normally
            s.sendall(GET)
            assert s.recv(65536).startswith(b"HTTP/1.1 200"), backend
        extra = [
            exchange(server.host, server.port, GET, timeout=3.0, responses=1) for _ in range(5)
        ]
    finally:
        for s in held:
            s.close()
    for reply in extra:
        refused = not reply.responses and (reply.closed or reply.reset)
        assert refused or reply.statuses == [503], (reply.statuses, reply.raw[:200])
        for r in reply.responses:
            assert r.header(b"retry-after") is not None, reply.raw[:300]
    assert wait_healthy(server), "the server did not serve again after the connections closed"


@pytest.mark.parametrize("backend", backends("max_inflight"))
def test_max_inflight_answers_503_retry_after(
    backend: str, servers: Callable[[str], ServerProcess]
) -> None:
    """``max_inflight=1`` under 16 connections pipelining GET /fish (through the
    micro-batcher): every answer is 200 or 503 + Retry-After, some are 503, and
    every 200 is a prediction."""
    server = servers(backend)
    replies: list[RawReply] = []
    lock = threading.Lock()

    def user(i: int) -> None:
        reqs = b"".join(
            b"GET /fish?length=%d&weight=%d HTTP/1.1\r\nHost: fish\r\n\r\n" % (20 + i, 100 + j)
            for j in range(8)
        )
        reply = exchange(server.host, server.port, reqs, timeout=10.0, responses=8)
        with lock:
            replies.append(reply)

    threads = [threading.Thread(target=user, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    statuses = Counter(s for r in replies for s in r.statuses)
    assert sum(statuses.values()) == 16 * 8, statuses
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[503] > 0, f"max_inflight=1 never refused: {statuses}"
    for reply in replies:
        for r in reply.responses:
            if r.status == 503:
                assert r.header(b"retry-after") is not None
                assert b"overloaded" in r.body
            else:
                assert b'"prediction"' in r.body
    assert wait_healthy(server)


# ---- timeouts ------------------------------------------------------------------------


def slow_send(
    server: ServerProcess, data: bytes, every: float, budget: float
) -> tuple[float, bytes]:
    """Send ``data`` one byte per ``every`` seconds until the server answers or
    closes, or ``budget`` seconds pass; (seconds until cut off or inf, what came back)."""
    start = time.monotonic()
    got = b""
    with socket.create_connection((server.host, server.port), timeout=5) as s:
        s.setblocking(False)
        for byte in data:
            if time.monotonic() - start > budget:
                return float("inf"), got
            try:
                s.send(bytes([byte]))
            except OSError:
                return time.monotonic() - start, got
            time.sleep(every)  # the pacing of a slowloris client is what is tested
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                return time.monotonic() - start, got
            got += chunk
            if not chunk or got:
                return time.monotonic() - start, got
    return float("inf"), got


@pytest.mark.parametrize("backend", backends("header_timeout"))
def test_slowloris_is_cut_off_at_the_header_timeout(
    backend: str, servers: Callable[[str], ServerProcess]
) -> None:
    """A request head trickling in one byte per 200 ms is answered 408 or closed
    within the header timeout (+ margin), and others are still served."""
    server = servers(backend)
    timeout = float(LIMITS["header_timeout"])
    head = b"GET /healthz HTTP/1.1\r\nHost: fish\r\nX-Slow: " + b"a" * 200
    took, got = slow_send(server, head, 0.2, timeout + MARGIN + 1.0)
    assert took <= timeout + MARGIN, f"still reading the head after {took:.1f} s"
    assert got == b"" or got.startswith(b"HTTP/1.1 408"), got[:200]
    assert wait_healthy(server)


@pytest.mark.parametrize("backend", BACKENDS)
def test_idle_keepalive_connection_is_closed(
    backend: str, servers: Callable[[str], ServerProcess]
) -> None:
    """After an answer, an idle connection is closed within the keep-alive timeout."""
    server = servers(backend)
    reply = exchange(server.host, server.port, GET, timeout=10.0)
    assert reply.statuses == [200]
    assert reply.closed or reply.reset, "the idle connection was never closed"
    assert reply.elapsed <= float(LIMITS["keepalive_timeout"]) + MARGIN, reply.elapsed


@pytest.mark.parametrize("backend", BACKENDS)
def test_body_that_stops_midway_gets_408_or_close(
    backend: str, servers: Callable[[str], ServerProcess]
) -> None:
    """A body that stops arriving is answered 408 (or the connection closed)
    within the request timeout (+ margin)."""
    server = servers(backend)
    raw = b"POST /predict HTTP/1.1\r\nHost: fish\r\nContent-Length: 100\r\n\r\n{"
    reply = exchange(server.host, server.port, raw, timeout=10.0, responses=1)
    assert not reply.timed_out
    assert reply.statuses in ([], [408]), reply.raw[:200]
    assert reply.elapsed <= float(LIMITS["request_timeout"]) + MARGIN, reply.elapsed
    assert wait_healthy(server)


# ---- memory --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_memory_stays_bounded_under_oversized_bodies(
    backend: str, servers: Callable[[str], ServerProcess]
) -> None:
    """500 bodies of 4x the limit (half with Content-Length, half chunked): each gets
    413 or a close, and the server's RSS grows by less than 20 MB."""
    server = servers(backend)
    limit = int(LIMITS["max_body_bytes"])
    body = b"[30,600]," * (4 * limit // 9)
    assert wait_healthy(server)
    before = rss_bytes(server.pid)
    outcomes: Counter[str] = Counter()
    for i in range(500):
        reply = exchange(
            server.host, server.port, post(body, chunked=i % 2 == 1), timeout=5.0, responses=1
        )
        outcomes[str(reply.statuses[0]) if reply.responses else "closed"] += 1
    after = rss_bytes(server.pid)
    assert set(outcomes) <= {"413", "closed"}, outcomes
    assert outcomes["413"] > 0, outcomes
    assert after - before < 20 * 1024 * 1024, f"RSS grew {(after - before) / 1e6:.1f} MB"
    assert wait_healthy(server)
