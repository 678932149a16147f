"""k-nearest-neighbours classifiers: any number of features, uniform or distance weights,
Euclidean or Manhattan distance, bare or behind scalers in a ``Pipeline``.

**Exactness.** With uniform weights scikit-learn answers the most common class among
the k nearest training points, a tied vote going to the smallest class; with distance
weights, the class of largest summed ``1 / distance`` (a query on a training point:
the classes of the points at distance 0). Which points are "the k nearest" is
ambiguous only at a *boundary tie*: the k-th and (k+1)-th distances (nearly) equal.
There scikit-learn's pick depends on its search (kd-tree, ball tree, brute force)
and on its rounding: brute-force Euclidean distances come from
``|x|^2 - 2 x.y + |y|^2``, off by up to a few ulps of ``|x|^2 + |y|^2``. The fast path
computes distances directly and treats any two within that error (and a relative
1e-9) as possibly swapped: a row whose vote could change with the swap, a weighted
vote within the weights' rounding, or a query (nearly) on a training point goes to
the estimator. Every other row's answer cannot depend on the rounding.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from fishpredict.models.fastpaths import knn_row
from fishpredict.models.fastpaths.base import (
    FloatArray,
    IntArray,
    NotFinite,
    Transform,
    ask,
    chain,
    codes_of,
    row_chain,
    unwrap,
)
from fishpredict.models.fastpaths.knn_row import TIE_RTOL

#: rows x training points per chunk of distances (stays in the CPU cache)
CHUNK_CELLS: Final = 1 << 17
#: training sets this small are always batched here
BATCH_MAX_TRAIN: Final = 64
#: past that, batches are computed here up to this many row x point x feature cells;
#: larger ones go to scikit-learn's tree, O(log m) per row
BATCH_MAX_WORK: Final = 4_000_000
#: largest training set (points x features) served by the fast path at all
ONE_MAX_WORK: Final = 65_536
_EPS: Final = float(np.finfo(np.float64).eps)
Bools = npt.NDArray[np.bool_]


def _metric(knn: Any) -> str | None:
    params = dict(knn.effective_metric_params_ or {})
    metric = knn.effective_metric_
    p = params.pop("p", None)
    if params:
        return None
    if metric == "euclidean" or (metric == "minkowski" and p == 2):
        return "euclidean"
    if metric in ("manhattan", "cityblock", "l1") or (metric == "minkowski" and p == 1):
        return "manhattan"
    return None


class Knn:
    """Exact k-nearest-neighbours votes for one fitted classifier."""

    family = "knn"
    prefers_batches = False
    task = "classifier"

    def __init__(self, estimator: Any, knn: Any, pre: Transform | None, metric: str) -> None:
        fit = np.ascontiguousarray(knn._fit_X, dtype=np.float64)
        self.fallback = estimator
        self.classes = np.asarray(knn.classes_)
        self.k = int(knn.n_neighbors)
        self.n_train, self.n_features = (int(v) for v in fit.shape)
        self.distance = knn.weights == "distance"
        self.has_proba = not self.distance
        self.euclidean = metric == "euclidean"
        self._pre = pre
        self._fit = fit
        self._fit_t = np.ascontiguousarray(fit.T)
        self._y = np.asarray(knn._y).astype(np.intp)
        self._one_hot = np.eye(len(self.classes), dtype=np.float64)[self._y]
        self._all = int(np.argmax(self._one_hot.sum(axis=0)))
        self._n_classes = len(self.classes)
        self._binary = self._n_classes == 2
        self._y1 = self._y == 1
        self._kk = (self.k - 1, self.k) if self.k < self.n_train else self.k - 1
        # kd-tree and ball-tree answer each row on its own; brute force by chunks
        self._per_row = knn._fit_method in ("kd_tree", "ball_tree")
        # brute-force Euclidean rounding: a few ulps of |x|^2 + |y|^2 (squared distances)
        self._gemm = 8.0 * (self.n_features + 2) * _EPS
        self._fit_norm = float((fit * fit).sum(axis=1).max(initial=0.0))
        self._row = knn_row.build(self, row_chain(estimator))

    # -- distances and ties --

    def _dist(self, Z: FloatArray) -> FloatArray:
        """(n, m): squared Euclidean or Manhattan distances, feature by feature."""
        out = np.empty((Z.shape[0], self.n_train), dtype=np.float64)
        tmp = np.empty_like(out) if self.n_features > 1 else out
        for j in range(self.n_features):
            part = out if j == 0 else tmp  # the first feature's terms go straight in
            np.subtract(Z[:, j : j + 1], self._fit_t[j], out=part)
            if self.euclidean:
                np.multiply(part, part, out=part)
            else:
                np.abs(part, out=part)
            if j:
                out += tmp
        return out

    def _tol(self, Z: FloatArray, rest: FloatArray) -> FloatArray:
        tol = TIE_RTOL * rest + 1e-300
        if self.euclidean:
            tol = tol + self._gemm * ((Z * Z).sum(axis=1) + self._fit_norm)
        return tol

    def _votes(self, d: FloatArray, kth: FloatArray) -> FloatArray:
        near = d <= kth[:, None]
        if not self.distance:
            return near.astype(np.float64) @ self._one_hot
        w = np.where(near, 1.0 / (np.sqrt(d) if self.euclidean else d), 0.0)
        return w @ self._one_hot

    def _rows(self, Z: FloatArray) -> tuple[IntArray, Bools, Bools, FloatArray]:
        """A chunk's codes, rows to ask the estimator, rows with a boundary tie (their
        probabilities depend on it) and votes."""
        k = self.k
        d = self._dist(Z)
        if k < self.n_train:
            part = np.partition(d, (k - 1, k), axis=1)
            kth, rest = part[:, k - 1], part[:, k]
        else:  # every point votes
            part = np.sort(d, axis=1)
            kth, rest = part[:, k - 1], np.full(len(d), np.inf)
        tol = self._tol(Z, rest if k < self.n_train else kth)
        tied = ~((rest - kth) > tol)  # NaN/inf (overflow) counts as tied
        if k >= self.n_train:
            tied = ~np.isfinite(kth)
        votes = self._votes(d, kth)
        codes = np.argmax(votes, axis=1).astype(np.intp)
        if self.distance:
            nearest = part[:, 0]
            top2 = -np.partition(-votes, 1, axis=1)[:, :2] if votes.shape[1] > 1 else votes
            gap = top2[:, 0] - top2[:, -1]
            err = 4.0 * votes.sum(axis=1) * (tol / np.maximum(nearest, 1e-300) + 16 * _EPS)
            tied |= ~(nearest > tol) | ~(gap > err)
            return codes, tied, tied, votes
        still = self._settle_ties(codes, tied.copy(), d, kth, rest, tol)
        return codes, still, tied, votes

    def _nearest(self, Z: FloatArray) -> tuple[IntArray, Bools]:
        """k = 1 with uniform weights: a chunk's codes (the nearest point's class) and the
        rows to ask the estimator, by :meth:`_rows`' tie rule, with two minimums in
        place of the partition and the vote (scikit-learn's tree is quicker than the
        partition at k = 1)."""
        d = self._dist(Z)
        at = d.argmin(axis=1)  # NaN (overflow) first: then tied below, and asked
        rows = np.arange(len(d))
        kth = d[rows, at]
        d[rows, at] = np.inf
        rest = d.min(axis=1)
        d[rows, at] = kth
        tol = self._tol(Z, rest)
        tied = ~((rest - kth) > tol)
        codes = self._y[at]
        return codes, self._settle_ties(codes, tied, d, kth, rest, tol)

    def _settle_ties(self, codes: IntArray, tied: Bools, d: FloatArray, kth: FloatArray,
                     rest: FloatArray, tol: FloatArray) -> Bools:
        """Settle the ``tied`` rows that :meth:`_settle` can: their codes written into
        ``codes``; ``tied`` becomes the rows still open (to ask the estimator)."""
        if tied.any():
            r = np.flatnonzero(tied)
            codes[r], tied[r] = self._settle(d[r], kth[r], rest[r], tol[r])
        return tied

    def _settle(self, d: FloatArray, kth: FloatArray, rest: FloatArray, tol: FloatArray
                ) -> tuple[IntArray, Bools]:
        """Tied rows whose uniform vote is the same whichever band points are drawn."""
        overflow = ~(np.isfinite(kth) & np.isfinite(rest))
        band_w = 2.0 * tol[:, None]
        inside = d < kth[:, None] - band_w
        band = np.abs(d - kth[:, None]) <= band_w
        need = self.k - inside.sum(axis=1)
        v_in = inside.astype(np.float64) @ self._one_hot
        in_band = band.astype(np.float64) @ self._one_hot
        if self._one_hot.shape[1] == 2:
            lo = v_in[:, 1] + np.maximum(0, need - in_band[:, 0])
            hi = v_in[:, 1] + np.minimum(need, in_band[:, 1])
            win_lo, win_hi = 2 * lo > self.k, 2 * hi > self.k  # a tied vote: class 0
            return win_lo.astype(np.intp), (win_lo != win_hi) | overflow
        single = np.count_nonzero(in_band, axis=1) == 1
        votes = v_in + (in_band > 0) * need[:, None]
        return np.argmax(votes, axis=1).astype(np.intp), ~single | overflow

    # -- the FastPath face --

    def _batched_here(self, n: int) -> bool:
        return self.n_train <= BATCH_MAX_TRAIN or n * self.n_train * self.n_features \
            <= BATCH_MAX_WORK

    def predict(self, X: FloatArray) -> IntArray:
        if X.shape[0] == 1 and not self.distance:
            return np.array([self.predict_one(X[0])], dtype=np.intp)
        return self._batch(X)

    def _batch(self, X: FloatArray) -> IntArray:
        n = X.shape[0]
        try:
            Z = X if self._pre is None else self._pre(X)
        except NotFinite:  # a scaled value overflowed: scikit-learn's verdict
            return codes_of(self.classes, ask(self.fallback, "predict", X))
        if self.k >= self.n_train and not self.distance:
            return np.full(n, self._all, dtype=np.intp)
        if not self._batched_here(n):
            return codes_of(self.classes, ask(self.fallback, "predict", X))
        out = np.empty(n, dtype=np.intp)
        ask_rows: list[IntArray] = []
        step = max(1, CHUNK_CELLS // max(1, self.n_train))
        nearest = self.k == 1 and not self.distance
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for lo in range(0, n, step):
                if nearest:
                    codes, tied = self._nearest(Z[lo : lo + step])
                else:
                    codes, tied, _, _ = self._rows(Z[lo : lo + step])
                out[lo : lo + step] = codes
                if tied.any():
                    ask_rows.append(np.flatnonzero(tied) + lo)
        if ask_rows:  # brute force: its pick among tied points depends on the whole batch
            bad = np.concatenate(ask_rows)
            if self._per_row:
                out[bad] = codes_of(self.classes, ask(self.fallback, "predict", X[bad]))
            else:
                out[bad] = codes_of(self.classes, ask(self.fallback, "predict", X))[bad]
        return out

    def predict_one(self, x: FloatArray) -> int:
        """One row: a few numpy calls when its k-th neighbour is clear, else the batch
        path (which settles or asks about the tie)."""
        raw = x
        if self.distance or self.k >= self.n_train:
            return int(self._batch(raw.reshape(1, -1))[0])
        if self._pre is not None:
            try:
                x = self._pre(raw.reshape(1, -1))[0]
            except NotFinite:
                return int(self._batch(raw.reshape(1, -1))[0])
        norm = float(x @ x)
        if not norm < 1e150:  # squared distances could overflow: the careful path
            return int(self._batch(raw.reshape(1, -1))[0])
        diff = self._fit - x
        d = np.einsum("ij,ij->i", diff, diff) if self.euclidean else \
            np.abs(diff, out=diff).sum(axis=1)
        ordered = np.partition(d, self._kk)
        kth, rest = float(ordered[self.k - 1]), float(ordered[self.k])
        tol = TIE_RTOL * rest + 1e-300
        if self.euclidean:
            tol += self._gemm * (norm + self._fit_norm)
        if not rest - kth > tol:  # a possible tie
            return int(self._batch(raw.reshape(1, -1))[0])
        if self._binary:  # votes for class 1; a tied vote goes to class 0, as argmax does
            return int(2 * int(np.count_nonzero(self._y1[d <= kth])) > self.k)
        return int(np.argmax(np.bincount(self._y[d <= kth], minlength=self._n_classes)))

    def predict_row(self, row: list[float]) -> int:
        """One finite row as Python floats: the plain-Python kernel
        (:mod:`~fishpredict.models.fastpaths.knn_row`), else :meth:`predict_one`."""
        kernel = self._row
        if kernel is not None:
            code = kernel.predict(row)
            if code is not None:
                return code
        elif self.k >= self.n_train and not self.distance:
            return self._all  # every training point votes, as _batch answers
        with np.errstate(over="ignore", invalid="ignore"):
            return self.predict_one(np.array(row, dtype=np.float64))

    def predict_proba(self, X: FloatArray) -> FloatArray:
        try:
            Z = X if self._pre is None else self._pre(X)
        except NotFinite:
            Z = None
        if Z is None or not self._batched_here(X.shape[0]) or self.k >= self.n_train:
            return np.asarray(ask(self.fallback, "predict_proba", X), dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            _, _, tied, votes = self._rows(Z)
        proba = votes / self.k
        if tied.any():
            if self._per_row:
                proba[tied] = ask(self.fallback, "predict_proba", X[tied])
            else:
                proba[tied] = ask(self.fallback, "predict_proba", X)[tied]
        return proba


def compile(estimator: Any) -> Knn | None:
    """The fast path of a k-nearest-neighbours classifier, or None."""
    from sklearn.neighbors import KNeighborsClassifier

    parts = unwrap(estimator)
    if parts is None:
        return None
    scalers, knn = parts
    if type(knn) is not KNeighborsClassifier or not hasattr(knn, "_fit_X"):
        return None
    if knn.weights not in ("uniform", "distance") or getattr(knn, "outputs_2d_", False):
        return None
    metric = _metric(knn)
    fit = knn._fit_X
    if metric is None or not isinstance(fit, np.ndarray) or fit.ndim != 2:
        return None
    if np.asarray(knn._y).ndim != 1 or fit.shape[0] * fit.shape[1] > ONE_MAX_WORK:
        return None
    if knn.n_neighbors > fit.shape[0]:
        return None  # scikit-learn refuses every row; let it say so
    return Knn(estimator, knn, chain(scalers), metric)
