"""CSV text <-> arrays of fish, fast enough for tens of millions of rows.

Parsing runs numpy's C reader (``np.loadtxt``) over a block of lines; only when
it rejects a block does a line-by-line Python parser run over that block, to
accept what is merely unusual (whitespace-only lines) and to name the exact line
and column of what is wrong. Formatting writes values that sit on a 0.1 grid
(all generated data) with vectorised digit arithmetic, producing exactly the
text of ``f"{value:.1f}"``; other values are written with ``repr``, which
round-trips every float.
"""

from __future__ import annotations

import csv
import itertools
import math
import warnings
from collections.abc import Iterator
from typing import IO, Final

import numpy as np
import numpy.typing as npt

from fishpredict.errors import DataError
from fishpredict.fish.dataset import BREAM, SMELT, SPECIES_NAMES

FloatArray = npt.NDArray[np.float64]
LabelArray = npt.NDArray[np.int64]

#: Column key -> the name written in headers and messages.
COLUMNS: Final = {"length": "Length", "weight": "Weight", "species": "Species"}
EXPECTED_HEADER: Final = "expected a header Length,Weight[,Species]"
#: Species cell text (stripped, lower case) -> label.
SPECIES_CELLS: Final[dict[str, int]] = {
    **{name.lower(): label for names in SPECIES_NAMES.values() for label, name in names.items()},
    "1": BREAM,
    "0": SMELT,
    "1.0": BREAM,
    "0.0": SMELT,
}
_BREAM_CELLS: Final = [c for c, label in SPECIES_CELLS.items() if label == BREAM]
_SMELT_CELLS: Final = [c for c, label in SPECIES_CELLS.items() if label == SMELT]
_SPECIES_HELP: Final = "expected bream, smelt, 도미, 빙어, 1 or 0"
#: The bytes of the English species name of each label (both are 5 letters).
_SPECIES_BYTES: Final = np.frombuffer(
    (SPECIES_NAMES["en"][SMELT] + SPECIES_NAMES["en"][BREAM]).encode(), dtype=np.uint8
).reshape(2, -1)


def first_bad_row(X: FloatArray) -> tuple[int, int] | None:
    """(row, column) of the first NaN, infinite or negative value in ``X``, or None."""
    ok = np.isfinite(X) & (X >= 0)
    if ok.all():
        return None
    row = int(np.flatnonzero(~ok.all(axis=1))[0])
    return row, int(np.flatnonzero(~ok[row])[0])


# ---- reading -------------------------------------------------------------------------


def _columns(path: str, header: str, lineno: int) -> list[str]:
    cols = [c.strip().strip('"').strip().lower() for c in header.rstrip("\r\n").split(",")]
    for c in cols:
        if c not in COLUMNS:
            raise DataError(f"{path}: line {lineno}: unexpected column {c!r}; {EXPECTED_HEADER}")
    if len(set(cols)) != len(cols):
        raise DataError(f"{path}: line {lineno}: a column appears twice; {EXPECTED_HEADER}")
    for need in ("length", "weight"):
        if need not in cols:
            raise DataError(f"{path}: line {lineno}: no {COLUMNS[need]} column; {EXPECTED_HEADER}")
    return cols


def iter_csv(path: str, chunk_rows: int) -> Iterator[tuple[FloatArray, LabelArray | None]]:
    """Yield ``(X, y)`` from a CSV file, ``chunk_rows`` lines at a time."""
    with open(path, encoding="utf-8-sig", newline=None) as f:
        lineno = 0
        header = ""
        for line in f:
            lineno += 1
            if line.strip():
                header = line
                break
        if not header:
            raise DataError(f"{path}: empty file; {EXPECTED_HEADER}")
        cols = _columns(path, header, lineno)
        dtype = [(c, "U16" if c == "species" else "f8") for c in cols]
        while lines := list(itertools.islice(f, chunk_rows)):
            first = lineno + 1
            lineno += len(lines)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
                    arr = np.loadtxt(
                        lines, delimiter=",", dtype=dtype, comments=None, quotechar='"', ndmin=1
                    )
            except ValueError:
                yield _parse_slow(path, lines, first, cols)
                continue
            X = np.empty((len(arr), 2), dtype=np.float64)
            X[:, 0] = arr["length"]
            X[:, 1] = arr["weight"]
            y = _species_labels(arr["species"]) if "species" in cols else None
            if first_bad_row(X) is not None or ("species" in cols and y is None):
                yield _parse_slow(path, lines, first, cols)  # raises, naming the line
                continue
            yield X, y


def _species_labels(cells: npt.NDArray[np.str_]) -> LabelArray | None:
    """Labels of species cells, or None if any cell is not a known species."""
    bream: npt.NDArray[np.bool_] = (cells == "bream") | (cells == "도미") | (cells == "1")
    known = bream | (cells == "smelt") | (cells == "빙어") | (cells == "0")
    if not known.all():
        norm = np.char.lower(np.char.strip(cells))
        bream = np.isin(norm, _BREAM_CELLS)
        if not (bream | np.isin(norm, _SMELT_CELLS)).all():
            return None
    return bream.astype(np.int64)


