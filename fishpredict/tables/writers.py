"""Writing output tables: predictions as CSV or Parquet, one file or one file per part.

A bulk job reads its input in parts (:func:`fishpredict.tables.inputs.iter_tables`
numbers the input files) and writes one of two shapes:

- **one file**, ``predictions.csv`` or ``predictions.parquet`` (the suffix picks
  the format): every frame appended in the order written;
- **a directory** of parts, ``part-00000.parquet``, ``part-00001.parquet``...,
  one per input part, named so that the files' sorted order is the input's row
  order (and :func:`~fishpredict.tables.inputs.list_inputs` reads them back in it).

Nothing appears under the final name before the job is complete: a file is
written to a temporary name beside it and renamed by :meth:`commit`; a directory
is assembled in a hidden staging directory beside it (each part itself written
under a temporary name, then renamed) and renamed as a whole. A failed job
(:meth:`discard`, or an exception inside a ``with`` block) leaves nothing behind.

:func:`prediction_frame` builds the frames: a ``prediction`` column and, when
asked, one ``probability_<class>`` column per class.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from fishpredict.errors import DataError
from fishpredict.tables.inputs import count_file_rows
from fishpredict.tables.parquet import require_pyarrow

if TYPE_CHECKING:
    import pandas as pd

PathLike = str | os.PathLike[str]

#: Output formats, by file suffix.
OUTPUT_FORMATS: Final = ("csv", "parquet")
#: The name of part ``i`` in a partitioned output: zero-padded, so that sorting by
#: name (plain or natural) is the parts' order.
PART_NAME: Final = "part-{part:05d}.{format}"
_PART_FILE: Final = re.compile(r"part-\d{5,}\.(csv|parquet)")


@dataclass(frozen=True)
class TableOutput:
    """What a writer wrote."""

    #: the output file or directory
    path: str
    format: str
    rows: int
    #: the files written (one, or the parts in order)
    files: tuple[str, ...]
    #: bytes on disk, all files together
    size: int


def prediction_frame(
    predictions: Any,
    probabilities: Any = None,
    classes: Sequence[Any] | None = None,
    *,
    inputs: pd.DataFrame | None = None,
    index: Any = None,
) -> pd.DataFrame:
    """A ``prediction`` column and, with ``probabilities`` (n, len(classes)), one
    ``probability_<class>`` column per class, in the order of ``classes``.

    ``inputs``, when given, are columns put first (say, an id column to keep
    beside each answer); ``index`` (for example a chunk's row numbers) is the
    frame's index, which is not written.
    """
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"prediction": np.asarray(predictions)}, index=index)
    if probabilities is not None:
        p = np.asarray(probabilities, dtype=np.float64)
        if classes is None or p.ndim != 2 or p.shape != (len(frame), len(classes)):
            raise ValueError(
                f"probabilities must be (rows, classes) = ({len(frame)}, "
                f"{None if classes is None else len(classes)}), got {p.shape}"
            )
        names = [f"probability_{c}" for c in classes]
        if len(set(names)) != len(names):
            raise ValueError(f"classes must have distinct names, got {list(classes)}")
        for j, name in enumerate(names):
            frame[name] = p[:, j]
    if inputs is not None:
        clash = set(inputs.columns) & set(frame.columns)
        if clash:
            raise ValueError(f"input columns clash with the output's: {sorted(clash)}")
        kept = inputs.reset_index(drop=True).set_axis(frame.index)
        frame = pd.concat([kept, frame], axis=1)
    return frame


def output_format(path: PathLike) -> str:
    """``"csv"`` or ``"parquet"`` from the suffix of ``path``, else DataError."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in OUTPUT_FORMATS:
        raise DataError(
            f"{path}: unsupported output type {Path(path).suffix or '(none)'!r}; "
            "use .csv or .parquet, or a directory for one file per part"
        )
    return suffix


def _cannot_write(path: PathLike, exc: OSError) -> DataError:
    return DataError(f"cannot write {path}: {exc.strerror or exc}")


class TableWriter:
    """One output file (CSV or Parquet by suffix, or ``format``), written to a
    temporary name beside it and renamed into place by :meth:`commit`.

    Every frame must have the first frame's columns; Parquet also keeps the first
    frame's column types (later frames are cast to them, or refused).
    """

    def __init__(self, path: PathLike, format: str | None = None) -> None:
        #: the final name
        self.path = Path(path)
        self.format = format or output_format(self.path)
        if self.format not in OUTPUT_FORMATS:
            raise ValueError(f"format must be csv or parquet, got {self.format!r}")
        #: rows written so far
        self.rows = 0
        #: what :meth:`commit` wrote, once it has
        self.committed: TableOutput | None = None
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.part")
        self._columns: list[str] | None = None
        self._parquet: Any = None
        try:
            self._file = open(self._tmp, "wb")  # noqa: SIM115 (closed by commit/discard)
        except OSError as exc:
            raise _cannot_write(self.path, exc) from None

    def write(self, frame: pd.DataFrame, part: int = 0) -> None:
        """Append the rows of ``frame`` (``part`` is accepted for symmetry with
        :class:`PartitionedWriter` and ignored: one file holds every part)."""
        columns = [str(c) for c in frame.columns]
        if self._columns is None:
            self._columns = columns
        elif columns != self._columns:
            raise ValueError(f"frame columns {columns} differ from the first {self._columns}")
        try:
            if self.format == "csv":
                header = self._file.tell() == 0
                frame.to_csv(self._file, header=header, index=False, lineterminator="\n")
            else:
                self._write_parquet(frame)
        except OSError as exc:
            raise _cannot_write(self.path, exc) from None
        self.rows += len(frame)

    def _write_parquet(self, frame: pd.DataFrame) -> None:
        pa, _, pq = require_pyarrow()
        if self._parquet is None:
            schema = pa.Schema.from_pandas(frame, preserve_index=False).remove_metadata()
            self._parquet = pq.ParquetWriter(self._file, schema)
        schema = self._parquet.schema
        try:
            table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            types = ", ".join(f"{f.name}: {f.type}" for f in schema)
            raise ValueError(f"frame does not fit the output's types ({types}): {exc}") from None
        self._parquet.write_table(table.replace_schema_metadata(None))

    def commit(self) -> TableOutput:
        """Finish the file and rename it to its final name; returns what was written."""
        if self.committed is not None:
            return self.committed
        if self._columns is None:
            self.discard()
            raise ValueError(f"{self.path}: no frame written, so no columns to write")
        try:
            if self._parquet is not None:
                self._parquet.close()
            self._file.close()
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self.discard()
            raise _cannot_write(self.path, exc) from None
        self.committed = TableOutput(
            str(self.path), self.format, self.rows, (str(self.path),), self.path.stat().st_size
        )
        return self.committed

    def discard(self) -> None:
        """Give up: close and delete the temporary file (the final name is untouched)."""
        for close in (self._parquet.close if self._parquet is not None else None,
                      self._file.close):  # fmt: skip
            if close is not None:
                with contextlib.suppress(Exception):
                    close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


def write_part(
    directory: PathLike, part: int, frames: Iterable[pd.DataFrame], format: str = "parquet"
) -> TableOutput:
    """Write part ``part`` (all of ``frames``) as ``directory/part-NNNNN.FORMAT``, under a
    temporary name until complete. For workers that each write their own part into a
    :class:`PartitionedWriter`'s :attr:`~PartitionedWriter.staging` directory."""
    if part < 0:
        raise ValueError(f"part must not be negative, got {part}")
    writer = TableWriter(Path(directory) / PART_NAME.format(part=part, format=format), format)
    try:
        for frame in frames:
            writer.write(frame)
    except BaseException:
        writer.discard()
        raise
    return writer.commit()


class PartitionedWriter:
    """An output directory of one file per part, assembled in a staging directory
    beside it and renamed into place by :meth:`commit`.

    Parts are written in any order of part numbers (one after another through
    :meth:`write`, or in parallel by workers calling :func:`write_part` on
    :attr:`staging`). An existing directory is replaced only if it is empty or
    holds nothing but an earlier output's part files; otherwise it is refused.
    """

    def __init__(self, directory: PathLike, format: str = "parquet") -> None:
        if format not in OUTPUT_FORMATS:
            raise ValueError(f"format must be csv or parquet, got {format!r}")
        self.path = Path(directory)
        self.format = format
        self.committed: TableOutput | None = None
        self._check_target()
        #: where the parts are written until :meth:`commit`
        self.staging = self.path.with_name(f".{self.path.name}.{os.getpid()}.part")
        try:
            if self.staging.exists():
                shutil.rmtree(self.staging)
            self.staging.mkdir()
        except OSError as exc:
            raise _cannot_write(self.path, exc) from None
        self._open: tuple[int, TableWriter] | None = None
        #: part -> rows, of the parts written through :meth:`write`
        self._done: dict[int, int] = {}

    def _check_target(self) -> None:
        if self.path.is_dir():
            others = [p.name for p in self.path.iterdir() if not _PART_FILE.fullmatch(p.name)]
            if others:
                raise DataError(
                    f"{self.path}: exists and holds other files ({', '.join(sorted(others)[:3])}"
                    f"{', ...' if len(others) > 3 else ''}); choose a new or empty directory"
                )
        elif self.path.exists():
            raise DataError(f"{self.path}: exists and is not a directory")

    def part_path(self, part: int) -> Path:
        """Where part ``part`` will be once committed."""
        return self.path / PART_NAME.format(part=part, format=self.format)

    def write(self, frame: pd.DataFrame, part: int) -> None:
        """Append ``frame`` to part ``part``; starting another part completes this one."""
        if self._open is not None and self._open[0] != part:
            self._finish_part()
        if self._open is None:
            if part in self._done or part < 0:
                raise ValueError(f"part {part} is already written (or negative)")
            name = PART_NAME.format(part=part, format=self.format)
            self._open = (part, TableWriter(self.staging / name, self.format))
        self._open[1].write(frame)

    def _finish_part(self) -> None:
        if self._open is not None:
            part, writer = self._open
            self._open = None
            self._done[part] = writer.commit().rows

    def commit(self) -> TableOutput:
        """Complete the last part and put the directory in place; what was written."""
        if self.committed is not None:
            return self.committed
        try:
            self._finish_part()
            self._check_target()
            files = sorted(p for p in self.staging.iterdir() if _PART_FILE.fullmatch(p.name))
            rows = sum(self._part_rows(p) for p in files)
            size = sum(p.stat().st_size for p in files)
            old = self.path.with_name(f".{self.path.name}.{os.getpid()}.old")
            if self.path.exists():
                os.replace(self.path, old)
            os.replace(self.staging, self.path)
            shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            self.discard()
            raise _cannot_write(self.path, exc) from None
        self.committed = TableOutput(
            str(self.path), self.format, rows,
            tuple(str(self.path / p.name) for p in files), size,
        )  # fmt: skip
        return self.committed

    def _part_rows(self, path: Path) -> int:
        """Rows of a part file: known if written here, else counted (a worker wrote it)."""
        part = int(path.name.split("-", 1)[1].split(".", 1)[0])
        if part in self._done:
            return self._done[part]
        return count_file_rows(path) if self.format == "parquet" or path.stat().st_size else 0

    def discard(self) -> None:
        """Give up: delete the staging directory (the final name is untouched)."""
        if self._open is not None:
            self._open[1].discard()
            self._open = None
        shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self) -> PartitionedWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


