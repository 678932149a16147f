"""The socket backend over real loopback sockets: HTTP/1.1 behaviour, limits, hostile
input, graceful drain. (The HTTP contract itself is checked by tests/backends/test_contract.py.)

Most tests run the backend in-process, in a background thread with its own event
loop (uvloop and plain asyncio both), so limits and timeouts can be set small.
The SIGTERM drain test runs a real ``fishpredict serve`` process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httptools
import pytest
from fishpredict_backends.socket_backend import SocketBackend

from fishpredict.app.config import ServeConfig
from fishpredict.app.messages import Headers, Response
from fishpredict.app.service import Service
from fishpredict.predictor import Predictor
from fishpredict.server.flow import MAX_HEAD_BYTES
from fishpredict.server.serve import bind, new_event_loop
from fishpredict.testing import start_server
from fishpredict.testing.guards import GuardSuite

FISH = b"GET /fish?length=10.5&weight=7.5&k=1 HTTP/1.1\r\nHost: t\r\n\r\n"
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"


class SlowService(Service):
    """``GET /slow`` awaits ``release`` (so it is answered in a Task); the rest as usual."""

    def __init__(self, predictor: Predictor, config: ServeConfig) -> None:
        super().__init__(predictor, config)
        self.release: asyncio.Event | None = None
        self.entered = threading.Semaphore(0)

    async def handle_async(
        self, method: str, path: str, query: str, headers: Headers, body: bytes = b""
    ) -> Response:
        if path != "/slow":
            return await super().handle_async(method, path, query, headers, body)
        if self.release is None:
            self.release = asyncio.Event()
        self.entered.release()
        await self.release.wait()
        return Response(200, b'{"slow":true}')


class Running:
    """The socket backend serving in a thread with its own loop; stopped like serve.py does."""

    def __init__(self, service: Service, loop_kind: str) -> None:
        self.service = service
        self.sock = bind("127.0.0.1", 0)  # listening already: connections queue until accepted
        self.port: int = self.sock.getsockname()[1]
        self.loop = new_event_loop() if loop_kind == "uvloop" else asyncio.new_event_loop()
        self.stop_event = asyncio.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(
                SocketBackend().serve(self.service, self.sock, self.stop_event)
            )
        except BaseException as exc:  # surfaced by join()
            self.error = exc

    def call(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the server's loop (e.g. to release a SlowService)."""
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(fn)

    def release(self) -> None:
        assert isinstance(self.service, SlowService) and self.service.release is not None
        self.call(self.service.release.set)

    def request_stop(self) -> None:
        self.call(self.stop_event.set)

    def join(self, timeout: float = 20.0) -> None:
        self.request_stop()
        self.thread.join(timeout)
        alive = self.thread.is_alive()
        if not alive:
            self.loop.close()
        self.sock.close()
        assert not alive, "the socket backend did not return after stop"
        if self.error is not None:
            raise self.error


