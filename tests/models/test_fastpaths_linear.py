"""Linear models, bare and behind scalers: the fast path's answers are scikit-learn's,
bit for bit, on large random inputs and on rows sitting on the decision boundary."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import datasets
from sklearn.linear_model import (
    LinearRegression,
    LogisticRegression,
    Ridge,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, PolynomialFeatures, StandardScaler
from sklearn.svm import SVC, LinearSVC, LinearSVR

from fishpredict.models import fastpaths
from fishpredict.models.fastpaths import linear

ROWS = 20_000


def fitted(est: object, X: np.ndarray, y: np.ndarray) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings
        return est.fit(X, y)  # type: ignore[attr-defined]


def rows(X: np.ndarray, n: int = ROWS, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lo, hi = X.min(axis=0), X.max(axis=0)
    span = hi - lo
    return rng.uniform(lo - 0.5 * span, hi + 0.5 * span, (n, X.shape[1]))


def codes(est: object, X: np.ndarray) -> np.ndarray:
    return np.searchsorted(est.classes_, est.predict(X))  # type: ignore[attr-defined]


CLASSIFIERS = {
    "logistic-binary": (LogisticRegression(max_iter=3000), "cancer"),
    "logistic-multinomial": (LogisticRegression(max_iter=3000), "wine"),
    "sgd-hinge": (SGDClassifier(random_state=0), "wine"),
    "sgd-log": (SGDClassifier(loss="log_loss", random_state=0), "cancer"),
    "sgd-log-multiclass": (SGDClassifier(loss="log_loss", random_state=0), "wine"),
    "linear-svc": (LinearSVC(), "wine"),
    "standard-logistic": (make_pipeline(StandardScaler(), LogisticRegression()), "wine"),
    "minmax-logistic": (make_pipeline(MinMaxScaler(), LogisticRegression()), "cancer"),
    "maxabs-svc": (make_pipeline(MaxAbsScaler(), LinearSVC()), "wine"),
    "two-scalers": (make_pipeline(StandardScaler(), MinMaxScaler(clip=True),
                                  LogisticRegression()), "wine"),
}
REGRESSORS = {
    "linear": LinearRegression(),
    "ridge": Ridge(alpha=0.3),
    "sgd": make_pipeline(StandardScaler(), SGDRegressor(random_state=0)),
    "linear-svr": make_pipeline(StandardScaler(), LinearSVR(max_iter=5000)),
    "no-intercept": LinearRegression(fit_intercept=False),
}


def data(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "cancer":
        return datasets.load_breast_cancer(return_X_y=True)
    return datasets.load_wine(return_X_y=True)


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_classifiers_match(name: str) -> None:
    est, which = CLASSIFIERS[name]
    X, y = data(which)
    fitted(est, X, y)
    fast = fastpaths.compile(est)
    assert isinstance(fast, linear.LinearClassifier)
    Q = rows(X)
    assert np.array_equal(fast.predict(Q), codes(est, Q))
    for i in range(0, len(Q), 97):  # one row: the same (1, d) product scikit-learn does
        assert fast.predict_one(Q[i]) == codes(est, Q[i : i + 1])[0]
    if hasattr(est, "predict_proba") and fast.has_proba:
        assert np.abs(fast.predict_proba(Q) - est.predict_proba(Q)).max() <= 1e-12
    assert fastpaths.verify(fast, est) == 0


@pytest.mark.parametrize("name", ["logistic-binary", "logistic-multinomial", "sgd-hinge"])
def test_rows_on_the_decision_boundary_match(name: str) -> None:
    est, which = CLASSIFIERS[name]
    X, y = data(which)
    fitted(est, X, y)
    fast = fastpaths.compile(est)
    assert isinstance(fast, linear.LinearClassifier)
    base = rows(X, 3000, seed=2)
    on = linear.boundary_rows(fast, base)
    scale = np.abs(est.decision_function(base)).max()  # type: ignore[attr-defined]
    scores = est.decision_function(on).reshape(len(on), -1)  # type: ignore[attr-defined]
    if scores.shape[1] == 1:
        near = np.abs(scores[:, 0])
    else:  # rows of the c-th plane tie classes c and c + 1
        c = np.repeat(np.arange(scores.shape[1] - 1), len(on) // (scores.shape[1] - 1))
        near = np.abs(scores[np.arange(len(on)), c] - scores[np.arange(len(on)), c + 1])
    assert np.median(near) < 1e-9 * scale  # truly on the boundary
    assert np.array_equal(fast.predict(on), codes(est, on))
    assert [fast.predict_one(r) for r in on[:300]] == [codes(est, r[None])[0] for r in on[:300]]


@pytest.mark.parametrize("name", list(REGRESSORS))
def test_regressors_match_bit_for_bit(name: str) -> None:
    est = REGRESSORS[name]
    X, y = datasets.load_diabetes(return_X_y=True)
    fitted(est, X, y)
    fast = fastpaths.compile(est)
    assert isinstance(fast, linear.LinearRegressor)
    Q = rows(X)
    assert np.array_equal(fast.predict(Q), est.predict(Q))  # type: ignore[attr-defined]
    for i in range(0, len(Q), 211):
        assert fast.predict_one(Q[i]) == est.predict(Q[i : i + 1])[0]  # type: ignore[attr-defined]
        assert np.array_equal(fast.predict(Q[i : i + 1]), est.predict(Q[i : i + 1]))  # type: ignore[attr-defined]
    assert fastpaths.verify(fast, est) == 0


def test_a_batch_and_its_rows_can_differ_in_the_last_bits() -> None:
    """Why one row is scored as a (1, d) product: the BLAS answer depends on the shape."""
    X, y = datasets.load_diabetes(return_X_y=True)
    est = LinearRegression().fit(X, y)
    Q = rows(X, 3000)
    batch = est.predict(Q)
    alone = np.array([est.predict(Q[i : i + 1])[0] for i in range(len(Q))])
    fast = fastpaths.compile(est)
    assert fast is not None
    assert np.array_equal([fast.predict_one(q) for q in Q], alone)
    assert np.array_equal(fast.predict(Q), batch)
    if np.array_equal(batch, alone):
        pytest.skip("this BLAS gives the same bits for both shapes")


@pytest.mark.parametrize("est", [
    make_pipeline(PolynomialFeatures(2), LogisticRegression()),
    SVC(kernel="linear"),
    LinearRegression(),  # fitted on two targets below
], ids=["poly", "svc", "two-targets"])
def test_uncovered_models_get_no_fast_path(est: object) -> None:
    X, y = datasets.load_iris(return_X_y=True)
    target = np.column_stack([y, y]) if isinstance(est, LinearRegression) else y
    fitted(est, X, target)
    assert fastpaths.compile(est) is None


def test_a_sabotaged_linear_model_is_caught_by_the_check() -> None:
    X, y = data("wine")
    est = fitted(LogisticRegression(max_iter=3000), X, y)
    fast = fastpaths.compile(est)
    assert isinstance(fast, linear.LinearClassifier) and fastpaths.verify(fast, est) == 0
    fast._b = fast._b + np.array([0.0, 0.5, 0.0])
    assert fastpaths.verify(fast, est) > 0
