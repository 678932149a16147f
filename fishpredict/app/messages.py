"""The messages of the HTTP application: a request in, a response out, and between
them a prediction route's :class:`Job` and :class:`Answer`.

A backend builds nothing but the arguments of
:meth:`fishpredict.app.service.Service.handle_async` and writes back the
:class:`Response` it gets; a protocol decodes a :class:`Request` into a
:class:`Job` and encodes an :class:`Answer` into a :class:`Response`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from fishpredict.app import codec

if TYPE_CHECKING:
    from fishpredict.models.loaded import LoadedModel
    from fishpredict.models.rows import Rows

Headers = Mapping[str, str]  # lower-case names


@dataclass(frozen=True, slots=True)
class Request:
    """One request as the contract sees it; ``params`` are the path's ``{fields}``."""

    method: str
    path: str
    query: str
    headers: Headers
    body: bytes
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Job:
    """What a prediction route decoded: which model, which rows, which outputs."""

    model: LoadedModel
    rows: Rows
    proba: bool = False
    predict: bool = True
    labels: str | None = None
    #: protocol-specific state for ``encode`` (request id, output names ...)
    context: Any = None

    def run(self, model: LoadedModel | None = None) -> Answer:
        """Predict this job's rows (with ``model`` instead of the job's, if given)."""
        m = model or self.model
        rows = self.rows
        codes = values = proba = None
        if self.predict:
            if m.is_classifier:
                fast = m.fast
                if rows.n == 1 and fast is not None and rows.array is not None \
                        and not rows.has_nan:
                    codes = np.array([fast.predict_one(rows.array[0])], dtype=np.intp)
                else:
                    codes = m.predict_codes(rows)
            else:
                values = m.predict_values(rows)
        if self.proba:
            proba = m.predict_proba(rows)
        return Answer(codes=codes, values=values, proba=proba)


@dataclass(frozen=True, slots=True)
class Answer:
    """The predict step's result: class codes (classifiers) or values, and probabilities."""

    codes: npt.NDArray[np.intp] | None = None
    values: npt.NDArray[Any] | None = None
    proba: npt.NDArray[np.float64] | None = None


@dataclass(slots=True)
class Response:
    """What a backend writes back: status, content type, extra headers, body.

    Treat it as immutable (answers may be cached and shared). It is not a frozen
    dataclass only because making one costs a request twice as much (a frozen
    dataclass sets each field through ``object.__setattr__``).
    """

    status: int
    body: bytes
    content_type: str = codec.JSON
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class Deferred:
    """A hot path's one-row job for the micro-batcher, and how its answer is encoded
    (what a hot path gives instead of a :class:`Response` for a model the general way
    micro-batches)."""

    job: Job
    encode: Callable[[Answer], Response]


def error(
    status: int, code: str, message: str, headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    """The JSON error of fishpredict's own routes: ``{"error": {"code", "message"}}``."""
    return Response(
        status, codec.dumps({"error": {"code": code, "message": message}}), headers=headers
    )


def plain_error(
    status: int, code: str, message: str, headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    """The error of the V2 and V1 protocols: ``{"error": "message"}``."""
    return Response(status, codec.dumps({"error": message}), headers=headers)
