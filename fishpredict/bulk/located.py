"""Rows named as their file numbers them, on every bulk path.

The model's checks name a row of the chunk they were given (``row 3, feature
'weight': ...``); a bulk run reads a file in chunks, so the row is renamed to its
index in the file (0-based, the header and blank CSV lines not counted):
``data.csv: row index 10003, feature 'weight': ...``. The server path
(:mod:`fishpredict.bulk.tables`) and the Dask path (:mod:`fishpredict.bulk.dask_tasks`)
say it alike.
"""

from __future__ import annotations

import re
from typing import Final

_ROW: Final = re.compile(r"row (\d+)")


def at_file_row(text: str, where: str, first_row: int) -> str:
    """``text`` (an error about a chunk whose first row is ``first_row`` in ``where``)
    with its leading ``row N`` counted from the start of ``where``."""
    found = _ROW.match(text)
    if found:
        text = f"row index {int(found[1]) + first_row}{text[found.end():]}"
    return f"{where}: {text}" if where else text
