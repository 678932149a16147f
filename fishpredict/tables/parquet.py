"""Parquet files through pyarrow, imported only when a Parquet file is read or written.

pyarrow (the ``parquet`` extra) is imported inside :func:`require_pyarrow`, so
``import fishpredict`` does not import it; a missing pyarrow is a
:class:`~fishpredict.errors.DataError` that names the extra to install.
"""

from __future__ import annotations

import json
from typing import IO, TYPE_CHECKING, Any, Final

from fishpredict.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

#: Options of every ``iter_batches`` call (see :func:`open_parquet`).
BATCH_OPTIONS: Final = {"use_threads": False}


def require_pyarrow(what: str = "Parquet files") -> tuple[Any, Any, Any]:
    """pyarrow, pyarrow.compute and pyarrow.parquet, or a DataError saying that ``what``
    needs them and how to get them."""
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.parquet
    except ImportError:
        raise DataError(f"{what} need pyarrow: pip install 'fishpredict[parquet]'") from None
    return pyarrow, pyarrow.compute, pyarrow.parquet


def open_parquet(f: IO[bytes], path: str) -> pq.ParquetFile:
    """The :class:`pyarrow.parquet.ParquetFile` of the open file ``f``, or DataError.

    Read through a 1 MiB buffer without pre-buffering whole row groups: with
    ``iter_batches(use_threads=False)`` (:data:`BATCH_OPTIONS`) memory then stays
    flat over many row groups, and on a busy machine it is no slower.
    """
    pa, _, pq = require_pyarrow()
    try:
        return pq.ParquetFile(f, pre_buffer=False, buffer_size=1 << 20)
    except pa.ArrowException as exc:
        raise DataError(f"{path}: not a Parquet file ({first_line(exc)})") from None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def pandas_index_columns(schema: pa.Schema) -> set[str]:
    """Names of the index columns pandas stored in ``schema`` (``__index_level_0__``...)."""
    meta = schema.metadata or {}
    try:
        pandas = json.loads(meta[b"pandas"])
        return {c for c in pandas.get("index_columns", []) if isinstance(c, str)}
    except (KeyError, ValueError, TypeError):
        return set()


def count_parquet(path: str) -> int:
    """Rows of a Parquet file, from its footer (no data read)."""
    with open(path, "rb") as f:
        return int(open_parquet(f, path).metadata.num_rows)
