"""A fixed list of requests and what a server answers to each, byte for byte.

The contract promises that every backend answers exactly what
:meth:`fishpredict.app.service.Service.handle` answers. :func:`wire_transcript`
sends :data:`EXCHANGES` over a real socket; :func:`service_transcript` asks an
in-process Service the same questions. Two transcripts compare with ``==``.
``/metrics`` is left out (its counts differ by design). A backend hands the
Service the percent-decoded path and the raw (still encoded) query string.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

import numpy as np

from fishpredict.app.service import Service
from fishpredict.server.client import Client

#: headers the Service itself sets, compared too (Date/Server are the transport's)
CONTRACT_HEADERS = ("allow", "retry-after", "www-authenticate")

#: (status, media type, contract headers, body)
Answer = tuple[int, str, tuple[tuple[str, str], ...], bytes]


@dataclass(frozen=True)
class Exchange:
    """One request of the transcript."""

    method: str
    target: str
    body: bytes = b""
    content_type: str | None = None
    accept: str | None = None

    @property
    def key(self) -> str:
        parts = [self.method, self.target]
        if self.content_type:
            parts.append(f"[{self.content_type}]")
        if self.accept:
            parts.append(f"accept={self.accept}")
        if self.body:
            parts.append(f"body={self.body[:60]!r}{'...' if len(self.body) > 60 else ''}")
        return " ".join(parts)

    def headers(self) -> dict[str, str]:
        out = {}
        if self.content_type:
            out["Content-Type"] = self.content_type
        if self.accept:
            out["Accept"] = self.accept
        return out


def npy(rows: object) -> bytes:
    """The ``.npy`` bytes of ``rows`` as a float64 array."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(rows, dtype=np.float64), allow_pickle=False)
    return buf.getvalue()


def _json(doc: object) -> bytes:
    return json.dumps(doc).encode()


J = "application/json"
NPY = "application/x-npy"


