"""Rows the load generator sends: read from a data file, or generated.

One function, :func:`load_rows`, is the only door: a data file goes through
:mod:`fishpredict.fish.files` (CSV, ``.npy`` or ``.npz`` with ``Length``,
``Weight`` and optionally ``Species``; a file with more rows than needed is
sampled at random), and generated rows come from :mod:`fishpredict.fish.synth`
(fish drawn from distributions fitted to the 49 built-in fish, labelled, and
correctly classified by the seed's models with k = 1, 5, 15, 25).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fishpredict.errors import DataError
from fishpredict.fish import files as datafiles
from fishpredict.fish import synth


@dataclass(frozen=True)
class Rows:
    """Features ``X`` (n, 2) and labels ``y`` (n,) or ``None`` when unlabelled."""

    X: npt.NDArray[np.float64]
    y: npt.NDArray[np.int64] | None

    def __len__(self) -> int:
        return int(self.X.shape[0])


def generated_rows(n: int, seed: int = 0) -> Rows:
    """``n`` labelled synthetic fish (the same ones for the same ``seed``)."""
    X, y = synth.sample(n, seed=seed)
    return Rows(X=X, y=y)


def read_rows(path: str, limit: int, seed: int = 0) -> Rows:
    """At most ``limit`` rows of a data file: all of it if it is small, a random sample if not."""
    if datafiles.count_rows(path) <= limit:
        X, y = datafiles.read_all(path)
    else:
        X, y = datafiles.sample(path, limit, seed=seed)
    if len(X) == 0:
        raise DataError(f"{path}: no data rows")
    return Rows(X=X, y=y)


def load_rows(data: str | None, limit: int, seed: int = 0) -> Rows:
    """The rows of a run: from ``data`` when given, generated otherwise."""
    return read_rows(data, limit, seed) if data else generated_rows(limit, seed)
