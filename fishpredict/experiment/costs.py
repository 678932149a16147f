"""The parts of one ``/fish`` request, timed in this process (experiment 1's "why").

The seed's server unpickled its model on every request; loading it once was
expected to help a lot and helped less. Whether it can help is a matter of
proportions: the time to open and unpickle a model file against everything
else a request costs (the framework, and scikit-learn's ``predict`` of one
row, which carries far more overhead than its arithmetic). These timings
give those proportions on this machine, next to the fast path for contrast.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fishpredict.fish.training import train
from fishpredict.perf.predictor import per_call
from fishpredict.predictor import Predictor

#: the model the costs are measured on (the seed's default ``k``)
COST_K = 5


@dataclass(frozen=True)
class RequestCosts:
    """Microseconds per call of each part of a one-row request (k = :data:`COST_K`)."""

    #: ``open`` + ``pickle.load`` of the model file, as the seed's handler did
    unpickle_us: float
    #: scikit-learn ``predict([[length, weight]])``
    sklearn_predict_us: float
    #: fishpredict's exact numpy fast path for one row
    fast_predict_us: float
    #: size of the pickle file
    model_bytes: int
    #: the seed's first handler: unpickle, then predict with the fresh model
    load_and_predict_us: float = float("nan")

    @property
    def per_request_load_us(self) -> float:
        """What loading per request adds to a request: (unpickle + predict) - predict.

        More than the unpickling alone: a freshly unpickled model's first
        ``predict`` costs more than a warm one's.
        """
        return self.load_and_predict_us - self.sklearn_predict_us


def per_call_us(fn: Callable[[], Any], seconds: float, min_calls: int = 20) -> float:
    """Microseconds per call of ``fn``: best of three rounds of ``seconds / 3`` each."""
    return per_call(fn, seconds, min_calls) * 1e6


def measure_costs(seconds: float = 1.0) -> RequestCosts:
    """Time each part, ``seconds`` each (best of three rounds)."""
    model = train(COST_K)
    fast = Predictor(ks=[COST_K])
    with tempfile.TemporaryDirectory(prefix="fishpredict-costs-") as tmp:
        path = Path(tmp) / f"model_k{COST_K}.pkl"
        path.write_bytes(pickle.dumps(model))

        def unpickle() -> Any:
            with open(path, "rb") as f:
                return pickle.load(f)  # our own file, written just above

        unpickle_us = per_call_us(unpickle, seconds)
        both_us = per_call_us(lambda: unpickle().predict([[30.0, 600.0]]), seconds)
        size = path.stat().st_size
    return RequestCosts(
        unpickle_us=unpickle_us,
        sklearn_predict_us=per_call_us(lambda: model.predict([[30.0, 600.0]]), seconds),
        fast_predict_us=per_call_us(lambda: fast.predict(30.0, 600.0, k=COST_K), seconds),
        model_bytes=size,
        load_and_predict_us=both_us,
    )
