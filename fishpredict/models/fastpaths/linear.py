"""Linear models: logistic regression, linear and ridge regression, SGD, linear SVMs,
bare or behind scalers in a ``Pipeline``.

**Exactness.** scikit-learn's answer is ``X @ coef_.T + intercept_`` (classifiers:
then ``scores > 0`` for two classes, ``argmax`` for more). A matrix product's last
bits depend on the BLAS kernel chosen for the array's shape, so the same row can
score differently alone and inside a batch; the fast path therefore evaluates the
*same* expression on the *same* shapes as scikit-learn: a batch as one product,
one row as a ``(1, d)`` product, on the same coefficient arrays (not copies). After
the validation scikit-learn does (which leaves a C-contiguous float64 array as it is)
that is all its ``predict`` computes, so the answers are the same bits. A row whose
scaled values overflow (``1e308`` through a ``StandardScaler``) goes to the estimator,
which refuses it as scikit-learn's pipeline does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fishpredict.models.fastpaths.base import (
    FloatArray,
    IntArray,
    NotFinite,
    Transform,
    ask,
    chain,
    codes_of,
    unwrap,
)


def _types() -> dict[type, str]:
    from sklearn.linear_model import (
        LinearRegression,
        LogisticRegression,
        Ridge,
        SGDClassifier,
        SGDRegressor,
    )
    from sklearn.svm import LinearSVC, LinearSVR

    return {LogisticRegression: "logistic", SGDClassifier: "sgd", LinearSVC: "svc",
            LinearRegression: "regressor", Ridge: "regressor", SGDRegressor: "regressor",
            LinearSVR: "regressor"}


def _proba_kind(final: Any, kind: str) -> str | None:
    """How the final step computes probabilities: softmax, ovr (expit, normalized) or none."""
    if kind == "logistic":
        return "ovr" if len(final.classes_) <= 2 else "softmax"
    if kind == "sgd" and final.loss == "log_loss":
        return "ovr"
    return None


class LinearClassifier:
    """Scores ``X @ W + b`` (W the estimator's own ``coef_.T``) and their winner."""

    family = "linear"
    prefers_batches = False
    task = "classifier"

    def __init__(self, final: Any, pre: Transform | None, proba: str | None,
                 estimator: Any = None) -> None:
        self.fallback = final if estimator is None else estimator
        coef = final.coef_
        self._w = coef.T if coef.ndim == 2 else coef
        self._b = final.intercept_
        self._pre = pre
        self._binary = coef.ndim == 1 or coef.shape[0] == 1
        self._proba = proba
        self.n_features = int(coef.shape[-1])
        self.has_proba = proba is not None
        self.classes = np.asarray(final.classes_)

    def _scores(self, X: FloatArray) -> FloatArray:
        if self._pre is not None:
            X = self._pre(X)
        scores: FloatArray = X @ self._w + self._b
        if scores.ndim > 1 and scores.shape[1] == 1:
            scores = scores.reshape(-1)
        return scores

    def predict(self, X: FloatArray) -> IntArray:
        try:
            scores = self._scores(X)
        except NotFinite:
            return codes_of(self.classes, ask(self.fallback, "predict", X))
        if scores.ndim == 1:
            return (scores > 0).astype(np.intp)
        codes: IntArray = np.argmax(scores, axis=1).astype(np.intp, copy=False)
        return codes

    def predict_one(self, x: FloatArray) -> int:
        row = x.reshape(1, -1)
        if self._pre is not None:
            try:
                row = self._pre(row)
            except NotFinite:
                return int(codes_of(self.classes, ask(self.fallback, "predict", row))[0])
        s = row @ self._w + self._b
        if self._binary:
            return 1 if s.item() > 0 else 0  # .item(): one value, (1,) or (1, 1)
        return int(s.argmax())

    def predict_proba(self, X: FloatArray) -> FloatArray:
        try:
            scores = self._scores(X)
        except NotFinite:
            return np.asarray(ask(self.fallback, "predict_proba", X), dtype=np.float64)
        if self._proba == "softmax":
            return _softmax(scores)
        with np.errstate(over="ignore"):
            prob: FloatArray = 1.0 / (1.0 + np.exp(-scores))  # expit
        if prob.ndim == 1:
            return np.stack([1 - prob, prob], axis=1)
        total = prob.sum(axis=1)
        zero = total == 0
        if zero.any():  # as scikit-learn: all-zero rows become uniform
            prob[zero, :] = 1
            total[zero] = prob.shape[1]
        prob /= total.reshape((prob.shape[0], -1))
        return prob


def _softmax(scores: FloatArray) -> FloatArray:
    """scikit-learn's ``extmath.softmax``, same operations."""
    X = scores.copy()
    X -= np.max(X, axis=1).reshape((-1, 1))
    np.exp(X, X)
    X /= np.sum(X, axis=1).reshape((-1, 1))
    return X


class LinearRegressor:
    """``X @ coef_ + intercept_`` on the estimator's own arrays."""

    family = "linear"
    prefers_batches = False
    task = "regressor"
    has_proba = False

    def __init__(self, final: Any, pre: Transform | None, estimator: Any = None) -> None:
        self.fallback = final if estimator is None else estimator
        self._w = final.coef_
        self._b = final.intercept_
        self._pre = pre
        self.n_features = int(final.coef_.shape[0])

    def predict(self, X: FloatArray) -> FloatArray:
        if self._pre is not None:
            try:
                X = self._pre(X)
            except NotFinite:
                return np.asarray(ask(self.fallback, "predict", X), dtype=np.float64)
        out: FloatArray = X @ self._w + self._b
        return out

    def predict_one(self, x: FloatArray) -> float:
        return float(self.predict(x.reshape(1, -1))[0])

    def predict_proba(self, X: FloatArray) -> FloatArray:
        raise NotImplementedError("a regressor has no probabilities")


def compile(estimator: Any) -> LinearClassifier | LinearRegressor | None:
    """The fast path of a linear model (bare or behind scalers), or None."""
    parts = unwrap(estimator)
    if parts is None:
        return None
    scalers, final = parts
    kind = _types().get(type(final))
    coef = getattr(final, "coef_", None)
    if kind is None or not isinstance(coef, np.ndarray) or coef.dtype != np.float64:
        return None
    intercept = getattr(final, "intercept_", None)
    if not isinstance(intercept, (np.ndarray, float, int)):
        return None
    pre = chain(scalers)
    if kind == "regressor":
        if coef.ndim != 1 or np.ndim(intercept) > 1 or np.size(intercept) > 1:
            return None  # several targets: scikit-learn's path answers them
        if np.result_type(coef, intercept) != np.float64:
            return None
        return LinearRegressor(final, pre, estimator)
    classes = getattr(final, "classes_", None)
    if not isinstance(classes, np.ndarray) or classes.ndim != 1 or len(classes) < 2:
        return None
    if coef.ndim != 2 or coef.shape[0] != (1 if len(classes) == 2 else len(classes)):
        return None
    return LinearClassifier(final, pre, _proba_kind(final, kind), estimator)


def boundary_rows(fast: LinearClassifier | LinearRegressor, X: FloatArray) -> FloatArray:
    """Rows ``X`` (in the space the final step sees) moved onto the decision boundary:
    the score at zero (two classes) or two neighbouring classes' scores equal, where
    any rounding difference would show."""
    if not isinstance(fast, LinearClassifier):
        return X[:0]
    w = np.asarray(fast._w, dtype=np.float64)
    if w.ndim == 1:
        w = w[:, None]
    b = np.broadcast_to(np.asarray(fast._b, dtype=np.float64), (w.shape[1],))
    if w.shape[1] == 1:
        planes = [(w[:, 0], float(b[0]))]
    else:
        planes = [(w[:, c] - w[:, c + 1], float(b[c] - b[c + 1])) for c in range(w.shape[1] - 1)]
    out = []
    for col, bias in planes:
        norm = float(col @ col)
        if norm > 0:
            out.append(X - np.outer((X @ col + bias) / norm, col))
    return np.vstack(out) if out else X[:0]
