""".npy files of any plain numeric array, read in row blocks without loading them whole.

A ``.npy`` file is a header (shape, dtype, order) and the values after it, so a
reader can seek to any row: :func:`iter_array` yields float64 blocks of at most
``chunk_rows`` rows of a 2-D array (C or Fortran order), and resident memory
stays at one block however big the file. :func:`write_header` starts a file
whose rows are streamed after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import IO

import numpy as np
import numpy.typing as npt

from fishpredict.errors import DataError

FloatArray = npt.NDArray[np.float64]


def count_npy(path: str) -> int:
    """Rows of a .npy file, from its header (0 for a 0-d array)."""
    shape = npy_shape(path)
    return shape[0] if shape else 0


def npy_header(
    f: IO[bytes], path: str, member: str
) -> tuple[tuple[int, ...], np.dtype[np.generic], bool]:
    """Shape, dtype and Fortran order from the header at the start of ``f``."""
    what = f"{path}" + (f" (array {member})" if member else "")
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise DataError(f"{what}: unsupported .npy format version {version}")
    except ValueError as exc:
        raise DataError(f"{what}: not a valid .npy array ({exc})") from None
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biuf":
        raise DataError(f"{what}: holds {dtype}, expected plain numbers")
    return tuple(int(s) for s in shape), dtype, bool(fortran) and len(shape) > 1


def read_rows(
    f: IO[bytes], dtype: np.dtype[np.generic], rows: int, cols: int, what: str
) -> npt.NDArray[np.float64]:
    """The next ``rows`` x ``cols`` values of ``f`` (C order) as float64."""
    buf = np.empty(rows * cols, dtype=dtype)
    view = buf.data.cast("B")
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            raise DataError(f"{what}: file is truncated (array data ends early)")
        got += n
    return buf.reshape(rows, cols).astype(np.float64, copy=False)


def npy_shape(path: str) -> tuple[int, ...]:
    """The shape of the array in a .npy file, from its header."""
    with open(path, "rb") as f:
        return npy_header(f, path, "")[0]


def blocks(
    f: IO[bytes], path: str, chunk_rows: int, check: Callable[[tuple[int, ...]], None]
) -> Iterator[tuple[int, FloatArray]]:
    """``(first row, float64 block)`` of the 2-D array in the open .npy file ``f``.

    ``check`` sees the shape first and raises for one it cannot use. A
    Fortran-ordered array (what ``np.save(np.array([lengths, weights]).T)``
    writes) is read column by column with a seek per column and chunk.
    """
    shape, dtype, fortran = npy_header(f, path, "")
    check(shape)
    rows, cols = shape
    data_start = f.tell()
    for start in range(0, rows, chunk_rows):
        m = min(chunk_rows, rows - start)
        if fortran:
            a = np.empty((m, cols), dtype=np.float64)
            for c in range(cols):
                f.seek(data_start + (c * rows + start) * dtype.itemsize)
                a[:, c] = read_rows(f, dtype, m, 1, path)[:, 0]
        else:
            a = read_rows(f, dtype, m, cols, path)
        yield start, a


def iter_array(path: str, chunk_rows: int) -> Iterator[tuple[int, FloatArray]]:
    """``(first row, block)`` of any plain numeric 2-D array (n, d) in a .npy file, as
    float64 blocks of at most ``chunk_rows`` rows; values are not checked."""

    def two_d(shape: tuple[int, ...]) -> None:
        if len(shape) != 2:
            raise DataError(f"{path}: expected a 2-D array (n, d), got shape {shape}")

    with open(path, "rb") as f:
        yield from blocks(f, path, chunk_rows, two_d)


def write_header(f: IO[bytes], dtype: type[np.generic], shape: tuple[int, ...]) -> None:
    np.lib.format.write_array_header_2_0(
        f,
        {
            "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
            "fortran_order": False,
            "shape": shape,
        },
    )
