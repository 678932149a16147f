"""The request pool: varied HTTP requests built once, up front, as raw bytes.

Each :class:`Pool` entry is the complete bytes of one HTTP/1.1 request and,
when the rows are labelled, the label(s) its answer should carry. Workers
cycle through the pool, so the hot path only writes bytes that already exist.
This module also reads answers back (:func:`fish_answer`, :func:`batch_answers`).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from urllib.parse import quote

import numpy as np

from fishpredict.bench.config import BenchConfig, Target
from fishpredict.bench.source import Rows, load_rows
from fishpredict.fish.dataset import SPECIES_NAMES
from fishpredict.fish.training import model_name

USER_AGENT = "fishpredict-bench"

#: answer bytes -> label, for every language the server may answer in
_NAMES: dict[bytes, int] = {
    name.encode(): label for names in SPECIES_NAMES.values() for label, name in names.items()
}
_KEY = b'"prediction"'

#: expected answer of one request: a label (``/fish``), labels (batch) or None (unchecked)
Expected = int | tuple[int, ...] | None


@dataclass(frozen=True)
class Pool:
    """Pre-built requests and what each answer should be."""

    requests: tuple[bytes, ...]
    expected: tuple[Expected, ...]
    #: rows carried by each request (1 for ``/fish``, ``batch_rows`` for batches)
    rows_per_request: int
    description: str

    def __len__(self) -> int:
        return len(self.requests)

    @property
    def checks_answers(self) -> bool:
        return any(e is not None for e in self.expected)


def _head(method: str, path: str, target: Target, headers: list[tuple[str, str]]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {target.host_header}",
        f"User-Agent: {USER_AGENT}",
    ]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _num(x: float) -> str:
    return format(float(x), ".15g")


def build_pool(config: BenchConfig, rows: Rows | None = None) -> Pool:
    """Build the request pool of a run from its config (rows from ``config.data`` or
    generated when ``rows`` is not given)."""
    target = config.target
    extra = list(config.extra_headers)
    prefix = target.path.rstrip("/")
    check = config.check_answers
    if config.endpoint == "get":
        path = (target.path or "/") + (f"?{target.query}" if target.query else "")
        return Pool((_head("GET", path, target, extra),), (None,), 1, f"GET {path}")

    if config.endpoint == "fish":
        rows = rows if rows is not None else load_rows(config.data, config.pool_size, config.seed)
        reqs: list[bytes] = []
        exp: list[Expected] = []
        for i in range(config.pool_size):
            r = i % len(rows)
            k = config.ks[i % len(config.ks)]
            length, weight = rows.X[r]
            path = f"{prefix}/fish?length={_num(length)}&weight={_num(weight)}&k={k}"
            reqs.append(_head("GET", path, target, extra))
            exp.append(int(rows.y[r]) if check and rows.y is not None else None)
        ks = ",".join(map(str, config.ks))
        return Pool(
            tuple(reqs),
            tuple(exp),
            1,
            f"GET {prefix}/fish ({min(len(rows), len(reqs))} distinct rows, k={ks})",
        )

    n = config.batch_rows
    need = config.pool_size * n
    rows = rows if rows is not None else load_rows(config.data, need, config.seed)
    if config.endpoint in ("v2", "v1"):
        return _protocol_pool(config, rows, prefix, extra)
    reqs, exp = [], []
    for i in range(config.pool_size):
        idx = np.arange(i * n, (i + 1) * n) % len(rows)
        X = rows.X[idx]
        k = config.ks[i % len(config.ks)]
        path = (f"{prefix}/predict?model={quote(config.model)}" if config.model
                else f"{prefix}/predict?k={k}")
        if config.body == "npy":
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(X, dtype=np.float64), allow_pickle=False)
            body = buf.getvalue()
            ctype = "application/x-npy"
        else:
            body = json.dumps({"instances": X.tolist()}, separators=(",", ":")).encode()
            ctype = "application/json"
        head = _head(
            "POST",
            path,
            target,
            [
                ("Content-Type", ctype),
                ("Accept", "application/json"),
                ("Content-Length", str(len(body))),
                *extra,
            ],
        )
        reqs.append(head + body)
        exp.append(tuple(int(v) for v in rows.y[idx]) if check and rows.y is not None else None)
    which = f"model={config.model}" if config.model else "k=" + ",".join(map(str, config.ks))
    return Pool(
        tuple(reqs),
        tuple(exp),
        n,
        f"POST {prefix}/predict ({n} rows/request as {config.body}, {which})",
    )


def _protocol_pool(config: BenchConfig, rows: Rows, prefix: str,
                   extra: list[tuple[str, str]]) -> Pool:
    """``batch_rows`` rows per request in the V2 or KServe V1 protocol (JSON)."""

    target, n, check = config.target, config.batch_rows, config.check_answers
    reqs: list[bytes] = []
    exp: list[Expected] = []
    for i in range(config.pool_size):
        idx = np.arange(i * n, (i + 1) * n) % len(rows)
        X = rows.X[idx]
        model = config.model or model_name(config.ks[i % len(config.ks)])
        if config.endpoint == "v2":
            path = f"{prefix}/v2/models/{model}/infer"
            doc: dict[str, object] = {"inputs": [{
                "name": "input-0", "datatype": "FP64", "shape": list(X.shape),
                "data": X.reshape(-1).tolist()}]}
        else:
            path = f"{prefix}/v1/models/{model}:predict"
            doc = {"instances": X.tolist()}
        body = json.dumps(doc, separators=(",", ":")).encode()
        head = _head("POST", path, target, [
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra])
        reqs.append(head + body)
        exp.append(tuple(int(v) for v in rows.y[idx]) if check and rows.y is not None else None)
    shown = config.model or "knn-k{" + ",".join(map(str, config.ks)) + "}"
    where = (f"/v2/models/{shown}/infer" if config.endpoint == "v2"
             else f"/v1/models/{shown}:predict")
    return Pool(tuple(reqs), tuple(exp), n, f"POST {prefix}{where} ({n} rows/request, "
                f"{config.endpoint.upper()} JSON)")


def fish_answer(body: bytes) -> int | None:
    """The label in a ``/fish`` answer, by a bytes search (``None`` if there is none).

    Falls back to ``json.loads`` for escaped strings, so ``"\\ub3c4\\ubbf8"`` reads too.
    """
    i = body.find(_KEY)
    if i < 0:
        return None
    j = body.find(b'"', i + len(_KEY))
    end = body.find(b'"', j + 1) if j >= 0 else -1
    if end < 0:
        return None
    value = body[j + 1 : end]
    label = _NAMES.get(value)
    if label is not None or b"\\" not in value:
        return label
    try:
        name = json.loads(body)["prediction"]
    except (ValueError, KeyError, TypeError):
        return None
    return _NAMES.get(str(name).encode())


def batch_answers(body: bytes, expected: tuple[int, ...]) -> int:
    """How many rows of a batch answer match ``expected`` (0 if unreadable)."""
    try:
        doc = json.loads(body)
        # /predict and KServe V1: "predictions"; V2: the first output's data
        preds = doc["predictions"] if "predictions" in doc else doc["outputs"][0]["data"]
    except (ValueError, KeyError, TypeError, IndexError):
        return 0
    if not isinstance(preds, list) or len(preds) != len(expected):
        return 0
    return sum(1 for p, e in zip(preds, expected, strict=True) if _label(p) == e)


def _label(p: object) -> int | None:
    """A predicted label: a species name, or the class value itself (V1/V2 answers)."""
    if isinstance(p, int) and not isinstance(p, bool):
        return p
    return _NAMES.get(str(p).encode())
