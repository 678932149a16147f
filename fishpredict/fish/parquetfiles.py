"""Parquet files of fish, read in record batches and written in row groups.

A fish Parquet file has the columns of the CSV: ``Length`` and ``Weight``
(any numeric type) and optionally ``Species`` (text: ``bream``/``smelt``,
``도미``/``빙어``, ``1``/``0`` in any case; or integers 1/0). Column names are
matched in any case; other columns are refused, as in CSV, except the index
columns pandas stores. Reading goes through pyarrow's ``iter_batches`` with
only those columns, so memory stays at one batch however big the file;
writing appends one row group per chunk through a ``ParquetWriter``.

pyarrow (the ``parquet`` extra) is imported inside the functions that need it,
so ``import fishpredict`` does not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from fishpredict.errors import DataError
from fishpredict.fish.csvtext import COLUMNS, SPECIES_CELLS, first_bad_row
from fishpredict.fish.dataset import BREAM, SMELT, SPECIES_NAMES
from fishpredict.tables.parquet import (
    BATCH_OPTIONS,
    first_line,
    open_parquet,
    pandas_index_columns,
    require_pyarrow,
)

if TYPE_CHECKING:
    import pyarrow as pa

FloatArray = npt.NDArray[np.float64]
LabelArray = npt.NDArray[np.int64]
Chunk = tuple[FloatArray, LabelArray | None]

EXPECTED_COLUMNS: Final = "expected columns Length, Weight[, Species]"
_SPECIES_HELP: Final = "expected bream, smelt, 도미, 빙어, 1 or 0"



def _fish_columns(path: str, schema: pa.Schema) -> dict[str, str]:
    """Column key (``length``, ``weight``, ``species``) -> its name in the file."""
    found: dict[str, str] = {}
    index = pandas_index_columns(schema)
    for name in schema.names:
        if name in index:
            continue
        key = name.strip().lower()
        if key not in COLUMNS:
            raise DataError(f"{path}: unexpected column {name!r}; {EXPECTED_COLUMNS}")
        if key in found:
            raise DataError(f"{path}: a column appears twice ({found[key]!r}, {name!r})")
        found[key] = name
    for need in ("length", "weight"):
        if need not in found:
            raise DataError(f"{path}: no {COLUMNS[need]} column; {EXPECTED_COLUMNS}")
    for key, name in found.items():
        t = schema.field(name).type
        if key == "species":
            if not (_is_text(t) or require_pyarrow()[0].types.is_integer(t)):
                raise DataError(f"{path}: column {name} holds {t}; expected species names or 1/0")
        elif not _is_number(t):
            raise DataError(f"{path}: column {name} holds {t}; expected numbers")
    return found


def _is_text(t: pa.DataType) -> bool:
    pa = require_pyarrow()[0]
    if pa.types.is_dictionary(t):
        t = t.value_type
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t)) or str(t) == "string_view"


def _is_number(t: pa.DataType) -> bool:
    pa = require_pyarrow()[0]
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def _first_null(column: pa.Array) -> int | None:
    if not column.null_count:
        return None
    pc = require_pyarrow()[1]
    return int(pc.indices_nonzero(pc.is_null(column))[0].as_py())


def _features(path: str, batch: pa.RecordBatch, names: dict[str, str], start: int) -> FloatArray:
    X = np.empty((batch.num_rows, 2), dtype=np.float64)
    for j, key in enumerate(("length", "weight")):
        column = batch.column(names[key])
        null = _first_null(column)
        if null is not None:
            raise DataError(
                f"{path}: row index {start + null}, column {COLUMNS[key]}: missing value"
            )
        X[:, j] = column.cast(require_pyarrow()[0].float64()).to_numpy(zero_copy_only=False)
    bad = first_bad_row(X)
    if bad is not None:
        row, col = bad
        raise DataError(
            f"{path}: row index {start + row}, column {COLUMNS[('length', 'weight')[col]]}: "
            f"{X[row, col]:g} is not a finite non-negative number"
        )
    return X


#: The species cells :data:`~fishpredict.fish.csvtext.SPECIES_CELLS` knows, and their labels.
_CELLS: Final = list(SPECIES_CELLS)
_CELL_LABELS: Final = np.array([SPECIES_CELLS[c] for c in _CELLS], dtype=np.int64)


def _labels(path: str, column: pa.Array, start: int) -> LabelArray:
    pa, pc, _ = require_pyarrow()
    null = _first_null(column)
    if null is not None:
        raise DataError(f"{path}: row index {start + null}, column Species: missing value")
    if pa.types.is_integer(column.type):
        values: LabelArray = column.to_numpy(zero_copy_only=False).astype(np.int64)
        bad = np.flatnonzero((values != BREAM) & (values != SMELT))
        if len(bad):
            i = int(bad[0])
            raise DataError(
                f"{path}: row index {start + i}, column Species: "
                f"label {values[i]} is not 1 (bream) or 0 (smelt)"
            )
        return values
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    cells = pc.utf8_lower(pc.utf8_trim_whitespace(column))
    found = pc.index_in(cells, value_set=pa.array(_CELLS, type=cells.type))
    unknown = _first_null(found)
    if unknown is not None:
        cell = column[unknown].as_py()
        raise DataError(
            f"{path}: row index {start + unknown}, column Species: unknown species "
            f"{cell.strip()[:40]!r}; {_SPECIES_HELP}"
        )
    labels: LabelArray = _CELL_LABELS[found.to_numpy(zero_copy_only=False)]
    return labels


def iter_parquet(path: str, chunk_rows: int) -> Iterator[Chunk]:
    """Yield ``(X, y)`` chunks of at most ``chunk_rows`` rows of a fish Parquet file."""
    pa = require_pyarrow()[0]
    with open(path, "rb") as f:
        pf = open_parquet(f, path)
        names = _fish_columns(path, pf.schema_arrow)
        start = 0
        try:
            for batch in pf.iter_batches(
                batch_size=chunk_rows, columns=list(names.values()), **BATCH_OPTIONS
            ):
                X = _features(path, batch, names, start)
                y = None
                if "species" in names:
                    y = _labels(path, batch.column(names["species"]), start)
                start += batch.num_rows
                yield X, y
        except pa.ArrowException as exc:
            raise DataError(f"{path}: unreadable Parquet data ({first_line(exc)})") from None


# ---- writing -------------------------------------------------------------------------


class ParquetFishWriter:
    """Writes ``Length``, ``Weight`` (float64) and, when labelled, ``Species`` (the
    English names), one row group per chunk."""

    def __init__(self, f: IO[bytes], rows: int, labelled: bool) -> None:
        pa, _, pq = require_pyarrow()
        fields = [("Length", pa.float64()), ("Weight", pa.float64())]
        if labelled:
            fields.append(("Species", pa.string()))
        self.schema = pa.schema(fields)
        names = SPECIES_NAMES["en"]
        self.names = pa.array([names[SMELT], names[BREAM]], type=pa.string())
        self.writer = pq.ParquetWriter(f, self.schema)

    def write(self, X: FloatArray, y: LabelArray | None) -> None:
        pa, pc, _ = require_pyarrow()
        columns = [pa.array(X[:, 0], type=pa.float64()), pa.array(X[:, 1], type=pa.float64())]
        if y is not None:
            columns.append(pc.take(self.names, pa.array(y, type=pa.int64())))
        if len(X):
            self.writer.write_table(pa.Table.from_arrays(columns, schema=self.schema))

    def close(self) -> None:
        self.writer.close()

    def discard(self) -> None:
        with contextlib.suppress(Exception):  # the file is deleted anyway
            self.writer.close()
