"""Tables of any model's input columns: CSV, Parquet and ``.npy`` files, read in chunks.

A model takes named columns; its users keep them in CSV or Parquet files, often
many of them (a directory a job wrote, a glob). This module reads such input as
pandas DataFrames of at most ``chunk_rows`` rows, with only the columns asked
for, so memory stays flat however big the files are:

- :func:`list_inputs` resolves a PATH (a file, a glob such as ``data/*.parquet``,
  or a directory) to its files in sorted order;
- :func:`iter_tables` yields :class:`TableChunk` s: the rows, where they come
  from (the file, the first row's index in that file and in the whole input);
- :func:`row_counts` and :func:`count_rows` count rows (exactly; Parquet and
  ``.npy`` from their metadata, CSV by a pass over one column).

Columns are picked by header name in the order asked for, in any order in the
file, extra columns ignored. A name matches exactly or, failing that, the one
column that equals it ignoring case and surrounding spaces (so the fish models'
``length``/``weight`` read a ``Length,Weight,Species`` file). A ``.npy`` array
(n, d) has no names: its columns are the ones asked for, in order (d must
match), or ``x0`` .. ``x{d-1}``.

Values: an empty CSV cell (the ``nulls`` markers) is a missing value, NaN, as is
a Parquet null; whether the model accepts it is for the caller to decide. With
``kinds`` a column is read as a ``"number"`` (float64; a cell that is not a
number is a DataError naming the file, row and column) or a ``"string"`` (text,
kept as text even when it looks like a number, ``"01"`` stays ``"01"``).
Without a kind, pandas infers the type of each chunk.

pandas (and, for Parquet, pyarrow) are imported inside the functions, so
``import fishpredict`` does not need them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from fishpredict.errors import DataError
from fishpredict.tables import npy as npyfiles
from fishpredict.tables import parquet as parquetfiles
from fishpredict.tables import readers as tableformats
from fishpredict.tables.readers import Kind

if TYPE_CHECKING:
    import pandas as pd

PathLike = str | os.PathLike[str]

#: The table formats, by file suffix.
TABLE_FORMATS: Final = ("csv", "parquet", "npy")
#: Default rows per chunk (a 20-column float table: about 10 MB per chunk).
CHUNK_ROWS: Final = 65_536
#: CSV cells that are a missing value: only the empty cell, so that a category
#: spelled ``NA`` or ``None`` stays a category.
NULLS: Final = ("",)
_KINDS: Final = ("number", "string")
_GLOB_CHARS: Final = re.compile(r"[*?[]")


@dataclass(frozen=True)
class TableChunk:
    """Consecutive rows of one input file, as a DataFrame.

    ``data`` has the columns asked for, in that order, and an index running
    from ``row`` to ``row + len(data) - 1`` (the rows' places in the whole input).
    """

    #: the file these rows come from
    source: str
    #: that file's place among the inputs, 0-based (:func:`list_inputs` order)
    part: int
    #: index of the first row within its file, 0-based (blank CSV lines not counted)
    file_row: int
    #: index of the first row within the whole input, 0-based
    row: int
    data: pd.DataFrame

    def __len__(self) -> int:
        return len(self.data)


@contextlib.contextmanager
def read_errors(path: PathLike) -> Iterator[None]:
    """Turn OS, decoding and zip errors while reading ``path`` into DataError."""
    try:
        yield
    except FileNotFoundError:
        raise DataError(f"data file not found: {path}") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a data file") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except zipfile.BadZipFile:
        raise DataError(f"{path}: not a .npz file (not a zip archive)") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None


def table_format(path: PathLike) -> str:
    """``"csv"``, ``"parquet"`` or ``"npy"`` from the suffix of ``path``, else DataError."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in TABLE_FORMATS:
        raise DataError(
            f"{path}: unsupported file type {Path(path).suffix or '(none)'!r}; "
            "use .csv, .parquet or .npy files, a directory or a glob of them"
        )
    return suffix


def _natural(name: str) -> tuple[tuple[Any, ...], str]:
    """Sort key: runs of digits compare as numbers (``part.2`` before ``part.10``)."""
    parts = re.split(r"(\d+)", name)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), name


def list_inputs(path: PathLike) -> list[str]:
    """The files ``path`` names, sorted: itself, the files a glob matches, or the
    CSV, Parquet and ``.npy`` files directly inside a directory.

    Sorting compares runs of digits as numbers, so ``part.10`` follows
    ``part.9`` (as Dask names its parts) and zero-padded names sort as they
    read. In a directory, names starting with ``.`` or ``_`` (``_SUCCESS``,
    ``_metadata``, temporary files) and other suffixes are skipped; a file a
    glob matches must be a table. Raises DataError when nothing is found.
    """
    text = os.fspath(path)
    if os.path.isdir(text):
        files = [
            os.path.join(text, name)
            for name in os.listdir(text)
            if not name.startswith((".", "_"))
            and Path(name).suffix.lower().lstrip(".") in TABLE_FORMATS
            and os.path.isfile(os.path.join(text, name))
        ]
        if not files:
            raise DataError(f"{text}: no .csv, .parquet or .npy files in this directory")
    elif os.path.exists(text) or not _GLOB_CHARS.search(text):
        if not os.path.exists(text):
            raise DataError(f"data file not found: {text}")
        files = [text]
    else:
        files = [f for f in glob.glob(text, recursive=True) if os.path.isfile(f)]
        if not files:
            raise DataError(f"{text}: no files match")
    for f in files:
        table_format(f)
    return sorted(files, key=_natural)


