"""The fishpredict HTTP contract over the standard library's ``http.server``.

``ThreadingHTTPServer`` serves the listening socket fishpredict already bound,
in a thread of its own; each connection gets a thread that reads a request,
calls :meth:`fishpredict.contract.Service.handle` and writes the
:class:`~fishpredict.contract.Response` back. The backend only moves bytes:
routing, validation, errors and encoding all happen in ``Service``.

Limits honoured here (the rest are the Service's): ``max_body_bytes`` (checked
on ``Content-Length`` before reading, and while reading a chunked body),
``max_connections`` (more: 503 and close), ``max_inflight`` (more requests being
answered at once: 503 + ``Retry-After``), ``keepalive_timeout`` (an idle
connection is closed), ``header_timeout`` and ``request_timeout`` (a head or a
body that does not arrive in time: 408 and close) and ``drain_timeout`` (on
stop: no new connections, idle ones closed at once, busy ones finish their
request).

``http.server`` parses leniently, so the handler reads each request with
:mod:`fishpredict_httpserver.guards` instead (strict request line and header
fields, one unambiguous body framing, a deadline per phase of reading) and
answers what they refuse with the contract's JSON error (400, 408, 431) and a
close. No response names the server's software or version.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from fishpredict.contract import Response, Service, describe_status, error

from .guards import REQUEST_LINE, BadHead, DeadlineReader, ReadTimeout, chunk_size, read_head

log = logging.getLogger("fishpredict_httpserver")

#: A refused body smaller than this is read and thrown away before closing, so
#: the client reads our 413 instead of a connection reset.
DISCARD_LIMIT = 1 << 20
#: Longest chunk-size line of a chunked body.
MAX_CHUNK_LINE = 1024
#: Most trailer lines after a chunked body.
MAX_TRAILER_LINES = 100

#: Codes for the refusals sent before a request reaches the Service (``send_error``).
_FRAMING_CODES = {
    400: "bad_request",
    408: "request_timeout",
    414: "uri_too_long",
    431: "headers_too_large",
}


class _BadFraming(Exception):
    """The request's body framing is broken: answer 400 and close."""


class Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer on an inherited socket that knows its Service and
    its open connections (to drain them)."""

    daemon_threads = True  # a stuck connection must not keep the process alive

    def __init__(self, service: Service, sock: socket.socket) -> None:
        self.address_family = sock.family
        super().__init__(sock.getsockname()[:2], Handler, bind_and_activate=False)
        self.socket.close()  # the fresh socket TCPServer made; we serve the inherited one
        # The listening socket stays non-blocking: with several workers on one
        # shared socket (--shared-socket), another worker may take the connection
        # we were woken for, and a blocking accept() would then hang this server (and its shutdown).
        # http.server treats the resulting BlockingIOError as "nothing to accept".
        self.socket = sock
        self.server_name, self.server_port = sock.getsockname()[:2]
        self.service = service
        self.draining = False
        #: one slot per request being answered (ServeConfig.max_inflight)
        self.inflight = threading.BoundedSemaphore(service.config.max_inflight)
        self._cond = threading.Condition()
        self._handlers: dict[Handler, bool] = {}  # handler -> busy with a request
        self._open = 0

    # -- connection accounting --

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._cond:
            full = self._open >= self.service.config.max_connections
            if not full:
                self._open += 1
        if full:
            self._refuse(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        with self._cond:
            self._open -= 1
            self._cond.notify_all()

    def _refuse(self, request: socket.socket) -> None:
        response = error(
            503,
            "overloaded",
            "too many open connections; retry later",
            headers=(("Retry-After", str(self.service.config.retry_after)),),
        )
        head = (
            f"HTTP/1.1 503 {describe_status(503)}\r\nContent-Type: {response.content_type}\r\n"
            f"Content-Length: {len(response.body)}\r\nRetry-After: "
            f"{self.service.config.retry_after}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(OSError):
            request.settimeout(1.0)
            request.sendall(head.encode("latin-1") + response.body)
        with contextlib.suppress(OSError):
            request.close()

    def track(self, handler: Handler, busy: bool | None) -> None:
        """Record a handler as idle/busy (``None``: gone)."""
        with self._cond:
            if busy is None:
                self._handlers.pop(handler, None)
                self._cond.notify_all()
            else:
                self._handlers[handler] = busy

    # -- stopping --

    def drain(self, timeout: float) -> None:
        """Stop accepting, close idle connections, and wait (at most ``timeout``
        seconds) for busy ones to finish their request."""
        self.shutdown()  # serve_forever returns: nothing new is accepted
        deadline = time.monotonic() + timeout
        with self._cond:
            self.draining = True
            for handler, busy in self._handlers.items():
                if not busy:
                    handler.hang_up()
            while self._open > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning("%d connections still open after draining; closing", self._open)
                    for handler in self._handlers:
                        handler.hang_up()
                    break
                self._cond.wait(left)


class Handler(BaseHTTPRequestHandler):
    """One connection: reads requests, asks the Service, writes answers."""

    server: Server
    rfile: io.BufferedReader  # over a DeadlineReader (see setup)
    protocol_version = "HTTP/1.1"  # keep-alive
    # http.server speaks HTTP/0.9 (a bare body, no status line) until it has read
    # a version; with this every answer starts "HTTP/1.1 <status>", even the 400
    # to a request line that cannot be read.
    default_request_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes

    def setup(self) -> None:
        super().setup()
        # Read through a DeadlineReader: one deadline for a whole request head (or
        # body), where a socket timeout would only bound each recv().
        self.rfile.close()  # the makefile() reader setup() made; it never read
        self.reader = DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self.reader)
        self.answered = False  # no request read yet on this connection
        self.server.track(self, busy=False)

    def finish(self) -> None:
        self.server.track(self, busy=None)
        with contextlib.suppress(OSError):
            super().finish()

    def hang_up(self) -> None:
        """Wake this connection's thread: its next read sees end of file."""
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- reading a request: deadlines and strict parsing --

    def handle_one_request(self) -> None:
        """One request, each phase of reading it under its own timeout."""
        config = self.server.service.config
        if self.answered:
            # Between requests: an idle keep-alive connection is closed in silence.
            self.reader.expect("the next request", config.keepalive_timeout)
            try:
                begun = self.rfile.peek(1)
            except (ReadTimeout, OSError):
                begun = b""
            if not begun:
                self.close_connection = True
                return
        self.answered = True
        # The request has begun (or the connection is new): its whole head must
        # arrive within header_timeout; parse_request moves the deadline on for the body.
        self.reader.expect("request head", config.header_timeout)
        self.command, self.requestline = "", ""  # nothing left from the last request
        self.request_version = self.default_request_version
        try:
            super().handle_one_request()
        except ReadTimeout as exc:  # a slowloris head, or a body that stopped
            with contextlib.suppress(OSError):
                self.send_error(408, str(exc))
        except OSError:  # the client went away: nothing to answer, nothing to log
            self.close_connection = True

    def parse_request(self) -> bool:
        """Read the request line and the head strictly (:mod:`.guards`): in place
        of http.server's lenient parser, the same outcome (``command``,
        ``request_version``, ``headers``, ``close_connection``). False once a
        refusal is sent."""
        line = self.raw_requestline.decode("latin-1")
        match = REQUEST_LINE.fullmatch(line)
        if match is None:  # HTTP/0.9, HTTP/2.0, junk: 400, never a reply without a status line
            self.send_error(400, "malformed request line (expected 'METHOD target HTTP/1.1')")
            return False
        self.requestline = line.rstrip("\r\n")
        self.command, self.path = match["method"], match["target"]
        self.request_version = match["version"]
        try:
            self.headers = read_head(self.rfile)
        except BadHead as exc:  # bad field, head too large, ambiguous body framing
            self.send_error(exc.status, str(exc))
            return False
        options = {t.strip() for t in self.headers.get("Connection", "").lower().split(",")}
        if self.request_version == "HTTP/1.1":
            self.close_connection = "close" in options
        else:  # HTTP/1.0 closes unless asked not to
            self.close_connection = "keep-alive" not in options
        self.reader.expect("request body", self.server.service.config.request_timeout)
        expect = self.headers.get("Expect", "").lower()
        if expect == "100-continue" and self.request_version == "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def handle_expect_100(self) -> bool:
        """Refuse an over-limit body before the client sends it."""
        length = int(self.headers.get("Content-Length", "0").strip(" \t"))  # digits: guarded
        too_big = self.server.service.body_limit_response(length)
        if too_big is None:
            return super().handle_expect_100()
        self.close_connection = True
        self._write(too_big)
        return False

    # -- answering --

    def __getattr__(self, name: str) -> Any:
        # do_GET, do_POST, do_ANYTHING: the Service decides (405 + Allow for the wrong method).
        if name.startswith("do_"):
            return self._serve_one
        raise AttributeError(name)

    def _serve_one(self) -> None:
        self.server.track(self, busy=True)
        try:
            self._write(self._respond())
        finally:
            if self.server.draining:
                self.close_connection = True
            self.server.track(self, busy=False)

    def _respond(self) -> Response:
        service = self.server.service
        path, query = self._split_target()
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            body = self._read_body(headers)
        except _BadFraming as exc:
            self.close_connection = True
            return error(400, "bad_request", str(exc))
        if isinstance(body, Response):
            return body
        # max_inflight: a request past it is answered 503 at once, not queued. The
        # connection stays open (its body was read), so pipelined requests after
        # it are answered too.
        if not self.server.inflight.acquire(blocking=False):
            return service.overloaded()
        try:
            return service.handle(self.command, path, query, headers, body)
        finally:
            self.server.inflight.release()

    def _split_target(self) -> tuple[str, str]:
        """The percent-decoded path and the raw query, as the Service expects them.

        Read from the request line itself (checked to be ``METHOD target
        HTTP/1.x``): ``http.server`` rewrites ``self.path`` (it collapses a
        leading ``//``), and an absolute-form target (``GET http://host/fish?...``)
        must route like its path.
        """
        target = self.requestline.split(" ")[1]
        if target.startswith(("http://", "https://")):
            parts = urlsplit(target)
            return unquote(parts.path or "/"), parts.query
        path, _, query = target.partition("?")
        return unquote(path), query

    def _read_body(self, headers: dict[str, str]) -> bytes | Response:
        # The framing headers passed guards.framing_problem: a Transfer-Encoding
        # is exactly "chunked", a Content-Length is digits and comes alone.
        service = self.server.service
        if "transfer-encoding" in headers:
            return self._read_chunked(service.config.max_body_bytes)
        length = int(headers.get("content-length", "0").strip(" \t"))
        too_big = service.body_limit_response(length)
        if too_big is not None:
            self.close_connection = True
            if length <= DISCARD_LIMIT:
                with contextlib.suppress(OSError, ReadTimeout):
                    self.rfile.read(length)
            return too_big
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise _BadFraming("the body ended before Content-Length bytes")
        return body

    def _read_chunked(self, limit: int) -> bytes | Response:
        parts: list[bytes] = []
        size = 0
        while True:
            n = chunk_size(self.rfile.readline(MAX_CHUNK_LINE + 1))
            if n is None:
                raise _BadFraming("malformed chunk size in a chunked body")
            if n == 0:
                break
            size += n
            if size > limit:
                self.close_connection = True
                refusal = self.server.service.body_limit_response(size)
                assert refusal is not None
                return refusal
            chunk = self.rfile.read(n)
            if len(chunk) != n or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise _BadFraming("a chunk of a chunked body is cut short")
            parts.append(chunk)
        for _ in range(MAX_TRAILER_LINES):  # trailer fields: ignored
            if self.rfile.readline(MAX_CHUNK_LINE + 1) in (b"\r\n", b"\n", b""):
                return b"".join(parts)
        raise _BadFraming(f"more than {MAX_TRAILER_LINES} trailer lines after a chunked body")

    def _write(self, response: Response) -> None:
        # Writing has its own time: whatever the read deadline left is not it.
        self.connection.settimeout(self.server.service.config.request_timeout)
        if self.server.draining:
            self.close_connection = True  # tell the client: this connection ends here
        self.send_response(response.status, describe_status(response.status))
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def send_response(self, code: int, message: str | None = None) -> None:
        """The status line and ``Date``, but no ``Server`` header: http.server's
        ``BaseHTTP/0.6 Python/3.x`` banner only helps whoever probes for flaws."""
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Every refusal (ours, and http.server's own: bad request line, head too
        large, ...) as the contract's JSON error, and the connection closed: after
        a malformed request nothing that follows on it can be trusted."""
        self.close_connection = True
        text = message or explain or describe_status(code)
        self._write(error(code, _FRAMING_CODES.get(code, "bad_request"), text))

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


async def serve_until(service: Service, sock: socket.socket, stop: asyncio.Event) -> None:
    """Serve on ``sock`` until ``stop`` is set, then drain; the Backend contract."""
    server = Server(service, sock)
    serving = asyncio.ensure_future(asyncio.to_thread(server.serve_forever, 0.1))
    stopping = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if serving in done:
        stopping.cancel()
        serving.result()  # serve_forever raised: let fishpredict report it
        raise RuntimeError("http.server stopped serving before it was told to")
    await asyncio.to_thread(server.drain, service.config.drain_timeout)
    await serving
