"""The readers behind :mod:`fishpredict.tables.inputs`: one per table format.

Each reader takes a file, the columns wanted (in order), the rows per chunk,
the kinds asked for and the CSV null markers, and yields ``(first row in the
file, DataFrame)`` with exactly those columns. CSV goes through pyarrow's
streaming CSV reader (``pyarrow.csv.open_csv``: strict about the number of
cells in a row, row numbers in its errors), Parquet through pyarrow's
``iter_batches`` (only the columns wanted), ``.npy`` through
:func:`fishpredict.fish.npyfiles.iter_array`.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

from fishpredict.errors import DataError
from fishpredict.tables import npy as npyfiles
from fishpredict.tables import parquet as parquetfiles

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

#: How a column is read: as float64 numbers, or as text.
Kind = Literal["number", "string"]
#: What a reader yields: (index of the first row in the file, the rows).
Frames = Iterator[tuple[int, "pd.DataFrame"]]


def csv_header(path: str) -> list[str]:
    """The cells of the first non-blank line of a CSV file, or DataError when there is none."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        for row in csv.reader(f):
            if any(cell.strip() for cell in row):
                return row
    raise DataError(f"{path}: empty file; expected a header row naming the columns")


def match_columns(path: str, have: Sequence[str], want: Sequence[str]) -> list[int]:
    """For each wanted column, its position among the file's columns ``have``: the
    column of that exact name, else the one equal to it ignoring case and spaces."""
    out: list[int] = []
    for name in want:
        exact = [i for i, h in enumerate(have) if h == name]
        if not exact:
            exact = [i for i, h in enumerate(have) if h.strip().lower() == name.strip().lower()]
        if len(exact) > 1:
            found = " and ".join(repr(have[i]) for i in exact)
            raise DataError(f"{path}: column {name!r} appears more than once ({found})")
        if not exact:
            shown = ", ".join(repr(h) for h in have[:12]) + (", ..." if len(have) > 12 else "")
            raise DataError(f"{path}: no column {name!r} (found: {shown or 'none'})")
        if exact[0] in out:
            other = want[out.index(exact[0])]
            raise DataError(
                f"{path}: columns {other!r} and {name!r} both match column {have[exact[0]]!r}"
            )
        out.append(exact[0])
    return out


def csv_error(path: str, exc: Exception, columns: Mapping[int, str]) -> DataError:
    """pyarrow's CSV error as one line naming the row index (0-based data row) and the
    column (``columns``: file position -> the name asked for)."""
    text = parquetfiles.first_line(exc)
    row = re.search(r"Row #(\d+)", text)
    where = f"row index {int(row[1]) - 2}" if row else "a row"
    cells = re.search(r"Expected (\d+) columns, got (\d+)", text)
    if cells:
        return DataError(f"{path}: {where}: expected {cells[1]} cells, found {cells[2]}")
    if "invalid UTF8" in text:
        return DataError(f"{path}: not UTF-8 text")
    value = re.search(r"column #(\d+): .*conversion error to \w+: invalid value (.*)$", text)
    if value:
        column = columns.get(int(value[1]), f"#{value[1]}")
        cell = value[2].removeprefix("'").removesuffix("'")
        return DataError(f"{path}: {where}, column {column}: not a number: {cell.strip()[:40]!r}")
    return DataError(f"{path}: cannot parse CSV ({text})")


def _infer(s: pd.Series) -> pd.Series:
    """A text column as numbers when every cell of it is one (as pandas would read
    it), otherwise as it is."""
    import pandas as pd

    try:
        return pd.to_numeric(s)
    except (ValueError, TypeError):
        return s


def _rebatch(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Tables of exactly ``rows`` rows (the last one may be shorter) from record batches."""
    arrow = parquetfiles.require_pyarrow()[0]
    held: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        held.append(batch)
        count += batch.num_rows
        while count >= rows:
            table = arrow.Table.from_batches(held)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            held, count = rest.to_batches(), rest.num_rows
    if count:
        yield arrow.Table.from_batches(held)


def open_csv(
    path: str, picked: Sequence[str], types: Mapping[str, Any], nulls: Sequence[str]
) -> Any:
    """pyarrow's streaming reader over the columns ``picked`` of a CSV file."""
    parquetfiles.require_pyarrow("CSV tables")
    import pyarrow.csv as pacsv

    return pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(use_threads=False),  # errors then carry row numbers
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            include_columns=list(picked),
            column_types=dict(types),
            null_values=list(nulls),
            strings_can_be_null=True,
        ),
    )


