"""Input files cut into partitions for a distributed job, and one partition read.

The Dask scorer (:mod:`fishpredict.bulk.dask`) gives each worker task one
:class:`FilePart`: a run of rows of one input file, read on the worker in
chunks so that a task's memory is one chunk however big the part or the file:

- **Parquet**: whole row groups, grouped until a part has about
  ``partition_rows`` rows (a file written with one huge row group is one part);
- **.npy**: row ranges of ``partition_rows`` rows, read through a memory map;
- **CSV**: the whole file (a CSV file cannot be cut at a row without reading
  it up to there; give a big CSV as several files, or convert it to Parquet).

:func:`plan_parts` cuts the files :func:`fishpredict.tables.inputs.list_inputs` found,
in their order; the parts' numbers follow the input's row order.
:func:`read_part` yields ``(row in the file, DataFrame)`` with the columns
asked for, by name, as :func:`fishpredict.tables.inputs.iter_tables` reads them (the
same matching of names, kinds and errors).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from fishpredict.errors import DataError
from fishpredict.tables import npy as npyfiles
from fishpredict.tables import parquet as parquetfiles
from fishpredict.tables import readers as tableformats
from fishpredict.tables.inputs import CHUNK_ROWS, NULLS, list_inputs, read_errors, table_format
from fishpredict.tables.readers import Frames, Kind

#: Rows per partition when the input allows cutting (Parquet, .npy).
PARTITION_ROWS: Final = 1_000_000


@dataclass(frozen=True)
class FilePart:
    """Rows ``start`` .. ``stop - 1`` of one input file (a worker task's input)."""

    #: the part's number in the whole job (its output file's number)
    part: int
    source: str
    format: str
    #: the first row's index within the file
    start: int
    #: one past the last row (None: to the end of the file, for CSV)
    stop: int | None
    #: Parquet: the row groups ``groups[0]`` .. ``groups[1] - 1``
    groups: tuple[int, int] | None = None

    @property
    def rows(self) -> int | None:
        return None if self.stop is None else self.stop - self.start


def _parquet_parts(source: str, partition_rows: int) -> list[tuple[int, int, tuple[int, int]]]:
    with read_errors(source), open(source, "rb") as f:
        meta = parquetfiles.open_parquet(f, source).metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    out: list[tuple[int, int, tuple[int, int]]] = []
    first, start, rows = 0, 0, 0
    for i, n in enumerate(sizes):
        rows += n
        if rows >= partition_rows or i == len(sizes) - 1:
            if rows:
                out.append((start, start + rows, (first, i + 1)))
            first, start, rows = i + 1, start + rows, 0
    return out


def _npy_parts(source: str, partition_rows: int) -> list[tuple[int, int]]:
    with read_errors(source):
        shape = npyfiles.npy_shape(source)
    if len(shape) != 2:
        raise DataError(f"{source}: expected a 2-D array (n, d), got shape {shape}")
    return [(s, min(s + partition_rows, shape[0])) for s in range(0, shape[0], partition_rows)]


def plan_parts(
    path: str | os.PathLike[str], partition_rows: int = PARTITION_ROWS
) -> list[FilePart]:
    """The parts of every input file of ``path`` (a file, glob or directory), in order.

    Files without rows give no part; an input with no rows at all is a DataError.
    """
    if partition_rows < 1:
        raise ValueError(f"partition_rows must be positive, got {partition_rows}")
    parts: list[FilePart] = []
    for source in list_inputs(path):
        fmt = table_format(source)
        if fmt == "parquet":
            for start, stop, groups in _parquet_parts(source, partition_rows):
                parts.append(FilePart(len(parts), source, fmt, start, stop, groups))
        elif fmt == "npy":
            for start, stop in _npy_parts(source, partition_rows):
                parts.append(FilePart(len(parts), source, fmt, start, stop))
        else:
            parts.append(FilePart(len(parts), source, fmt, 0, None))
    if not parts:
        raise DataError(f"{os.fspath(path)}: no data rows")
    return parts


# ---- reading one part ----------------------------------------------------------------


def _read_parquet(
    part: FilePart, want: list[str], chunk_rows: int, kinds: Mapping[str, Kind]
) -> Frames:
    pa = parquetfiles.require_pyarrow()[0]
    assert part.groups is not None
    with open(part.source, "rb") as f:
        pf = parquetfiles.open_parquet(f, part.source)
        schema = pf.schema_arrow
        index = parquetfiles.pandas_index_columns(schema)
        have = [n for n in schema.names if n not in index]
        picked = [have[i] for i in tableformats.match_columns(part.source, have, want)]
        types = [
            tableformats._parquet_column(part.source, name, kinds.get(name),
                                         schema.field(src).type)
            for src, name in zip(picked, want, strict=True)
        ]
        target = pa.schema(list(zip(want, types, strict=True)))
        row = part.start
        try:
            for batch in pf.iter_batches(
                batch_size=chunk_rows, row_groups=range(*part.groups), columns=picked,
                **parquetfiles.BATCH_OPTIONS,
            ):
                arrays = [batch.column(src) for src in picked]
                arrays = [a.cast(a.type.value_type) if pa.types.is_dictionary(a.type) else a
                          for a in arrays]
                table = pa.Table.from_arrays(
                    [a.cast(t) for a, t in zip(arrays, target.types, strict=True)],
                    schema=target,
                )
                yield row, table.to_pandas()
                row += batch.num_rows
        except pa.ArrowException as exc:
            raise DataError(
                f"{part.source}: unreadable Parquet data ({parquetfiles.first_line(exc)})"
            ) from None


def _read_npy(
    part: FilePart, want: list[str], chunk_rows: int, kinds: Mapping[str, Kind]
) -> Frames:
    import numpy as np
    import pandas as pd

    for name in want:
        if kinds.get(name) == "string":
            raise DataError(f"{part.source}: column {name} is text, but a .npy array holds numbers")
    shape = npyfiles.npy_shape(part.source)  # checks the header: plain numbers, 2-D
    if shape[1] != len(want):
        raise DataError(f"{part.source}: the array has {shape[1]} columns; expected "
                        f"{len(want)} ({', '.join(want)})")
    array = np.load(part.source, mmap_mode="r")
    stop = shape[0] if part.stop is None else part.stop
    try:
        for start in range(part.start, stop, chunk_rows):
            block = np.asarray(array[start:min(start + chunk_rows, stop)], dtype=np.float64)
            yield start, pd.DataFrame(block, columns=want, copy=False)
    finally:
        del array


def read_part(
    part: FilePart,
    columns: Sequence[str],
    chunk_rows: int = CHUNK_ROWS,
    *,
    kinds: Mapping[str, Kind] | None = None,
    nulls: Sequence[str] = NULLS,
) -> Frames:
    """``(row index in the file, DataFrame)`` for every chunk of ``part``: the
    ``columns`` (by name, as :func:`fishpredict.tables.inputs.iter_tables` matches them)
    with ``kinds`` applied; DataError naming the file for anything unusable."""
    want = list(columns)
    kinds = dict(kinds or {})
    with read_errors(part.source):
        if part.format == "parquet":
            frames = _read_parquet(part, want, chunk_rows, kinds)
        elif part.format == "npy":
            frames = _read_npy(part, want, chunk_rows, kinds)
        else:
            frames = tableformats.read_csv(part.source, want, chunk_rows, kinds, nulls)
        yield from frames

