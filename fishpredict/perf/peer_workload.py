"""What ``fishpredict perf peers`` serves and sends: two model files and V2 requests.

* :func:`write_models` fits and ``joblib.dump``-s the two models of issue 11's
  peer comparison on one synthetic 30-feature classification task: ``logistic``
  (a StandardScaler + LogisticRegression pipeline) and ``forest`` (a 100-tree
  RandomForestClassifier). Both servers load these very files.
* :func:`v2_body` is one Open Inference Protocol (V2) JSON request: one row, one
  ``[1, 30]`` FP64 tensor; :func:`v2_pool` pre-builds a pool of such requests
  over varied held-out rows as raw HTTP/1.1 bytes, the form the bench engine
  sends (:func:`fishpredict.bench.runner.run_bench` takes it as ``pool``).
* :func:`check_answers` posts a few of the same requests to a server and
  compares its ``predict`` output with scikit-learn's own predictions.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from fishpredict.bench.payloads import Pool

N_FEATURES: Final = 30
N_TRAIN: Final = 4000
N_ROWS: Final = 1024
SEED: Final = 0
INPUT_NAME: Final = "input-0"
USER_AGENT: Final = "fishpredict-perf-peers"


@dataclass(frozen=True)
class PeerModel:
    """One model of the comparison: its name, file, and the rows requests carry."""

    name: str
    description: str
    path: Path
    #: held-out rows the requests carry (``N_ROWS`` x ``N_FEATURES``)
    rows: np.ndarray[Any, np.dtype[np.float64]]
    #: scikit-learn's own predictions for ``rows``
    expected: tuple[Any, ...]


def write_models(directory: Path) -> list[PeerModel]:
    """Fit both models, write ``logistic.joblib`` and ``forest.joblib`` into
    ``directory`` (no other file: a fishpredict ``--models`` directory), return them."""
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(
        n_samples=N_TRAIN + N_ROWS, n_features=N_FEATURES, n_informative=12,
        n_redundant=6, n_classes=3, random_state=SEED,
    )
    X_train, y_train, rows = X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:]
    fitted = [
        ("logistic", f"StandardScaler + LogisticRegression, {N_FEATURES} features",
         make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))),
        ("forest", f"RandomForestClassifier, 100 trees, {N_FEATURES} features",
         RandomForestClassifier(n_estimators=100, random_state=SEED)),
    ]
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name, description, est in fitted:
        est.fit(X_train, y_train)
        path = directory / f"{name}.joblib"
        joblib.dump(est, path)
        expected = tuple(v.item() for v in est.predict(rows))
        out.append(PeerModel(name, description, path, np.ascontiguousarray(rows), expected))
    return out


def infer_path(model: str) -> str:
    return f"/v2/models/{model}/infer"


def v2_body(row: Any, request_id: str) -> dict[str, Any]:
    """One V2 inference request for one row: a ``[1, n]`` FP64 tensor, data flat."""
    data = [float(v) for v in row]
    return {
        "id": request_id,
        "inputs": [{"name": INPUT_NAME, "shape": [1, len(data)], "datatype": "FP64",
                    "data": data}],
    }


def _request(host_header: str, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: {USER_AGENT}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def v2_pool(model: PeerModel, host_header: str) -> Pool:
    """Every row of ``model`` as one V2 request, raw bytes (answers unchecked by the
    engine: :func:`check_answers` checks them apart)."""
    path = infer_path(model.name)
    reqs = tuple(
        _request(host_header, path,
                 json.dumps(v2_body(row, str(i)), separators=(",", ":")).encode())
        for i, row in enumerate(model.rows)
    )
    return Pool(reqs, (None,) * len(reqs), 1,
                f"POST {path} (V2 JSON, 1 row of {model.rows.shape[1]} FP64 each, "
                f"{len(reqs):,} distinct rows)")


@dataclass(frozen=True)
class AnswerCheck:
    """How many of a server's answers matched scikit-learn's, and the first mismatch."""

    checked: int
    correct: int
    first_problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.checked > 0 and self.correct == self.checked

    def as_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "correct": self.correct,
                "first_problem": self.first_problem}


def predict_output(answer: Any) -> list[Any] | None:
    """The flat data of the ``predict`` output of a V2 answer (None: no such output)."""
    if not isinstance(answer, dict) or not isinstance(answer.get("outputs"), list):
        return None
    for out in answer["outputs"]:
        if isinstance(out, dict) and out.get("name") == "predict":
            data = np.asarray(out.get("data"), dtype=object).ravel()
            return list(data)
    return None


def check_answers(host: str, port: int, model: PeerModel, count: int = 32,
                  timeout_s: float = 10.0) -> AnswerCheck:
    """Post the first ``count`` rows' requests one by one; compare each ``predict``
    output with scikit-learn's prediction for the row."""
    correct, problem = 0, None
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    n = min(count, len(model.rows))
    try:
        for i in range(n):
            body = json.dumps(v2_body(model.rows[i], str(i)))
            try:
                conn.request("POST", infer_path(model.name), body,
                             {"Content-Type": "application/json"})
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                problem = problem or f"row {i}: {type(exc).__name__}: {exc}"
                conn.close()
                continue
            got = None
            if resp.status == 200:
                try:
                    got = predict_output(json.loads(raw))
                except ValueError:
                    got = None
            want = model.expected[i]
            if got is not None and len(got) == 1 and got[0] == want:
                correct += 1
            elif problem is None:
                problem = (f"row {i}: HTTP {resp.status}, wanted predict [{want!r}], got "
                           f"{raw[:200].decode('utf-8', 'replace')}")
    finally:
        conn.close()
    return AnswerCheck(n, correct, problem)
