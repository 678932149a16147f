"""Data files of fish: read, sample and write CSV, Parquet, ``.npy`` and ``.npz`` in chunks.

Files may hold tens of millions of rows, so everything here works chunk by
chunk and memory stays flat. Four formats, picked by the file suffix:

``.csv``
    UTF-8 text with a header naming the columns ``Length``, ``Weight`` and
    optionally ``Species`` (any order, any case). Species cells may be
    ``bream``/``smelt``, ``도미``/``빙어`` or ``1``/``0``. Written with English
    names and, for values on a 0.1 grid, one decimal, like the seed's file.
``.parquet``
    The columns of the CSV: ``Length`` and ``Weight`` (numbers) and optionally
    ``Species`` (names as in CSV, or integers 1/0); written as float64 and
    English names, one row group per chunk. Needs pyarrow (extra ``parquet``).
``.npy``
    A float array of shape (n, 2) ``[length, weight]`` or (n, 3)
    ``[length, weight, label]`` with label 1 = bream, 0 = smelt.
``.npz``
    ``X`` (n, 2) float64 and optionally ``y`` (n,) int64 labels; stored
    uncompressed when written here, either way when read.

Every unusable file raises :class:`~fishpredict.errors.DataError` with a
one-line message that names the file and, where it helps, the line or row and
the column. Lengths and weights must be finite and non-negative.

This module is the public face; the formats live in :mod:`fishpredict.fish.csvtext`,
:mod:`fishpredict.fish.parquetfiles` and :mod:`fishpredict.fish.npyfiles`. Tables of any
model's columns are :mod:`fishpredict.tables.inputs`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, Protocol

import numpy as np
import numpy.typing as npt

from fishpredict.errors import DataError
from fishpredict.fish import csvtext, npyfiles, parquetfiles
from fishpredict.fish.dataset import BREAM
from fishpredict.tables.inputs import read_errors
from fishpredict.tables.npy import count_npy
from fishpredict.tables.parquet import count_parquet

FloatArray = npt.NDArray[np.float64]
LabelArray = npt.NDArray[np.int64]
Chunk = tuple[FloatArray, LabelArray | None]
PathLike = str | os.PathLike[str]

FORMATS: Final = ("csv", "parquet", "npy", "npz")
#: Default rows per chunk when reading.
CHUNK_ROWS: Final = 262_144


@dataclass(frozen=True)
class Written:
    """What :func:`write_chunks` wrote."""

    path: str
    format: str
    rows: int
    #: bream rows, or None when the data had no labels
    bream: int | None
    size: int

    @property
    def bream_share(self) -> float | None:
        return None if self.bream is None or not self.rows else self.bream / self.rows


@dataclass(frozen=True)
class Sample:
    """A uniform random sample: rows in file order, and how many rows there were."""

    X: FloatArray
    y: LabelArray | None
    population: int


def file_format(path: PathLike) -> str:
    """``"csv"``, ``"parquet"``, ``"npy"`` or ``"npz"`` from the suffix of ``path``, else
    DataError."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise DataError(
            f"{path}: unsupported file type {Path(path).suffix or '(none)'!r}; "
            "use .csv, .parquet, .npy or .npz"
        )
    return suffix


# ---- reading -------------------------------------------------------------------------