def _number(path: str, lineno: int, col: str, cell: str) -> float:
    text = cell.strip()
    try:
        if "_" in text:
            raise ValueError(text)
        value = float(text)
    except ValueError:
        where = "empty cell" if not text else f"not a number: {cell.strip()[:40]!r}"
        raise DataError(f"{path}: line {lineno}, column {COLUMNS[col]}: {where}") from None
    if not math.isfinite(value) or value < 0:
        raise DataError(
            f"{path}: line {lineno}, column {COLUMNS[col]}: {text} is not a "
            "finite non-negative number"
        )
    return value


def _parse_slow(
    path: str, lines: list[str], first: int, cols: list[str]
) -> tuple[FloatArray, LabelArray | None]:
    """Parse ``lines`` one by one: skip blank lines, raise DataError at the first bad cell."""
    want = ",".join(COLUMNS[c] for c in cols)
    values: list[tuple[float, float]] = []
    labels: list[int] = []
    for i, fields in enumerate(csv.reader(lines, skipinitialspace=True)):
        lineno = first + i
        if not any(cell.strip() for cell in fields):
            continue
        if len(fields) != len(cols):
            raise DataError(
                f"{path}: line {lineno}: expected {len(cols)} cells ({want}), found {len(fields)}"
            )
        row = dict(zip(cols, fields, strict=True))
        values.append(
            (
                _number(path, lineno, "length", row["length"]),
                _number(path, lineno, "weight", row["weight"]),
            )
        )
        if "species" in row:
            label = SPECIES_CELLS.get(row["species"].strip().lower())
            if label is None:
                raise DataError(
                    f"{path}: line {lineno}, column Species: unknown species "
                    f"{row['species'].strip()[:40]!r}; {_SPECIES_HELP}"
                )
            labels.append(label)
    X = np.array(values, dtype=np.float64).reshape(-1, 2)
    return X, (np.array(labels, dtype=np.int64) if "species" in cols else None)


def count_lines(path: str) -> int:
    """Non-blank lines after the header line (the data rows of a well-formed file)."""
    n = 0
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                n += 1
    return max(n - 1, 0)


# ---- writing -------------------------------------------------------------------------


def _tenths_columns(
    t: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """Characters of ``t / 10`` with one decimal, right-aligned, and which to keep
    (leading zeros of the integer part are dropped, one integer digit always stays)."""
    width = max(2, len(str(int(t.max()))))
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    digits = ((t[:, None] // powers) % 10 + ord("0")).astype(np.uint8)
    keep = t[:, None] >= powers
    keep[:, -2:] = True
    n = len(t)
    dot = np.full((n, 1), ord("."), dtype=np.uint8)
    chars = np.concatenate([digits[:, :-1], dot, digits[:, -1:]], axis=1)
    return chars, np.concatenate([keep[:, :-1], np.ones((n, 2), dtype=np.bool_)], axis=1)


def format_rows(X: FloatArray, y: LabelArray | None) -> bytes:
    """CSV text (no header) for rows of ``X`` and, if given, English species names."""
    if len(X) == 0:
        return b""
    t = np.rint(X * 10.0)
    if not ((t / 10.0 == X).all() and (t >= 0).all() and t.max() < 1e15):
        names = SPECIES_NAMES["en"]
        if y is None:
            return "".join(f"{a!r},{b!r}\n" for a, b in X.tolist()).encode()
        return "".join(
            f"{a!r},{b!r},{names[c]}\n" for (a, b), c in zip(X.tolist(), y.tolist(), strict=True)
        ).encode()
    ti = t.astype(np.int64)
    n = len(X)
    comma = np.full((n, 1), ord(","), dtype=np.uint8)
    newline = np.full((n, 1), ord("\n"), dtype=np.uint8)
    length, keep_l = _tenths_columns(ti[:, 0])
    weight, keep_w = _tenths_columns(ti[:, 1])
    parts = [length, comma, weight]
    keeps = [keep_l, np.ones((n, 1), dtype=np.bool_), keep_w]
    if y is not None:
        parts += [comma, _SPECIES_BYTES[y]]
        keeps += [np.ones((n, 1 + _SPECIES_BYTES.shape[1]), dtype=np.bool_)]
    parts.append(newline)
    keeps.append(np.ones((n, 1), dtype=np.bool_))
    chars = np.concatenate(parts, axis=1)
    return chars[np.concatenate(keeps, axis=1)].tobytes()


class CsvWriter:
    """Writes a header, then rows as they come (see :func:`format_rows`)."""

    def __init__(self, f: IO[bytes], rows: int, labelled: bool) -> None:
        self.f = f
        f.write(b"Length,Weight,Species\n" if labelled else b"Length,Weight\n")

    def write(self, X: FloatArray, y: LabelArray | None) -> None:
        self.f.write(format_rows(X, y))

    def close(self) -> None:
        pass

    def discard(self) -> None:
        pass
