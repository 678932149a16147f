"""Exact fast paths, one module per estimator family, compiled when a model loads.

:func:`compile` turns a fitted estimator into a
:class:`~fishpredict.models.loaded.FastPath` when one family covers it (KNN, linear
models, trees and forests; bare or behind ``StandardScaler``/``MinMaxScaler``/
``MaxAbsScaler`` in a ``Pipeline``) and returns None for anything else, which
scikit-learn answers. :func:`verify` counts the rows of a check set built from the
model where the fast path answers otherwise than the estimator, and of edge rows
(huge magnitudes) where one answers and the other refuses; the loader drops a fast
path that differs anywhere. Each family's module says why it is exact.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from fishpredict.models.fastpaths import checks, knn, linear, trees
from fishpredict.models.loaded import FastPath

FAMILIES = (knn, linear, trees)


def compile(estimator: Any) -> FastPath | None:
    """The fast path of ``estimator``, or None when no family covers it exactly."""
    for family in FAMILIES:
        fast: FastPath | None = family.compile(estimator)
        if fast is not None:
            return fast
    return None


def verify(fast: FastPath, estimator: Any, seed: int = 0) -> int:
    """How many check rows ``fast`` answers otherwise than ``estimator`` (0: keep it)."""
    X = checks.check_rows(fast, estimator, seed)
    wrong = checks.count_wrong(fast, estimator, X)
    with warnings.catch_warnings(), np.errstate(all="ignore"):  # edge rows overflow
        warnings.simplefilter("ignore", RuntimeWarning)
        return wrong + checks.count_edge_wrong(fast, estimator, checks.edge_rows(fast, X, seed))
