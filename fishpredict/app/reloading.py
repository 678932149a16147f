"""Reloading the models: in two halves, so that many workers can swap together.

:func:`prepare` loads what the model sources hold now without serving it;
:func:`install` serves it from then on (and forgets what the service cached of the
old models). One process reloads with both at once (:func:`reload_here`). With
``--workers N`` the server sets ``Service.cluster_reload``
(:mod:`fishpredict.server.reload`): the supervisor asks every worker (and itself) to
prepare, and only when every one of them has loaded the new models does it tell
them all to install; a failure anywhere leaves every worker on the old models.

The 200 says which version each worker serves now: ``{"reloaded": [names that
changed], "models": [names], "version": "...", "workers": [{"worker": 0, "pid": ...,
"version": "..."}, ...]}``; a refused reload is a 409 ``reload_failed`` naming the
error, and the old models keep serving.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from fishpredict.app import codec
from fishpredict.app.hot import hot_paths
from fishpredict.app.messages import Response, error
from fishpredict.errors import ModelLoadError
from fishpredict.predictor import models_version

if TYPE_CHECKING:
    from fishpredict.app.service import Service
    from fishpredict.models.loaded import LoadedModel

log = logging.getLogger("fishpredict.server")


#: what a reload changes besides re-reading the sources: ``{"load": name}`` serves an
#: unloaded model again, ``{"unload": name}`` stops serving one (the V2 repository
#: extension); ``None`` or ``{}``: a plain reload
Change = dict[str, str] | None


def _names(change: Change) -> tuple[str | None, str | None]:
    change = change or {}
    return change.get("load"), change.get("unload")


def prepare(service: Service, change: Change = None) -> tuple[list[LoadedModel], str]:
    """The models the sources hold now and their version; :class:`ModelLoadError` if
    any fails, or the change cannot be made (nothing changes). An unload re-reads
    nothing."""
    predictor = service.require_predictor()
    load, unload = _names(change)
    models = [m for m, _ in predictor.repository()] if unload is not None \
        else predictor.prepare()
    predictor.check_change(models, load=load, unload=unload)
    return models, models_version(models)


def install(service: Service, models: list[LoadedModel], change: Change = None) -> list[str]:
    """Serve ``models`` from now on (with the change); the names that changed."""
    predictor = service.require_predictor()
    load, unload = _names(change)
    changed = predictor.install(models, load=load, unload=unload)
    service.memo.clear()
    service.hot = hot_paths(service)
    service.spec = None
    if service.metrics is not None:
        service.metrics.model_loads.labels("ok").inc(len(changed))
        service.metrics.models_loaded.set(len(predictor.models()))
    log.info("models reloaded: %s", ", ".join(changed) or "no change")
    return changed


def refused(service: Service, message: str) -> Response:
    """The 409 of a reload that failed: the old models keep serving."""
    log.error("model reload refused: %s", message)
    if service.metrics is not None:
        service.metrics.model_loads.labels("refused").inc()
    return error(409, "reload_failed", f"reload refused, old models keep serving: {message}")


def answered(service: Service, changed: list[str], workers: list[dict[str, Any]]) -> Response:
    """The 200 of a reload every worker made."""
    predictor = service.require_predictor()
    doc = {
        "reloaded": changed,
        "models": [m.name for m in predictor.models()],
        "version": predictor.version,
        "workers": workers,
    }
    return Response(200, codec.dumps(doc))


def reload_here(service: Service, change: Change = None) -> Response:
    """Reload this process's models (one worker, or a library caller's service)."""
    try:
        models, _ = prepare(service, change)
    except ModelLoadError as exc:
        return refused(service, str(exc))
    changed = install(service, models, change)
    version = service.require_predictor().version
    return answered(service, changed, [{"worker": 0, "pid": os.getpid(), "version": version}])