# ---- the columns of one file ---------------------------------------------------------


def file_columns(path: PathLike) -> list[str]:
    """The columns of one file: its CSV header, its Parquet schema (without pandas'
    index columns), or ``x0`` .. ``x{d-1}`` for a ``.npy`` array (n, d)."""
    p = os.fspath(path)
    fmt = table_format(p)
    with read_errors(p):
        if fmt == "csv":
            return [c for c in tableformats.csv_header(p) if c.strip()]
        if fmt == "parquet":
            with open(p, "rb") as f:
                schema = parquetfiles.open_parquet(f, p).schema_arrow
            index = parquetfiles.pandas_index_columns(schema)
            return [n for n in schema.names if n not in index]
        shape = npyfiles.npy_shape(p)
        if len(shape) != 2:
            raise DataError(f"{p}: expected a 2-D array (n, d), got shape {shape}")
        return [f"x{i}" for i in range(shape[1])]


# ---- counting ------------------------------------------------------------------------


def count_file_rows(path: PathLike) -> int:
    """Data rows of one file: from the footer (Parquet) or header (``.npy``), or a
    pass over the first column of a CSV (parsed as when reading: empty lines not
    counted, quoted line breaks understood, a row with the wrong number of cells
    an error)."""
    p = os.fspath(path)
    fmt = table_format(p)
    with read_errors(p):
        if fmt == "parquet":
            return parquetfiles.count_parquet(p)
        if fmt == "npy":
            return npyfiles.count_npy(p)
        first = tableformats.csv_header(p)[0]
        pa = parquetfiles.require_pyarrow("CSV tables")[0]
        try:
            reader = tableformats.open_csv(p, [first], {first: pa.string()}, ())
            return sum(batch.num_rows for batch in reader)
        except pa.ArrowException as exc:
            raise tableformats.csv_error(p, exc, {0: first}) from None


def row_counts(path: PathLike) -> list[tuple[str, int]]:
    """``(file, rows)`` for every input file of ``path``, in :func:`list_inputs` order."""
    return [(f, count_file_rows(f)) for f in list_inputs(path)]


def count_rows(path: PathLike) -> int:
    """Data rows in all the input files of ``path``."""
    return sum(n for _, n in row_counts(path))


# ---- reading -------------------------------------------------------------------------


def iter_tables(
    path: PathLike,
    columns: Sequence[str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    *,
    kinds: Mapping[str, Kind] | None = None,
    nulls: Sequence[str] = NULLS,
) -> Iterator[TableChunk]:
    """Yield the rows of every input file of ``path`` as :class:`TableChunk` s.

    ``path`` is a file, a glob or a directory (see :func:`list_inputs`); files
    are read in that order, each in chunks of at most ``chunk_rows`` rows (a
    chunk never spans two files). ``columns`` names the columns to read, in
    the order wanted; None takes the first file's columns (:func:`file_columns`)
    and asks every later file for the same. ``kinds`` maps column names to
    ``"number"`` or ``"string"`` (see the module doc). ``nulls``: the CSV cells
    that mean a missing value.

    Raises DataError, one line naming the file (and the row and column where
    there is one), for anything unusable, at the latest when the bad part is
    read; also when the whole input has no rows.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    kinds = dict(kinds or {})
    for name, kind in kinds.items():
        if kind not in _KINDS:
            raise ValueError(f"kind of {name!r} must be 'number' or 'string', got {kind!r}")
    files = list_inputs(path)
    want = list(columns) if columns is not None else file_columns(files[0])
    if len(set(want)) != len(want):
        raise ValueError(f"columns must be unique, got {want}")
    row = 0
    for part, source in enumerate(files):
        reader = tableformats.READERS[table_format(source)]
        with read_errors(source):
            for file_row, frame in reader(source, want, chunk_rows, kinds, nulls):
                if len(frame):
                    frame.index = range(row, row + len(frame))
                    yield TableChunk(source, part, file_row, row, frame)
                    row += len(frame)
    if row == 0:
        raise DataError(f"{os.fspath(path)}: no data rows")


def read_table(
    path: PathLike,
    columns: Sequence[str] | None = None,
    *,
    kinds: Mapping[str, Kind] | None = None,
    nulls: Sequence[str] = NULLS,
) -> pd.DataFrame:
    """All the input of ``path`` in one DataFrame (see :func:`iter_tables`)."""
    import pandas as pd

    frames = [c.data for c in iter_tables(path, columns, kinds=kinds, nulls=nulls)]
    return pd.concat(frames) if len(frames) > 1 else frames[0]
