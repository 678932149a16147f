"""V2 tensors as JSON: request inputs to checked :class:`~fishpredict.models.rows.Rows`,
answers to output tensors.

A V2 input is ``{"name", "datatype", "shape", "data"}`` with ``data`` nested or
flat, row-major; the binary extension (:mod:`.v2_binary`) gives the same
tensor from raw bytes. A model's rows come either from one ``[n, d]`` tensor
(features in signature order) or from one 1-D tensor per feature named after
it (``[n]`` or ``[n, 1]``; also what ``parameters.content_type: "pd"`` means,
as MLServer's pandas codec reads it), which become a DataFrame's columns for a
pipeline that takes one. ``BOOL`` values count as 0/1 for numeric features,
``BYTES`` elements are UTF-8 text for text features.

Outputs are named as MLServer's scikit-learn runtime names them: ``predict``
(shape ``[n, 1]``, or ``[n, t]`` for several targets; labels keep the
classes' type: ``INT64``, ``BYTES``, ``BOOL``, ``FP64``) and ``predict_proba``
(``FP64``, ``[n, n_classes]``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from fishpredict.errors import InvalidInputError
from fishpredict.models import rows as rowslib
from fishpredict.models.rows import Rows
from fishpredict.models.signature import Signature

#: V2 datatype -> numpy dtype (little-endian, as the binary extension lays them out)
DTYPES: Final[Mapping[str, np.dtype[Any]]] = {
    "BOOL": np.dtype("?"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
#: the most elements one tensor may declare (a bound before any allocation)
MAX_ELEMENTS: Final = 50_000_000
_SHOWN: Final = 40


@dataclass(frozen=True)
class Tensor:
    """One decoded tensor: ``data`` has ``shape`` and the datatype's dtype (BYTES: an
    object array of ``str`` from JSON or ``bytes`` from the binary extension)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: npt.NDArray[Any]
    parameters: Mapping[str, Any] = field(default_factory=dict)


# ---- reading the header of one input -------------------------------------------------


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def parameters_of(doc: Mapping[str, Any], what: str) -> Mapping[str, Any]:
    if "parameters" not in doc:
        return {}
    params = doc["parameters"]
    if not isinstance(params, dict):
        raise InvalidInputError(f"{what}: parameters must be an object")
    return params


def header(doc: Any, i: int) -> tuple[str, str, tuple[int, ...], Mapping[str, Any]]:
    """An input's name, datatype, shape and parameters, checked."""
    if not isinstance(doc, dict):
        raise InvalidInputError(f"inputs[{i}] must be an object with name, datatype, shape, data")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"inputs[{i}]: name must be a non-empty string")
    datatype = doc.get("datatype")
    if not isinstance(datatype, str) or datatype not in DTYPES:
        raise InvalidInputError(
            f"input {name!r}: datatype must be one of {', '.join(DTYPES)}, got {_short(datatype)}"
        )
    shape = doc.get("shape")
    if not isinstance(shape, list) or not all(_dimension(d) for d in shape):
        raise InvalidInputError(
            f"input {name!r}: shape must be a list of non-negative integers, got {_short(shape)}"
        )
    dims = tuple(int(d) for d in shape)
    if math.prod(dims) > MAX_ELEMENTS:
        raise InvalidInputError(f"input {name!r}: shape {list(dims)} is over {MAX_ELEMENTS} "
                                "elements")
    return name, datatype, dims, parameters_of(doc, f"input {name!r}")


def _dimension(d: Any) -> bool:
    """A non-negative integer (``2.0`` too: JSON Schema counts it as an integer)."""
    if isinstance(d, bool):
        return False
    if isinstance(d, float):
        return d.is_integer() and 0 <= d < 2**63
    return isinstance(d, int) and d >= 0


# ---- JSON data -------------------------------------------------------------------------


def _flat(data: Any, name: str) -> list[Any]:
    """Nested lists flattened row-major (a flat list is kept as it is)."""
    if not isinstance(data, list):
        raise InvalidInputError(f"input {name!r}: data must be a list, got {_short(data)}")
    if not any(isinstance(v, list) for v in data):
        return data
    out: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        for v in stack[-1]:
            if isinstance(v, list):
                stack.append(iter(v))
                break
            out.append(v)
        else:
            stack.pop()
    return out