def iter_chunks(path: PathLike, chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """Yield ``(X, y)`` chunks of at most ``chunk_rows`` rows; ``y`` is None without labels.

    ``X`` is (n, 2) float64 ``[length, weight]``, ``y`` (n,) int64. Raises
    DataError for any unusable file, at the latest when the bad part is read.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    fmt = file_format(path)
    readers: dict[str, Callable[[str, int], Iterator[Chunk]]] = {
        "csv": csvtext.iter_csv,
        "parquet": parquetfiles.iter_parquet,
        "npy": npyfiles.iter_npy,
        "npz": npyfiles.iter_npz,
    }
    total = 0
    with read_errors(path):
        for X, y in readers[fmt](str(path), chunk_rows):
            if len(X):
                total += len(X)
                yield X, y
    if total == 0:
        raise DataError(f"{path}: no data rows")


def read_all(path: PathLike) -> tuple[FloatArray, LabelArray | None]:
    """The whole file in memory as ``(X, y)``."""
    xs: list[FloatArray] = []
    ys: list[LabelArray] = []
    labelled = True
    for X, y in iter_chunks(path):
        xs.append(X)
        if y is None:
            labelled = False
        else:
            ys.append(y)
    return np.concatenate(xs), (np.concatenate(ys) if labelled else None)


def count_rows(path: PathLike) -> int:
    """Rows in the file: from the array header for .npy/.npz and the footer for
    Parquet (no data read), the non-blank lines after the header for CSV (not
    validated)."""
    fmt = file_format(path)
    with read_errors(path):
        if fmt == "csv":
            return csvtext.count_lines(str(path))
        if fmt == "parquet":
            return count_parquet(str(path))
        if fmt == "npy":
            return count_npy(str(path))
        return npyfiles.count_npz(str(path))


def sample_chunks(chunks: Iterable[Chunk], n: int, seed: int, source: str = "data") -> Sample:
    """A uniform sample of ``n`` rows without replacement, in one pass, in O(n) memory.

    Bottom-k sampling: row ``i`` gets the ``i``-th number of a generator seeded
    with ``seed``, and the ``n`` rows with the smallest numbers are kept. The
    result depends only on the rows and ``seed``, not on the chunking or the
    file format. Rows come back in file order.
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    rng = np.random.default_rng(seed)
    keys = np.empty(0, dtype=np.float64)
    index = np.empty(0, dtype=np.int64)
    kept_X = np.empty((0, 2), dtype=np.float64)
    kept_y: LabelArray | None = np.empty(0, dtype=np.int64)
    seen = 0
    for X, y in chunks:
        r = rng.random(len(X))
        sel = np.flatnonzero(r < keys.max()) if len(keys) == n else np.arange(len(X))
        keys = np.concatenate([keys, r[sel]])
        index = np.concatenate([index, sel + seen])
        kept_X = np.concatenate([kept_X, X[sel]])
        kept_y = None if y is None or kept_y is None else np.concatenate([kept_y, y[sel]])
        if len(keys) > n:
            best = np.argpartition(keys, n - 1)[:n]
            keys, index, kept_X = keys[best], index[best], kept_X[best]
            kept_y = None if kept_y is None else kept_y[best]
        seen += len(X)
    if seen < n:
        raise DataError(f"{source}: has {seen:,} rows; cannot sample {n:,} without replacement")
    order = np.argsort(index, kind="stable")
    return Sample(kept_X[order], None if kept_y is None else kept_y[order], seen)


def sample(
    path: PathLike, n: int, seed: int = 1, chunk_rows: int = CHUNK_ROWS
) -> tuple[FloatArray, LabelArray | None]:
    """``n`` rows drawn at random without replacement from the file (see
    :func:`sample_chunks`), as ``(X, y)``."""
    s = sample_chunks(iter_chunks(path, chunk_rows), n, seed, source=str(path))
    return s.X, s.y


# ---- writing -------------------------------------------------------------------------


class _Sink(Protocol):
    def write(self, X: FloatArray, y: LabelArray | None) -> None: ...
    def close(self) -> None: ...
    def discard(self) -> None: ...


_WRITERS: Final[dict[str, Callable[[IO[bytes], int, bool], _Sink]]] = {
    "csv": csvtext.CsvWriter,
    "parquet": parquetfiles.ParquetFishWriter,
    "npy": npyfiles.NpyWriter,
    "npz": npyfiles.NpzWriter,
}


def _copy_chunks(sink: _Sink, chunks: Iterable[Chunk], rows: int, labelled: bool) -> int:
    """Write every chunk to ``sink``, checking shapes and the row count; the bream count."""
    written = bream = 0
    for X, y in chunks:
        if (
            X.ndim != 2
            or X.shape[1] != 2
            or (y is not None) != labelled
            or (y is not None and y.shape != (len(X),))
        ):
            raise ValueError("chunks must be (X (n, 2), y (n,) or None), all alike")
        written += len(X)
        if written > rows:
            raise ValueError(f"chunks hold more than the {rows} rows announced")
        if y is not None:
            bream += int(np.count_nonzero(y == BREAM))
        sink.write(X, y)
    if written != rows:
        raise ValueError(f"chunks hold {written} rows, not the {rows} announced")
    return bream


def write_chunks(path: PathLike, chunks: Iterable[Chunk], rows: int) -> Written:
    """Write exactly ``rows`` rows from ``(X, y)`` chunks to ``path`` (format by suffix).

    ``y`` is None in every chunk or in none. The file appears under its name
    only when complete (written to a temporary name, then renamed), so an
    interrupted run leaves no half-written file.
    """
    p = Path(path)
    fmt = file_format(p)
    it = iter(chunks)
    first = next(it, None)
    labelled = first is None or first[1] is not None
    tmp = p.with_name(f".{p.name}.{os.getpid()}.part")
    bream = 0
    try:
        with open(tmp, "wb") as f:
            sink = _WRITERS[fmt](f, rows, labelled)
            try:
                bream = _copy_chunks(
                    sink, itertools.chain([] if first is None else [first], it), rows, labelled
                )
            except BaseException:
                sink.discard()
                raise
            sink.close()
        os.replace(tmp, p)
    except OSError as exc:
        raise DataError(f"cannot write {p}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return Written(str(p), fmt, rows, bream if labelled else None, p.stat().st_size)


def write(path: PathLike, X: FloatArray, y: LabelArray | None = None) -> Written:
    """Write in-memory ``X`` (n, 2) and optional labels ``y`` (n,) to ``path``."""
    X = np.asarray(X, dtype=np.float64)
    return write_chunks(path, [(X, None if y is None else np.asarray(y, dtype=np.int64))], len(X))
