"""A tiny HTTP/1.1 client over real sockets (``http.client``), for the contract suite.

No mocks and no third-party client: what the suite sees is what any client on
the wire sees. One :class:`Client` keeps one keep-alive connection and
reconnects only when the server closed it (and says so with
``Connection: close``), so a test can tell keep-alive from reconnecting.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

#: seconds any one request may take before the suite calls the server hung
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class ClientReply:
    """One HTTP answer: status, headers (lower-case names) and the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        """The media type without parameters (``application/json``)."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def json(self) -> Any:
        """The body parsed as JSON (``AssertionError`` with the body if it is not)."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AssertionError(f"expected a JSON body, got {self.body[:200]!r} ({exc})") from None

    def __repr__(self) -> str:
        return f"ClientReply({self.status}, {self.content_type!r}, {self.body[:120]!r})"


def query(**params: Any) -> str:
    """``query(length=30, weight=600)`` -> ``"?length=30&weight=600"`` (None values skipped)."""
    items = {k: v for k, v in params.items() if v is not None}
    return "?" + urlencode(items) if items else ""


class Client:
    """Requests to one server over one kept-alive connection."""

    def __init__(self, host: str, port: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        #: how many TCP connections this client opened (keep-alive keeps it at 1)
        self.connections_opened = 0

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._conn.connect()
            self._conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connections_opened += 1
        return self._conn

    @property
    def local_port(self) -> int | None:
        """The client-side port of the open connection (``None`` when closed)."""
        if self._conn is None or self._conn.sock is None:
            return None
        port: int = self._conn.sock.getsockname()[1]
        return port

    def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        chunked: bool = False,
    ) -> ClientReply:
        """Send one request and read the whole answer.

        ``target`` is the path plus query. The connection is kept unless the
        server answered ``Connection: close`` or the request failed. If a kept
        connection turns out closed by the server before it answered anything,
        the request is sent once more on a new one (as browsers do); the
        ``connections_opened`` count shows it.
        """
        reused = self._conn is not None
        try:
            return self._send(method, target, body, headers, chunked)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
        return self._send(method, target, body, headers, chunked)

    def _send(
        self,
        method: str,
        target: str,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        chunked: bool,
    ) -> ClientReply:
        conn = self._connection()
        hdrs = dict(headers or {})
        try:
            if chunked:
                assert body is not None
                conn.request(method, target, body=iter([body]), headers=hdrs, encode_chunked=True)
            else:
                conn.request(method, target, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
        except BaseException:
            self.close()
            raise
        reply = ClientReply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        if resp.will_close:
            self.close()
        return reply

    def get(self, target: str, headers: Mapping[str, str] | None = None) -> ClientReply:
        return self.request("GET", target, headers=headers)

    def post_json(
        self, target: str, doc: Any, headers: Mapping[str, str] | None = None
    ) -> ClientReply:
        """POST ``doc`` as JSON (``doc`` may be ``bytes`` to send a body as is)."""
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        return self.request(
            "POST", target, body, {"Content-Type": "application/json", **(headers or {})}
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def raw_exchange(host: str, port: int, data: bytes, timeout: float = 2.0) -> bytes:
    """Write ``data`` on a fresh connection and read until the server closes it
    or ``timeout`` seconds pass; for requests ``http.client`` refuses to send
    (malformed ones). Whatever arrived is returned; a reset ends the read."""
    chunks = []
    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (TimeoutError, ConnectionError):
            pass
    return b"".join(chunks)
