"""Encoding answers as JSON, shared by the protocols: labels, values, probabilities.

Values are JSON numbers that round-trip float64 exactly (Python writes the
shortest repr that reads back to the same double); a value that is not finite
(a model may answer NaN) is written as ``null``, which JSON can carry.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from fishpredict.app.messages import plain_error
from fishpredict.errors import Reply
from fishpredict.models.loaded import LoadedModel

if TYPE_CHECKING:
    from fishpredict.app.service import Service


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def label_table(model: LoadedModel, language: str | None) -> list[str]:
    """Each class code's label as JSON text (display names in ``language`` where the
    model has them), cached on the model."""
    cache = model.memo
    key = ("labels", language if language in model.names else None)
    table = cache.get(key)
    if table is None:
        table = cache[key] = [
            json.dumps(_plain(c), ensure_ascii=False) for c in model.labels_for(language)
        ]
    return table  # type: ignore[return-value]


def _finite_or_none(values: Any) -> Any:
    if isinstance(values, list):
        return [_finite_or_none(v) for v in values]
    if (isinstance(values, float) and values != values) or values in (float("inf"), float("-inf")):
        return None
    return values


def values_json(values: npt.NDArray[Any]) -> str:
    """A JSON array of ``values`` (any shape) as the estimator returned them."""
    arr = np.asarray(values)
    listed = arr.tolist()
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        listed = _finite_or_none(listed)
    elif arr.dtype.kind == "O":
        listed = _finite_or_none([_plain(v) for v in listed]) if arr.ndim == 1 else listed
    return json.dumps(listed, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def require_ready(service: Service) -> None:
    """A V1/V2 request while nothing is loaded or the server drains: their 503."""
    if service.predictor is None or service.draining:
        raise Reply(plain_error(503, "not_ready", "the server is not ready",
                                service.retry_after()))
