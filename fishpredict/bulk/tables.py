"""Any model's table through a running server: what ``fishpredict predict --url
--model NAME`` does.

The model's signature comes from the server (``GET /models``); its feature
columns are read by header name from CSV, Parquet or ``.npy`` input (a file, a
glob or a directory: :func:`fishpredict.tables.inputs.iter_tables`) in chunks; each
chunk is one ``POST /predict?model=NAME`` of JSON rows in feature order (a
missing value as ``null``); the answers are written with
:mod:`fishpredict.tables.writers` (a ``prediction`` column, and
``probability_<class>`` columns with ``proba``) to one CSV/Parquet file or a
directory of parts, in input row order, and nothing under the final name until
every row is answered.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from fishpredict.bulk.client import Client
from fishpredict.errors import ConfigError, ServerError
from fishpredict.tables import inputs as tables
from fishpredict.tables import writers as tablewriters

#: rows per request by default: JSON rows are ~10x the bytes of .npy ones, and a
#: server takes 16 MiB bodies by default
CHUNK_ROWS = 10_000


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


def predict_table(url: str, data: str, out: str, *, model: str | None = None,
                  proba: bool = False, chunk_rows: int = CHUNK_ROWS,
                  progress: Any = None) -> TableSummary:
    """Predict every row of ``data`` with the server's ``model``; write ``out``."""
    start = time.perf_counter()
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
        query = urllib.parse.urlencode({"model": name, **({"proba": "true"} if proba else {})})
        writer = tablewriters.open_output(out)
        rows = files = 0
        try:
            for chunk in tables.iter_tables(data, features, chunk_rows, kinds=_kinds(signature)):
                body = json.dumps({"instances": _rows(chunk.data)}, allow_nan=False)
                answer = _post(client, f"/predict?{query}", body.encode(), chunk.source,
                               chunk.file_row)
                frame = tablewriters.prediction_frame(
                    answer["predictions"], answer.get("probabilities") if proba else None,
                    answer.get("classes"), index=chunk.data.index)
                writer.write(frame, chunk.part)
                rows += len(chunk)
                files = chunk.part + 1
                if progress is not None:
                    progress.update(len(chunk))
        except BaseException:
            writer.discard()
            raise
        written = writer.commit()
    return TableSummary(rows=rows, files=files, seconds=time.perf_counter() - start,
                        out=written.path, model=name)


def _post(client: Client, path: str, body: bytes, source: str, first_row: int) -> Any:
    status, _, reply = client.request("POST", path, body,
                                      {"Content-Type": "application/json"})
    if status != 200:
        raise ServerError(f"{source} (rows from {first_row}): "
                          f"{Client._error_text(status, reply)}")
    return json.loads(reply)
