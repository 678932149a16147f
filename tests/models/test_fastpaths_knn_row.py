"""The plain-float KNN kernel and its grid (fishpredict/models/fastpaths/knn_row.py):
one row answers exactly what scikit-learn's ``predict`` answers for that row, on large
random rows, on training points and midpoints (distance ties), duplicates and
pipelines, for every k, both metrics and every search algorithm."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from fishpredict.fish import training
from fishpredict.fish.dataset import load_fish
from fishpredict.models import fastpaths
from fishpredict.models.fastpaths import knn, knn_row


def _fish() -> tuple[np.ndarray, np.ndarray]:
    data = load_fish()
    return data.X, data.y


def _ties(d: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points on a small integer grid: duplicates and equal distances everywhere."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 5, (60, d)).astype(np.float64), rng.integers(0, classes, 60)


CASES: dict[str, Any] = {
    "fish-k1": lambda: (training.train(1), *_fish()),
    "fish-k5": lambda: (training.train(5), *_fish()),
    "fish-k15": lambda: (training.train(15), *_fish()),
    "fish-k25": lambda: (training.train(25), *_fish()),
    "fish-k5-std": lambda: (training.train(5, scale="standard"), *_fish()),
    "ties-2d-brute": lambda: (KNeighborsClassifier(3, algorithm="brute"), *_ties(2, 2, 1)),
    "ties-2d-kd-manhattan": lambda: (KNeighborsClassifier(4, algorithm="kd_tree", p=1),
                                     *_ties(2, 3, 2)),
    "ties-1d": lambda: (KNeighborsClassifier(5), *_ties(1, 2, 3)),
    "ties-3d-ball": lambda: (KNeighborsClassifier(2, algorithm="ball_tree"), *_ties(3, 3, 4)),
    "ties-4d-no-grid": lambda: (KNeighborsClassifier(5), *_ties(4, 2, 5)),
    "ties-2d-minmax-clip": lambda: (
        make_pipeline(MinMaxScaler(clip=True), KNeighborsClassifier(3)), *_ties(2, 2, 6)),
    "ties-3d-std-brute": lambda: (
        make_pipeline(StandardScaler(), KNeighborsClassifier(6, algorithm="brute")),
        *_ties(3, 3, 7)),
}

_FITTED: dict[str, tuple[Any, knn.Knn, np.ndarray]] = {}


def fitted(case: str) -> tuple[Any, knn.Knn, np.ndarray]:
    if case not in _FITTED:
        est, X, y = CASES[case]()
        if not hasattr(est, "classes_"):
            est.fit(X, y)
        fast = fastpaths.compile(est)
        assert isinstance(fast, knn.Knn)
        _FITTED[case] = (est, fast, np.asarray(X, dtype=np.float64))
    return _FITTED[case]


def truth(est: Any, row: np.ndarray) -> int:
    return int(np.searchsorted(est.classes_, est.predict(row[None])[0]))


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_kernel_is_there_and_the_grid_where_it_should_be(case: str) -> None:
    _, fast, X = fitted(case)
    assert fast._row is not None
    assert (fast._row.cells is not None) == (X.shape[1] <= knn_row.GRID_FEATURES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_training_point_and_midpoint(case: str) -> None:
    est, fast, X = fitted(case)
    i, j = np.triu_indices(len(X), k=1)
    rows = np.vstack([X, (X[i] + X[j]) / 2])[:1500]
    want = np.searchsorted(est.classes_, est.predict(rows))  # one row at a time below
    got = [fast.predict_row(r.tolist()) for r in rows]
    differ = [n for n, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
    # a whole batch and one row may pick differently among tied points (brute force):
    # the rows that differ must each equal scikit-learn's answer for that row alone
    for n in differ:
        assert got[n] == truth(est, rows[n]), rows[n]


@st.composite
def queries(draw: st.DrawFn, X: np.ndarray) -> np.ndarray:
    d = X.shape[1]
    how = draw(st.sampled_from(["wide", "near", "point", "between", "huge"]))
    if how == "wide":
        lo, hi = X.min(axis=0), X.max(axis=0)
        span = np.maximum(hi - lo, 1.0)
        return np.array([draw(st.floats(float(a - 2 * s), float(b + 2 * s)))
                         for a, b, s in zip(lo, hi, span, strict=True)])
    i = draw(st.integers(0, len(X) - 1))
    if how == "point":
        return X[i].copy()
    if how == "between":
        j = draw(st.integers(0, len(X) - 1))
        return (X[i] + X[j]) / 2
    if how == "huge":
        return np.array([draw(st.floats(-1e200, 1e200)) for _ in range(d)])
    steps = draw(st.lists(st.integers(-3, 3), min_size=d, max_size=d))
    row = X[i].copy()
    for f, n in enumerate(steps):  # a few ulps away from a training point
        for _ in range(abs(n)):
            row[f] = np.nextafter(row[f], np.inf if n > 0 else -np.inf)
    return row


@pytest.mark.parametrize("case", sorted(CASES))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_row_as_scikit_learn(case: str, data: st.DataObject) -> None:
    est, fast, X = fitted(case)
    row = data.draw(queries(X))
    assert fast.predict_row(row.tolist()) == truth(est, row)


def test_a_unanimous_cell_answers_without_distances() -> None:
    est, fast, X = fitted("fish-k5")
    assert fast._row is not None and fast._row.cells is not None
    unanimous = sum(isinstance(c, int) for c in fast._row.cells)
    assert unanimous > len(fast._row.cells) // 2
    row = X[0].tolist()
    assert fast._row.predict(row) == truth(est, X[0])


def test_when_every_point_votes_the_row_is_the_majority_without_distances() -> None:
    est = training.train(49)
    fast = fastpaths.compile(est)
    assert isinstance(fast, knn.Knn) and fast._row is None
    X, _ = _fish()
    rows = np.vstack([X, X * 3.0, -X])
    want = np.searchsorted(est.classes_, est.predict(rows))
    assert [fast.predict_row(r.tolist()) for r in rows] == want.tolist()
