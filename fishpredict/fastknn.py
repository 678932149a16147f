"""An exact numpy fast path for scikit-learn's k-nearest-neighbours classifier.

scikit-learn's ``predict`` costs hundreds of microseconds per call whatever the
batch size (input validation, tree queries, parallel dispatch). For the models
fishpredict serves, the same answer is a handful of vectorised numpy calls.

**Exactness.** For uniform weights and the Euclidean metric, scikit-learn's
answer is the most common class among the k nearest training points, ties in
the vote going to the smallest class (``argmax`` order). The k nearest points
are well defined unless the k-th and (k+1)-th distances are equal, in which
case scikit-learn's choice depends on its search algorithm (kd-tree, ball tree
or brute force) and on floating-point rounding. The fast path therefore finds
such *boundary ties* (within a relative tolerance far wider than rounding) and
hands those rows to scikit-learn, so every row is answered exactly as
scikit-learn would. :func:`compile_knn` returns ``None`` for any model it does
not cover; :func:`check` compares the fast path with scikit-learn on a check
set, and the Predictor refuses the fast path for a model if any label differs.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

#: Relative gap under which two squared distances count as tied.
TIE_RTOL: Final = 1e-9
#: Rows per chunk: small enough that the distance matrix stays in the CPU cache.
CHUNK_ROWS: Final = 2048
#: Largest training set whose *batches* are predicted here. The batch path computes
#: every distance (rows x training points); scikit-learn's tree is O(log m) per row.
#: 100,000 rows at k=5 (``perf predictor``'s machine): 49 training points 0.025 s
#: here vs 0.042 s, 256 points 0.27 s vs 0.05 s. Larger sets batch through scikit-learn.
BATCH_MAX_TRAIN: Final = 64
#: Largest training set served by the fast path at all (one row: one distance per
#: training point, 25 us at 4,096 points and 93 us at 16,384, vs scikit-learn's ~490 us
#: whatever the size). Larger models are served by scikit-learn alone.
ONE_MAX_TRAIN: Final = 8192
#: At most this many pairs of training points give check-set midpoints (all pairs
#: up to 200 points; a sample beyond, plus every point's neighbour in length order).
CHECK_MAX_PAIRS: Final = 20_000
#: Rows of the check set also answered one by one (the one-row path).
CHECK_ONE_ROWS: Final = 1000


class FastKNN:
    """Vectorised exact KNN prediction for one fitted model.

    ``predict_codes`` returns indices into ``classes`` for an (n, 2) float
    array; rows with a boundary tie are delegated to ``fallback`` (the
    scikit-learn estimator) so the result is always scikit-learn's.
    """

    __slots__ = (
        "_binary",
        "_fit_c",
        "_fit_t",
        "_mean",
        "_one_hot",
        "_scale",
        "_votes_all",
        "_y_codes",
        "classes",
        "fallback",
        "k",
        "n_train",
    )

    def __init__(
        self, estimator: Any, knn: KNeighborsClassifier, scaler: StandardScaler | None
    ) -> None:
        fit_X = np.asarray(knn._fit_X, dtype=np.float64)
        y_codes = np.asarray(knn._y).astype(np.intp)
        self.fallback = estimator
        self.classes = np.asarray(knn.classes_)
        self.k = int(knn.n_neighbors)
        self.n_train = int(fit_X.shape[0])
        self._fit_t = np.ascontiguousarray(fit_X.T)  # (2, m), for batches
        self._fit_c = fit_X[:, 0] + 1j * fit_X[:, 1]  # complex points, for one row
        self._y_codes = y_codes
        self._binary = len(self.classes) == 2
        self._one_hot = np.eye(len(self.classes), dtype=np.int32)[y_codes]  # (m, C)
        self._votes_all = int(np.argmax(self._one_hot.sum(axis=0)))
        self._mean: FloatArray | None = None
        self._scale: FloatArray | None = None
        if scaler is not None:
            if scaler.with_mean:
                self._mean = np.asarray(scaler.mean_, dtype=np.float64)
            if scaler.with_std:
                self._scale = np.asarray(scaler.scale_, dtype=np.float64)

    def _transform(self, X: FloatArray) -> FloatArray:
        if self._mean is not None:
            X = X - self._mean
        if self._scale is not None:
            X = X / self._scale
        return X

    def predict_one(self, length: float, weight: float) -> int:
        """Class index for one row: the hot path of a one-fish request (a few us)."""
        k = self.k
        if k >= self.n_train:
            return self._votes_all
        x, y = length, weight
        if self._mean is not None or self._scale is not None:
            x, y = (float(v) for v in self._transform(np.array([length, weight])))
        d = np.abs(self._fit_c - complex(x, y))
        ordered = np.sort(d)  # sorting ~50 values beats np.partition's overhead
        kth, rest = float(ordered[k - 1]), float(ordered[k])
        if not rest - kth > TIE_RTOL * rest + 1e-12:  # a tie (or an overflow: nan/inf)
            codes, open_ = self._settle(d[None, :], np.array([kth]), np.array([rest]))
            if not open_[0]:
                return int(codes[0])
            label = self.fallback.predict(np.array([[length, weight]], dtype=np.float64))[0]
            return int(np.searchsorted(self.classes, label))
        if self._binary:  # votes for class 1; a tied vote goes to class 0, as argmax does
            return int(2 * int(np.dot(d <= kth, self._y_codes)) > k)
        return int(np.argmax((d <= kth) @ self._one_hot))

    def _settle(self, d: FloatArray, kth: FloatArray, rest: FloatArray
                ) -> tuple[IntArray, npt.NDArray[np.bool_]]:
        """Answer boundary-tie rows whose vote does not depend on the tie.

        For each row, points clearly nearer than the k-th distance are in any
        k-nearest set; the rest of the set is drawn from the *band* of points
        tied with the k-th distance. If every possible draw gives the same
        winner, that is scikit-learn's answer too. Returns the codes and a mask
        of rows still open (to be asked of scikit-learn).
        """
        overflow = ~(np.isfinite(kth) & np.isfinite(rest))
        tol = (TIE_RTOL * rest + 1e-12)[:, None]
        inside = d < kth[:, None] - tol
        band = np.abs(d - kth[:, None]) <= tol
        need = self.k - inside.sum(axis=1)
        v_in = inside @ self._one_hot
        in_band = band @ self._one_hot
        if self._one_hot.shape[1] == 2:
            lo = v_in[:, 1] + np.maximum(0, need - in_band[:, 0])
            hi = v_in[:, 1] + np.minimum(need, in_band[:, 1])
            win_lo, win_hi = 2 * lo > self.k, 2 * hi > self.k  # a tied vote goes to class 0
            return win_lo.astype(np.intp), (win_lo != win_hi) | overflow
        single = np.count_nonzero(in_band, axis=1) == 1
        votes = v_in + (in_band > 0) * need[:, None]
        return np.argmax(votes, axis=1).astype(np.intp), ~single | overflow

    def predict_codes(self, X: FloatArray) -> IntArray:
        """Class indices (into ``classes``) for every row of an (n, 2) array."""
        n = X.shape[0]
        if self.k >= self.n_train:
            return np.full(n, self._votes_all, dtype=np.intp)
        if self.n_train > BATCH_MAX_TRAIN:  # scikit-learn's tree is faster here
            found: IntArray = np.searchsorted(self.classes, self.fallback.predict(X))
            return found.astype(np.intp)
        out = np.empty(n, dtype=np.intp)
        tied_rows: list[IntArray] = []
        for start in range(0, n, CHUNK_ROWS):
            chunk = X[start : start + CHUNK_ROWS]
            with np.errstate(over="ignore", invalid="ignore"):  # huge values: see _chunk
                codes, tied = self._chunk(self._transform(chunk))
            out[start : start + CHUNK_ROWS] = codes
            if tied.any():
                tied_rows.append(np.flatnonzero(tied) + start)
        if tied_rows:
            bad = np.concatenate(tied_rows)
            out[bad] = np.searchsorted(self.classes, self.fallback.predict(X[bad]))
        return out

    def _chunk(self, Z: FloatArray) -> tuple[IntArray, npt.NDArray[np.bool_]]:
        d2 = Z[:, 0:1] - self._fit_t[0]  # (n, m) squared distances, built in place
        d1 = Z[:, 1:2] - self._fit_t[1]
        d2 *= d2
        d1 *= d1
        d2 += d1
        k = self.k
        if k == 1:  # nearest neighbour: argmin, then the runner-up for the tie check
            nearest = np.argmin(d2, axis=1)
            rows = np.arange(d2.shape[0])
            best = d2[rows, nearest]
            d2[rows, nearest] = np.inf
            second = d2.min(axis=1)
            codes: IntArray = self._y_codes[nearest]
            tied = ~((second - best) > TIE_RTOL * second + 1e-12)
            if tied.any():
                d2[rows, nearest] = best
                return self._settle_rows(d2, codes, tied, best, second)
            return codes, tied
        part = np.partition(d2, (k - 1, k), axis=1)
        kth, rest = part[:, k - 1], part[:, k]
        # Distances that overflow (values near 1e154 and up) compare as ties, so those
        # rows go to scikit-learn too.
        tied = ~((rest - kth) > TIE_RTOL * rest + 1e-12)
        votes = (d2 <= kth[:, None]) @ self._one_hot
        codes = np.argmax(votes, axis=1).astype(np.intp)
        if tied.any():
            return self._settle_rows(d2, codes, tied, kth, rest)
        return codes, tied

    def _settle_rows(self, d2: FloatArray, codes: IntArray, tied: npt.NDArray[np.bool_],
                     kth: FloatArray, rest: FloatArray) -> tuple[IntArray, npt.NDArray[np.bool_]]:
        rows = np.flatnonzero(tied)
        settled, open_ = self._settle(d2[rows], kth[rows], rest[rows])
        codes[rows] = settled
        still = np.zeros_like(tied)
        still[rows[open_]] = True
        return codes, still

    def predict(self, X: FloatArray) -> npt.NDArray[Any]:
        """Class labels, like ``estimator.predict``."""
        return self.classes[self.predict_codes(X)]


def compile_knn(estimator: Any) -> FastKNN | None:
    """A :class:`FastKNN` for ``estimator`` if the fast path covers it, else ``None``.

    Covered: a fitted ``KNeighborsClassifier`` with uniform weights and the
    Euclidean metric (``minkowski`` with p=2, or ``euclidean``), bare or as the
    last step of a Pipeline whose only other step is a ``StandardScaler``, with
    single-output numeric class labels.
    """
    scaler: StandardScaler | None = None
    knn = estimator
    if isinstance(estimator, Pipeline):
        steps = [s for _, s in estimator.steps if s not in (None, "passthrough")]
        if len(steps) == 2 and type(steps[0]) is StandardScaler:
            scaler, knn = steps[0], steps[1]
        elif len(steps) == 1:
            knn = steps[0]
        else:
            return None
    if type(knn) is not KNeighborsClassifier or not hasattr(knn, "_fit_X"):
        return None
    if knn.weights != "uniform":
        return None
    params = knn.effective_metric_params_ or {}
    metric = knn.effective_metric_
    if not (metric == "euclidean" or (metric == "minkowski" and params.get("p", 2) == 2)):
        return None
    if params and set(params) - {"p"}:
        return None
    if getattr(knn, "outputs_2d_", False) or np.asarray(knn._y).ndim != 1:
        return None
    if not hasattr(knn._fit_X, "shape") or knn._fit_X.shape[1] != 2:
        return None
    if knn._fit_X.shape[0] > ONE_MAX_TRAIN:
        return None
    return FastKNN(estimator, knn, scaler)


def check_set(fit_X: FloatArray, n_random: int = 2000, seed: int = 0) -> FloatArray:
    """Points on which to compare the fast path with scikit-learn.

    The training points themselves (distance-0 ties, duplicates), midpoints of
    pairs of training points (equidistant ties: every pair up to 200 points,
    else :data:`CHECK_MAX_PAIRS` random pairs plus each point with its neighbour
    in length order), and random points over and around the training range.
    """
    rng = np.random.default_rng(seed)
    lo, hi = fit_X.min(axis=0), fit_X.max(axis=0)
    span = np.maximum(hi - lo, 1.0)
    rand = rng.uniform(lo - 0.25 * span, hi + 0.25 * span, size=(n_random, fit_X.shape[1]))
    m = fit_X.shape[0]
    if m * (m - 1) // 2 <= CHECK_MAX_PAIRS:
        i, j = np.triu_indices(m, k=1)
    else:  # a sample of pairs, and each point with its neighbour in length order
        order = np.argsort(fit_X[:, 0], kind="stable")
        i = np.concatenate([rng.integers(0, m, CHECK_MAX_PAIRS), order[:-1]])
        j = np.concatenate([rng.integers(0, m, CHECK_MAX_PAIRS), order[1:]])
    mids = (fit_X[i] + fit_X[j]) / 2.0
    return np.abs(np.vstack([fit_X, mids, rand]))


def check(fast: FastKNN, X: FloatArray | None = None) -> int:
    """How many answers of the fast path differ from scikit-learn's on ``X`` (default:
    :func:`check_set`): every row through the batch path, and up to
    :data:`CHECK_ONE_ROWS` of them also through the one-row path."""
    if X is None:
        base = fast._fit_t.T
        if fast._scale is not None:
            base = base * fast._scale
        if fast._mean is not None:
            base = base + fast._mean
        X = check_set(base)
    theirs = np.searchsorted(fast.classes, fast.fallback.predict(X))
    wrong = int(np.count_nonzero(fast.predict_codes(X) != theirs))
    step = max(1, len(X) // CHECK_ONE_ROWS)  # the one-row path, on a spread of the rows
    for row in range(0, len(X), step):
        wrong += fast.predict_one(float(X[row, 0]), float(X[row, 1])) != theirs[row]
    return wrong
