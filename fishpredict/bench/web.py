"""``--web [HOST:]PORT``: the live page of a run, served on loopback.

A small threaded HTTP server in the bench's parent process:

* ``GET /`` the page (:func:`fishpredict.bench.html.render_page`) with the latest
  document inline, so it shows figures at once;
* ``GET /events`` server-sent events: an ``event: report`` with the document
  every time it changes (once a second while the run goes, then the final one);
* ``GET /report.json`` the latest document, with ``"state"`` beside it.

It binds to a loopback address only; port 0 takes a free port (see :attr:`url`).
"""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fishpredict.bench.config import is_loopback
from fishpredict.bench.html import render_page
from fishpredict.errors import ConfigError

#: seconds between keep-alive comments on an idle event stream
HEARTBEAT_S = 10.0


def parse_web(text: str) -> tuple[str, int]:
    """``"8089"``, ``":8089"``, ``"127.0.0.1:8089"`` or ``"[::1]:8089"`` -> (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"--web takes [HOST:]PORT, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"--web port must be 0..65535, got {port}")
    if not is_loopback(host):
        raise ConfigError(f"--web serves on loopback only, got host {host!r}")
    return host, port


class LiveServer:
    """Serves the latest document of a run; :meth:`publish` replaces it."""

    def __init__(self, host: str, port: int) -> None:
        self._cond = threading.Condition()
        self._doc: dict[str, Any] = {}
        self._state = "starting"
        self._version = 0
        self._closed = False
        live = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path in ("/", "/index.html"):
                    doc, state, _ = live.latest()
                    self._send(200, "text/html; charset=utf-8",
                               render_page(doc, state, live=True).encode())
                elif path == "/report.json":
                    doc, state, _ = live.latest()
                    self._send(200, "application/json",
                               json.dumps({"state": state, "report": doc}).encode())
                elif path == "/events":
                    self._events()
                else:
                    self._send(404, "text/plain", b"not found\n")

            def _send(self, status: int, ctype: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def _events(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                seen = -1
                try:
                    while True:
                        doc, state, version = live.wait_newer(seen, HEARTBEAT_S)
                        if version < 0:
                            return  # server closing
                        if version == seen:
                            self.wfile.write(b": keep-alive\n\n")
                        else:
                            seen = version
                            data = json.dumps({"doc": doc, "state": state})
                            self.wfile.write(f"event: report\ndata: {data}\n\n".encode())
                        self.wfile.flush()
                except OSError:
                    return  # the browser went away

        try:
            self.httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise ConfigError(f"--web cannot listen on {host}:{port}: {exc.strerror}") from None
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        name="fishpredict-bench-web", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        raw, port = self.httpd.server_address[:2]
        host = raw.decode() if isinstance(raw, bytes) else str(raw)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"

    def publish(self, doc: dict[str, Any], state: str) -> None:
        with self._cond:
            self._doc, self._state = doc, state
            self._version += 1
            self._cond.notify_all()

    def latest(self) -> tuple[dict[str, Any], str, int]:
        with self._cond:
            return self._doc, self._state, self._version

    def wait_newer(self, seen: int, timeout: float) -> tuple[dict[str, Any], str, int]:
        """The document once its version is past ``seen`` (or after ``timeout``, as it
        is); version -1 when the server is closing."""
        with self._cond:
            self._cond.wait_for(lambda: self._version != seen or self._closed, timeout)
            if self._closed:
                return {}, "", -1
            return self._doc, self._state, self._version

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        with contextlib.suppress(Exception):
            self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
