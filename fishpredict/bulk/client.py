"""A small HTTP client for a running fishpredict server (stdlib ``http.client``).

Used by ``fishpredict evaluate --url`` and ``fishpredict predict --url``: rows
go to ``POST /predict`` as ``.npy`` bodies and come back as ``.npy`` label
arrays, over one keep-alive connection per client. Only ``http://`` URLs;
errors become :class:`~fishpredict.errors.FishpredictError` with one clear line.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
from typing import Any
from urllib.parse import urlencode, urlsplit

import numpy as np
import numpy.typing as npt

from fishpredict.app.codec import NPY
from fishpredict.errors import ConfigError, ServerError


def parse_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(f"expected an http://HOST:PORT URL, got {url!r}")
    try:
        port = parts.port or 80
    except ValueError:
        raise ConfigError(f"bad port in {url!r}") from None
    return parts.hostname, port


class Client:
    """One keep-alive connection to a fishpredict server."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self.host, self.port = parse_url(url)
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
        """(status, content type, body); retries once on a dropped keep-alive connection."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=headers or {})
                resp = conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                return resp.status, resp.getheader("Content-Type", ""), data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 2:
                    raise ServerError(f"{self.url} closed the connection") from None
            except (ConnectionRefusedError, socket.gaierror, TimeoutError, OSError) as exc:
                self.close()
                raise ServerError(f"cannot reach {self.url}: {exc}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _error_text(status: int, body: bytes) -> str:
        try:
            err = json.loads(body)["error"]
            return f"HTTP {status} {err['code']}: {err['message']}"
        except (ValueError, KeyError, TypeError):
            return f"HTTP {status}: {body[:200]!r}"

    def get_json(self, path: str) -> Any:
        status, _, body = self.request("GET", path)
        if status != 200:
            raise ServerError(f"{self.url}{path}: {self._error_text(status, body)}")
        return json.loads(body)

    def predict_npy(self, X: npt.NDArray[np.float64], k: int | str | None = None,
                    labels: str | None = None) -> npt.NDArray[np.str_]:
        """Labels for every row of ``X`` through ``POST /predict`` with ``.npy`` both ways."""
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(X, dtype=np.float64), allow_pickle=False)
        params: dict[str, str] = {}
        if k is not None:
            params["k" if isinstance(k, int) else "model"] = str(k)
        if labels:
            params["labels"] = labels
        path = "/predict" + ("?" + urlencode(params) if params else "")
        status, ctype, body = self.request(
            "POST", path, buf.getvalue(), {"Content-Type": NPY, "Accept": NPY})
        if status != 200:
            raise ServerError(f"{self.url}/predict: {self._error_text(status, body)}")
        if NPY not in ctype:
            raise ServerError(f"{self.url}/predict answered {ctype!r}, expected {NPY}")
        out: npt.NDArray[np.str_] = np.load(io.BytesIO(body), allow_pickle=False)
        if out.shape != (len(X),):
            raise ServerError(f"{self.url}/predict answered {out.shape} labels for {len(X)} rows")
        return out
