"""One row of a k-nearest-neighbours classifier in plain Python floats, and a grid that
spares most of the distances.

numpy costs about a microsecond per call whatever the array's size; one row over a
small training set is all call overhead. This kernel computes the same distances in
Python floats, takes the k-th and (k+1)-th smallest, and answers only when the
:class:`~fishpredict.models.fastpaths.knn.Knn` rules say the vote cannot depend on
rounding (no boundary tie); otherwise it returns None and ``Knn.predict_one`` settles
the row (or asks the estimator), as before.

**The grid.** For a training set of up to 3 features, the box around the training
points (widened by half its span on every side) is cut into at most
:data:`GRID_CELLS` cells. For each cell, ``R`` is the (k+1)-th smallest over the
training points of their largest distance to the cell: every query in the cell has
its k+1 nearest points within ``R``. The cell keeps the points whose smallest
distance to the cell is within ``R`` plus the rounding any distance computation may
make (scikit-learn's brute-force ``|x|^2 - 2x.y + |y|^2`` included) and a relative
1e-6: no other point can be among the k+1 nearest, in exact arithmetic or in
scikit-learn's. So over a cell's points the k-th and (k+1)-th distances, and the
points within the k-th, are those of the whole training set, the same floats. A cell
whose points all have one class answers that class outright: any k of them vote for
it, whichever scikit-learn picks at a tie. Queries outside the box scan every point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import compress, repeat
from operator import mul
from typing import TYPE_CHECKING, Final

import numpy as np

from fishpredict.models.fastpaths.base import RowTransform

if TYPE_CHECKING:
    from fishpredict.models.fastpaths.knn import Knn

#: most cells of a grid (64 x 64 for two features, 16 x 16 x 16 for three)
GRID_CELLS: Final = 4096
#: most features a grid is built for
GRID_FEATURES: Final = 3
#: most cells x training points x features a grid may cost to build
GRID_WORK: Final = 8_000_000
#: relative slack of a cell's bound (far above any rounding)
GRID_RTOL: Final = 1e-6
#: squared distances past this could overflow: such rows go to ``predict_one``
_NORM_MAX: Final = 1e150

Cell = int | tuple[list[tuple[float, ...]], list[int]]

#: relative gap under which two distances count as possibly swapped
TIE_RTOL: Final = 1e-9


class RowKnn:
    """The plain-Python one-row kernel of one :class:`Knn` (uniform weights, k < n)."""

    def __init__(self, knn: Knn, pre: RowTransform | None) -> None:
        self.pre = pre
        self.k = knn.k
        self.euclidean = knn.euclidean
        self.d = knn.n_features
        self.n_classes = knn._n_classes
        self.rtol = TIE_RTOL
        self.gemm = knn._gemm
        self.fit_norm = knn._fit_norm
        self.pts: list[tuple[float, ...]] = [tuple(p) for p in knn._fit.tolist()]
        self.ys: list[int] = knn._y.tolist()
        self.cells: list[Cell] | None = None
        self.origin: list[float] = []
        self.inv: list[float] = []
        self.g = 0
        self._grid(knn)

    # -- the grid --

    def _grid(self, knn: Knn) -> None:
        d, m, k = self.d, knn.n_train, self.k
        if d > GRID_FEATURES or d < 1:
            return
        g = round(GRID_CELLS ** (1.0 / d))
        cells = g**d
        if cells * m * d > GRID_WORK:
            return
        fit = knn._fit
        lo, hi = fit.min(axis=0), fit.max(axis=0)
        span = hi - lo
        span = np.where(span > 0, span, np.maximum(np.abs(lo), 1.0))
        origin = lo - span / 2
        width = 2 * span / g
        if not (np.isfinite(origin).all() and np.isfinite(width).all() and (width > 0).all()):
            return
        idx = np.indices((g,) * d).reshape(d, -1).T.astype(np.float64)
        # each cell's box, padded for the rounding of a query's cell index
        pad = 1e-6 * width + 1e-12 * (np.abs(origin) + 2 * span)
        c_lo = origin + idx * width - pad
        c_hi = origin + (idx + 1) * width + pad
        P = fit[None, :, :]
        gap = np.maximum(c_lo[:, None, :] - P, 0.0) + np.maximum(P - c_hi[:, None, :], 0.0)
        far = np.maximum(np.abs(P - c_lo[:, None, :]), np.abs(P - c_hi[:, None, :]))
        if self.euclidean:
            near_d, far_d = (gap * gap).sum(axis=2), (far * far).sum(axis=2)
            # the most a squared distance's rounding can move it (brute force's
            # |x|^2 - 2x.y + |y|^2 for the largest query in the cell)
            q2 = np.maximum(c_lo * c_lo, c_hi * c_hi).sum(axis=1)
            slack = 2.0 * self.gemm * (q2 + self.fit_norm)
        else:
            near_d, far_d = gap.sum(axis=2), far.sum(axis=2)
            slack = np.zeros(cells)
        bound = np.partition(far_d, k, axis=1)[:, k]  # (k+1)-th smallest farthest distance
        limit = bound * (1.0 + GRID_RTOL) + slack + 1e-300
        keep = near_d <= limit[:, None]
        if not np.isfinite(limit).all() or (keep.sum(axis=1) < k + 1).any():
            return
        y = knn._y
        out: list[Cell] = []
        for row in keep:
            where = np.flatnonzero(row)
            classes = y[where]
            if (classes == classes[0]).all():
                out.append(int(classes[0]))
            else:
                out.append(([self.pts[i] for i in where.tolist()], classes.tolist()))
        self.cells = out
        self.origin = origin.tolist()
        self.inv = (1.0 / width).tolist()
        self.g = g

    def _cell(self, z: Sequence[float]) -> Cell | None:
        """The cell of ``z``, or None outside the grid."""
        g = self.g
        index = 0
        for v, o, inv in zip(z, self.origin, self.inv):  # noqa: B905 - same length
            t = (v - o) * inv
            if not 0.0 <= t < g:  # also NaN and inf
                return None
            index = index * g + int(t)
        assert self.cells is not None
        return self.cells[index]

    # -- one row --

    def predict(self, row: list[float]) -> int | None:
        """The class code of one finite row, or None when ``predict_one`` must decide."""
        z = row if self.pre is None else self.pre(row)
        pts, ys = self.pts, self.ys
        cells = self.cells
        if cells is not None:
            if self.d == 2:  # _cell, inline for the commonest width
                g = self.g
                t0 = (z[0] - self.origin[0]) * self.inv[0]
                t1 = (z[1] - self.origin[1]) * self.inv[1]
                cell = cells[int(t0) * g + int(t1)] if 0.0 <= t0 < g and 0.0 <= t1 < g \
                    else None
            else:
                cell = self._cell(z)
            if cell is not None:
                if isinstance(cell, int):
                    return cell
                pts, ys = cell
        norm = sum(map(mul, z, z))
        if not norm < _NORM_MAX:
            return None
        dists: list[float]
        if not self.euclidean:
            dists = [sum(map(abs, map(float.__sub__, p, z))) for p in pts]
        elif self.d == 2:
            x, w = z
            dists = [(x - a) * (x - a) + (w - b) * (w - b) for a, b in pts]
        else:
            dist = math.dist
            dists = [v * v for v in map(dist, pts, repeat(z))]
        ordered = sorted(dists)
        k = self.k
        kth: float = ordered[k - 1]
        rest: float = ordered[k]
        tol = self.rtol * rest + 1e-300
        if self.euclidean:
            tol += self.gemm * (norm + self.fit_norm)
        if not rest - kth > tol:  # a possible boundary tie
            return None
        near = compress(ys, map(kth.__ge__, dists))
        if self.n_classes == 2:  # a tied vote goes to class 0, as argmax does
            return 1 if 2 * sum(near) > k else 0
        votes = [0] * self.n_classes
        for c in near:
            votes[c] += 1
        return votes.index(max(votes))


def build(knn: Knn, pre: tuple[RowTransform | None] | None) -> RowKnn | None:
    """The one-row kernel of ``knn`` (None: distance weights, every point voting, or
    scalers with no plain-float replay)."""
    if pre is None or knn.distance or knn.k >= knn.n_train:
        return None
    return RowKnn(knn, pre[0])


__all__ = ["GRID_CELLS", "RowKnn", "build"]
