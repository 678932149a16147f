"""Trees and forests: the fast path answers exactly what scikit-learn answers, rows on
split thresholds, exact vote ties and float32 rounding included."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import datasets
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from fishpredict.errors import ModelRefusedError
from fishpredict.models import fastpaths
from fishpredict.models.fastpaths import checks, trees

ROWS = 20_000


def wine() -> tuple[np.ndarray, np.ndarray]:
    return datasets.load_wine(return_X_y=True)


def diabetes() -> tuple[np.ndarray, np.ndarray]:
    return datasets.load_diabetes(return_X_y=True)


def probe(fast: trees.Trees, estimator: object, X: np.ndarray, n: int = ROWS) -> np.ndarray:
    """Random rows over the data's range plus the check set's threshold rows."""
    rng = np.random.default_rng(0)
    lo, hi = X.min(axis=0), X.max(axis=0)
    rand = rng.uniform(lo, hi, (n, X.shape[1]))
    return np.vstack([rand, checks.check_rows(fast, estimator, seed=1)])


def codes(est: object, X: np.ndarray) -> np.ndarray:
    return np.searchsorted(est.classes_, est.predict(X))  # type: ignore[attr-defined]


CLASSIFIERS = [
    DecisionTreeClassifier(random_state=0),
    DecisionTreeClassifier(max_depth=4, random_state=0),
    RandomForestClassifier(30, random_state=0),
    ExtraTreesClassifier(30, random_state=0),
    make_pipeline(StandardScaler(), RandomForestClassifier(10, random_state=0)),
]
REGRESSORS = [
    DecisionTreeRegressor(random_state=0),
    RandomForestRegressor(30, random_state=0),
    ExtraTreesRegressor(30, random_state=0),
]


@pytest.mark.parametrize("est", CLASSIFIERS, ids=lambda e: type(e).__name__)
def test_classifiers_match_on_random_and_threshold_rows(est: object) -> None:
    X, y = wine()
    est.fit(X, y)  # type: ignore[attr-defined]
    fast = fastpaths.compile(est)
    assert isinstance(fast, trees.Trees)
    Q = probe(fast, est, X)
    assert np.array_equal(fast.predict(Q), codes(est, Q))
    proba = est.predict_proba(Q)  # type: ignore[attr-defined]
    assert np.abs(fast.predict_proba(Q) - proba).max() <= 1e-12
    want = codes(est, Q)
    ones = [fast.predict_one(Q[i]) for i in range(0, len(Q), 37)]
    assert ones == list(want[::37])
    assert fastpaths.verify(fast, est) == 0


@pytest.mark.parametrize("est", REGRESSORS, ids=lambda e: type(e).__name__)
def test_regressors_match_bit_for_bit(est: object) -> None:
    X, y = diabetes()
    est.fit(X, y)  # type: ignore[attr-defined]
    fast = fastpaths.compile(est)
    assert isinstance(fast, trees.Trees) and fast.task == "regressor"
    Q = probe(fast, est, X)
    want = est.predict(Q)  # type: ignore[attr-defined]
    assert np.array_equal(fast.predict(Q), want)
    ones = np.array([fast.predict_one(Q[i]) for i in range(0, len(Q), 41)])
    assert np.array_equal(ones, want[::41])
    assert np.array_equal(fast.predict(Q[5:6]), want[5:6])


def test_the_sum_order_matters_and_is_scikit_learns() -> None:
    """Summing the trees in another order changes some answers' last bits: the fast
    path's order is the one scikit-learn uses."""
    X, y = diabetes()
    est = RandomForestRegressor(40, random_state=0).fit(X, y / 7.0)  # inexact sums
    fast = fastpaths.compile(est)
    assert isinstance(fast, trees.Trees)
    Q = probe(fast, est, X, 5000)
    Z32 = Q.astype(np.float32)
    per_tree = np.array([t.predict(Z32) for t in est.estimators_])
    backwards = np.zeros(len(Q))
    for p in per_tree[::-1]:
        backwards += p
    backwards /= len(per_tree)
    want = est.predict(Q)
    assert np.count_nonzero(backwards != want) > 0
    assert np.array_equal(fast.predict(Q), want)


def test_exact_vote_ties_break_as_scikit_learn() -> None:
    """Four fully grown trees on noisy labels: many rows get two votes each, an exact
    0.5/0.5 tie that argmax breaks towards the first class."""
    rng = np.random.default_rng(3)
    X = rng.uniform(0, 10, (300, 3))
    y = rng.integers(0, 2, 300)
    est = RandomForestClassifier(4, random_state=0).fit(X, y)
    fast = fastpaths.compile(est)
    assert isinstance(fast, trees.Trees)
    Q = rng.uniform(0, 10, (ROWS, 3))
    proba = est.predict_proba(Q)
    assert np.count_nonzero(proba[:, 0] == proba[:, 1]) > 100
    assert np.array_equal(fast.predict(Q), codes(est, Q))
    tied = np.flatnonzero(proba[:, 0] == proba[:, 1])[:200]
    assert [fast.predict_one(Q[i]) for i in tied] == [0] * len(tied)


