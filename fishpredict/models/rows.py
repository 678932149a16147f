"""Request rows to a model's input, checked against its signature.

Rows arrive as lists in feature order, as objects keyed by feature name (any
order), or as an ``(n, d)`` array. They leave as a :class:`Rows`: a float64
array in feature order for a numeric model, or a pandas DataFrame with the
fitted column names for a model that wants one. Anything the signature
forbids is an :class:`~fishpredict.errors.InvalidInputError` naming the row
and the feature: the wrong width, an unknown or missing feature name, text
in a numeric column, a number in a text column, an unknown category, a
missing value (JSON ``null``) where the model takes none, a value outside the
manifest's bounds, an empty row.

The common case (numbers in lists) is one ``np.array`` call and a few
vectorised checks.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from fishpredict.errors import InvalidInputError
from fishpredict.models.signature import Signature

FloatArray = npt.NDArray[np.float64]
_SHOWN: Final = 40  # characters of a bad value quoted in a message


@dataclass(frozen=True, slots=True)
class Rows:
    """Checked rows, ready for the model: ``array`` (numeric models) or ``frame``."""

    n: int
    array: FloatArray | None = None
    frame: Any = None  # pandas.DataFrame
    #: some value is NaN (a fast path takes only finite rows)
    has_nan: bool = False

    @property
    def data(self) -> Any:
        return self.frame if self.frame is not None else self.array


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _where(sig: Signature, row: int, col: int) -> str:
    return f"row {row}, feature {sig.features[col].name!r}"


# ---- numbers -------------------------------------------------------------------------


def check_numbers(sig: Signature, arr: FloatArray, offset: int = 0) -> bool:
    """Check a float64 (n, d) array of a numeric model in place; True if it holds NaN.

    Infinity is refused everywhere; NaN only where the model accepts missing values;
    bounds from the manifest are inclusive.
    """
    if arr.size == 0:
        return False
    finite = np.isfinite(arr)
    has_nan = False
    if not finite.all():
        nan = np.isnan(arr)
        inf = ~finite & ~nan
        if inf.any():
            r, c = np.argwhere(inf)[0]
            raise InvalidInputError(f"{_where(sig, int(r) + offset, int(c))}: values must be "
                                    f"finite, got {float(arr[r, c])!r}")
        if not sig.allows_nan:
            r, c = np.argwhere(nan)[0]
            raise InvalidInputError(
                f"{_where(sig, int(r) + offset, int(c))}: missing value (null/NaN), and this "
                "model does not accept missing values"
            )
        has_nan = True
    if sig.bounded:
        _check_bounds(sig, arr, offset)
    return has_nan


def _bounds(sig: Signature) -> tuple[FloatArray, FloatArray]:
    lo = np.array([-math.inf if f.minimum is None else f.minimum for f in sig.features])
    hi = np.array([math.inf if f.maximum is None else f.maximum for f in sig.features])
    return lo, hi


def _check_bounds(sig: Signature, arr: FloatArray, offset: int) -> None:
    lo, hi = _bounds(sig)
    bad = (arr < lo) | (arr > hi)
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad)[0])
        f = sig.features[c]
        if f.minimum is not None and arr[r, c] < f.minimum:
            rule = "must not be negative" if f.minimum == 0 else f"must be >= {f.minimum:g}"
        else:
            rule = f"must be <= {f.maximum:g}"
        raise InvalidInputError(f"{_where(sig, r + offset, c)}: {rule}, got {float(arr[r, c])!r}")


def _cell_number(sig: Signature, value: Any, row: int, col: int) -> float:
    if value is None:
        return math.nan  # judged with the others by check_numbers
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "true/false" if isinstance(value, bool) else type(value).__name__
        raise InvalidInputError(
            f"{_where(sig, row, col)}: expected a number, got {kind} {_show(value)}"
        )
    try:
        return float(value)
    except OverflowError:
        raise InvalidInputError(f"{_where(sig, row, col)}: number out of range") from None


def _width_error(sig: Signature, row: int, got: int) -> InvalidInputError:
    if got == 0:
        return InvalidInputError(
            f"row {row} is empty; the model takes {sig.n_features} features "
            f"({', '.join(sig.names)})"
        )
    return InvalidInputError(
        f"row {row} has {got} values; the model takes {sig.n_features} "
        f"({', '.join(sig.names)})"
    )


def _slow_numbers(sig: Signature, rows: Sequence[Any]) -> FloatArray:
    d = sig.n_features
    out = np.empty((len(rows), d), dtype=np.float64)
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            row = _keyed(sig, i, row)
        elif not isinstance(row, (list, tuple)):
            raise InvalidInputError(
                f"row {i} must be a list of {d} values or an object keyed by feature name, "
                f"got {_show(row)}"
            )
        if len(row) != d:
            raise _width_error(sig, i, len(row))
        for j, v in enumerate(row):
            out[i, j] = _cell_number(sig, v, i, j)
    return out


def _has_bool(rows: Sequence[Any]) -> bool:
    for row in rows:
        for v in row:
            if v is True or v is False:
                return True
    return False


def numbers_from_lists(sig: Signature, rows: Sequence[Any]) -> FloatArray:
    """A float64 (n, d) array from rows of numbers (``None`` -> NaN), checked for shape
    and type; values are checked by :func:`check_numbers`."""
    try:
        arr = np.array(rows)
    except (ValueError, TypeError):  # ragged, or values numpy cannot hold together
        return _slow_numbers(sig, rows)
    if arr.ndim == 2 and arr.shape[1] == sig.n_features and arr.dtype.kind in "iuf":
        if arr.dtype.kind == "i" and _has_bool(rows):  # numpy turns [true, 2] into ints
            return _slow_numbers(sig, rows)
        if arr.dtype.kind == "f" and _has_bool(rows):
            return _slow_numbers(sig, rows)
        return arr.astype(np.float64, copy=False)
    return _slow_numbers(sig, rows)


# ---- objects keyed by feature name --------------------------------------------------


def _keyed(sig: Signature, i: int, row: dict[str, Any]) -> list[Any]:
    names = sig.names
    if len(row) == len(names) and all(n in row for n in names):
        return [row[n] for n in names]
    if not row:
        raise _width_error(sig, i, 0)
    wanted = set(names)
    unknown = [k for k in row if k not in wanted]
    if unknown:
        raise InvalidInputError(
            f"row {i}: unknown feature {_show(unknown[0])}; the model takes {', '.join(names)}"
        )
    missing = next(n for n in names if n not in row)
    raise InvalidInputError(
        f"row {i}: missing feature {missing!r} (send null for a missing value)"
    )


def _ordered(sig: Signature, rows: Sequence[Any]) -> list[Any]:
    """Rows as lists in feature order: objects reordered by name, lists kept."""
    out: list[Any] = []
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            out.append(_keyed(sig, i, row))
        elif isinstance(row, list):
            if len(row) != sig.n_features:
                raise _width_error(sig, i, len(row))
            out.append(row)
        else:
            raise InvalidInputError(
                f"row {i} must be a list of {sig.n_features} values or an object keyed by "
                f"feature name, got {_show(row)}"
            )
    return out


# ---- DataFrames for pipelines -------------------------------------------------------


def _frame(sig: Signature, rows: list[list[Any]] | FloatArray) -> Any:
    import pandas as pd

    columns: dict[str, Any] = {}
    n = len(rows)
    for j, f in enumerate(sig.features):
        if isinstance(rows, np.ndarray):
            if f.kind == "string":
                raise InvalidInputError(
                    f"feature {f.name!r} is text; send rows as JSON, not a numeric array"
                )
            columns[f.name] = rows[:, j]
            continue
        cells = [r[j] for r in rows]
        if f.kind == "number":
            col = np.empty(n, dtype=np.float64)
            for i, v in enumerate(cells):
                col[i] = _cell_number(sig, v, i, j)
            columns[f.name] = col
        else:
            for i, v in enumerate(cells):
                if v is None:
                    if not sig.allows_nan:
                        raise InvalidInputError(
                            f"{_where(sig, i, j)}: missing value (null), and this model does "
                            "not accept missing values"
                        )
                elif not isinstance(v, str):
                    raise InvalidInputError(
                        f"{_where(sig, i, j)}: expected text, got {_show(v)}"
                    )
                elif f.categories is not None and v not in f.categories:
                    known = ", ".join(repr(c) for c in f.categories[:10])
                    more = ", …" if len(f.categories) > 10 else ""
                    raise InvalidInputError(
                        f"{_where(sig, i, j)}: unknown category {_show(v)} "
                        f"(known: {known}{more})"
                    )
            if f.levels is None:
                columns[f.name] = np.array(cells, dtype=object)
            else:  # the fitted dtype; a label outside it is missing, as pandas makes it
                levels = set(f.levels)
                columns[f.name] = pd.Categorical([v if v in levels else None for v in cells],
                                                 categories=list(f.levels))
    return pd.DataFrame(columns, copy=False)


def _numeric_part(sig: Signature, frame: Any) -> FloatArray:
    cols = [f.name for f in sig.features if f.kind == "number"]
    return np.asarray(frame[cols], dtype=np.float64) if cols else np.empty((len(frame), 0))


def _frame_rows(sig: Signature, listed: list[list[Any]] | FloatArray) -> Rows:
    frame = _frame(sig, listed)
    numeric = _numeric_part(sig, frame)
    sub = Signature(
        features=tuple(f for f in sig.features if f.kind == "number"),
        task=sig.task,
        allows_nan=sig.allows_nan,
    )
    has_nan = check_numbers(sub, numeric)
    return Rows(len(frame), frame=frame, has_nan=has_nan)


# ---- one row, specialised once per signature ---------------------------------------

#: the largest finite float64: "unbounded" as a bound that still refuses inf and NaN
_MAX: Final = sys.float_info.max

RowCheck = Callable[[Sequence[Any]], "list[float] | None"]


def _number(v: Any) -> float | None:
    """A JSON int as a float (None for anything else, or an int past float's range)."""
    if v.__class__ is not int:
        return None
    try:
        return float(v)
    except OverflowError:
        return None


def row_checker(sig: Signature) -> RowCheck | None:
    """A check of one row of a numeric model, specialised from its signature once.

    The check takes the row's values in feature order as the client sent them and
    gives them back as floats when every one is a finite number (int or float, not
    bool) within the feature's bounds; otherwise None, and the caller goes the
    general way (:func:`from_json_rows`), which accepts what this declines that the
    model takes (a missing value) and names what it refuses. It never raises.
    None for a model that takes a DataFrame or text. The check is written out as one
    Python function with the bounds in it (``repr`` of a float reads back the same).
    """
    if sig.frame or not sig.numeric or sig.n_features == 0:
        return None
    n = sig.n_features
    bounds = [
        (max(-_MAX, -math.inf if f.minimum is None else float(f.minimum)),
         min(_MAX, math.inf if f.maximum is None else float(f.maximum)))
        for f in sig.features
    ]
    if any(math.isnan(lo) or math.isnan(hi) for lo, hi in bounds):
        return None
    names = [f"v{j}" for j in range(n)]
    lines = ["def check(values):", f"    if len(values) != {n}:", "        return None",
             f"    {', '.join(names)}, = values"]
    for v in names:
        lines += [f"    if {v}.__class__ is not float:", f"        {v} = number({v})",
                  f"        if {v} is None:", "            return None"]
    within = " and ".join(f"{lo!r} <= {v} <= {hi!r}"
                          for v, (lo, hi) in zip(names, bounds, strict=True))
    lines += [f"    if not ({within}):", "        return None",  # NaN and inf fail too
              f"    return [{', '.join(names)}]"]
    namespace: dict[str, Any] = {"number": _number}
    exec(compile("\n".join(lines), f"<row check of {n} features>", "exec"), namespace)
    check: RowCheck = namespace["check"]
    return check


# ---- the entry points ---------------------------------------------------------------


def from_json_rows(sig: Signature, rows: Any) -> Rows:
    """Rows from a JSON list: lists in feature order, or objects keyed by name."""
    if not isinstance(rows, list):
        raise InvalidInputError("instances must be a list of rows")
    if not rows:
        return empty(sig)
    if not sig.frame and isinstance(rows[0], list):
        arr = numbers_from_lists(sig, rows)  # the common case: no dict, fast
        return Rows(len(arr), array=arr, has_nan=check_numbers(sig, arr))
    listed = _ordered(sig, rows)
    if not sig.frame:
        arr = numbers_from_lists(sig, listed)
        return Rows(len(arr), array=arr, has_nan=check_numbers(sig, arr))
    return _frame_rows(sig, listed)


def from_array(sig: Signature, arr: Any) -> Rows:
    """Rows from a numeric array (a ``.npy`` body, or a library caller's array)."""
    a = np.asarray(arr)
    if a.dtype.kind not in "iufb" or a.ndim != 2:
        raise InvalidInputError(
            f"expected a numeric array of shape (n, {sig.n_features}), got {a.dtype} {a.shape}"
        )
    if a.dtype.kind == "b":
        raise InvalidInputError("expected numbers, got a boolean array")
    if a.shape[1] != sig.n_features:
        raise InvalidInputError(
            f"expected rows of {sig.n_features} features ({', '.join(sig.names)}), "
            f"got an array of shape {a.shape}"
        )
    X = np.ascontiguousarray(a, dtype=np.float64)
    if sig.frame:
        return _frame_rows(sig, X)
    return Rows(len(X), array=X, has_nan=check_numbers(sig, X))


def from_frame(sig: Signature, frame: Any, offset: int = 0) -> Rows:
    """Rows from a pandas DataFrame with (at least) the model's columns, by name."""
    missing = [n for n in sig.names if n not in frame.columns]
    if missing:
        raise InvalidInputError(f"missing column {missing[0]!r}; the model takes "
                                f"{', '.join(sig.names)}")
    sub = frame[list(sig.names)]
    if sig.frame:
        rows = sub.astype(object).where(sub.notna(), None).values.tolist()
        return _frame_rows(sig, rows)
    try:
        X = np.ascontiguousarray(sub.to_numpy(dtype=np.float64, na_value=np.nan))
    except (TypeError, ValueError):
        return from_json_rows(sig, sub.astype(object).where(sub.notna(), None).values.tolist())
    return Rows(len(X), array=X, has_nan=check_numbers(sig, X, offset))


def empty(sig: Signature) -> Rows:
    if sig.frame:
        return _frame_rows(sig, [])
    return Rows(0, array=np.empty((0, sig.n_features), dtype=np.float64))


def one_row(sig: Signature, values: Sequence[Any]) -> Rows:
    """One row given in feature order (e.g. ``/fish``'s query values, already floats)."""
    return from_json_rows(sig, [list(values)])
