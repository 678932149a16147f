"""KNN of any width: the fast path answers exactly what scikit-learn answers, distance
ties at the k-th neighbour, duplicate points and distance weights included."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import datasets
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from fishpredict.fish import training as artifacts
from fishpredict.models import fastpaths
from fishpredict.models.fastpaths import checks, knn


def tie_world(d: int = 3, classes: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training points on a small integer grid (duplicates, random labels) and queries
    on the half-grid: most queries have several points at exactly the k-th distance."""
    rng = np.random.default_rng(11 + d)
    X = rng.integers(0, 4, (70, d)).astype(np.float64)
    y = rng.integers(0, classes, 70)
    axes = np.meshgrid(*[np.arange(9) / 2.0] * d)
    queries = np.column_stack([a.ravel() for a in axes])
    return X, y, queries


def codes(est: object, X: np.ndarray) -> np.ndarray:
    return np.searchsorted(est.classes_, est.predict(X))  # type: ignore[attr-defined]


def naive(fast: knn.Knn, X: np.ndarray) -> np.ndarray:
    """A fast path without tie handling: the first k by a stable sort."""
    d = fast._dist(X)
    idx = np.argsort(d, axis=1, kind="stable")[:, : fast.k]
    return np.argmax(fast._one_hot[idx].sum(axis=1), axis=1)


@pytest.mark.parametrize("algorithm", ["brute", "kd_tree", "ball_tree"])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("p", [1, 2])
def test_grid_ties_match_sklearn(algorithm: str, k: int, p: int) -> None:
    X, y, queries = tie_world()
    est = KNeighborsClassifier(n_neighbors=k, algorithm=algorithm, p=p).fit(X, y)
    fast = fastpaths.compile(est)
    assert isinstance(fast, knn.Knn)
    want = codes(est, queries)
    assert np.array_equal(fast.predict(queries), want)
    assert [fast.predict_one(q) for q in queries[::5]] == [
        codes(est, q[None])[0] for q in queries[::5]]


def test_the_grid_has_teeth() -> None:
    X, y, queries = tie_world()
    differ = 0
    for k in (2, 3, 4, 5, 6):
        est = KNeighborsClassifier(n_neighbors=k, algorithm="kd_tree").fit(X, y)
        fast = fastpaths.compile(est)
        assert isinstance(fast, knn.Knn)
        differ += int(np.count_nonzero(naive(fast, queries) != codes(est, queries)))
    assert differ > 0


@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("algorithm", ["brute", "kd_tree"])
def test_three_classes_four_features(weights: str, algorithm: str) -> None:
    X, y, queries = tie_world(d=4, classes=3)
    for k in (1, 3, 5, 7):
        est = KNeighborsClassifier(k, weights=weights, algorithm=algorithm).fit(X, y)
        fast = fastpaths.compile(est)
        assert isinstance(fast, knn.Knn)
        assert np.array_equal(fast.predict(queries), codes(est, queries))


@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("k", [1, 7])  # k=1 uniform: the two-minimums batch path
def test_iris_on_large_random_inputs(weights: str, p: int, k: int) -> None:
    X, y = datasets.load_iris(return_X_y=True)
    est = KNeighborsClassifier(k, weights=weights, p=p).fit(X, y)
    fast = fastpaths.compile(est)
    assert isinstance(fast, knn.Knn)
    rng = np.random.default_rng(4)
    Q = np.vstack([rng.uniform(X.min(0) - 1, X.max(0) + 1, (20_000, 4)), X,
                   np.round(rng.uniform(X.min(0), X.max(0), (5000, 4)), 1)])
    want = codes(est, Q)
    assert np.array_equal(fast.predict(Q), want)
    if fast.has_proba:
        assert np.abs(fast.predict_proba(Q) - est.predict_proba(Q)).max() <= 1e-12
    assert fastpaths.verify(fast, est) == 0


@pytest.mark.parametrize("scaler", [StandardScaler, MinMaxScaler])
def test_scaled_wide_data(scaler: type) -> None:
    X, y = datasets.load_breast_cancer(return_X_y=True)
    est = make_pipeline(scaler(), KNeighborsClassifier(5)).fit(X, y)
    fast = fastpaths.compile(est)
    assert isinstance(fast, knn.Knn) and fast.n_features == 30
    rng = np.random.default_rng(5)
    Q = rng.uniform(X.min(0), X.max(0), (3000, 30))
    assert np.array_equal(fast.predict(Q), codes(est, Q))
    assert [fast.predict_one(q) for q in Q[:200]] == list(codes(est, Q[:200]))


@pytest.mark.parametrize("k", [1, 5, 25, 49])
def test_the_fish_models(k: int) -> None:
    est = artifacts.train(k)
    fast = fastpaths.compile(est)
    assert isinstance(fast, knn.Knn)
    assert fastpaths.verify(fast, est) == 0
    Q = checks.check_rows(fast, est, seed=k)
    assert np.array_equal(fast.predict(Q), codes(est, Q))


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("k", [1, 5])
def test_huge_values_match_sklearn_without_warnings(k: int) -> None:
    est = artifacts.train(k)
    fast = fastpaths.compile(est)
    assert fast is not None
    X = np.array([[1e308, 1e308], [1e200, 5.0], [30.0, 600.0], [1e154, 1e154], [0.0, 1e160]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's own overflow warnings
        want = codes(est, X)
        ours = fast.predict(X)
        ones = [fast.predict_one(x) for x in X]
    assert list(ours) == list(want) == ones


@pytest.mark.parametrize("est", [
    KNeighborsClassifier(3, metric="chebyshev"),
    KNeighborsClassifier(3, p=3),
    KNeighborsClassifier(3, weights=lambda d: np.ones_like(d)),
], ids=["chebyshev", "p3", "callable-weights"])
def test_uncovered_models_get_no_fast_path(est: KNeighborsClassifier) -> None:
    X, y = datasets.load_iris(return_X_y=True)
    assert fastpaths.compile(est.fit(X, y)) is None


def test_large_training_sets_batch_through_sklearn() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 8))
    y = (X[:, 0] > 0).astype(int)
    est = KNeighborsClassifier(5).fit(X, y)
    fast = fastpaths.compile(est)
    assert isinstance(fast, knn.Knn)
    asked: list[int] = []

    class Spy:
        classes_ = est.classes_

        def predict(self, rows: np.ndarray) -> np.ndarray:
            asked.append(len(rows))
            return est.predict(rows)

    fast.fallback = Spy()
    Q = rng.normal(size=(2000, 8))
    assert np.array_equal(fast.predict(Q), codes(est, Q))
    assert asked == [2000]  # past BATCH_MAX_WORK the whole batch is scikit-learn's
    asked.clear()
    assert fast.predict_one(Q[0]) == codes(est, Q[:1])[0] and asked == []


def test_a_sabotaged_knn_is_caught_by_the_check() -> None:
    est = artifacts.train(5)
    fast = fastpaths.compile(est)
    assert isinstance(fast, knn.Knn) and fastpaths.verify(fast, est) == 0
    fast._one_hot = fast._one_hot[:, ::-1].copy()
    assert fastpaths.verify(fast, est) > 0
