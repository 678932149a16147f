"""Start and stop a real ``fishpredict serve`` process for tests.

:func:`start_server` runs ``python -m fishpredict serve --backend NAME --port 0``
as a subprocess, reads the port from the announce line on stdout
(``... on http://127.0.0.1:PORT``), and waits until ``GET /readyz`` answers
200, all under one deadline. If the process exits first, the error carries
its stderr. :meth:`ServerProcess.stop` sends SIGTERM, waits for the drain,
then SIGKILL if it must, always by pid, and returns the exit code.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO

from fishpredict.errors import ServerError
from fishpredict.server.client import Client

#: the line ``fishpredict serve`` prints once it listens
ANNOUNCE = re.compile(r"\bon http://(?P<host>[^\s/]+):(?P<port>\d+)\s*$")
#: seconds to wait for the announce line plus readiness
START_TIMEOUT = 60.0
#: seconds to wait for a clean exit after SIGTERM (drain) before SIGKILL
STOP_TIMEOUT = 15.0


class ServerProcess:
    """One running ``fishpredict serve`` subprocess.

    Use :func:`start_server` to create one; use it as a context manager (or
    call :meth:`stop`) to end it.
    """

    def __init__(
        self,
        backend: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        timeout: float = START_TIMEOUT,
    ) -> None:
        self.backend = backend
        self.argv = list(argv)
        self.host = "127.0.0.1"
        self.port = 0
        self.returncode: int | None = None
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.stdout_lines: list[str] = []
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=dict(env) if env is not None else None,
        )
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        try:
            self._wait_started(time.monotonic() + timeout)
        except BaseException:
            self.kill()
            self.close()
            raise

    # -- properties --

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self, timeout: float | None = None) -> Client:
        """A new keep-alive client to this server."""
        return (
            Client(self.host, self.port)
            if timeout is None
            else Client(self.host, self.port, timeout)
        )

    def workers(self) -> list[int]:
        """The pids of this server's worker processes (``--workers N``; Linux ``/proc``);
        empty for a one-process server or one that has exited."""
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children", encoding="ascii") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def fresh_clients(self, count: int, target: str = "/healthz", per_connection: int = 1
                      ) -> list[Client]:
        """``count`` new connections (the kernel spreads them over the workers), each
        answered 200 on ``target`` ``per_connection`` times and kept open: the caller
        closes them. :class:`ServerError` if an answer is not 200."""
        clients: list[Client] = []
        try:
            for _ in range(count):
                c = Client(self.host, self.port, 10)
                clients.append(c)
                for _ in range(per_connection):
                    reply = c.get(target)
                    if reply.status != 200:
                        raise ServerError(f"GET {target} answered {reply.status}: {reply.body!r}")
        except BaseException:
            for c in clients:
                c.close()
            raise
        return clients

    def stderr_text(self) -> str:
        """Everything the server wrote on stderr so far."""
        if self._stderr.closed:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    # -- starting --

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:  # keeps draining so the pipe never fills
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stdout_lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def _fail(self, why: str) -> ServerError:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(0.5)
        stderr = self.stderr_text().strip() or "(nothing on stderr)"
        return ServerError(f"{why}\ncommand: {' '.join(self.argv)}\nstderr:\n{stderr[-4000:]}")

    def _wait_started(self, deadline: float) -> None:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._fail(f"no announce line from the {self.backend!r} server in time")
            try:
                line = self._lines.get(timeout=min(left, 0.25))
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise self._fail(
                        f"the {self.backend!r} server exited with {self.proc.returncode} "
                        "before announcing its port"
                    ) from None
                continue
            if line is None:
                raise self._fail(f"the {self.backend!r} server closed stdout before announcing")
            match = ANNOUNCE.search(line)
            if match:
                self.host, self.port = match["host"], int(match["port"])
                break
        self._wait_ready(deadline)

    def _wait_ready(self, deadline: float) -> None:
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise self._fail(
                    f"the {self.backend!r} server exited with {self.proc.returncode} "
                    "before it was ready"
                )
            try:
                with Client(self.host, self.port, timeout=2.0) as c:
                    reply = c.get("/readyz")
                if reply.status == 200:
                    return
                last = f"/readyz answered {reply.status}"
            except (OSError, http.client.HTTPException) as exc:
                last = f"/readyz failed: {exc!r}"
            time.sleep(0.05)  # poll interval of a bounded readiness loop
        raise self._fail(f"the {self.backend!r} server was not ready in time ({last})")

    # -- stopping --

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, wait up to ``timeout`` seconds for the drain, else SIGKILL.

        Returns the exit code (``-9`` if it had to be killed). Idempotent.
        """
        if self.returncode is None:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.kill()
            self.returncode = self.proc.wait()
            self._reader.join(2.0)
        return self.returncode

    def kill(self) -> None:
        """SIGKILL by pid (no drain) and reap."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.returncode = self.proc.returncode

    def close(self) -> None:
        """Stop if running and release the stderr file."""
        self.stop()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ServerProcess {self.backend!r} pid={self.pid} {self.url}>"


def serve_command(backend: str, *args: str, host: str = "127.0.0.1") -> list[str]:
    """The argv of ``python -m fishpredict serve`` on a free loopback port."""
    return [
        sys.executable,
        "-m",
        "fishpredict",
        "serve",
        "--backend",
        backend,
        "--host",
        host,
        "--port",
        "0",
        "--log-level",
        "warning",
        *args,
    ]


def start_server(
    backend: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = START_TIMEOUT,
) -> ServerProcess:
    """Start ``fishpredict serve --backend <backend> --port 0 <args>`` and wait until ready.

    ``env`` replaces the environment (default: this process's). Raises
    :class:`ServerError` with the server's stderr if it exits or is not ready
    within ``timeout`` seconds.
    """
    return ServerProcess(backend, serve_command(backend, *args), env, timeout=timeout)