def test_float32_cut_points_decide_like_scikit_learn() -> None:
    """Rows between a threshold and its float32 rounding: a float64 comparison with the
    threshold would differ there; the cut points do not."""
    X, y = wine()
    est = DecisionTreeClassifier(random_state=0).fit(X, y)
    fast = fastpaths.compile(est)
    assert isinstance(fast, trees.Trees)
    t = est.tree_
    split = np.flatnonzero(t.children_left >= 0)
    rng = np.random.default_rng(0)
    rows, naive_differs = [], 0
    for node in split:
        f, thr = t.feature[node], t.threshold[node]
        c = trees.cut_points(np.array([thr]))[0]
        for v in (c, np.nextafter(c, np.inf), np.nextafter(c, -np.inf), thr):
            r = X[rng.integers(len(X))].copy()
            r[f] = v
            rows.append(r)
            naive_differs += int((v <= thr) != (np.float32(v) <= thr))
    Q = np.array(rows)
    assert naive_differs > 0
    want = codes(est, Q)
    assert np.array_equal(fast.predict(Q), want)
    assert [fast.predict_one(r) for r in Q] == list(want)


def test_cut_points_are_the_float32_boundary() -> None:
    rng = np.random.default_rng(1)
    t = np.concatenate([rng.normal(0, 1, 2000) * 10.0 ** rng.integers(-40, 38, 2000),
                        [0.0, -0.0, 1e-50, -1e-50, 3.4e38, -3.4e38]])
    c = trees.cut_points(t)
    assert (c.astype(np.float32) <= t).all()
    assert (np.nextafter(c, np.inf).astype(np.float32) > t).all()


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # sklearn's
def test_values_that_overflow_float32_are_refused_as_scikit_learn_refuses_them() -> None:
    X, y = wine()
    est = RandomForestClassifier(5, random_state=0).fit(X, y)
    fast = fastpaths.compile(est)
    assert fast is not None
    row = X[:2].copy()
    row[1, 3] = 1e39
    with pytest.raises(ValueError):
        est.predict(row)
    with pytest.raises(ModelRefusedError):
        fast.predict(row)
    with pytest.raises(ModelRefusedError, match="row 0"):
        fast.predict_one(row[1])
    big = X[0].copy()
    big[0] = 3e38  # within float32: norm past the quick check, answered by the estimator
    assert fast.predict_one(big) == codes(est, big[None])[0]


def test_threaded_forests() -> None:
    """n_jobs > 1: scikit-learn's sum order varies, so regressors get no fast path and
    classifiers hand near-tied votes to the estimator."""
    X, y = wine()
    assert fastpaths.compile(RandomForestRegressor(5, n_jobs=2).fit(X, y)) is None
    est = RandomForestClassifier(4, n_jobs=2, random_state=0).fit(X, y)
    fast = fastpaths.compile(est)
    assert isinstance(fast, trees.Trees) and fast._guard
    Q = probe(fast, est, X, 3000)
    assert [fast.predict_one(q) for q in Q[::50]] == list(codes(est, Q[::50]))
    assert np.array_equal(fast.predict(Q), codes(est, Q))


@pytest.mark.parametrize("est", [
    GradientBoostingClassifier(n_estimators=5),
    DecisionTreeRegressor(),  # fitted on two targets below
])
def test_uncovered_models_get_no_fast_path(est: object) -> None:
    X, y = wine()
    target = np.column_stack([y, y]) if isinstance(est, DecisionTreeRegressor) else y
    est.fit(X, target)  # type: ignore[attr-defined]
    assert fastpaths.compile(est) is None


@pytest.mark.parametrize("limits", [(40_000, 400_000), (0, 400_000), (0, 0)],
                         ids=["vector", "walk", "apply"])
def test_every_one_row_strategy(limits: tuple[int, int], monkeypatch: pytest.MonkeyPatch
                                ) -> None:
    monkeypatch.setattr(trees, "VECTOR_MAX_NODES", limits[0])
    monkeypatch.setattr(trees, "WALK_MAX_NODES", limits[1])
    X, y = wine()
    for est in (RandomForestClassifier(8, random_state=0).fit(X, y),
                RandomForestRegressor(8, random_state=0).fit(X, y / 3.0),
                DecisionTreeClassifier(random_state=0).fit(X, y)):
        fast = fastpaths.compile(est)
        assert isinstance(fast, trees.Trees)
        Q = probe(fast, est, X, 2000)[::7]
        want = est.predict(Q)
        if isinstance(est, RandomForestRegressor):
            assert np.array_equal([fast.predict_one(q) for q in Q], want)
        else:
            assert [fast.predict_one(q) for q in Q] == list(codes(est, Q))
        assert fastpaths.verify(fast, est) == 0
        # only a forest that walks tree by tree asks the server to batch its one-row jobs
        assert fast.prefers_batches == (fast.family == "forest" and limits[0] == 0)


def test_a_sabotaged_tree_is_caught_by_the_check() -> None:
    X, y = wine()
    est = DecisionTreeClassifier(random_state=0).fit(X, y)
    fast = fastpaths.compile(est)
    assert isinstance(fast, trees.Trees) and fastpaths.verify(fast, est) == 0
    wrong = fast._arrays[3] + 1e-3  # one-row walks now go left too often
    fast._walk = (*fast._walk[:4], wrong.data)
    assert fastpaths.verify(fast, est) > 0
