"""Any model's table through a running server: what ``fishpredict predict --url
--model NAME`` does.

The model's signature comes from the server (``GET /models``); its feature
columns are read by header name from CSV, Parquet or ``.npy`` input (a file, a
glob or a directory: :func:`fishpredict.tables.inputs.iter_tables`) in chunks; each
chunk is one ``POST /predict?model=NAME`` of JSON rows in feature order (a
missing value as ``null``), or, for a model that takes one float array, a
``.npy`` body (a missing value as NaN); up to :data:`CONCURRENCY` requests are in
flight at once, each on its own connection; an error names the file and the row
as the file numbers it (:mod:`fishpredict.bulk.located`). ``keep`` columns (ids)
are written first, beside each answer. The answers are written with
:mod:`fishpredict.tables.writers` (a ``prediction`` column, and
``probability_<class>`` columns with ``proba``) to one CSV/Parquet file or a
directory of parts, in input row order, and nothing under the final name until
every row is answered.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

from fishpredict.app.codec import JSON, NPY
from fishpredict.bulk.client import Client
from fishpredict.bulk.located import at_file_row
from fishpredict.errors import ConfigError, ServerError
from fishpredict.tables import inputs as tables
from fishpredict.tables import writers as tablewriters

#: rows per request by default: JSON rows are ~10x the bytes of .npy ones, and a
#: server takes 16 MiB bodies by default
CHUNK_ROWS = 10_000
#: requests in flight at once, each on its own connection
CONCURRENCY: Final = 4


@dataclass(frozen=True)
class TableSummary:
    rows: int
    files: int
    seconds: float
    out: str
    model: str


def server_model(client: Client, model: str | None) -> dict[str, Any]:
    """The ``GET /models`` entry of ``model`` (None: the server's only model)."""
    entries: list[dict[str, Any]] = client.get_json("/models")["models"]
    if model is None:
        if len(entries) != 1:
            names = ", ".join(str(e["name"]) for e in entries)
            raise ConfigError(f"the server has {len(entries)} models ({names}); "
                              "name one with --model")
        return entries[0]
    for entry in entries:
        if entry["name"] == model:
            return entry
    names = ", ".join(str(e["name"]) for e in entries) or "none"
    raise ConfigError(f"the server has no model named {model!r}; it has: {names}")


def _kinds(signature: dict[str, Any]) -> dict[str, Any]:
    return {f["name"]: ("number" if f.get("kind", "number") == "number" else "string")
            for f in signature.get("features", [])}


def _rows(frame: Any) -> list[list[Any]]:
    """A chunk's values as JSON-able rows, a missing value as None."""
    values = frame.astype(object).where(frame.notna(), None)
    rows: list[list[Any]] = values.to_numpy().tolist()
    return rows


def _numeric(signature: dict[str, Any]) -> bool:
    """Whether the model takes one float array (rows go as ``.npy`` bodies)."""
    return signature.get("input", "array") == "array" and all(
        f.get("kind", "number") == "number" for f in signature.get("features", []))


def _body(chunk: Any, features: list[str], npy: bool) -> tuple[bytes, str]:
    data = chunk.data[features]
    if npy:
        import io

        import numpy as np

        buf = io.BytesIO()
        np.save(buf, data.to_numpy(dtype=np.float64, na_value=np.nan), allow_pickle=False)
        return buf.getvalue(), NPY
    return json.dumps({"instances": _rows(data)}, allow_nan=False).encode(), JSON


def predict_table(url: str, data: str, out: str, *, model: str | None = None,
                  proba: bool = False, chunk_rows: int = CHUNK_ROWS,
                  progress: Any = None, keep: Sequence[str] = (),
                  concurrency: int = CONCURRENCY) -> TableSummary:
    """Predict every row of ``data`` with the server's ``model``; write ``out``.

    Up to ``concurrency`` chunks are in flight at once, each on its own connection
    (a numeric model's rows as ``.npy`` bodies, others as JSON); answers are written
    in input order. ``keep``: input columns (ids) written before each answer."""
    tablewriters.check_output_name(out)
    start = time.perf_counter()
    keep = list(keep)
    with Client(url) as client:
        entry = server_model(client, model)
    name = str(entry["name"])
    signature = entry.get("signature") or {}
    features = [f["name"] for f in signature.get("features", [])] or list(
        entry.get("feature_names") or [])
    if not features:
        raise ConfigError(f"the server does not say which features {name!r} takes")
    if proba and "predict_proba" not in signature.get("outputs", ["predict_proba"]):
        raise ConfigError(f"model {name!r} has no predict_proba; drop --proba")
    npy = _numeric(signature)
    query = urllib.parse.urlencode({"model": name, **({"proba": "true"} if proba else {})})
    columns = features + [k for k in keep if k not in features]
    clients = [Client(url) for _ in range(max(1, concurrency))]
    free = list(clients)
    writer = tablewriters.open_output(out)
    rows = files = 0

    def ask(chunk: Any, c: Client) -> Any:
        body, ctype = _body(chunk, features, npy)
        return _post(c, f"/predict?{query}", body, ctype, chunk.source, chunk.file_row)

    def finish(chunk: Any, answer: Any) -> None:
        nonlocal rows, files
        frame = tablewriters.prediction_frame(
            answer["predictions"], answer.get("probabilities") if proba else None,
            answer.get("classes"), index=chunk.data.index,
            inputs=chunk.data[keep] if keep else None)
        writer.write(frame, chunk.part)
        rows += len(chunk)
        files = chunk.part + 1
        if progress is not None:
            progress.update(len(chunk))

    try:
        with ThreadPoolExecutor(len(clients)) as pool:
            flying: deque[tuple[Any, Client, Future[Any]]] = deque()
            for chunk in tables.iter_tables(data, columns, chunk_rows, kinds=_kinds(signature)):
                if not free:
                    done, c, fut = flying.popleft()
                    finish(done, fut.result())
                    free.append(c)
                c = free.pop()
                flying.append((chunk, c, pool.submit(ask, chunk, c)))
            while flying:
                done, c, fut = flying.popleft()
                finish(done, fut.result())
    except BaseException:
        writer.discard()
        raise
    finally:
        for c in clients:
            c.close()
    written = writer.commit()
    return TableSummary(rows=rows, files=files, seconds=time.perf_counter() - start,
                        out=written.path, model=name)


def _post(client: Client, path: str, body: bytes, ctype: str, source: str,
          first_row: int) -> Any:
    status, _, reply = client.request("POST", path, body, {"Content-Type": ctype,
                                                           "Accept": JSON})
    if status != 200:
        raise ServerError(f"{at_file_row(_message(reply), source, first_row)} "
                          f"(HTTP {status})")
    return json.loads(reply)


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return repr(body[:200])
