"""The hot paths: the commonest requests, answered the short way, by exact path.

:class:`~fishpredict.app.service.Service` looks a request's path up in one dict
(:func:`hot_paths`, rebuilt whenever the models change) before routing it. A hot path
answers only the one shape it was written for (``GET /fish`` of a classifier with a
fast path; ``POST /v2/models/NAME/infer`` of one FP64 row), from state worked out once
per model (its row check, its one-row predict, its answers' bytes), and returns None
for anything else: the general way then answers, errors included. So a hot path never
changes an answer; ``tests/app/test_hot.py`` holds every one to the general way's bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fishpredict.app.messages import Deferred, Headers, Response
from fishpredict.app.protocols import native, v2

if TYPE_CHECKING:
    from fishpredict.app.service import Service

#: ``answer(arg, service, query, headers, body)``: the response (or, for a model the
#: general way micro-batches, the :class:`Deferred` job) and the model that answered
Answerer = Callable[[str, "Service", str, Headers, bytes],
                    "tuple[Response | Deferred, str] | None"]


@dataclass(frozen=True, slots=True)
class Hot:
    """One hot path: its method, its route's template (the metrics label), its answerer
    and the answerer's first argument (the model's name in the path, or "")."""

    method: str
    route: str
    answer: Answerer
    arg: str = ""


def hot_paths(service: Service) -> dict[str, Hot]:
    """The hot paths of ``service`` and its loaded models, by exact path."""
    out = {"/fish": Hot("GET", "/fish", native.fish_hot)}
    predictor = service.predictor
    if predictor is None or not predictor.cache or service.config.max_batch_rows < 1:
        return out
    for info in predictor.models():
        name = info.name
        if name and "/" not in name:  # as the route's {name} matches it
            out[f"/v2/models/{name}/infer"] = Hot("POST", v2.INFER_ROUTE, v2.infer_hot, name)
    return out


__all__ = ["Hot", "hot_paths"]
