"""Routes as objects: one table that dispatch, ``route_names()``, the OpenAPI check
and the docs all read.

A :class:`Route` is a path template (``/v2/models/{name}/infer``), its methods,
and either a plain ``handler`` (health, metadata) or, for a prediction route, a
``decode``/``encode`` pair around the one predict step the contract owns
(validation, micro-batching, metrics): ``decode(service, request) -> Job``,
``encode(service, job, answer) -> Response``. A protocol module (see
:mod:`fishpredict.app.protocols`) is a list of routes and the way its errors look.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fishpredict.app.messages import Answer, Job, Request, Response

if TYPE_CHECKING:
    from fishpredict.app.service import Service

Handler = Callable[["Service", Request], Response]
Decoder = Callable[["Service", Request], Job]
Encoder = Callable[["Service", Job, Answer], Response]
ErrorRenderer = Callable[[int, str, str, tuple[tuple[str, str], ...]], Response]


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
