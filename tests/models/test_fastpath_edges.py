"""Each fast-path family against its estimator at the edges (issue 20, item 3): for any
float64 row, finite or not (magnitudes that overflow float64 once scaled, or float32
in a tree; infinities; NaN), fishpredict (its validation, then the fast path) and
scikit-learn give the same answer, alone and in a batch, or both refuse."""

from __future__ import annotations

import warnings
from functools import cache
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fishpredict.app.messages import Job
from fishpredict.errors import InvalidInputError
from fishpredict.models import rows as rowslib
from fishpredict.models.build import build
from fishpredict.models.loaded import LoadedModel

D = 3
EDGES = [1e308, -1e308, 1.7976931348623157e308, 3.5e38, -3.5e38, 3.4028235e38, 3.4028236e38,
         1e155, -1e155, 1e38, 1e30, 1e-300, 0.0, -0.0, float("inf"), float("-inf"),
         float("nan")]
value = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(EDGES),
                  st.floats(-10, 10))
row = st.lists(value, min_size=D, max_size=D)


@cache
def models() -> dict[str, LoadedModel]:
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(3)
    X = rng.normal(size=(150, D))
    small = X * 1e-3  # tiny scale_: huge values overflow once scaled
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    fitted = {
        "knn": KNeighborsClassifier(5).fit(X, y),
        "knn-scaled": make_pipeline(StandardScaler(), KNeighborsClassifier(5)).fit(small, y),
        "knn-minmax": make_pipeline(MinMaxScaler(clip=True), KNeighborsClassifier(3)).fit(
            small, y),
        "linear": LogisticRegression().fit(X, y),
        "linear-scaled": make_pipeline(StandardScaler(), LogisticRegression()).fit(small, y),
        "ridge-scaled": make_pipeline(MaxAbsScaler(), Ridge()).fit(small, X[:, 0]),
        "tree": DecisionTreeClassifier(max_depth=5, random_state=0).fit(X, y),
        "tree-scaled": make_pipeline(StandardScaler(), DecisionTreeClassifier(
            max_depth=5, random_state=0)).fit(small, y),
        "forest": RandomForestRegressor(8, max_depth=5, random_state=0).fit(X, X[:, 0]),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built = {n: build(e, n, sha256="0", source=n) for n, e in fitted.items()}
    for name, m in built.items():
        assert m.fast is not None, f"{name}: no fast path"
    return built


def fishpredict_verdict(m: LoadedModel, X: np.ndarray) -> Any:
    try:
        rows = rowslib.from_array(m.signature, X)
        answer = Job(m, rows).run()
    except InvalidInputError:
        return "refused"
    if answer.codes is not None:
        return [m.info.classes[c] for c in answer.codes]
    return np.asarray(answer.values, dtype=np.float64).tolist()


def sklearn_verdict(m: LoadedModel, X: np.ndarray) -> Any:
    try:
        out = m.estimator.predict(X)
    except ValueError:
        return "refused"
    return [v.item() for v in np.asarray(out)] if m.is_classifier else \
        np.asarray(out, dtype=np.float64).tolist()


def same(a: Any, b: Any) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return bool(a == b)
    return bool(np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object))
                or np.array_equal(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                                  equal_nan=True))


@pytest.mark.parametrize("name", ["knn", "knn-scaled", "knn-minmax", "linear",
                                  "linear-scaled", "ridge-scaled", "tree", "tree-scaled",
                                  "forest"])
@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(values=row)
def test_fast_path_and_estimator_agree_or_both_refuse(name: str, values: list[float]) -> None:
    m = models()[name]
    one = np.array([values], dtype=np.float64)
    batch = np.vstack([one, np.full((1, D), 0.25), one])
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for X in (one, batch):
            ours, theirs = fishpredict_verdict(m, X), sklearn_verdict(m, X)
            assert same(ours, theirs), (name, values, ours, theirs)


def test_load_time_check_covers_the_edges() -> None:
    """The edge rows of the load-time check are what these properties exercise."""
    from fishpredict.models.fastpaths import checks

    m = models()["linear-scaled"]
    assert m.fast is not None
    X = checks.edge_rows(m.fast, np.zeros((1, D)))
    assert (np.abs(X) >= 1e308).any() and (np.abs(X) > 3.4028235e38).any()
    assert checks.count_edge_wrong(m.fast, m.estimator, X) == 0
