"""A bridge: today's 2-feature KNN fast path (:mod:`fishpredict.fastknn`) behind the
:class:`~fishpredict.models.loaded.FastPath` face, until the families in
:mod:`fishpredict.models.fastpaths` replace it."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .. import fastknn


class LegacyKnn:
    family = "knn"
    task = "classifier"
    n_features = 2
    has_proba = False

    def __init__(self, fast: fastknn.FastKNN) -> None:
        self._fast = fast
        self.classes = fast.classes

    def predict(self, X: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
        return self._fast.predict_codes(X)

    def predict_one(self, x: npt.NDArray[np.float64]) -> int:
        return self._fast.predict_one(float(x[0]), float(x[1]))

    def predict_proba(self, X: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        raise NotImplementedError


def compile(estimator: Any) -> LegacyKnn | None:
    fast = fastknn.compile_knn(estimator)
    return None if fast is None else LegacyKnn(fast)


def verify(fast: LegacyKnn, estimator: Any) -> int:
    return fastknn.check(fast._fast)