def _has_bool(values: Sequence[Any]) -> bool:
    return any(v is True or v is False for v in values)


def _is_number(v: Any, floats: bool) -> bool:
    if isinstance(v, bool):
        return False
    return isinstance(v, (int, float)) if floats else isinstance(v, int)


def _numbers(flat: list[Any], datatype: str, name: str) -> npt.NDArray[Any]:
    dtype = DTYPES[datatype]
    if not flat:
        return np.empty(0, dtype=dtype)
    if datatype == "BOOL":
        if not all(v is True or v is False for v in flat):
            bad = next(v for v in flat if v is not True and v is not False)
            raise InvalidInputError(f"input {name!r}: BOOL data must be true/false, got "
                                    f"{_short(bad)}")
        return np.array(flat, dtype=dtype)
    try:
        arr = np.array(flat)
    except (ValueError, TypeError, OverflowError):
        arr = np.array(flat, dtype=object)
    if arr.dtype.kind == "O" and dtype.kind == "f" and all(  # null for a missing value
            v is None or _is_number(v, True) for v in flat):
        return np.array([math.nan if v is None else float(v) for v in flat], dtype=dtype)
    want = "numbers" if dtype.kind == "f" else "integers"
    ok = "iuf" if dtype.kind == "f" else "iu"
    if arr.dtype.kind not in ok or _has_bool(flat):
        bad = next((v for v in flat if not _is_number(v, dtype.kind == "f")), flat[0])
        raise InvalidInputError(f"input {name!r}: {datatype} data must be {want}, got "
                                f"{_short(bad)}")
    if dtype.kind in "iu" and arr.size:
        info = np.iinfo(dtype)
        if arr.min() < info.min or arr.max() > info.max:
            raise InvalidInputError(
                f"input {name!r}: a value is out of the {datatype} range [{info.min}, {info.max}]"
            )
    if dtype.kind == "f" and arr.size and dtype != np.float64:
        big = np.abs(arr.astype(np.float64)) > np.finfo(dtype).max
        if big.any():
            raise InvalidInputError(f"input {name!r}: a value is out of the {datatype} range")
    return arr.astype(dtype, copy=False)


Header = tuple[str, str, tuple[int, ...], Mapping[str, Any]]


def from_json(doc: Any, i: int, head: Header | None = None) -> Tensor:
    """One V2 input with JSON ``data`` (``head``: its :func:`header`, when read already)."""
    name, datatype, shape, params = head or header(doc, i)
    if "data" not in doc:
        raise InvalidInputError(f"input {name!r}: data is missing (or send it as binary data)")
    flat = _flat(doc["data"], name)
    if len(flat) != math.prod(shape):
        raise InvalidInputError(
            f"input {name!r}: shape {list(shape)} holds {math.prod(shape)} elements, "
            f"data has {len(flat)}"
        )
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in flat):
            bad = next(v for v in flat if not isinstance(v, str))
            raise InvalidInputError(f"input {name!r}: BYTES data must be strings, got "
                                    f"{_short(bad)}")
        arr = np.empty(len(flat), dtype=object)
        arr[:] = flat
    else:
        arr = _numbers(flat, datatype, name)
    return Tensor(name, datatype, shape, arr.reshape(shape), params)


# ---- tensors to rows -------------------------------------------------------------------


def _text(values: npt.NDArray[Any], name: str) -> list[Any]:
    out: list[Any] = []
    for v in values.tolist():
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInputError(f"input {name!r}: BYTES element is not UTF-8") from None
        out.append(v)
    return out


def _column(t: Tensor, n: int) -> npt.NDArray[Any]:
    if t.datatype == "BYTES":
        return np.array(_text(t.data.reshape(n), t.name), dtype=object)
    return t.data.reshape(n).astype(np.float64)


