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

import builtins
import math
from collections.abc import Callable
from operator import mul
from typing import Any, Final

import numpy as np

from fishpredict.models.fastpaths.base import (
    FloatArray,
    IntArray,
    NotFinite,
    RowStep,
    Transform,
    ask,
    chain,
    codes_of,
    row_chain_of,
    row_steps,
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
                 estimator: Any = None, row: list[list[RowStep]] | None = None) -> None:
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
        self._row = _RowScores(coef, final.intercept_, row)

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
        with np.errstate(over="ignore"):  # scores past float64: inf, as scikit-learn's are
            s = row @ self._w + self._b
        if self._binary:
            return 1 if s.item() > 0 else 0  # .item(): one value, (1,) or (1, 1)
        return int(s.argmax())

    def predict_row(self, row: list[float]) -> int:
        """One finite row as Python floats: scores in plain floats where rounding cannot
        change the answer (see :class:`_RowScores`), else :meth:`predict_one`."""
        code = self._row.code(row)
        return code if code is not None else self.predict_one(np.array(row, dtype=np.float64))

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


#: most coefficients a one-row scorer is written out for (beyond: loops over lists)
ROW_CODE_TERMS: Final = 4096


class _RowScores:
    """One row's scores ``w . z + b`` in Python floats, answered only when no rounding
    can change the class.

    Any evaluation of a dot product of ``d`` terms plus the intercept, in any order and
    with or without fused multiply-adds (a BLAS kernel's, or this one's), is within
    ``(d + 1) u / (1 - (d + 1) u) * (sum |w_i z_i| + |b|)`` of the exact value (``u``
    the unit roundoff), and ``sum |w_i z_i| <= |w| |z|``; the slack used here is more
    than twice that bound. When the best score leads every other by more than both
    their slacks (two classes: the score's distance from 0 is more than its slack),
    the estimator's own scores order the classes the same way: the answer is the same
    class. Otherwise :meth:`code` returns None and the numpy path decides.

    The scalers are replayed elementwise in Python floats, the very operations of
    their ``transform`` (:func:`~fishpredict.models.fastpaths.base.row_steps`), so
    the final step sees the same bits. For a model of up to :data:`ROW_CODE_TERMS`
    coefficients, scalers and scores are written out once as one Python function with
    the constants in it (``repr`` of a float reads back to the same float).
    """

    def __init__(self, coef: FloatArray, intercept: Any,
                 steps: list[list[RowStep]] | None) -> None:
        rows = np.atleast_2d(np.asarray(coef, dtype=np.float64))
        b = np.broadcast_to(np.asarray(intercept, dtype=np.float64), (rows.shape[0],))
        finite = all(np.isfinite(v).all() for ops in steps or () for _, v in ops)
        ok = steps is not None and finite and bool(
            np.isfinite(rows).all() and np.isfinite(b).all())
        d = rows.shape[1]
        factor = 2.0 * (d + 2) * float(np.finfo(np.float64).eps)
        wnorm = np.sqrt((rows * rows).sum(axis=1)) * 1.01
        #: a score's slack is at most ``a * |z| + c`` (every class's, at once)
        a = float(factor * wnorm.max())
        c = float(factor * np.abs(b).max()) + 1e-300
        #: ``code(row)``: the class, or None when numpy must decide
        self.code: Callable[[list[float]], int | None] = _declines
        if ok and steps is not None:
            make = _written if rows.size <= ROW_CODE_TERMS else _looped
            self.code = make(rows.tolist(), b.tolist(), steps, a, c)


def _declines(row: list[float]) -> int | None:
    return None


def _written(w: list[list[float]], b: list[float], steps: list[list[RowStep]], a: float,
             c: float) -> Callable[[list[float]], int | None]:
    """:class:`_RowScores`' decision written out as one Python function: the scalers'
    operations, the norm, each class's score, the bound, with the constants in it."""
    d = len(w[0])
    lines = ["def code(x):", f"    {', '.join(f'z{j}' for j in range(d))}, = x"]
    sign = {"sub": "-", "div": "/", "mul": "*", "add": "+"}
    for ops in steps:
        for op, values in ops:
            for j in range(d):
                if op == "clip":
                    lo, hi = values
                    lines.append(f"    z{j} = min(max(z{j}, {lo!r}), {hi!r})")
                else:
                    lines.append(f"    z{j} = z{j} {sign[op]} {float(values[j])!r}")
        # a scaler whose output overflows: the estimator's verdict (it refuses infinity)
        finite = " and ".join(f"-inf < z{j} < inf" for j in range(d))
        lines += [f"    if not ({finite}):", "        return None"]
    lines += [f"    norm = sqrt({' + '.join(f'z{j} * z{j}' for j in range(d))})",
              "    if not norm < 1e150:", "        return None",
              f"    err = {a!r} * norm + {c!r}"]
    scores = [" + ".join([*(f"{float(k)!r} * z{j}" for j, k in enumerate(row)),
                          repr(float(i))]) for row, i in zip(w, b, strict=True)]
    if len(scores) == 1:
        lines += [f"    s = {scores[0]}", "    return 1 if s > err else 0 if s < -err else None"]
    else:
        lines += [f"    s = [{', '.join(scores)}]", "    o = sorted(s)",
                  "    if not o[-1] - o[-2] > 2.0 * err:", "        return None",
                  "    return s.index(o[-1])"]
    namespace: dict[str, Any] = {"sqrt": math.sqrt, "inf": math.inf}
    exec(builtins.compile("\n".join(lines), "<linear row>", "exec"), namespace)
    return namespace["code"]  # type: ignore[no-any-return]


def _looped(w: list[list[float]], b: list[float], steps: list[list[RowStep]], a: float,
            c: float) -> Callable[[list[float]], int | None]:
    """:func:`_written`'s decision for a model too big to write out: loops over lists."""
    scalers = [t for t in (row_chain_of([ops]) for ops in steps) if t is not None]
    binary = len(w) == 1

    def code(x: list[float]) -> int | None:
        z = x
        for scale in scalers:
            z = scale(z)
            if not all(-math.inf < v < math.inf for v in z):
                return None  # the scaler overflowed: the estimator's verdict
        norm = math.sqrt(sum(map(mul, z, z)))
        if not norm < 1e150:
            return None
        err = a * norm + c
        s = [sum(map(mul, k, z)) + i for k, i in zip(w, b)]  # noqa: B905
        if binary:
            return 1 if s[0] > err else 0 if s[0] < -err else None
        o = sorted(s)
        if not o[-1] - o[-2] > 2.0 * err:
            return None
        return s.index(o[-1])

    return code


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

    def predict_row(self, row: list[float]) -> float:
        """One row as Python floats (values keep the BLAS kernel's bits: numpy answers)."""
        return self.predict_one(np.array(row, dtype=np.float64))

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
    return LinearClassifier(final, pre, _proba_kind(final, kind), estimator, row_steps(estimator))


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