def check_output_name(path: PathLike) -> None:
    """DataError for an output name whose suffix is no output type (``out.json``): it
    would otherwise become a directory of part files without a word."""
    p = Path(path)
    text = os.fspath(path)
    suffix = p.suffix.lower().lstrip(".")
    if suffix and suffix not in OUTPUT_FORMATS and not p.is_dir() \
            and not text.endswith(("/", os.sep)):
        raise DataError(
            f"{path}: unknown output type {p.suffix!r}; use .csv or .parquet for one file, "
            f"or a directory (a name without a suffix, or ending in /) for part files"
        )


def open_output(path: PathLike, format: str | None = None) -> TableWriter | PartitionedWriter:
    """A writer for ``path``: one file when it ends in ``.csv`` or ``.parquet`` (and is
    not an existing directory), else a directory of parts in ``format`` (default
    Parquet). Both take ``write(frame, part)``, ``commit()`` and ``discard()``."""
    check_output_name(path)
    p = Path(path)
    text = os.fspath(path)
    suffix = p.suffix.lower().lstrip(".")
    if suffix in OUTPUT_FORMATS and not p.is_dir() and not text.endswith(("/", os.sep)):
        if format is not None and format != suffix:
            raise DataError(f"{path}: the suffix says {suffix}, but {format} was asked for")
        return TableWriter(p, suffix)
    return PartitionedWriter(p, format or "parquet")
