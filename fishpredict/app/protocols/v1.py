"""KServe's V1 ("TensorFlow-serving style") protocol, as KServe's sklearn server speaks it.

==========  ================================  ==========================================
GET         /v1/models                        ``{"models": [name, ...]}``
GET         /v1/models/{name}                 ``{"name": name, "ready": true}``
POST        /v1/models/{name}:predict         ``{"instances": [...]}`` (or ``"inputs"``)
                                              -> ``{"predictions": [...]}``
==========  ================================  ==========================================

Rows are what ``/predict`` takes (lists in feature order or objects keyed by
name); predictions are the estimator's own labels or values. Errors are
``{"error": "message"}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from fishpredict.app import codec
from fishpredict.app.messages import Answer, Job, Request, Response
from fishpredict.app.protocols.answers import label_table, require_ready, values_json
from fishpredict.app.routes import Route
from fishpredict.errors import InvalidInputError
from fishpredict.models import rows as rowslib
from fishpredict.models.loaded import LoadedModel

if TYPE_CHECKING:
    from fishpredict.app.service import Service


def _model(service: Service, req: Request) -> LoadedModel:
    predictor = service.require_predictor()
    return predictor.model(req.params["name"])


def _models(service: Service, req: Request) -> Response:
    require_ready(service)
    predictor = service.require_predictor()
    return Response(200, codec.dumps({"models": [m.name for m in predictor.models()]}))


def _model_ready(service: Service, req: Request) -> Response:
    require_ready(service)
    model = _model(service, req)
    return Response(200, codec.dumps({"name": model.name, "ready": True}))


def _predict_decode(service: Service, req: Request) -> Job:
    require_ready(service)
    service.check_body(len(req.body))
    model = _model(service, req)
    doc = codec.loads(req.body)
    if not isinstance(doc, dict) or not ("instances" in doc or "inputs" in doc):
        raise InvalidInputError('expected a JSON object with "instances" (a list of rows)')
    rows = rowslib.from_json_rows(model.signature, doc.get("instances", doc.get("inputs")))
    service.check_batch(rows.n)
    return Job(model, rows)


def _predict_encode(service: Service, job: Job, answer: Answer) -> Response:
    if answer.codes is not None:
        table = label_table(job.model, None)
        preds = "[" + ",".join([table[c] for c in answer.codes.tolist()]) + "]"
    else:
        assert answer.values is not None
        preds = values_json(answer.values)
    return Response(200, f'{{"predictions":{preds}}}'.encode())


ROUTES: Final = (
    Route("/v1/models", ("GET",), "KServe V1: the models", protocol="v1", handler=_models),
    Route("/v1/models/{name}:predict", ("POST",), "KServe V1: predict rows", protocol="v1",
          decode=_predict_decode, encode=_predict_encode),
    Route("/v1/models/{name}", ("GET",), "KServe V1: a model and whether it is ready",
          protocol="v1", handler=_model_ready),
)