def _by_feature(sig: Signature, tensors: Sequence[Tensor]) -> Rows:
    names = sig.names
    given = {t.name: t for t in tensors}
    if len(given) != len(tensors):
        dup = next(t.name for t in tensors if sum(u.name == t.name for u in tensors) > 1)
        raise InvalidInputError(f"input {dup!r} is given twice")
    unknown = [t.name for t in tensors if t.name not in names]
    if unknown:
        raise InvalidInputError(
            f"input {unknown[0][:_SHOWN]!r} is not a feature of the model; send one [n, "
            f"{sig.n_features}] tensor, or one tensor per feature ({', '.join(names)})"
        )
    missing = [f for f in names if f not in given]
    if missing:
        raise InvalidInputError(f"missing input for feature {missing[0]!r} (one tensor per "
                                f"feature: {', '.join(names)})")
    n = None
    for t in tensors:
        if len(t.shape) not in (1, 2) or (len(t.shape) == 2 and t.shape[1] != 1):
            raise InvalidInputError(
                f"input {t.name!r}: a feature's tensor has shape [n] or [n, 1], got "
                f"{list(t.shape)}"
            )
        if n is None:
            n = t.shape[0]
        elif t.shape[0] != n:
            raise InvalidInputError(
                f"input {t.name!r} has {t.shape[0]} rows, input {tensors[0].name!r} has {n}"
            )
    assert n is not None
    columns = [_column(given[f], n) for f in names]
    if not sig.frame and all(c.dtype.kind == "f" for c in columns):
        return rowslib.from_array(sig, np.column_stack(columns) if columns else
                                  np.empty((n, 0)))
    listed = [list(r) for r in zip(*(c.tolist() for c in columns), strict=True)]
    return rowslib.from_json_rows(sig, _nan_as_none(listed)) if n else rowslib.empty(sig)


def _nan_as_none(rows: list[list[Any]]) -> list[list[Any]]:
    return [[None if isinstance(v, float) and v != v else v for v in r] for r in rows]


def _matrix(sig: Signature, t: Tensor) -> Rows:
    d = sig.n_features
    if len(t.shape) != 2 or t.shape[1] != d:
        raise InvalidInputError(
            f"input {t.name!r}: expected shape [n, {d}] (features {', '.join(sig.names)}), "
            f"got {list(t.shape)}"
        )
    if t.datatype == "BYTES":
        listed = [_text(np.asarray(row), t.name) for row in t.data]
        return rowslib.from_json_rows(sig, listed)
    if sig.frame:
        listed = _nan_as_none(t.data.astype(np.float64).tolist())
        return rowslib.from_json_rows(sig, listed)
    return rowslib.from_array(sig, t.data.astype(np.float64, copy=False))


def rows_of(sig: Signature, tensors: Sequence[Tensor], content_type: str | None) -> Rows:
    """A model's rows from a request's input tensors (see the module docstring)."""
    if not tensors:
        raise InvalidInputError("inputs is empty; send one [n, d] tensor or one per feature")
    if content_type == "pd" or len(tensors) > 1:
        return _by_feature(sig, tensors)
    t = tensors[0]
    if len(t.shape) == 1 and sig.n_features == 1:
        return _by_feature(sig, [Tensor(sig.names[0], t.datatype, t.shape, t.data)])
    return _matrix(sig, t)


# ---- outputs ---------------------------------------------------------------------------


def datatype_of(arr: npt.NDArray[Any]) -> str:
    """The V2 datatype of an answer array (text and other objects are BYTES)."""
    kind = arr.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "iuf":
        return {"i": "INT", "u": "UINT", "f": "FP"}[kind] + str(arr.dtype.itemsize * 8)
    if kind == "O" and arr.size and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in arr.flat):
        return "FP64" if any(isinstance(v, float) for v in arr.flat) else "INT64"
    return "BYTES"


def as_output(arr: npt.NDArray[Any]) -> tuple[str, npt.NDArray[Any]]:
    """An answer as ``(datatype, array)``, 1-D answers given a column (``[n, 1]``)."""
    a = np.asarray(arr)
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    datatype = datatype_of(a)
    if datatype in DTYPES and datatype != "BYTES":
        a = a.astype(DTYPES[datatype], copy=False)
    return datatype, a


def json_data(datatype: str, arr: npt.NDArray[Any]) -> list[Any]:
    """An output's elements, row-major, as JSON values (NaN as null, BYTES as text)."""
    flat = arr.reshape(-1)
    if datatype == "BYTES":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                for v in flat.tolist()]
    listed: list[Any] = flat.tolist()
    if arr.dtype.kind == "f" and not np.isfinite(flat).all():
        listed = [v if math.isfinite(v) else None for v in listed]
    return listed
