"""Checks every asyncio backend adapter must pass, over real sockets and processes.

The HTTP contract itself (every route and error) is :class:`ContractSuite`'s
job; this suite checks what an *adapter* adds or can get wrong: requests
reach the Service unchanged (decoded path, raw query), keep-alive, the body
limit before reading, no ``Server`` banner, the graceful drain on SIGTERM,
``--workers``, the in-flight limit and slow-body timeout, and a JSON 500 when
the adapter itself fails. Subclass it and name your backend::

    from fishpredict.testing.adapter import AdapterSuite

    class TestMyAdapter(AdapterSuite):
        backend = "mine"
        plugin_module = "my_package.plugin"
        server_modules = ("myframework",)   # must not be imported by the plugin module
"""

from __future__ import annotations

import asyncio
import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import psutil

from fishpredict.app.config import ServeConfig
from fishpredict.app.messages import Response, error
from fishpredict.app.service import Service
from fishpredict.plugins import get_backend
from fishpredict.predictor import Predictor
from fishpredict.server.process import start_server
from fishpredict.server.serve import bind


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One whole response from a raw socket (by its Content-Length, not by EOF)."""
    response = http.client.HTTPResponse(sock, method="POST")
    response.begin()
    body = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def _post_head(length: int, expect_continue: bool = False) -> bytes:
    expect = b"Expect: 100-continue\r\n" if expect_continue else b""
    return (
        b"POST /predict HTTP/1.1\r\nHost: fishpredict\r\nContent-Type: application/json\r\n"
        b"%sContent-Length: %d\r\n\r\n" % (expect, length)
    )


T = TypeVar("T")


def _in_process(backend: str, service: Service, clients: Callable[[int], T]) -> T:
    """Serve ``service`` with the backend in this process (to set limits the
    command line does not expose) while ``clients(port)`` runs in a thread."""
    listener = bind("127.0.0.1", 0)

    async def run() -> T:
        stop = asyncio.Event()
        serving = asyncio.ensure_future(get_backend(backend).serve(service, listener, stop))
        try:
            return await asyncio.to_thread(clients, listener.getsockname()[1])
        finally:
            stop.set()
            await asyncio.wait_for(serving, 10)

    try:
        return asyncio.run(run())
    finally:
        listener.close()


class _Broken(Service):
    async def handle_async(self, *args: Any, **kwargs: Any) -> Response:
        raise RuntimeError("secret detail that must not reach the client")



class AdapterSuite:
    """Adapter checks for one backend; set the class attributes in a subclass."""

    backend: ClassVar[str]
    #: the module the plugin's entry point names
    plugin_module: ClassVar[str]
    #: heavy modules the plugin module must not import (so `backends` can list it)
    server_modules: ClassVar[tuple[str, ...]] = ()

    def test_importing_the_plugin_does_not_import_its_server(self) -> None:
        # `fishpredict backends` must list the backend even where its deps are missing.
        code = (
            f"import sys, {self.plugin_module} as m; "
            "m.register_backends(lambda b: print(b.name)); "
            f"print(sorted(d for d in {self.server_modules!r} if d in sys.modules))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        ).stdout.split()
        assert out == [self.backend, "[]"]


    def test_requests_reach_the_service_unchanged(self) -> None:
        service = Service(Predictor(), ServeConfig())
        batch = json.dumps({"instances": [[30.0, 600.0], [10.0, 8.0]]}).encode()
        cases = [
            # (method, target on the wire, path and query the Service must see, body)
            ("GET", "/fish?length=30&weight=600&k=5", "/fish", "length=30&weight=600&k=5", b""),
            # the path arrives percent-decoded, the query raw
            ("GET", "/fi%73h?length=10.5&weight=7.5&labels=%6Bo", "/fish",
             "length=10.5&weight=7.5&labels=%6Bo", b""),
            ("GET", "/no/such/route", "/no/such/route", "", b""),
            ("DELETE", "/fish", "/fish", "", b""),  # 405 with an Allow header
            ("POST", "/predict?labels=ko", "/predict", "labels=ko", batch),
        ]  # fmt: skip
        with start_server(self.backend) as server, server.client() as client:
            for method, target, path, query, body in cases:
                headers = {"content-type": "application/json"} if body else {}
                expected = service.handle(method, path, query, headers, body)
                got = client.request(method, target, body or None, headers)
                assert (got.status, got.body) == (expected.status, expected.body), target
                assert got.headers["content-type"] == expected.content_type
                for name, value in expected.headers:
                    assert got.headers.get(name.lower()) == value, (target, name)


    def test_keep_alive_and_no_server_banner(self) -> None:
        with start_server(self.backend) as server, server.client() as client:
            replies = [client.get("/fish?length=30&weight=600"), client.get("/healthz")]
            assert [r.status for r in replies] == [200, 200]
            assert client.connections_opened == 1
            for reply in replies:
                assert "server" not in reply.headers
                assert reply.headers.get("connection", "keep-alive") != "close"


    def test_over_limit_bodies_get_413_without_being_read(self) -> None:
        limit = 1000
        refusal = Service(None, ServeConfig(max_body_bytes=limit)).body_limit_response(10**9)
        assert refusal is not None
        with start_server(self.backend, "--max-body-bytes", str(limit)) as server:
            # A declared length over the limit is refused before any body byte is sent.
            with socket.create_connection((server.host, server.port), timeout=10) as sock:
                sock.sendall(_post_head(10**9))
                status, headers, body = _read_response(sock)
            assert (status, body) == (413, refusal.body)
            assert headers.get("connection") == "close"

            with server.client() as client:
                # A chunked body (no Content-Length) is cut off once it passes the limit.
                rows = json.dumps({"instances": [[30.0, 600.0]] * 200}).encode()
                assert len(rows) > limit
                reply = client.request(
                    "POST", "/predict", rows, {"Content-Type": "application/json"}, chunked=True
                )
                assert reply.status == 413
                assert reply.json()["error"]["code"] == "payload_too_large"
                # Under the limit still works.
                assert client.post_json("/predict", {"instances": [[30.0, 600.0]]}).status == 200


    def test_sigterm_lets_an_in_flight_request_finish(self) -> None:
        drain = 8.0
        rows = 200_000
        body = json.dumps({"instances": [[30.0, 600.0]] * rows}).encode()
        with start_server(self.backend, "--drain-timeout", str(drain)) as server:
            idle = socket.create_connection((server.host, server.port), timeout=drain + 5)
            busy = socket.create_connection((server.host, server.port), timeout=drain + 5)
            try:
                idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: fishpredict\r\n\r\n")
                assert _read_response(idle)[0] == 200  # now an idle keep-alive connection
                busy.sendall(_post_head(len(body), expect_continue=True))
                # "100 Continue" comes once the request is being handled: it is in flight.
                assert busy.recv(64).startswith(b"HTTP/1.1 100")
                server.proc.send_signal(signal.SIGTERM)
                start = time.monotonic()
                busy.sendall(body)
                status, _, answer = _read_response(busy)
                assert status == 200
                assert len(json.loads(answer)["predictions"]) == rows
                assert server.proc.wait(drain + 5) == 0, server.stderr_text()[-3000:]
                assert time.monotonic() - start < drain
                assert idle.recv(1) == b""  # closed by the drain, not left to time out
            finally:
                idle.close()
                busy.close()


    def test_sigterm_cuts_off_a_request_stuck_past_the_drain_timeout(self) -> None:
        drain = 1.0
        with (
            start_server(self.backend, "--drain-timeout", str(drain)) as server,
            socket.create_connection((server.host, server.port), timeout=10) as sock,
        ):
            sock.sendall(_post_head(100, expect_continue=True))  # and never the body
            assert sock.recv(64).startswith(b"HTTP/1.1 100")
            start = time.monotonic()
            code = server.stop(timeout=drain + 10)
            took = time.monotonic() - start
            status, headers, body = _read_response(sock)
        assert code == 0, server.stderr_text()[-3000:]
        assert took < drain + 2.5  # the drain timeout, the cleanup margin, the exit
        assert status == 503
        assert json.loads(body)["error"]["code"] == "draining"
        assert "retry-after" in headers


    def test_two_workers_serve_and_drain(self) -> None:
        with start_server(self.backend, "--workers", "2") as server:
            workers = psutil.Process(server.pid).children()
            try:
                assert len(workers) == 2
                for _ in range(8):
                    with server.client() as client:  # a new connection each: any worker
                        assert client.get("/fish?length=30&weight=600").status == 200
                assert server.stop(timeout=30) == 0, server.stderr_text()[-3000:]
                assert not any(w.is_running() for w in workers)
            finally:
                for worker in workers:  # never leave an orphan behind
                    if worker.is_running():
                        worker.kill()


    def test_in_flight_limit_and_slow_body_timeout(self) -> None:
        service = Service(Predictor(), ServeConfig(request_timeout=0.5, max_inflight=1))

        def clients(port: int) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
                slow.sendall(_post_head(10) + b"{")  # 9 body bytes never come
                deadline = time.monotonic() + 5
                while True:  # until the slow request holds the one in-flight slot
                    with socket.create_connection(("127.0.0.1", port), timeout=10) as other:
                        other.sendall(b"GET /healthz HTTP/1.1\r\nHost: fishpredict\r\n\r\n")
                        status, _, body = _read_response(other)
                    if status == 503 or time.monotonic() > deadline:
                        break
                slow_status, _, slow_body = _read_response(slow)
            return (status, body), (slow_status, slow_body)

        (status, body), (slow_status, slow_body) = _in_process(self.backend, service, clients)
        assert status == 503
        assert json.loads(body)["error"]["code"] == "overloaded"
        assert slow_status == 408
        assert json.loads(slow_body)["error"]["code"] == "request_timeout"


    def test_an_adapter_failure_is_a_json_500(self) -> None:
        def clients(port: int) -> tuple[int, dict[str, str], bytes]:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(
                    b"GET /fish?length=30&weight=600 HTTP/1.1\r\nHost: fishpredict\r\n\r\n"
                )
                return _read_response(sock)

        status, headers, body = _in_process(self.backend, _Broken(Predictor()), clients)
        assert (status, body) == (500, error(500, "internal_error", "internal server error").body)
        assert headers["content-type"] == "application/json"
