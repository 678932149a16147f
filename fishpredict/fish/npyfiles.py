""".npy and .npz files of fish, read and written in chunks without loading them whole.

A ``.npy`` file is a float array (n, 2) ``[length, weight]`` or (n, 3)
``[length, weight, label]``; a ``.npz`` archive holds ``X`` (n, 2) and
optionally ``y`` (n,). Both are read through the array header and then row
blocks straight from the file (or the zip member), never memory-mapped whole,
so resident memory stays at one chunk however big the file. Writers take the
row count up front (it is part of the header) and stream rows after it; the
``.npz`` writer parks the labels in a temporary file until ``X`` is complete,
since a zip archive is written one member at a time.
"""

from __future__ import annotations

import contextlib
import tempfile
import zipfile
from collections.abc import Iterator
from typing import IO

import numpy as np
import numpy.typing as npt

from fishpredict.errors import DataError
from fishpredict.fish.csvtext import first_bad_row
from fishpredict.tables import npy

FloatArray = npt.NDArray[np.float64]
LabelArray = npt.NDArray[np.int64]
Chunk = tuple[FloatArray, LabelArray | None]


def count_npz(path: str) -> int:
    """Rows of a .npz archive, from the header of its ``X``."""
    with zipfile.ZipFile(path) as zf, _member(zf, "X", path) as f:
        return npy.npy_header(f, path, "X")[0][0]


def _labels_of(values: npt.NDArray[np.float64], what: str, offset: int) -> LabelArray:
    bad = (values != 0) & (values != 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{what}: row index {offset + i}: label {values[i]:g} is not 1 (bream) or 0 (smelt)"
        )
    return values.astype(np.int64)


def _check_features(X: FloatArray, what: str, offset: int) -> None:
    bad = first_bad_row(X)
    if bad is not None:
        row, col = bad
        raise DataError(
            f"{what}: row index {offset + row}, column {('length', 'weight')[col]}: "
            f"{X[row, col]:g} is not a finite non-negative number"
        )


def iter_npy(path: str, chunk_rows: int) -> Iterator[Chunk]:
    """Yield ``(X, y)`` chunks of a fish .npy file; ``y`` is None for an (n, 2) array."""

    def fish(shape: tuple[int, ...]) -> None:
        if len(shape) != 2 or shape[1] not in (2, 3):
            raise DataError(
                f"{path}: expected an array of shape (n, 2) [length, weight] or "
                f"(n, 3) [length, weight, label], got {shape}"
            )

    with open(path, "rb") as f:
        for start, a in npy.blocks(f, path, chunk_rows, fish):
            X = np.ascontiguousarray(a[:, :2])
            _check_features(X, path, start)
            yield X, (_labels_of(a[:, 2], path, start) if a.shape[1] == 3 else None)


def _member(zf: zipfile.ZipFile, name: str, path: str) -> IO[bytes]:
    for candidate in (f"{name}.npy", name):
        if candidate in zf.namelist():
            return zf.open(candidate)
    found = ", ".join(n.removesuffix(".npy") for n in zf.namelist()) or "nothing"
    raise DataError(
        f"{path}: no array {name!r} (found: {found}); expected X (n, 2) and optionally y (n,)"
    )


def iter_npz(path: str, chunk_rows: int) -> Iterator[Chunk]:
    """Yield ``(X, y)`` chunks of a .npz archive; ``y`` is None when it has no ``y``.

    A Fortran-ordered ``X`` is read whole (a zip member cannot seek cheaply).
    """
    with zipfile.ZipFile(path) as zf, _member(zf, "X", path) as fx:
        shape, dtype, fortran = npy.npy_header(fx, path, "X")
        if len(shape) != 2 or shape[1] != 2:
            raise DataError(f"{path}: array X must have shape (n, 2), got {shape}")
        rows = shape[0]
        fy: IO[bytes] | None = None
        ydtype = dtype
        names = {n.removesuffix(".npy") for n in zf.namelist()}
        try:
            if "y" in names:
                fy = _member(zf, "y", path)
                yshape, ydtype, _ = npy.npy_header(fy, path, "y")
                if yshape != (rows,):
                    raise DataError(
                        f"{path}: array y must have shape ({rows},) to match X, got {yshape}"
                    )
            whole = npy.read_rows(fx, dtype, 2 * rows, 1, f"{path} (array X)") if fortran else None
            for start in range(0, rows, chunk_rows):
                m = min(chunk_rows, rows - start)
                if whole is None:
                    X = npy.read_rows(fx, dtype, m, 2, f"{path} (array X)")
                else:
                    X = np.ascontiguousarray(whole.reshape(2, rows)[:, start : start + m].T)
                _check_features(X, f"{path} (array X)", start)
                y = None
                if fy is not None:
                    y = _labels_of(
                        npy.read_rows(fy, ydtype, m, 1, f"{path} (array y)")[:, 0],
                        f"{path} (array y)",
                        start,
                    )
                yield X, y
        finally:
            if fy is not None:
                fy.close()


# ---- writing -------------------------------------------------------------------------


class NpyWriter:
    def __init__(self, f: IO[bytes], rows: int, labelled: bool) -> None:
        self.f = f
        npy.write_header(f, np.float64, (rows, 3 if labelled else 2))

    def write(self, X: FloatArray, y: LabelArray | None) -> None:
        if y is None:
            self.f.write(np.ascontiguousarray(X, dtype=np.float64).data)
            return
        a = np.empty((len(X), 3), dtype=np.float64)
        a[:, :2] = X
        a[:, 2] = y
        self.f.write(a.data)

    def close(self) -> None:
        pass

    def discard(self) -> None:
        pass


class NpzWriter:
    def __init__(self, f: IO[bytes], rows: int, labelled: bool) -> None:
        self.rows = rows
        self.zf = zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True)
        self.fx = self.zf.open("X.npy", "w", force_zip64=True)
        npy.write_header(self.fx, np.float64, (rows, 2))
        # closed in close(): the labels wait here until X is complete
        self.ytmp = tempfile.TemporaryFile() if labelled else None  # noqa: SIM115

    def write(self, X: FloatArray, y: LabelArray | None) -> None:
        self.fx.write(np.ascontiguousarray(X, dtype=np.float64).data)
        if self.ytmp is not None and y is not None:
            self.ytmp.write(np.ascontiguousarray(y, dtype=np.int64).data)

    def close(self) -> None:
        self.fx.close()
        if self.ytmp is not None:
            with self.zf.open("y.npy", "w", force_zip64=True) as fy:
                npy.write_header(fy, np.int64, (self.rows,))
                self.ytmp.seek(0)
                while block := self.ytmp.read(1 << 22):
                    fy.write(block)
            self.ytmp.close()
        self.zf.close()

    def discard(self) -> None:
        """Release everything after a failure (the file itself is deleted)."""
        for closer in (
            self.fx.close,
            self.zf.close,
            self.ytmp.close if self.ytmp is not None else None,
        ):
            if closer is not None:
                with contextlib.suppress(Exception):
                    closer()
