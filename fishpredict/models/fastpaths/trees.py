"""Decision trees, random forests and extra trees (classifiers and regressors), bare or
behind scalers in a ``Pipeline``.

**Exactness.** scikit-learn casts the input to float32 and goes left at a node when
``x32 <= threshold`` (a float64). Batches do exactly that, through the fitted
trees' own ``tree_.apply`` (skipping the per-tree validation and dispatch around it).
One row walks the flattened ``tree_`` arrays in float64 against *cut points*: the
largest float64 ``c`` with ``float32(c) <= threshold``, so ``x <= c`` exactly when
``float32(x) <= threshold`` (round to nearest even is monotonic). A forest sums the
trees' leaf values in estimator order, then divides by the number of trees, the
float operations ``ForestClassifier.predict_proba`` and ``ForestRegressor.predict``
perform with ``n_jobs=None``; the class is the first maximum, as ``argmax`` picks.
With threads (``n_jobs`` > 1) scikit-learn's sum order varies from call to call: a
classifier then hands rows whose top two probabilities are within that rounding to
the estimator, and a regressor gets no fast path. A value that overflows float32
makes scikit-learn refuse the row; those rows go to the estimator, which refuses them.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from fishpredict.models.fastpaths.base import (
    FloatArray,
    IntArray,
    NotFinite,
    Transform,
    ask,
    chain,
    unwrap,
)

#: |x| at or above this rounds to infinity in float32 (FLT_MAX plus half an ulp)
F32_OVERFLOW: Final = float(np.float32(3.4028235e38)) + 2.0**103
#: rows whose squared norm is below this have no value near float32 overflow
SAFE_NORM2: Final = 1e76
#: one-row strategies by total node count: all nodes at once, then Python walks
VECTOR_MAX_NODES: Final = 40_000
WALK_MAX_NODES: Final = 400_000


def cut_points(threshold: FloatArray) -> FloatArray:
    """For each threshold t, the largest float64 c with ``float32(c) <= t``."""
    t32 = threshold.astype(np.float32)
    over = t32.astype(np.float64) > threshold
    t32[over] = np.nextafter(t32[over], np.float32(-np.inf))
    up = np.nextafter(t32, np.float32(np.inf)).astype(np.float64)
    up[np.isinf(up)] = 2.0**128
    mid = (t32.astype(np.float64) + up) / 2  # exact: float32 midpoints fit in float64
    odd = (t32.view(np.uint32) & 1) == 1  # a tie rounds to the even neighbour
    return np.where(odd, np.nextafter(mid, -np.inf), mid)


def _types() -> dict[type, str]:
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.tree import (
        DecisionTreeClassifier,
        DecisionTreeRegressor,
        ExtraTreeClassifier,
        ExtraTreeRegressor,
    )

    return {DecisionTreeClassifier: "tree", DecisionTreeRegressor: "tree",
            ExtraTreeClassifier: "tree", ExtraTreeRegressor: "tree",
            RandomForestClassifier: "forest", RandomForestRegressor: "forest",
            ExtraTreesClassifier: "forest", ExtraTreesRegressor: "forest"}


class Trees:
    """One tree or a forest: the fitted trees' own ``tree_`` for batches, and for one row
    their node arrays end to end (a forest's leaves self-looping, so every tree can take
    the same number of steps)."""

    def __init__(self, estimator: Any, trees: list[Any], family: str, classifier: bool,
                 pre: Transform | None, guard: bool) -> None:
        self.family = family
        self.task = "classifier" if classifier else "regressor"
        self.has_proba = classifier
        self.fallback = estimator
        self.n_features = int(trees[0].n_features_in_)
        self.n_trees = len(trees)
        self._classifier = classifier
        self._pre = pre
        self._guard = guard  # near-tied forest votes go to the estimator (threaded sums)
        self._tol = 4.0 * self.n_trees * float(np.finfo(np.float64).eps)
        self._tree_objs = [t.tree_ for t in trees]
        k = int(np.atleast_1d(trees[0].n_classes_)[0]) if classifier else 1
        # views of each tree's own value buffer (no copy: workers share the pages)
        self._per_tree = [t.value[:, 0, :k] if classifier else t.value[:, 0, 0]
                          for t in self._tree_objs]
        sizes = [t.node_count for t in self._tree_objs]
        n_nodes = int(sum(sizes))
        self._base = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        self._one = "vector" if family == "forest" and n_nodes <= VECTOR_MAX_NODES else \
            "walk" if n_nodes <= WALK_MAX_NODES else "apply"
        # a forest too big to take in one vector step walks each tree in Python (or asks
        # scikit-learn per tree): 100-200 us a row, where a batch's row costs a few
        self.prefers_batches = family == "forest" and self._one != "vector"
        if self._one != "apply":
            self._flatten(sizes)

    def _flatten(self, sizes: list[int]) -> None:
        objs = self._tree_objs
        left = np.concatenate([t.children_left for t in objs]).astype(np.intp)
        right = np.concatenate([t.children_right for t in objs]).astype(np.intp)
        feature = np.concatenate([t.feature for t in objs]).astype(np.intp)
        cut = cut_points(np.concatenate([t.threshold for t in objs]))
        leaf = left < 0
        own = np.arange(len(left), dtype=np.intp)
        offs = np.repeat(self._base, sizes)
        left, right = np.where(leaf, own, left + offs), np.where(leaf, own, right + offs)
        self._values = np.concatenate(self._per_tree)
        self._depth = max(int(t.max_depth) for t in objs)
        if self._one == "vector":
            feature[leaf], cut[leaf] = 0, np.inf
            self._child = np.ascontiguousarray(np.stack([left, right], axis=1).reshape(-1))
            self._feature, self._cut, self._two = feature, cut, 2 * own
            return
        # walk: memoryviews hand out fresh Python numbers, so reading them writes no
        # reference count into pages a forked worker shares
        self._arrays = (left, right, np.where(leaf, -1, feature), cut)
        self._walk = ([int(v) for v in self._base], *(a.data for a in self._arrays))
        if self._classifier:
            self._codes_arr = np.argmax(self._values, axis=1).astype(np.intp)
            self._leaf_codes = self._codes_arr.data

    # -- batches: scikit-learn's own float32 traversal --

    def _leaves(self, X: FloatArray) -> list[IntArray]:
        try:
            Z = X if self._pre is None else self._pre(X)
        except NotFinite:
            Z = X + np.inf  # a scaled value overflowed: refused below, as scikit-learn does
        if not np.abs(Z).max(initial=0.0) < F32_OVERFLOW:
            ask(self.fallback, "predict", X)  # scikit-learn refuses these rows: a 400
            raise NotFinite  # (and if it did not, it answers the whole batch: the caller)
        Z32 = Z.astype(np.float32)
        return [t.apply(Z32) for t in self._tree_objs]

    def _sum(self, leaves: list[IntArray], n: int) -> FloatArray:
        """The forest's average, summed in estimator order as scikit-learn sums it."""
        first = self._per_tree[0]
        shape = (n, first.shape[1]) if first.ndim == 2 else (n,)
        acc = np.zeros(shape, dtype=np.float64)
        for values, at in zip(self._per_tree, leaves, strict=True):
            acc += values[at]
        acc /= self.n_trees
        return acc

    def predict(self, X: FloatArray) -> Any:
        if X.shape[0] == 1:
            one = self.predict_one(X[0])
            return np.array([one], dtype=np.intp if self._classifier else np.float64)
        try:
            leaves = self._leaves(X)
        except NotFinite:  # the estimator answered rows it was expected to refuse
            out = ask(self.fallback, "predict", X)
            if not self._classifier:
                return np.asarray(out, dtype=np.float64)
            return np.searchsorted(np.asarray(self.fallback.classes_), out).astype(np.intp)
        if self.family == "tree":
            values = self._per_tree[0][leaves[0]]
            return np.argmax(values, axis=1).astype(np.intp) if self._classifier else values
        avg = self._sum(leaves, X.shape[0])
        if not self._classifier:
            return avg
        codes = np.argmax(avg, axis=1).astype(np.intp)
        if self._guard:
            close = self._close(avg)
            if close.any():
                codes[close] = self._ask_codes(X[close])
        return codes

    def predict_proba(self, X: FloatArray) -> FloatArray:
        try:
            leaves = self._leaves(X)
        except NotFinite:
            return np.asarray(ask(self.fallback, "predict_proba", X), dtype=np.float64)
        if self.family == "tree":
            return np.array(self._per_tree[0][leaves[0]], dtype=np.float64)
        return self._sum(leaves, X.shape[0])

    def _close(self, avg: FloatArray) -> Any:
        """Rows whose two largest averages are within the threads' rounding."""
        if avg.shape[1] < 2:
            return np.zeros(len(avg), dtype=bool)
        top2 = -np.partition(-avg, 1, axis=1)[:, :2]
        return (top2[:, 0] - top2[:, 1]) <= self._tol

    def _ask_codes(self, X: FloatArray) -> IntArray:
        labels = ask(self.fallback, "predict", X)
        return np.searchsorted(np.asarray(self.fallback.classes_), labels).astype(np.intp)

    # -- one row: float64 against cut points --

    def predict_one(self, x: FloatArray) -> Any:
        raw = x
        if self._pre is not None:
            try:
                x = self._pre(x.reshape(1, -1))[0]
            except NotFinite:
                return self._one_by_estimator(raw)
        if not x.dot(x) < SAFE_NORM2:  # near float32 overflow (or beyond): the estimator
            return self._one_by_estimator(raw)
        if self._one == "walk":
            leaves = self._walk_leaves(x.tolist())
            if self.family == "tree":
                n = leaves[0]
                return self._leaf_codes[n] if self._classifier else float(self._values[n])
            vals = self._values[leaves]
        elif self._one == "vector":
            nxt = self._child[self._two + (x[self._feature] > self._cut)]
            node = self._base
            for _ in range(self._depth):
                node = nxt[node]
            vals = self._values[node]
        else:  # large models: each tree's own traversal, nothing copied
            x32 = x.astype(np.float32).reshape(1, -1)
            vals = np.stack([pt[t.apply(x32)[0]]
                             for pt, t in zip(self._per_tree, self._tree_objs, strict=True)])
            if self.family == "tree":
                return int(np.argmax(vals[0])) if self._classifier else float(vals[0])
        return self._average(vals, raw)

    def predict_row(self, row: list[float]) -> Any:
        """One row as Python floats (:meth:`predict_one` on it)."""
        return self.predict_one(np.array(row, dtype=np.float64))

    def _walk_leaves(self, v: list[float]) -> list[int]:
        bases, left, right, feature, cut = self._walk
        out = []
        for n in bases:
            f = feature[n]
            while f >= 0:
                n = left[n] if v[f] <= cut[n] else right[n]
                f = feature[n]
            out.append(n)
        return out

    def _average(self, vals: FloatArray, raw: FloatArray) -> Any:
        """A forest's answer from its trees' leaf values, in estimator order."""
        avg = np.cumsum(vals, axis=0)[-1] / self.n_trees  # sequential, as scikit-learn
        if not self._classifier:
            return float(avg)
        if self._guard and self._close(avg.reshape(1, -1))[0]:
            return int(self._ask_codes(raw.reshape(1, -1))[0])
        return int(np.argmax(avg))

    def _one_by_estimator(self, x: FloatArray) -> Any:
        out = ask(self.fallback, "predict", x.reshape(1, -1))
        if not self._classifier:
            return float(out[0])
        return int(np.searchsorted(np.asarray(self.fallback.classes_), out)[0])


def compile(estimator: Any) -> Trees | None:
    """The fast path of a tree or forest (bare or behind scalers), or None."""
    parts = unwrap(estimator)
    if parts is None:
        return None
    scalers, final = parts
    family = _types().get(type(final))
    if family is None or getattr(final, "n_outputs_", None) != 1:
        return None
    trees = list(final.estimators_) if family == "forest" else [final]
    if not trees or any(getattr(t, "tree_", None) is None for t in trees):
        return None
    classifier = hasattr(final, "classes_")
    if classifier and (not isinstance(final.classes_, np.ndarray) or final.classes_.ndim != 1):
        return None
    threaded = family == "forest" and final.n_jobs not in (None, 1)
    if threaded and not classifier:
        return None  # the threads' sum order changes the last bits of every answer
    if not np.isfinite(cut_points(np.concatenate([t.tree_.threshold for t in trees]))).all():
        return None
    return Trees(estimator, trees, family, classifier, chain(scalers), threaded)
