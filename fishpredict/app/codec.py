"""Encoding and decoding of request and response bodies (JSON and .npy).

Pure functions, no HTTP: they raise :class:`~fishpredict.errors.InvalidInputError`
for anything a client got wrong, and the contract turns that into a 400.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from typing import Any, Final
from urllib.parse import unquote_plus

import numpy as np
import numpy.typing as npt

from fishpredict.errors import FishpredictError, InvalidInputError

try:  # the hot paths' JSON decoder: 4-7x json's own on rows of numbers
    import orjson as _orjson
except ImportError:  # pragma: no cover - an install without the serving extras
    _orjson = None  # type: ignore[assignment]

JSON: Final = "application/json"
NPY: Final = "application/x-npy"
#: deepest JSON nesting accepted; deeper documents are refused before parsing
MAX_JSON_DEPTH: Final = 32


def _reject_constant(name: str) -> Any:
    raise InvalidInputError(f"JSON must not contain {name}: values must be finite numbers")


#: ``json.loads(text, parse_constant=...)`` without building a decoder per call
_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)


#: ``json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)``, built once
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


#: ``scan_once(text, 0)``: the JSON value at the start of ``text`` and where it ends,
#: with :func:`loads`' rules for constants (no whitespace skipped, nothing after it
#: checked): for a hot path that then checks the value's shape (raises
#: ``StopIteration``, ``json.JSONDecodeError`` or :class:`InvalidInputError`)
scan_once: Final[Callable[[str, int], tuple[Any, int]]] = _DECODER.scan_once  # type: ignore[attr-defined]


def loads_object(body: bytes) -> dict[str, Any] | None:
    """The JSON object that is the whole of ``body`` (nothing before or after it), or
    None: for a hot path, which then checks the object's shape and declines anything
    else, so that the general way (:func:`loads`) answers it, errors included.

    With orjson installed it decodes, else :func:`loads`' own decoder does. The two
    give the same values (``tests/app/test_codec.py`` holds them to it on generated
    documents and numbers) but for an integer literal outside 64 bits, which orjson
    gives as the float nearest it: the row checks take every number as that float
    anyway. Whatever orjson refuses (NaN, ``1e400``, a lone surrogate) is None here,
    as :func:`loads` refuses it or gives a value no row check takes."""
    if body[:1] != b"{" or body[-1:] != b"}":
        return None
    if _orjson is not None:
        try:
            doc = _orjson.loads(body)
        except _orjson.JSONDecodeError:
            return None
    else:
        try:
            text = body.decode("utf-8")
            doc, end = scan_once(text, 0)
        except (ValueError, RecursionError, FishpredictError, StopIteration):
            return None
        if end != len(text):
            return None
    return doc if doc.__class__ is dict else None


#: ``dumps(text)`` of a str, as text (``json``'s own C function)
dumps_str: Final[Callable[[str], str]] = json.encoder.encode_basestring


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON (Korean labels stay readable); NaN is never emitted."""
    return _ENCODER.encode(obj).encode()


def _depth_ok(body: bytes) -> bool:
    """Cheap nesting bound: count brackets outside strings, without a full parse."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return True
    depth = 0
    in_str = esc = False
    for ch in body:
        if in_str:
            if esc:
                esc = False
            elif ch == 0x5C:
                esc = True
            elif ch == 0x22:
                in_str = False
        elif ch == 0x22:
            in_str = True
        elif ch in (0x5B, 0x7B):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return False
        elif ch in (0x5D, 0x7D):
            depth -= 1
    return True


def loads(body: bytes) -> Any:
    """Parse a JSON body strictly: UTF-8, bounded depth, no NaN/Infinity literals."""
    if not body.strip():
        raise InvalidInputError("request body is empty; expected JSON")
    if not _depth_ok(body):
        raise InvalidInputError(f"JSON is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError("request body is not valid UTF-8") from None
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InvalidInputError("JSON is nested too deeply") from None


def array_from_npy(body: bytes) -> npt.NDArray[Any]:
    """The numeric array of a NumPy ``.npy`` body; pickles (object arrays) are refused.
    Its shape is the model's business (see :mod:`fishpredict.models.rows`)."""
    try:
        arr = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise InvalidInputError(f"body is not a valid .npy array ({str(exc)[:80]})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iuf":
        raise InvalidInputError(".npy body must hold a numeric array")
    return arr


def npy_bytes(arr: npt.NDArray[Any]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def labels_json(labels: Sequence[str]) -> str:
    """A JSON array of labels; fast for the few distinct strings a classifier has."""
    if not labels:
        return "[]"
    return "[" + ",".join(json.dumps(s, ensure_ascii=False) for s in labels) + "]"


def parse_query(qs: str) -> dict[str, str]:
    """``a=1&b=x%20y`` -> ``{"a": "1", "b": "x y"}``; the first value of a repeated key wins."""
    out: dict[str, str] = {}
    if not qs:
        return out
    for part in qs.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        if "%" in key or "+" in key:
            key = unquote_plus(key, errors="replace")
        if "%" in value or "+" in value:
            value = unquote_plus(value, errors="replace")
        out.setdefault(key, value)
    return out


def accepts_npy(accept: str | None) -> bool:
    return accept is not None and NPY in accept


def media_type(content_type: str | None) -> str:
    """``"application/json; charset=utf-8"`` -> ``"application/json"``."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()
