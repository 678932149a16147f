"""A real nginx answering a fixed response, for measuring the generator itself.

nginx answers ``200 {"prediction":"bream"}`` on every path (``/missing``
answers 404 with the contract's JSON error), from a config written to a
temporary directory, on a loopback port. :func:`fixed_nginx` starts it,
waits until it accepts connections, and stops it (by its pid) on exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from fishpredict.errors import ConfigError, FishpredictError
from fishpredict.ops.nginx import nginx_path
from fishpredict.server.ports import free_port, wait_for_port

FIXED_BODY = '{"prediction":"bream"}'

_CONF = """\
daemon off;
master_process off;
worker_rlimit_nofile 16384;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  server {{
    listen 127.0.0.1:{port};
    default_type application/json;
    location = /missing {{
      return 404 '{{"error":{{"code":"not_found","message":"no such path"}}}}';
    }}
    location / {{ return 200 '{body}'; }}
  }}
}}
"""


@dataclass(frozen=True)
class FixedServer:
    """A running fixed-response server."""

    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def fixed_nginx(port: int | None = None, body: str = FIXED_BODY) -> Iterator[FixedServer]:
    """Run nginx with a fixed response on ``port`` (a free one by default)."""
    binary = nginx_path()
    if binary is None:
        raise ConfigError("nginx is not installed (apt-get install nginx)")
    with tempfile.TemporaryDirectory(prefix="fishpredict-nginx-") as tmp:
        port = port or free_port()
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write(_CONF.format(tmp=tmp, port=port, body=body.replace("'", "\\'")))
        proc = subprocess.Popen(
            [binary, "-c", conf, "-p", tmp],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            try:
                wait_for_port(port, proc=proc)
            except FishpredictError as exc:
                err = (
                    proc.stderr.read().decode(errors="replace").strip()
                    if (proc.poll() is not None and proc.stderr)
                    else ""
                )
                raise FishpredictError(f"nginx did not start: {err or exc}") from None
            yield FixedServer(port=port, pid=proc.pid)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
            if proc.stderr:
                proc.stderr.close()
