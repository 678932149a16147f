"""What ``fishpredict soak`` sends: its configuration and its fixed mix of requests.

:data:`MIX` lists each kind of request (good: ``GET /fish``, ``POST /predict`` as
JSON and ``.npy``; bad: bad values, malformed JSON, unknown routes, oversized
bodies and batches, wrong methods and content types), its weight and the status
it must get; :func:`build_requests` makes the raw bytes of each, and
:func:`check_answer` tells a right answer from a wrong one. The run itself is
:mod:`fishpredict.soak.run`.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from typing import Final

import numpy as np

from fishpredict.bench.config import is_loopback, parse_target
from fishpredict.errors import ConfigError
from fishpredict.predictor import Predictor

#: no soak may last longer than this (seconds), whatever it is asked
MAX_DURATION_S: Final = 3600.0

#: (kind, share of every 100 requests, the status it must get)
MIX: Final[tuple[tuple[str, int, int], ...]] = (
    ("fish", 40, 200),
    ("predict_json", 15, 200),
    ("predict_npy", 10, 200),
    ("bad_value", 7, 400),
    ("malformed_json", 5, 400),
    ("unknown_route", 5, 404),
    ("wrong_method", 5, 405),
    ("wrong_content_type", 4, 415),
    ("oversized_body", 4, 413),
    ("too_many_rows", 3, 413),
    ("nan_literal", 2, 400),
)
EXPECTED_STATUS: Final = {kind: status for kind, _, status in MIX}
GOOD: Final = frozenset(kind for kind, _, status in MIX if status == 200)
KS: Final = (1, 5, 15, 25, 49)
JSON: Final = "application/json"
NPY: Final = "application/x-npy"
POOL: Final = 128
BATCH_ROWS: Final = 32


@dataclass(frozen=True)
class SoakConfig:
    """One soak run. With ``url`` None, a server of ``backend`` is started."""

    url: str | None = None
    backend: str = "socket"
    duration_s: float = 60.0
    connections: int = 32
    #: server workers (only when the soak starts the server)
    workers: int = 1
    #: the server's body and batch limits (passed to the server the soak starts)
    max_body_bytes: int = 64 * 1024
    max_batch_rows: int = 1000
    #: pid of the server at ``url``, to read its memory (None: not measured)
    pid: int | None = None
    max_rss_growth_pct: float = 10.0
    timeout_s: float = 10.0
    seed: int = 0
    allow_remote: bool = False

    @property
    def warmup_s(self) -> float:
        """Load before the start RSS is read: a tenth of the run, at most 5 s."""
        return min(5.0, self.duration_s / 10)

    def validated(self) -> SoakConfig:
        if not 0 < self.duration_s <= MAX_DURATION_S:
            raise ConfigError(
                f"duration must be in (0, {MAX_DURATION_S:g}] s, got {self.duration_s}"
            )
        if not 1 <= self.connections <= 10_000:
            raise ConfigError(f"connections must be 1..10000, got {self.connections}")
        if self.url is not None:
            host = parse_target(self.url).host
            if not self.allow_remote and not is_loopback(host):
                raise ConfigError(f"refusing to soak non-loopback {host!r} without --allow-remote")
        return self


# ---- the requests --------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One pre-built request: its kind, raw bytes, and the answer it must get."""

    kind: str
    raw: bytes
    #: the expected labels for a good request (one for /fish), else None
    labels: tuple[str, ...] | None = None


def _http(host: str, method: str, target: str, body: bytes = b"", ctype: str = "") -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"
    if ctype == NPY:
        head += f"Content-Type: {NPY}\r\nAccept: {NPY}\r\n"
    elif ctype:
        head += f"Content-Type: {ctype}\r\n"
    if method == "POST":
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "\r\n").encode("latin-1") + body


def _bad_requests(config: SoakConfig) -> dict[str, list[tuple[str, str, bytes, str]]]:
    """Each bad kind's requests as (method, target, body, content type)."""
    rows = b'{"instances":[' + b"[30,600]," * config.max_batch_rows + b"[30,600]]}"
    big = b'{"instances":[' + b"[30,600]," * (config.max_body_bytes // 9 + 1) + b"[1,1]]}"
    return {
        "bad_value": [("GET", "/fish?length=abc&weight=600", b"", ""),
                      ("GET", "/fish?length=-3&weight=600&k=5", b"", ""),
                      ("GET", "/fish?length=30&weight=600&k=two", b"", "")],
        "malformed_json": [("POST", "/predict", b'{"instances": [[30, 600]', JSON)],
        "unknown_route": [("GET", "/nowhere", b"", ""), ("POST", "/fish/predict", b"{}", JSON)],
        "wrong_method": [("DELETE", "/fish", b"", ""), ("GET", "/predict", b"", "")],
        "wrong_content_type": [("POST", "/predict", b"30,600", "text/csv")],
        "oversized_body": [("POST", "/predict", big, JSON)],
        "too_many_rows": [("POST", "/predict", rows, JSON)],
        "nan_literal": [("POST", "/predict", b'{"instances":[[NaN,600]]}', JSON)],
    }  # fmt: skip


def build_requests(config: SoakConfig, host: str) -> dict[str, list[Request]]:
    """Every kind's pool of requests; good answers come from a local Predictor."""
    predictor = Predictor()
    rng = np.random.default_rng(config.seed)
    n = POOL * BATCH_ROWS
    rows = np.column_stack(
        [np.round(rng.uniform(8, 45, n), 1), np.round(rng.uniform(5, 1100, n), 1)]
    )
    pools: dict[str, list[Request]] = {kind: [] for kind, _, _ in MIX}
    for i in range(POOL):
        k, (x, w) = KS[i % len(KS)], rows[i]
        fish = _http(host, "GET", f"/fish?length={x}&weight={w}&k={k}")
        pools["fish"].append(Request("fish", fish, (predictor.predict(x, w, k),)))
        batch = rows[i * BATCH_ROWS : (i + 1) * BATCH_ROWS]
        labels = tuple(predictor.predict_many(batch, k))
        body = json.dumps({"instances": batch.tolist()}).encode()
        raw = _http(host, "POST", f"/predict?k={k}", body, JSON)
        pools["predict_json"].append(Request("predict_json", raw, labels))
        buf = io.BytesIO()
        np.save(buf, batch, allow_pickle=False)
        raw = _http(host, "POST", f"/predict?k={k}", buf.getvalue(), NPY)
        pools["predict_npy"].append(Request("predict_npy", raw, labels))
    for kind, requests in _bad_requests(config).items():
        pools[kind] = [Request(kind, _http(host, *r)) for r in requests]
    return pools


def schedule(seed: int) -> list[str]:
    """100 kinds in the proportions of :data:`MIX`, in a fixed shuffled order."""
    kinds = [kind for kind, weight, _ in MIX for _ in range(weight)]
    random.Random(seed).shuffle(kinds)
    return kinds


def check_answer(request: Request, status: int, body: bytes) -> str | None:
    """Why an answer is unexpected, or None when it is right."""
    if status >= 500:
        return "5xx"
    want = EXPECTED_STATUS[request.kind]
    if status != want:
        return f"status {status} (want {want})"
    if request.labels is None:
        return None
    try:
        if request.kind == "predict_npy":
            got = tuple(str(v) for v in np.load(io.BytesIO(body), allow_pickle=False).tolist())
        elif request.kind == "predict_json":
            got = tuple(json.loads(body)["predictions"])
        else:
            got = (json.loads(body)["prediction"],)
    except (ValueError, KeyError, TypeError, OSError):
        return "unreadable answer"
    return None if got == request.labels else "wrong answer"
