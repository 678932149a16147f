"""How a request names a model and carries rows: one module per protocol.

=========  ==================================================================
native     fishpredict's own routes: ``/fish``, ``/predict``, ``/models`` ...
v1         KServe's V1 protocol: ``/v1/models/{name}:predict``
v2         the Open Inference Protocol: ``/v2/models/{name}/infer``, JSON and binary
           tensors (:mod:`.v2_tensors`, :mod:`.v2_binary`); the repository extension
           and model configs (:mod:`.v2_repository`)
=========  ==================================================================

Each module's ``ROUTES`` is a tuple of :class:`fishpredict.app.routes.Route`; a
protocol turns its request into a :class:`~fishpredict.app.routes.Job` and an
:class:`~fishpredict.app.routes.Answer` back into bytes, and never touches an
estimator.
"""

from __future__ import annotations

from functools import cache

from fishpredict.app.protocols import native, v1, v2, v2_repository
from fishpredict.app.routes import Route


@cache
def all_routes() -> tuple[Route, ...]:
    """Every route the contract answers, in dispatch order."""
    return (*native.ROUTES, *v1.ROUTES, *v2.ROUTES, *v2_repository.ROUTES)