def read_csv(
    path: str, want: list[str], chunk_rows: int, kinds: dict[str, Kind], nulls: Sequence[str]
) -> Frames:
    """CSV: a row with more or fewer cells than the header is refused, quoted line
    breaks are fine, empty lines are skipped. A column without a kind is read as
    text and becomes numbers when every cell in the chunk is one."""
    pa = parquetfiles.require_pyarrow("CSV tables")[0]
    header = csv_header(path)
    positions = match_columns(path, header, want)
    picked = [header[i] for i in positions]
    types = {
        src: pa.float64() if kinds.get(name) == "number" else pa.string()
        for src, name in zip(picked, want, strict=True)
    }
    file_row = 0
    try:
        for table in _rebatch(open_csv(path, picked, types, nulls), chunk_rows):
            table = table.rename_columns(want)  # pyarrow keeps the order of picked
            frame = table.to_pandas()
            for name in want:
                if name not in kinds:
                    frame[name] = _infer(frame[name])
            yield file_row, frame
            file_row += table.num_rows
    except pa.ArrowException as exc:
        raise csv_error(path, exc, dict(zip(positions, want, strict=True))) from None


def _parquet_column(path: str, name: str, kind: Kind | None, type_: Any) -> Any:
    """The arrow type column ``name`` is cast to (None: keep), or DataError."""
    pa = parquetfiles.require_pyarrow()[0]
    if pa.types.is_dictionary(type_):
        type_ = type_.value_type
    number = pa.types.is_integer(type_) or pa.types.is_floating(type_)
    number = number or pa.types.is_decimal(type_) or pa.types.is_null(type_)
    text = pa.types.is_string(type_) or pa.types.is_large_string(type_)
    text = text or pa.types.is_null(type_) or str(type_) == "string_view"
    if kind == "number":
        if not number:
            raise DataError(f"{path}: column {name} holds {type_}; expected numbers")
        return pa.float64()
    if kind == "string":
        if not text:
            raise DataError(f"{path}: column {name} holds {type_}; expected text")
        return pa.string()
    return type_


def read_parquet(
    path: str, want: list[str], chunk_rows: int, kinds: dict[str, Kind], nulls: Sequence[str]
) -> Frames:
    pa = parquetfiles.require_pyarrow()[0]
    with open(path, "rb") as f:
        pf = parquetfiles.open_parquet(f, path)
        schema = pf.schema_arrow
        index = parquetfiles.pandas_index_columns(schema)
        have = [n for n in schema.names if n not in index]
        picked = [have[i] for i in match_columns(path, have, want)]
        types = [
            _parquet_column(path, name, kinds.get(name), schema.field(src).type)
            for src, name in zip(picked, want, strict=True)
        ]
        target = pa.schema([(name, t) for name, t in zip(want, types, strict=True)])
        file_row = 0
        try:
            for batch in pf.iter_batches(
                batch_size=chunk_rows, columns=picked, **parquetfiles.BATCH_OPTIONS
            ):
                arrays = [batch.column(src) for src in picked]
                arrays = [
                    a.cast(a.type.value_type) if pa.types.is_dictionary(a.type) else a
                    for a in arrays
                ]
                table = pa.Table.from_arrays(
                    [a.cast(t) for a, t in zip(arrays, target.types, strict=True)],
                    schema=target,
                )
                yield file_row, table.to_pandas()
                file_row += batch.num_rows
        except pa.ArrowException as exc:
            raise DataError(
                f"{path}: unreadable Parquet data ({parquetfiles.first_line(exc)})"
            ) from None


def read_npy(
    path: str, want: list[str], chunk_rows: int, kinds: dict[str, Kind], nulls: Sequence[str]
) -> Frames:
    import pandas as pd

    for name in want:
        if kinds.get(name) == "string":
            raise DataError(f"{path}: column {name} is text, but a .npy array holds numbers")
    shape = npyfiles.npy_shape(path)
    if len(shape) == 2 and shape[1] != len(want):
        raise DataError(
            f"{path}: the array has {shape[1]} columns; expected {len(want)} ({', '.join(want)})"
        )
    for start, block in npyfiles.iter_array(path, chunk_rows):
        yield start, pd.DataFrame(block, columns=want, copy=False)


Reader = Callable[[str, list[str], int, dict[str, Kind], Sequence[str]], Frames]
#: format -> reader
READERS: Final[dict[str, Reader]] = {"csv": read_csv, "parquet": read_parquet, "npy": read_npy}
