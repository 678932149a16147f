"""The load-time check: rows where a fast path could part from its estimator, and how
many answers differ there.

Rows are built in the space the final step sees (after the pipeline's scalers) and
taken back through the scalers' ``inverse_transform``: for trees, random rows over
the span of the split thresholds plus rows sitting exactly on thresholds and on each
side of their float32 cut; for KNN, the training points (distance-0 ties; up to
2,000), midpoints of pairs of them (equidistant ties) and random rows around them; for linear
classifiers, random rows at several scales and those rows moved onto the decision
boundary. Batches are compared with ``estimator.predict`` on the same chunks,
one-row answers (``predict_one`` and the plain-float ``predict_row``) with the
estimator on the same row (linear models, whose last bits depend on the batch's shape)
or on the batch (every other family), probabilities to 1e-12.

*Edge rows* (:func:`edge_rows`) put magnitudes that overflow float64 after scaling
(``±1e308``), that lie past float32's range (``±3.5e38``, where a tree's cast gives
infinity) or at its edge, and squares that overflow (``1e155``) into one feature at a
time and into all at once; on each, alone and in a batch, the fast path and the
estimator must give the same answer or both refuse.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from fishpredict.errors import FishpredictError
from fishpredict.models.fastpaths.base import FloatArray, ask, codes_of
from fishpredict.models.fastpaths.knn import BATCH_MAX_WORK, Knn
from fishpredict.models.fastpaths.linear import LinearClassifier, LinearRegressor, boundary_rows
from fishpredict.models.fastpaths.trees import Trees, cut_points

#: random rows of every check set
RANDOM_ROWS: Final = 2000
#: split nodes whose thresholds give check rows (a sample beyond)
THRESHOLD_NODES: Final = 3000
#: pairs of training points whose midpoints give KNN check rows (a sample beyond)
KNN_PAIRS: Final = 20_000
#: training points that are KNN check rows themselves (a sample beyond)
KNN_POINTS: Final = 2000
#: check rows x training points x features a KNN check may cost
KNN_CHECK_WORK: Final = 40_000_000
#: rows also answered one at a time
ONE_ROWS: Final = 400
LINEAR_ONE_ROWS: Final = 150
PROBA_ATOL: Final = 1e-12
#: magnitudes of the edge rows: float64 overflow after any scaling, float32's edge and
#: beyond, squares that overflow, and large but harmless values
EDGE_VALUES: Final = (1e308, -1e308, 3.5e38, -3.5e38, float(np.finfo(np.float32).max),
                      1e155, 1e30)
#: features that get edge values one at a time (a sample beyond)
EDGE_FEATURES: Final = 4


def _to_raw(estimator: Any, Z: FloatArray) -> FloatArray:
    steps = getattr(estimator, "steps", None)
    if not steps:
        return Z
    X = Z
    for _, step in reversed(steps[:-1]):
        if step is not None and step != "passthrough":
            X = np.asarray(step.inverse_transform(X), dtype=np.float64)
    return np.ascontiguousarray(X)


def _tree_rows(fast: Trees, rng: np.random.Generator) -> FloatArray:
    d = fast.n_features
    feature = np.concatenate([t.feature for t in fast._tree_objs])
    thr = np.concatenate([t.threshold for t in fast._tree_objs])
    split = np.flatnonzero(np.concatenate([t.children_left for t in fast._tree_objs]) >= 0)
    lo, hi = np.full(d, -1.0), np.full(d, 1.0)
    if len(split):
        for f in range(d):
            on_f = thr[split[feature[split] == f]]
            if len(on_f):
                lo[f], hi[f] = on_f.min(), on_f.max()
    span = np.maximum(hi - lo, 1.0)
    base = rng.uniform(lo - 0.1 * span, hi + 0.1 * span, (RANDOM_ROWS, d))
    if not len(split):
        return base
    nodes = split if len(split) <= THRESHOLD_NODES else rng.choice(split, THRESHOLD_NODES)
    t = thr[nodes]
    c = cut_points(t)
    t32 = t.astype(np.float32).astype(np.float64)
    sides = [t, c, np.nextafter(c, np.inf), np.nextafter(c, -np.inf), t32,
             np.nextafter(t32.astype(np.float32), np.float32(np.inf)).astype(np.float64)]
    out = [base]
    for values in sides:
        rows = base[rng.integers(0, len(base), len(nodes))].copy()
        rows[np.arange(len(nodes)), feature[nodes]] = values
        out.append(rows)
    return np.vstack(out)


def _knn_rows(fast: Knn, rng: np.random.Generator) -> FloatArray:
    fit = fast._fit
    m, d = fit.shape
    total = max(1200, KNN_CHECK_WORK // max(1, m * d))  # rows the check can afford
    n_points = min(m, KNN_POINTS, total // 2)
    n_rand = min(RANDOM_ROWS // 2, total // 4)
    pairs = min(KNN_PAIRS, max(200, total - n_points - n_rand))
    if m * (m - 1) // 2 <= pairs:
        i, j = np.triu_indices(m, k=1)
    else:
        i, j = rng.integers(0, m, pairs), rng.integers(0, m, pairs)
    lo, hi = fit.min(axis=0), fit.max(axis=0)
    span = np.maximum(hi - lo, 1e-6)
    rand = rng.uniform(lo - 0.25 * span, hi + 0.25 * span, (n_rand, d))
    points = fit if n_points == m else fit[rng.choice(m, n_points, replace=False)]
    return np.vstack([points, (fit[i] + fit[j]) / 2.0, rand])


def _linear_rows(fast: LinearClassifier | LinearRegressor, rng: np.random.Generator
                 ) -> FloatArray:
    d = fast.n_features
    if fast._pre is not None:  # the scaled space: a few standard deviations around 0
        base = rng.normal(0.0, 1.5, (RANDOM_ROWS, d))
    else:
        scales = np.repeat([1.0, 10.0, 100.0, 1000.0], RANDOM_ROWS // 4)
        base = rng.normal(0.0, 1.0, (len(scales), d)) * scales[:, None]
    return np.vstack([base, boundary_rows(fast, base[: RANDOM_ROWS // 4])])


def check_rows(fast: Any, estimator: Any, seed: int = 0) -> FloatArray:
    """Raw input rows on which to compare ``fast`` with ``estimator``."""
    rng = np.random.default_rng(seed)
    if isinstance(fast, Trees):
        Z = _tree_rows(fast, rng)
    elif isinstance(fast, Knn):
        Z = _knn_rows(fast, rng)
    else:
        Z = _linear_rows(fast, rng)
    X = _to_raw(estimator, Z)
    return np.ascontiguousarray(X[np.isfinite(X).all(axis=1)])


def _truth(fast: Any, estimator: Any, X: FloatArray) -> Any:
    got = ask(estimator, "predict", X)
    if fast.task == "classifier":
        return codes_of(np.asarray(estimator.classes_), got)
    return np.asarray(got, dtype=np.float64)


def count_wrong(fast: Any, estimator: Any, X: FloatArray) -> int:
    """Rows of ``X`` where ``fast`` answers otherwise than ``estimator``."""
    size = 512
    if isinstance(fast, Knn):
        size = max(1, min(512, BATCH_MAX_WORK // max(1, fast.n_train * fast.n_features)))
    wrong = 0
    truth_all = []
    for lo in range(0, len(X), size):
        chunk = X[lo : lo + size]
        theirs = _truth(fast, estimator, chunk)
        truth_all.append(theirs)
        wrong += int(np.count_nonzero(np.asarray(fast.predict(chunk)) != theirs))
        if fast.has_proba:
            diff = np.abs(fast.predict_proba(chunk) - ask(estimator, "predict_proba", chunk))
            wrong += int(np.count_nonzero(~(diff <= PROBA_ATOL).all(axis=1)))
    if not len(X):
        return wrong
    truth = np.concatenate(truth_all)
    linear = isinstance(fast, (LinearClassifier, LinearRegressor))
    n_one = LINEAR_ONE_ROWS if linear else ONE_ROWS
    for row in np.unique(np.linspace(0, len(X) - 1, min(n_one, len(X))).astype(int)):
        one = fast.predict_one(X[row])
        want = _truth(fast, estimator, X[row : row + 1])[0] if linear else truth[row]
        wrong += int(one != want)
        wrong += int(fast.predict_row(X[row].tolist()) != want)  # the plain-float kernel
    return wrong


def edge_rows(fast: Any, X: FloatArray, seed: int = 0) -> FloatArray:
    """Rows of ``X`` (raw check rows) with edge magnitudes in one feature, and in all."""
    d = fast.n_features
    rng = np.random.default_rng(seed)
    base = X[0] if len(X) else np.zeros(d)
    features = np.arange(d) if d <= EDGE_FEATURES else rng.choice(d, EDGE_FEATURES, False)
    rows = []
    for v in EDGE_VALUES:
        for j in features:
            row = base.copy()
            row[j] = v
            rows.append(row)
        rows.append(np.full(d, v))
        rows.append(np.where(np.arange(d) % 2 == 0, v, -v))
    return np.ascontiguousarray(rows, dtype=np.float64)


def _verdict(fn: Any, *args: Any) -> Any:
    try:
        return ("answer", np.asarray(fn(*args)).tolist())
    except FishpredictError:
        return ("refused", None)
    except ValueError:
        return ("refused", None)


def count_edge_wrong(fast: Any, estimator: Any, X: FloatArray) -> int:
    """Edge rows where ``fast`` and ``estimator`` part: one answers, the other refuses,
    or both answer differently (each row alone, and all of them as one batch)."""
    classifier = fast.task == "classifier"
    wrong = 0
    for row in X:
        one = row.reshape(1, -1)
        theirs = _verdict(lambda r: _truth(fast, estimator, r), one)
        for ours in (_verdict(lambda r: [fast.predict_one(r[0])], one),
                     _verdict(lambda r: [fast.predict_row(r[0].tolist())], one)):
            if theirs[0] != ours[0] or (theirs[0] == "answer" and not _same(
                    theirs[1], ours[1], classifier)):
                wrong += 1
    theirs = _verdict(lambda r: _truth(fast, estimator, r), X)
    ours = _verdict(fast.predict, X)
    if theirs[0] != ours[0] or (theirs[0] == "answer" and not _same(
            theirs[1], ours[1], classifier)):
        wrong += 1
    return wrong


def _same(a: Any, b: Any, classifier: bool) -> bool:
    if classifier:
        return bool(a == b)
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return bool(np.array_equal(x, y, equal_nan=True))
