"""The plain-float one-row scorer of linear classifiers (fishpredict/models/fastpaths/linear.py
``_RowScores``): the class of one row is scikit-learn's for that row, rows on the decision
boundary included (there it declines, and numpy's (1, d) product decides); scalers are
replayed bit for bit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_iris, make_classification
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler
from sklearn.svm import LinearSVC

from fishpredict.models import fastpaths
from fishpredict.models.fastpaths import base, linear


def _iris() -> tuple[np.ndarray, np.ndarray]:
    return load_iris(return_X_y=True)  # type: ignore[return-value]


def _wide() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(300, 70, n_informative=10, n_classes=3, random_state=0)
    return X, y


CASES: dict[str, Any] = {
    "std-logistic": (lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
                     _iris),
    "minmax-clip-std-logistic": (lambda: make_pipeline(
        MinMaxScaler(clip=True), StandardScaler(with_mean=False),
        LogisticRegression(max_iter=500)), _iris),
    "maxabs-sgd": (lambda: make_pipeline(MaxAbsScaler(), SGDClassifier(random_state=0)), _iris),
    "bare-binary": (lambda: LogisticRegression(max_iter=500), lambda: (_iris()[0],
                                                                       _iris()[1] == 1)),
    "svc": (lambda: LinearSVC(), _iris),
    "wide": (lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
                    _wide),
}
_FITTED: dict[str, tuple[Any, linear.LinearClassifier, np.ndarray]] = {}


def fitted(case: str) -> tuple[Any, linear.LinearClassifier, np.ndarray]:
    if case not in _FITTED:
        make, data = CASES[case]
        X, y = data()
        est = make().fit(X, y)
        fast = fastpaths.compile(est)
        assert isinstance(fast, linear.LinearClassifier)
        _FITTED[case] = (est, fast, np.asarray(X, dtype=np.float64))
    return _FITTED[case]


def truth(est: Any, row: np.ndarray) -> int:
    return int(np.searchsorted(est.classes_, est.predict(row[None])[0]))


def test_the_written_out_and_the_looped_scorer_agree() -> None:
    """A model past ROW_CODE_TERMS is scored in loops over lists: the same answers."""
    est, _, X = fitted("wide")
    steps = base.row_steps(est)
    assert steps is not None
    coef, intercept = est[-1].coef_.tolist(), est[-1].intercept_.tolist()
    looped = linear._looped(coef, intercept, steps, 1e-12, 1e-300)
    written = linear._written(coef, intercept, steps, 1e-12, 1e-300)
    rows = np.vstack([X, np.random.default_rng(1).normal(0, 3, X.shape)])
    assert [looped(r) for r in rows.tolist()] == [written(r) for r in rows.tolist()]
    assert all(written(r) is not None for r in rows.tolist()[:50])


@pytest.mark.parametrize("case", sorted(CASES))
def test_boundary_rows_decline_or_agree(case: str) -> None:
    est, fast, X = fitted(case)
    rng = np.random.default_rng(3)
    raw = rng.uniform(X.min(axis=0) - 1, X.max(axis=0) + 1, (200, X.shape[1]))
    Z = raw if fast._pre is None else fast._pre(raw)
    on = linear.boundary_rows(fast, Z)
    rows = on if fast._pre is None else est[:-1].inverse_transform(on)
    declined = 0
    for r in np.vstack([raw, rows]):
        code = fast._row.code(r.tolist())
        declined += code is None
        assert fast.predict_row(r.tolist()) == truth(est, r)
    assert declined > 0  # rows on the boundary (clipping moves some off it): declined


@pytest.mark.parametrize("case", sorted(CASES))
@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_any_row_as_scikit_learn(case: str, data: st.DataObject) -> None:
    est, fast, X = fitted(case)
    scale = data.draw(st.sampled_from([1.0, 10.0, 1e6, 1e150, 1e300]))
    row = np.array([data.draw(st.floats(-scale, scale)) for _ in range(X.shape[1])])
    with np.errstate(all="ignore"):
        assert fast.predict_row(row.tolist()) == truth(est, row)


def test_scalers_are_replayed_bit_for_bit() -> None:
    for case in ("std-logistic", "minmax-clip-std-logistic", "maxabs-sgd"):
        est, _, X = fitted(case)
        chain = base.row_chain(est)
        assert chain is not None and chain[0] is not None
        rows = np.random.default_rng(0).uniform(-50, 50, (500, X.shape[1]))
        want = est[:-1].transform(rows)
        got = np.array([chain[0](r) for r in rows.tolist()])
        assert np.array_equal(want, got), case
