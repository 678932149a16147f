"""The V2 model repository extension (as Triton speaks it), and a model's configuration.

======  ======================================  ===========================================
POST    /v2/repository/index                    every model the sources hold: name, version,
                                                ``READY`` or ``UNAVAILABLE`` (body: ``{}``,
                                                or ``{"ready": true}`` for the served ones)
POST    /v2/repository/models/{name}/load       re-read the model sources (every worker) and
                                                serve ``name`` (again)
POST    /v2/repository/models/{name}/unload     stop serving ``name`` (every worker)
GET     /v2/models/{name}/config                the model's configuration: platform, inputs,
                                                outputs, the batch limit
======  ======================================  ===========================================

The repository routes change what the server serves, so they are answered only
with an admin token (``--admin-token-env``), sent as ``Authorization: Bearer
TOKEN`` (tritonclient: ``headers={"Authorization": ...}``); without one they are
404. A load or unload goes through the same reload as ``/admin/reload``: every
worker makes it, or none (a 400 naming the reason). The "repository" is the model
sources the server was started with; a load reads them again, so a changed file is
served from then on. Errors are ``{"error": "message"}``.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any, Final

from fishpredict.app import codec
from fishpredict.app.messages import Request, Response, plain_error
from fishpredict.app.protocols.answers import require_ready
from fishpredict.app.protocols.v2 import PLATFORM, metadata, version_of
from fishpredict.app.routes import Route
from fishpredict.errors import InvalidInputError, Reply

if TYPE_CHECKING:
    from fishpredict.app.service import Service

#: Triton's data types of the tensors' V2 datatypes
_TYPES: Final = {"FP64": "TYPE_FP64", "FP32": "TYPE_FP32", "INT64": "TYPE_INT64",
                 "INT32": "TYPE_INT32", "BOOL": "TYPE_BOOL", "BYTES": "TYPE_STRING"}


def _authorised(service: Service, req: Request) -> None:
    token = service.config.admin_token
    assert token is not None  # the routes are 404 without a token
    given = req.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode("utf-8", "replace"), f"Bearer {token}".encode()):
        raise Reply(plain_error(401, "unauthorized", "missing or wrong admin token",
                                (("WWW-Authenticate", 'Bearer realm="fishpredict-admin"'),)))


def _body(req: Request) -> dict[str, Any]:
    if not req.body.strip():
        return {}
    doc = codec.loads(req.body)
    if not isinstance(doc, dict):
        raise InvalidInputError("the request body must be a JSON object")
    return doc


def _index(service: Service, req: Request) -> Response:
    _authorised(service, req)
    ready_only = _body(req).get("ready") is True
    predictor = service.require_predictor()
    out = [{"name": m.name, "version": version_of(m),
            "state": "READY" if served else "UNAVAILABLE",
            "reason": "" if served else "unloaded"}
           for m, served in predictor.repository() if served or not ready_only]
    return Response(200, codec.dumps(out))


def _change(service: Service, req: Request, op: str) -> Response:
    _authorised(service, req)
    params = _body(req).get("parameters") or {}
    if not isinstance(params, dict) or any(k == "config" or str(k).startswith("file:")
                                           for k in params):
        raise InvalidInputError(
            f"{op} takes no config or files here: fishpredict serves the model sources it "
            "was started with")
    answer = service.reload({op: req.params["name"]})
    if answer.status == 200:
        return Response(200, b"{}")
    try:
        message = codec.loads(answer.body)["error"]["message"]
    except Exception:
        message = f"{op} failed"
    return plain_error(400 if answer.status == 409 else answer.status, "reload_failed",
                       str(message), answer.headers)


def _load(service: Service, req: Request) -> Response:
    return _change(service, req, "load")


def _unload(service: Service, req: Request) -> Response:
    return _change(service, req, "unload")


def config(service: Service, name: str) -> dict[str, Any]:
    """A served model's configuration, in the shape of Triton's model config."""
    model = service.require_predictor().model(name)
    meta = metadata(model)

    def tensors(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"name": t["name"], "data_type": _TYPES.get(t["datatype"], "TYPE_STRING"),
                 "dims": [d for d in t["shape"][1:]] or [1]} for t in items]

    return {
        "name": model.name,
        "platform": PLATFORM,
        "backend": "fishpredict",
        "version_policy": {"specific": {"versions": [version_of(model)]}},
        "max_batch_size": service.config.max_batch_rows,
        "input": tensors(meta["inputs"]),
        "output": tensors(meta["outputs"]),
        "parameters": {"content_type": {"string_value": meta["parameters"]["content_type"]}},
    }


def _config(service: Service, req: Request) -> Response:
    require_ready(service)
    return Response(200, codec.dumps(config(service, req.params["name"])))


ROUTES: Final = (
    Route("/v2/repository/index", ("POST",), "V2 repository: the models and their state",
          protocol="v2", handler=_index, enabled_by="admin_token"),
    Route("/v2/repository/models/{name}/load", ("POST",),
          "V2 repository: re-read the sources and serve a model", protocol="v2",
          handler=_load, enabled_by="admin_token"),
    Route("/v2/repository/models/{name}/unload", ("POST",),
          "V2 repository: stop serving a model", protocol="v2", handler=_unload,
          enabled_by="admin_token"),
    Route("/v2/models/{name}/config", ("GET",), "V2: a model's configuration",
          protocol="v2", handler=_config),
)

__all__ = ["ROUTES", "config"]
