"""Triton's binary tensor data extension, for V2 requests and answers.

A request with an ``Inference-Header-Content-Length: N`` header carries its
JSON header in the first ``N`` bytes of the body; after it come the raw bytes
of every input whose ``parameters.binary_data_size`` is set, in input order.
Raw tensor data is little-endian, row-major, without padding; a ``BOOL`` is
one byte (0 or 1); a ``BYTES`` element is a 4-byte little-endian length and
that many bytes.

An answer puts an output in binary when the request asks for it: the
output's own ``parameters.binary_data``, else the request's
``parameters.binary_data_output``. Such an answer is
``application/octet-stream`` with its own ``Inference-Header-Content-Length``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from fishpredict.app.protocols.v2_tensors import DTYPES
from fishpredict.errors import InvalidInputError

#: the request and answer header naming the JSON part's length
HEADER: Final = "inference-header-content-length"
OCTET_STREAM: Final = "application/octet-stream"
_LENGTH = struct.Struct("<I")


def split(body: bytes, header_length: str) -> tuple[bytes, memoryview]:
    """The JSON header and the binary rest of a request body."""
    text = header_length.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise InvalidInputError(
            f"Inference-Header-Content-Length must be a byte count, got {header_length[:20]!r}"
        )
    n = int(text)
    if n == 0:
        raise InvalidInputError(
            "Inference-Header-Content-Length: 0 (a raw binary request without a JSON header) "
            "is not supported; send the JSON inference header first"
        )
    if n > len(body):
        raise InvalidInputError(
            f"Inference-Header-Content-Length is {n}, the body has only {len(body)} bytes"
        )
    view = memoryview(body)
    return bytes(view[:n]), view[n:]


def binary_size(name: str, params: Any) -> int | None:
    """An input's ``binary_data_size`` parameter, checked (``None`` when absent)."""
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidInputError(f"input {name!r}: binary_data_size must be a byte count, "
                                f"got {size!r}")
    return size


def _strings(name: str, raw: memoryview, count: int) -> npt.NDArray[Any]:
    out = np.empty(count, dtype=object)
    pos, end = 0, len(raw)
    for i in range(count):
        if pos + 4 > end:
            raise InvalidInputError(
                f"input {name!r}: binary BYTES data ends inside element {i} of {count}"
            )
        (n,) = _LENGTH.unpack_from(raw, pos)
        pos += 4
        if pos + n > end:
            raise InvalidInputError(
                f"input {name!r}: binary BYTES element {i} declares {n} bytes, "
                f"{end - pos} are left"
            )
        out[i] = bytes(raw[pos:pos + n])
        pos += n
    if pos != end:
        raise InvalidInputError(
            f"input {name!r}: {end - pos} bytes are left after the {count} BYTES elements"
        )
    return out


def decode(name: str, datatype: str, shape: Sequence[int], raw: memoryview) -> npt.NDArray[Any]:
    """The array of ``shape`` that ``raw`` holds."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return _strings(name, raw, count).reshape(tuple(shape))
    dtype = DTYPES[datatype]
    if len(raw) != count * dtype.itemsize:
        raise InvalidInputError(
            f"input {name!r}: shape {list(shape)} of {datatype} takes "
            f"{count * dtype.itemsize} bytes, binary_data_size is {len(raw)}"
        )
    arr = np.frombuffer(raw, dtype=dtype, count=count)
    if datatype == "BOOL" and arr.size and np.frombuffer(raw, dtype=np.uint8).max() > 1:
        raise InvalidInputError(f"input {name!r}: BOOL bytes must be 0 or 1")
    return arr.reshape(tuple(shape))


def encode(datatype: str, arr: npt.NDArray[Any]) -> bytes:
    """The raw bytes of an output (row-major, little-endian; BYTES length-prefixed)."""
    if datatype == "BYTES":
        parts: list[bytes] = []
        for v in arr.reshape(-1).tolist():
            b = v if isinstance(v, bytes) else str(v).encode("utf-8")
            parts.append(_LENGTH.pack(len(b)))
            parts.append(b)
        return b"".join(parts)
    return np.ascontiguousarray(arr, dtype=DTYPES[datatype]).tobytes()


def wants_binary(output_params: Any, request_params: Any) -> bool:
    """Whether an output is answered in binary (its ``binary_data``, else the request's
    ``binary_data_output``)."""
    for params, key in ((output_params, "binary_data"), (request_params, "binary_data_output")):
        if isinstance(params, dict) and key in params:
            value = params[key]
            if not isinstance(value, bool):
                raise InvalidInputError(f"parameter {key} must be true or false, got {value!r}")
            return value
    return False