def exchanges(max_batch_rows: int, max_body_bytes: int) -> tuple[Exchange, ...]:
    """The transcript's requests, for a server with these two limits."""
    batch = [[30.0, 600.0], [10.5, 7.5], [25.4, 242.0], [15.0, 19.9], [0.0, 0.0]]
    return (
        # the seed's client and its variants
        Exchange("GET", "/fish?length=30&weight=600"),
        Exchange("GET", "/fish?length=30&weight=600&k=1"),
        Exchange("GET", "/fish?length=10.5&weight=7.5&k=5"),
        Exchange("GET", "/fish?length=25.4&weight=242.0&k=49"),
        Exchange("GET", "/fish?length=30&weight=600&model=knn-k15"),
        Exchange("GET", "/fish?length=30&weight=600&labels=ko"),
        Exchange("GET", "/fish?length=3e1&weight=6E2&k=25"),
        Exchange("GET", "/fish?length=30%2E5&weight=600&k="),
        Exchange("GET", "/fish?length=0&weight=0"),
        # 400
        Exchange("GET", "/fish"),
        Exchange("GET", "/fish?length=30"),
        Exchange("GET", "/fish?length=abc&weight=600"),
        Exchange("GET", "/fish?length=nan&weight=600"),
        Exchange("GET", "/fish?length=30&weight=inf"),
        Exchange("GET", "/fish?length=-1&weight=600"),
        Exchange("GET", "/fish?length=&weight=600"),
        Exchange("GET", "/fish?length=30&weight=600&k=abc"),
        Exchange("GET", "/fish?length=30&weight=600&k=1.5"),
        Exchange("GET", "/fish?length=30&weight=600&labels=fr"),
        Exchange("GET", "/fish?length=30&weight=600&labels=%EB%8F%84"),
        # 404
        Exchange("GET", "/fish?length=30&weight=600&k=2"),
        Exchange("GET", "/fish?length=30&weight=600&model=nope"),
        Exchange("GET", "/nope"),
        Exchange("GET", "/"),
        Exchange("GET", "//fish?length=30&weight=600"),
        Exchange("GET", "/n%C3%B6pe"),
        Exchange("GET", "/fish%3Flength=30"),
        Exchange("POST", "/admin/reload"),
        # the Service routes on the percent-decoded path
        Exchange("GET", "/fis%68?length=30&weight=600"),
        # 405
        Exchange("POST", "/fish?length=30&weight=600", b"{}", J),
        Exchange("GET", "/predict"),
        Exchange("DELETE", "/healthz"),
        Exchange("PUT", "/models", b"{}", J),
        # POST /predict
        Exchange("POST", "/predict", _json({"length": 30.0, "weight": 600.0}), J),
        Exchange("POST", "/predict?k=1", _json({"instances": batch}), J),
        Exchange("POST", "/predict?k=49&labels=ko", _json({"instances": batch}), J),
        Exchange("POST", "/predict?model=knn-k15", _json({"instances": []}), J),
        Exchange(
            "POST", "/predict", _json({"instances": batch}), "application/json; charset=utf-8"
        ),
        Exchange("POST", "/predict", npy(batch), NPY),
        Exchange("POST", "/predict", npy(batch), NPY, NPY),
        Exchange("POST", "/predict?labels=ko", _json({"instances": batch}), J, NPY),
        Exchange("POST", "/predict", b'{"instances": [[30, 600]', J),
        Exchange("POST", "/predict", b'{"length": NaN, "weight": 1}', J),
        Exchange("POST", "/predict", b'{"instances": [[30, Infinity]]}', J),
        Exchange("POST", "/predict", _json([[30, 600]]), J),
        Exchange("POST", "/predict", _json({"instances": [[30, 600, 1]]}), J),
        Exchange("POST", "/predict", _json({"instances": [[30, -600]]}), J),
        Exchange("POST", "/predict", _json({"length": "30", "weight": 600}), J),
        Exchange("POST", "/predict", b"", J),
        Exchange("POST", "/predict", b"\xff\xfe", J),
        Exchange("POST", "/predict", b"not an npy file", NPY),
        Exchange("POST", "/predict?k=2", _json({"instances": batch}), J),
        Exchange("POST", "/predict", b"length=30&weight=600", "text/plain"),
        Exchange("POST", "/predict", _json({"instances": [[1.0, 1.0]] * (max_batch_rows + 1)}), J),
        Exchange("POST", "/predict", b" " * (max_body_bytes + 1), J),
        # operations
        Exchange("GET", "/healthz"),
        Exchange("GET", "/readyz"),
        Exchange("GET", "/models"),
        Exchange("GET", "/openapi.json"),
    )


def _media(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def wire_transcript(client: Client, requests: Iterable[Exchange]) -> dict[str, Answer]:
    """What a server answers over the wire to each request, in order."""
    out: dict[str, Answer] = {}
    for ex in requests:
        reply = client.request(ex.method, ex.target, ex.body or None, ex.headers())
        kept = tuple((h, reply.headers[h]) for h in CONTRACT_HEADERS if h in reply.headers)
        out[ex.key] = (reply.status, reply.content_type, kept, reply.body)
    return out


def service_transcript(service: Service, requests: Iterable[Exchange]) -> dict[str, Answer]:
    """What the in-process Service answers to each request: the expected transcript."""
    out: dict[str, Answer] = {}
    for ex in requests:
        path, _, query = ex.target.partition("?")
        headers = {k.lower(): v for k, v in ex.headers().items()}
        # What every backend hands the Service: the percent-decoded path, the raw query.
        r = service.handle(ex.method, unquote(path), query, headers, ex.body)
        given = {k.lower(): v for k, v in r.headers}
        kept = tuple((h, given[h]) for h in CONTRACT_HEADERS if h in given)
        out[ex.key] = (r.status, _media(r.content_type), kept, r.body)
    return out


def differences(expected: dict[str, Answer], got: dict[str, Answer]) -> list[str]:
    """One line per request whose answers differ (empty: identical)."""
    lines = []
    for key, want in expected.items():
        have = got.get(key)
        if have != want:
            lines.append(f"{key}\n      expected {want!r:.400}\n      got      {have!r:.400}")
    return lines