class Conn:
    """A raw client connection that parses answers with httptools' response parser."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.parser = httptools.HttpResponseParser(self)
        self.answers: list[dict[str, Any]] = []
        self.eof = False
        self._cur: dict[str, Any] = {}

    def on_message_begin(self) -> None:
        self._cur = {"headers": {}, "body": b""}

    def on_header(self, name: bytes, value: bytes) -> None:
        self._cur["headers"][name.decode().lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._cur["body"] += body

    def on_message_complete(self) -> None:
        self._cur["status"] = self.parser.get_status_code()
        self.answers.append(self._cur)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _recv(self, deadline: float) -> bool:
        self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.parser.feed_data(data)
        return True

    def read(self, n: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The next ``n`` answers (fails if they do not all come within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while len(self.answers) < n and not self.eof and time.monotonic() < deadline:
            try:
                self._recv(deadline)
            except TimeoutError:
                break
        assert len(self.answers) >= n, f"got {len(self.answers)} of {n} answers"
        out, self.answers = self.answers[:n], self.answers[n:]
        return out

    def wait_closed(self, timeout: float = 5.0) -> float:
        """Seconds until the server closed the connection (fails after ``timeout``)."""
        start = time.monotonic()
        deadline = start + timeout
        while not self.eof:
            assert time.monotonic() < deadline, "the server did not close the connection"
            try:
                self._recv(deadline)
            except TimeoutError:
                continue
        return time.monotonic() - start

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor()


@pytest.fixture(params=["uvloop", "asyncio"])
def start(request: pytest.FixtureRequest, predictor: Predictor) -> Iterator[Callable[..., Running]]:
    """``start(**config)`` or ``start(SlowService, **config)``: a running backend."""
    running: list[Running] = []

    def _start(cls: type[Service] = Service, **config: Any) -> Running:
        server = Running(cls(predictor, ServeConfig(**config)), request.param)
        running.append(server)
        return server

    yield _start
    for server in running:
        if isinstance(server.service, SlowService) and server.service.release is not None:
            server.release()
        if server.thread.is_alive() or not server.loop.is_closed():
            server.join()


@pytest.fixture
def conns() -> Iterator[Callable[[int], Conn]]:
    made: list[Conn] = []

    def _conn(port: int) -> Conn:
        made.append(Conn(port))
        return made[-1]

    yield _conn
    for c in made:
        c.close()


def assert_serves(port: int) -> None:
    """The server still answers a fresh client."""
    c = Conn(port)
    try:
        c.send(HEALTH)
        assert c.read()[0]["status"] == 200
    finally:
        c.close()


def error_code(answer: dict[str, Any]) -> str:
    code: str = json.loads(answer["body"])["error"]["code"]
    return code


# -- HTTP/1.1 behaviour --


def test_keep_alive_serves_many_requests_on_one_connection(start, conns) -> None:
    c = conns(start().port)
    for _ in range(3):
        c.send(FISH)
        (a,) = c.read()
        assert a["status"] == 200 and json.loads(a["body"])["prediction"] == "smelt"
        assert "connection" not in a["headers"]
        assert "date" in a["headers"] and "server" not in a["headers"]


def test_pipelined_requests_are_answered_in_order(start, conns) -> None:
    c = conns(start().port)
    c.send(HEALTH + FISH + b"GET /nope HTTP/1.1\r\n\r\n")
    answers = c.read(3)
    assert [a["status"] for a in answers] == [200, 200, 404]
    assert json.loads(answers[1]["body"])["prediction"] == "smelt"


def test_answers_wait_for_a_slower_earlier_request(start, conns) -> None:
    server = start(SlowService)
    c = conns(server.port)
    c.send(b"GET /slow HTTP/1.1\r\n\r\n" + HEALTH)
    assert server.service.entered.acquire(timeout=5)
    server.release()
    slow, health = c.read(2)
    assert slow["body"] == b'{"slow":true}' and health["body"] == b'{"status":"ok"}'


def test_http10_closes_unless_keep_alive_is_asked(start, conns) -> None:
    port = start().port
    c = conns(port)
    c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
    assert c.read()[0]["headers"]["connection"] == "close"
    c.wait_closed()
    k = conns(port)
    for _ in range(2):
        k.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert k.read()[0]["headers"]["connection"] == "keep-alive"


def test_connection_close_is_honoured_and_later_requests_dropped(start, conns) -> None:
    c = conns(start().port)
    c.send(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n" + HEALTH)
    (a,) = c.read()
    assert a["headers"]["connection"] == "close"
    c.wait_closed()
    assert c.answers == []


def test_head_answer_has_length_but_no_body(start, conns) -> None:
    c = conns(start().port)
    c.send(b"HEAD /healthz HTTP/1.1\r\n\r\n" + HEALTH)
    data = b""
    deadline = time.monotonic() + 5
    while b'{"status":"ok"}' not in data and time.monotonic() < deadline:
        data += c.sock.recv(65536)
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 405") and b"Content-Length: " in first
    assert rest.startswith(b"HTTP/1.1 200 OK")  # no body bytes between the two answers


def test_expect_100_continue(start, conns) -> None:
    c = conns(start().port)
    body = b'{"length": 10.5, "weight": 7.5}'
    c.send(
        b"POST /predict HTTP/1.1\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    assert c.read()[0]["status"] == 100
    c.send(body)
    assert c.read()[0]["status"] == 200


def test_percent_encoded_and_absolute_form_targets(start, conns) -> None:
    c = conns(start().port)
    c.send(b"GET /heal%74hz HTTP/1.1\r\n\r\nGET http://t/healthz HTTP/1.1\r\n\r\n")
    assert [a["status"] for a in c.read(2)] == [200, 200]


# -- limits --


def test_body_over_limit_is_refused_before_it_is_sent(start, conns) -> None:
    server = start(max_body_bytes=1000)
    c = conns(server.port)
    c.send(b"POST /predict HTTP/1.1\r\nContent-Length: 5000\r\n\r\n")  # no body follows
    (a,) = c.read()
    assert a["status"] == 413 and error_code(a) == "payload_too_large"
    assert a["headers"]["connection"] == "close"
    c.wait_closed()
    assert_serves(server.port)


def test_chunked_body_is_cut_at_the_limit(start, conns) -> None:
    server = start(max_body_bytes=1000)
    c = conns(server.port)
    c.send(b"POST /predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(4):
        c.send(b"12c\r\n" + b"x" * 300 + b"\r\n")
    (a,) = c.read()
    assert a["status"] == 413
    c.wait_closed()
    assert_serves(server.port)


@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * (MAX_HEAD_BYTES + 1) + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
        b"GET /" + b"a" * (MAX_HEAD_BYTES + 1) + b" HTTP/1.1\r\n\r\n",
    ],
    ids=["big-header", "many-headers", "long-url"],
)
def test_oversized_head_is_431(start, conns, head: bytes) -> None:
    server = start()
    c = conns(server.port)
    c.send(head)
    (a,) = c.read()
    assert a["status"] == 431 and error_code(a) == "headers_too_large"
    c.wait_closed()
    assert_serves(server.port)


def test_unfinished_header_line_is_bounded(start, conns) -> None:
    """A header value that never ends is cut too (llhttp would buffer it all)."""
    server = start()
    c = conns(server.port)
    c.send(b"GET /healthz HTTP/1.1\r\nX-Endless: ")
    for _ in range(40):  # 640 KiB: more than one read of the event loop plus the limit
        c.send(b"a" * 16384)
    (a,) = c.read()
    assert a["status"] == 431
    c.wait_closed()


@pytest.mark.parametrize(
    "raw",
    [
        b"POST /predict HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n",
        b"POST /predict HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST /predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        b"POST /predict HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"HELLO WORLD\r\n\r\n",
        b"GET /fi\xffsh HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad\xff: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\nHost: bare-lf\n\n",
    ],
    ids=[
        "cl-and-te",
        "two-cl",
        "bad-chunk",
        "te-not-last",
        "bad-line",
        "non-ascii-url",
        "non-utf8-name",
        "obs-fold",
        "bare-lf",
    ],
)
def test_hostile_http_gets_400_and_close(start, conns, raw: bytes) -> None:
    server = start()
    c = conns(server.port)
    c.send(HEALTH + raw)
    ok, bad = c.read(2)
    assert ok["status"] == 200  # what came before is still answered, in order
    assert bad["status"] == 400 and error_code(bad) == "bad_request"
    assert bad["headers"]["connection"] == "close"
    c.wait_closed()
    assert_serves(server.port)


def test_upgrade_is_refused(start, conns) -> None:
    server = start()
    c = conns(server.port)
    c.send(b"GET /healthz HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    (a,) = c.read()
    assert a["status"] == 400 and error_code(a) == "upgrade_not_supported"
    c.wait_closed()
    assert_serves(server.port)


def test_stalled_body_is_closed_after_request_timeout(start, conns) -> None:
    server = start(request_timeout=0.5)
    c = conns(server.port)
    c.send(b"POST /predict HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + b"{" * 10)
    assert_serves(server.port)  # another client is not held up
    (a,) = c.read(timeout=5)
    assert a["status"] == 408
    c.wait_closed()


def test_slowloris_is_cut_at_header_timeout(start, conns) -> None:
    server = start(header_timeout=0.6)
    c = conns(server.port)
    head = b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"z" * 100
    started = time.monotonic()
    for i in range(len(head)):  # one byte per 100 ms: 13 s for the whole head, never sent
        try:
            c.send(head[i : i + 1])
            c.sock.settimeout(0.1)
            if not c._recv(time.monotonic() + 0.1):
                break
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
    elapsed = time.monotonic() - started
    if not c.eof:
        c.wait_closed()
    assert 0.4 <= elapsed < 3.0, elapsed
    assert [a["status"] for a in c.answers] == [408]
    assert_serves(server.port)


def test_idle_keep_alive_connection_is_closed(start, conns) -> None:
    c = conns(start(keepalive_timeout=0.5).port)
    c.send(HEALTH)
    c.read()
    assert 0.3 <= c.wait_closed(timeout=5) < 3.0
    assert c.answers == []  # closed silently


def test_max_connections_answers_503(start, conns) -> None:
    server = start(max_connections=2)
    first, second = conns(server.port), conns(server.port)
    for c in (first, second):
        c.send(HEALTH)
        assert c.read()[0]["status"] == 200
    third = conns(server.port)
    (a,) = third.read()
    assert a["status"] == 503 and a["headers"]["retry-after"] == "1"
    third.wait_closed()
    first.close()
    deadline = time.monotonic() + 5
    while True:  # the freed slot is reused once the server has seen the close
        c = conns(server.port)
        c.send(HEALTH)
        if c.read()[0]["status"] == 200:
            break
        assert time.monotonic() < deadline


def test_max_inflight_answers_503_and_keeps_the_connection(start, conns) -> None:
    server = start(SlowService, max_inflight=1)
    busy, other = conns(server.port), conns(server.port)
    busy.send(b"GET /slow HTTP/1.1\r\n\r\n")
    assert server.service.entered.acquire(timeout=5)
    other.send(b"GET /slow HTTP/1.1\r\n\r\n")
    (a,) = other.read()
    assert a["status"] == 503 and error_code(a) == "overloaded" and "retry-after" in a["headers"]
    other.send(HEALTH)
    assert other.read()[0]["status"] == 200
    server.release()
    assert busy.read()[0]["status"] == 200


def test_slow_answer_times_out_with_503(start, conns) -> None:
    server = start(SlowService, request_timeout=0.5)
    c = conns(server.port)
    c.send(b"GET /slow HTTP/1.1\r\n\r\n")
    (a,) = c.read(timeout=5)
    assert a["status"] == 503 and error_code(a) == "timeout"
    c.send(HEALTH)
    assert c.read()[0]["status"] == 200


# -- graceful shutdown --


def test_drain_closes_idle_and_finishes_in_flight(start, conns) -> None:
    server = start(SlowService)
    idle, busy = conns(server.port), conns(server.port)
    idle.send(HEALTH)
    idle.read()
    busy.send(b"GET /slow HTTP/1.1\r\n\r\n")
    assert server.service.entered.acquire(timeout=5)
    server.request_stop()
    idle.wait_closed()
    server.release()
    (a,) = busy.read()
    assert a["status"] == 200 and a["headers"]["connection"] == "close"
    busy.wait_closed()
    busy.close()  # as a client does after "Connection: close"
    started = time.monotonic()
    server.join()
    assert time.monotonic() - started < 1.5  # returned once the last connection closed


def test_sigterm_during_a_big_post_answers_it_and_exits_0() -> None:
    rows = 50_000
    body = json.dumps({"instances": [[30.0 + i % 7, 500.0 + i % 11] for i in range(rows)]})
    raw = body.encode()
    with start_server("socket", "--drain-timeout", "10") as server:
        c = Conn(server.port)
        try:
            c.send(
                b"POST /predict HTTP/1.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(raw) + raw[: len(raw) // 2]
            )
            os.kill(server.pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while True:  # the server has seen the signal once it stops accepting
                try:
                    socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
                except ConnectionRefusedError:
                    break
                assert time.monotonic() < deadline, "still accepting after SIGTERM"
                time.sleep(0.05)
            c.send(raw[len(raw) // 2 :])
            (a,) = c.read(timeout=20)
            assert a["status"] == 200 and a["headers"]["connection"] == "close"
            assert len(json.loads(a["body"])["predictions"]) == rows
            c.wait_closed()
        finally:
            c.close()
        assert server.proc.wait(timeout=15) == 0


# -- flow control, with a fake transport --


class FakeTransport:
    """Records what the protocol does to its transport."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.reading = True
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.closed = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


