"""Routes as objects: one table that dispatch, ``route_names()``, the OpenAPI check
and the docs all read.

A :class:`Route` is a path template (``/v2/models/{name}/infer``), its methods,
and either a plain ``handler`` (health, metadata) or, for a prediction route, a
``decode``/``encode`` pair around the one predict step the contract owns
(validation, micro-batching, metrics): ``decode(service, request) -> Job``,
``encode(service, job, answer) -> Response``. A protocol module (see
:mod:`fishpredict.protocols`) is a list of routes and the way its errors look.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from .contract import Response, Service
    from .models.loaded import LoadedModel
    from .models.rows import Rows

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


Handler = Callable[["Service", Request], "Response"]
Decoder = Callable[["Service", Request], Job]
Encoder = Callable[["Service", Job, Answer], "Response"]
ErrorRenderer = Callable[[int, str, str, tuple[tuple[str, str], ...]], "Response"]


@dataclass(frozen=True)
class Route:
    """One route: a path template, its methods, and what answers it."""

    path: str
    methods: tuple[str, ...]
    summary: str
    protocol: str = "native"
    handler: Handler | None = None
    decode: Decoder | None = None
    encode: Encoder | None = None
    #: answered only when this ServeConfig attribute is set (e.g. the admin token)
    enabled_by: str | None = None

    def __post_init__(self) -> None:
        if (self.handler is None) == (self.decode is None or self.encode is None):
            raise ValueError(f"route {self.path}: give a handler, or a decode and an encode")

    @property
    def templated(self) -> bool:
        return "{" in self.path

    def pattern(self) -> re.Pattern[str]:
        parts = re.split(r"(\{[a-z_]+\})", self.path)
        rx = "".join(
            f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts
        )
        return re.compile(f"^{rx}$")


class RouteTable:
    """Routes by exact path, then templated routes tried in order."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        self._exact: dict[str, Route] = {}
        self._templated: list[tuple[re.Pattern[str], Route]] = []
        seen: set[str] = set()
        for r in self.routes:
            if r.path in seen:
                raise ValueError(f"route {r.path} is defined twice")
            seen.add(r.path)
            if r.templated:
                self._templated.append((r.pattern(), r))
            else:
                self._exact[r.path] = r

    def match(self, path: str) -> tuple[Route, dict[str, str]] | None:
        route = self._exact.get(path)
        if route is not None:
            return route, {}
        for rx, r in self._templated:
            m = rx.match(path)
            if m is not None:
                return r, m.groupdict()
        return None

    def paths(self) -> list[str]:
        return [r.path for r in self.routes]
