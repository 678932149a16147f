"""The three workloads of ``fishpredict perf hotpath`` and the models they ask.

Rows never repeat within a pool (an answer cache, if a server had one, would not be
what is measured): ``GET /fish`` and V2 with one fish row ask the fish KNN (k=5), V2
with one iris row a StandardScaler + LogisticRegression pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fishpredict.bench.payloads import Pool
from fishpredict.fish import synth
from fishpredict.fish.training import save_models

FISH_MODEL: Final = "knn-k5"
IRIS_MODEL: Final = "iris"
USER_AGENT: Final = "fishpredict-perf-hotpath"


def _num(x: float) -> str:
    return format(float(x), ".15g")


def _distinct(make: Callable[[int, np.random.Generator], np.ndarray[Any, Any]], n: int,
              seed: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    """``n`` distinct rows from ``make`` (rows drawn again until there are enough)."""
    rng = np.random.default_rng(seed)
    X = make(n + n // 50 + 16, rng)
    while True:
        _, first = np.unique(X, axis=0, return_index=True)
        if len(first) >= n:
            return np.ascontiguousarray(X[np.sort(first)[:n]], dtype=np.float64)
        X = np.vstack([X, make(n, rng)])


def fish_rows(n: int, seed: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    """``n`` distinct generated fish (length cm, weight g; 4 decimals)."""
    def make(m: int, rng: np.random.Generator) -> np.ndarray[Any, Any]:
        X, _ = synth.sample(m, seed=int(rng.integers(1 << 30)))
        return np.round(X + rng.uniform(-0.05, 0.05, X.shape), 4)

    return _distinct(make, n, seed)


def iris_rows(n: int, seed: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    """``n`` distinct rows over the iris measurements' ranges (cm, 4 decimals)."""
    lo = np.array([4.3, 2.0, 1.0, 0.1])
    hi = np.array([7.9, 4.4, 6.9, 2.5])
    return _distinct(lambda m, rng: np.round(rng.uniform(lo, hi, (m, 4)), 4), n, seed)


def _get(path: str, host: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n\r\n"
            ).encode("latin-1")


def _post(path: str, host: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode("latin-1") + body


def fish_query(row: Any) -> str:
    return f"/fish?length={_num(row[0])}&weight={_num(row[1])}&k=5"


def v2_body(row: Any, request_id: int) -> bytes:
    data = ",".join(_num(v) for v in row)
    return (f'{{"id":"{request_id}","inputs":[{{"name":"input-0","datatype":"FP64",'
            f'"shape":[1,{len(row)}],"data":[{data}]}}]}}').encode()


@dataclass(frozen=True)
class Workload:
    """One kind of request: how its rows are made and how a row becomes a request."""

    key: str
    title: str
    rows: Callable[[int, int], np.ndarray[Any, np.dtype[np.float64]]]
    request: Callable[[Any, int, str], bytes]

    def pool(self, n: int, seed: int, host: str) -> Pool:
        """``n`` requests of distinct rows (checked)."""
        X = self.rows(n, seed)
        if len(np.unique(X, axis=0)) != n:
            raise RuntimeError(f"{self.key}: rows repeat")
        reqs = tuple(self.request(row, i, host) for i, row in enumerate(X.tolist()))
        return Pool(reqs, (None,) * n, 1, f"{self.title} ({n:,} distinct rows)")


WORKLOADS: Final = (
    Workload("fish", "GET /fish (KNN k=5, 49 fish)", fish_rows,
             lambda row, i, host: _get(fish_query(row), host)),
    Workload("v2-fish", "V2, one fish row (KNN k=5)", fish_rows,
             lambda row, i, host: _post(f"/v2/models/{FISH_MODEL}/infer", host,
                                        v2_body(row, i))),
    Workload("v2-iris", "V2, one iris row (StandardScaler + LogisticRegression)", iris_rows,
             lambda row, i, host: _post(f"/v2/models/{IRIS_MODEL}/infer", host,
                                        v2_body(row, i))),
)


def write_models(directory: Path) -> list[str]:
    """The fish KNN (k=5, with its manifest) and the iris pipeline; ``serve`` options."""
    fish = directory / "fish"
    save_models(fish, ks=(5,))
    X, y = load_iris(return_X_y=True)
    iris = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    path = directory / "iris.joblib"
    joblib.dump(iris, path)
    return ["--models", str(fish), "--models", f"{IRIS_MODEL}={path}", "--trust"]