def _protocol(service: Service) -> tuple[Any, FakeTransport]:
    from fishpredict_backends.socket_http import HttpProtocol, ServerState

    state = ServerState(service, asyncio.get_running_loop())
    protocol = HttpProtocol(state)
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport


def test_fast_requests_are_answered_inside_data_received(predictor: Predictor) -> None:
    async def scenario() -> None:
        protocol, transport = _protocol(Service(predictor, ServeConfig()))
        before = len(asyncio.all_tasks())
        protocol.data_received(FISH + HEALTH)
        assert len(transport.written) == 1  # two answers, one write, no Task
        assert transport.written[0].count(b"HTTP/1.1 200 OK") == 2
        assert len(asyncio.all_tasks()) == before

    asyncio.run(scenario())


def test_reading_pauses_while_the_write_buffer_is_full(predictor: Predictor) -> None:
    async def scenario() -> None:
        protocol, transport = _protocol(Service(predictor, ServeConfig()))
        protocol.pause_writing()
        assert not transport.reading
        protocol.resume_writing()
        assert transport.reading

    asyncio.run(scenario())


def test_reading_pauses_when_too_many_answers_wait(predictor: Predictor) -> None:
    from fishpredict_backends.socket_http import MAX_PIPELINE

    async def scenario() -> None:
        service = SlowService(predictor, ServeConfig())
        protocol, transport = _protocol(service)
        protocol.data_received(b"GET /slow HTTP/1.1\r\n\r\n" + HEALTH * (MAX_PIPELINE + 1))
        assert transport.written == [] and not transport.reading
        await asyncio.sleep(0)  # the Task starts and waits on release
        assert service.release is not None
        service.release.set()
        for _ in range(10):
            await asyncio.sleep(0)
        data = b"".join(transport.written)
        assert data.count(b"HTTP/1.1 200 OK") == MAX_PIPELINE + 2
        assert data.index(b'{"slow":true}') < data.index(b'{"status":"ok"}')
        assert transport.reading

    asyncio.run(scenario())


# -- packaging --


def test_importing_the_backend_does_not_import_httptools() -> None:
    code = (
        "import sys, fishpredict_backends.socket_backend as m; "
        "print(m.SocketBackend.requires, 'httptools' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "('httptools',) False"


class TestSocketGuard(GuardSuite):
    """The guard cases every backend answers alike, against the socket backend."""

    backend = "socket"
