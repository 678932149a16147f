"""The Open Inference Protocol ("V2", as KServe, Triton and MLServer speak it) over REST.

======  ==========================================  =====================================
GET     /v2                                         name, version, extensions
GET     /v2/health/live                             ``{"live": true}``
GET     /v2/health/ready                            ``{"ready": true}`` (503 and false
                                                    while loading or draining)
GET     /v2/models/{name}[/versions/{version}]      metadata: inputs and outputs from the
                                                    model's signature
GET     /v2/models/{name}[/versions/{version}]/ready
POST    /v2/models/{name}[/versions/{version}]/infer
======  ==========================================  =====================================

A model has one version: the first 12 hex digits of its artifact's SHA-256
(a reload that changes the file changes it). Inputs and outputs are read by
:mod:`.v2_tensors`, binary tensors by :mod:`.v2_binary`. Errors are
``{"error": "message"}``: 400 bad input, 404 unknown model or version, 413 over
a limit, 503 not ready or draining.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from fishpredict.app import codec
from fishpredict.app.messages import Answer, Deferred, Headers, Job, Request, Response
from fishpredict.app.protocols import v2_binary as binary
from fishpredict.app.protocols.answers import require_ready
from fishpredict.app.protocols.v2_tensors import (
    DTYPES,
    Tensor,
    as_output,
    from_json,
    header,
    json_data,
    parameters_of,
    rows_of,
)
from fishpredict.app.routes import Route
from fishpredict.errors import FishpredictError, InvalidInputError, UnknownModelError
from fishpredict.models.loaded import LoadedModel
from fishpredict.models.rows import Rows
from fishpredict.models.signature import OUTPUTS
from fishpredict.version import __version__

if TYPE_CHECKING:
    from fishpredict.app.service import Service

#: ``GET /v2``; Triton's extension names: binary tensors and ``/v2/models/NAME/config``
#: always, the repository routes (``model_repository``) when an admin token is set
SERVER: Final = {"name": "fishpredict", "version": __version__,
                 "extensions": ["binary_tensor_data", "model_configuration"]}
_WITH_REPOSITORY: Final = {**SERVER, "extensions": [*SERVER["extensions"], "model_repository"]}
PLATFORM: Final = "sklearn"
#: the request content types read (MLServer's names): a NumPy tensor, pandas columns
CONTENT_TYPES: Final = ("np", "pd")


def version_of(model: LoadedModel) -> str:
    """The one version a model is served under."""
    return model.info.sha256[:12] or "1"


def _model(service: Service, req: Request) -> LoadedModel:
    model = service.require_predictor().model(req.params["name"])
    wanted = req.params.get("version")
    if wanted is not None and wanted != version_of(model):
        raise UnknownModelError(
            f"model {model.name!r} has no version {wanted[:40]!r}; its version is "
            f"{version_of(model)!r}"
        )
    return model


# ---- server and health -----------------------------------------------------------------


def _server(service: Service, req: Request) -> Response:
    doc = SERVER if service.config.admin_token is None else _WITH_REPOSITORY
    return Response(200, codec.dumps(doc))


def _live(service: Service, req: Request) -> Response:
    return Response(200, b'{"live":true}')


def _ready(service: Service, req: Request) -> Response:
    if service.ready:
        return Response(200, b'{"ready":true}')
    return Response(503, b'{"ready":false}', headers=service.retry_after())


def _model_ready(service: Service, req: Request) -> Response:
    require_ready(service)
    model = _model(service, req)
    return Response(200, codec.dumps({"name": model.name, "ready": True}))


# ---- metadata ----------------------------------------------------------------------------


def _predict_datatype(model: LoadedModel) -> str:
    if model.is_classifier:
        return as_output(np.asarray(model.info.classes))[0]
    return "FP64"


def metadata(model: LoadedModel) -> dict[str, Any]:
    """A model's V2 metadata: one ``[-1, d]`` FP64 input for a numeric model, one
    ``[-1]`` input per feature (FP64 or BYTES) for one that takes a DataFrame."""
    sig = model.signature
    if sig.frame:
        inputs = [{"name": f.name, "datatype": "FP64" if f.kind == "number" else "BYTES",
                   "shape": [-1]} for f in sig.features]
        params: dict[str, Any] = {"content_type": "pd"}
    else:
        inputs = [{"name": "input-0", "datatype": "FP64", "shape": [-1, sig.n_features]}]
        params = {"content_type": "np"}
    outputs = [{"name": "predict", "datatype": _predict_datatype(model), "shape": [-1, 1]}]
    if model.has_proba:
        outputs.append({"name": "predict_proba", "datatype": "FP64",
                        "shape": [-1, len(model.info.classes)]})
    return {"name": model.name, "versions": [version_of(model)], "platform": PLATFORM,
            "inputs": inputs, "outputs": outputs, "parameters": params}


def _metadata(service: Service, req: Request) -> Response:
    return Response(200, codec.dumps(metadata(_model(service, req))))


# ---- infer -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    request_id: str | None
    #: (output name, answered in binary)
    outputs: tuple[tuple[str, bool], ...]


def _tensors(doc: dict[str, Any], rest: memoryview | None) -> list[Tensor]:
    inputs = doc.get("inputs")
    if not isinstance(inputs, list):
        raise InvalidInputError('expected a JSON object with "inputs" (a list of tensors)')
    tensors: list[Tensor] = []
    offset = 0
    for i, item in enumerate(inputs):
        head = header(item, i)
        name, datatype, shape, params = head
        size = binary.binary_size(name, params)
        if size is None:
            tensors.append(from_json(item, i, head))
            continue
        if rest is None:
            raise InvalidInputError(
                f"input {name!r} has binary_data_size but the request has no "
                "Inference-Header-Content-Length header"
            )
        if offset + size > len(rest):
            raise InvalidInputError(
                f"input {name!r}: binary_data_size {size} runs past the end of the body"
            )
        data = binary.decode(name, datatype, shape, rest[offset:offset + size])
        tensors.append(Tensor(name, datatype, shape, data, params))
        offset += size
    if rest is not None and offset != len(rest):
        raise InvalidInputError(
            f"{len(rest) - offset} bytes of binary data follow the JSON header that no "
            "input's binary_data_size accounts for"
        )
    return tensors


def _outputs(model: LoadedModel, doc: dict[str, Any],
             params: Any) -> tuple[tuple[str, bool], ...]:
    if "outputs" not in doc or doc["outputs"] == []:
        return (("predict", binary.wants_binary(None, params)),)
    asked = doc["outputs"]
    if not isinstance(asked, list):
        raise InvalidInputError("outputs must be a list of {\"name\": ...} objects")
    known = model.signature.outputs
    out: list[tuple[str, bool]] = []
    for i, item in enumerate(asked):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise InvalidInputError(f"outputs[{i}] must be an object with a name")
        if name not in known:
            why = "" if name in OUTPUTS else " (an unknown output)"
            raise InvalidInputError(
                f"model {model.name!r} has no output {name[:40]!r}{why}; it gives "
                f"{', '.join(known)}"
            )
        out.append((name, binary.wants_binary(parameters_of(item, f"output {name!r}"), params)))
    return tuple(out)


def _infer_decode(service: Service, req: Request) -> Job:
    require_ready(service)
    service.check_body(len(req.body))
    model = _model(service, req)
    length = req.headers.get(binary.HEADER)
    head, rest = (req.body, None) if length is None else binary.split(req.body, length)
    doc = codec.loads(head)
    if not isinstance(doc, dict):
        raise InvalidInputError('expected a JSON object with "inputs" (a list of tensors)')
    request_id = doc.get("id")
    if "id" in doc and not isinstance(request_id, str):
        raise InvalidInputError("id must be a string")
    params = parameters_of(doc, "request")
    binary.wants_binary(None, params)  # checks binary_data_output
    content_type = params.get("content_type")
    if "content_type" in params and content_type not in CONTENT_TYPES:
        raise InvalidInputError(
            f"parameters.content_type must be one of {', '.join(CONTENT_TYPES)} (one [n, d] "
            f"tensor, or one tensor per feature), got {str(content_type)[:40]!r}"
        )
    outputs = _outputs(model, doc, params)
    rows = rows_of(model.signature, _tensors(doc, rest), content_type)
    service.check_batch(rows.n)
    names = [n for n, _ in outputs]
    return Job(model, rows, proba="predict_proba" in names, predict="predict" in names,
               context=_Context(request_id, outputs))


def _labels(model: LoadedModel) -> np.ndarray[Any, Any]:
    key = "v2-classes"
    classes = model.memo.get(key)
    if classes is None:
        classes = model.memo[key] = as_output(np.asarray(model.info.classes))[1].reshape(-1)
    return classes  # type: ignore[return-value]


def _infer_encode(service: Service, job: Job, answer: Answer) -> Response:
    model = job.model
    ctx: _Context = job.context
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, as_binary in ctx.outputs:
        if name == "predict_proba":
            assert answer.proba is not None
            datatype, arr = as_output(answer.proba)
        elif answer.codes is not None:
            datatype, arr = as_output(_labels(model)[answer.codes])
        else:
            assert answer.values is not None
            datatype, arr = as_output(answer.values)
        out: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
        if as_binary:
            raw = binary.encode(datatype, arr)
            out["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            out["data"] = json_data(datatype, arr)
        outputs.append(out)
    doc: dict[str, Any] = {"model_name": model.name, "model_version": version_of(model)}
    if ctx.request_id is not None:
        doc["id"] = ctx.request_id
    doc["outputs"] = outputs
    head = codec.dumps(doc)
    if not blobs:
        return Response(200, head)
    return Response(200, head + b"".join(blobs), content_type=binary.OCTET_STREAM,
                    headers=(("Inference-Header-Content-Length", str(len(head))),))


# ---- infer, the short way ------------------------------------------------------------

INFER_ROUTE: Final = "/v2/models/{name}/infer"
_HOT: Final = "v2-hot"
_OUTPUTS_KEY: Final = b',"outputs":'


def _hot_of(service: Service, model: LoadedModel) -> Any:
    """``(check, predict_row, n_features, answers)`` of a numeric classifier, or False;
    ``predict_row`` is None for a model the general way micro-batches. ``answers[code]``
    is the general encoder's own answer for that class, cut where a request's id goes."""
    fast = model.fast
    check = model.row_check
    if check is None or not model.is_classifier or model.signature.frame:
        return False
    sig = model.signature
    one = Rows(1, array=np.zeros((1, sig.n_features)))
    job = Job(model, one, context=_Context(None, (("predict", False),)))
    answers = []
    for code in range(len(model.info.classes)):
        body = _infer_encode(service, job, Answer(codes=np.array([code], dtype=np.intp))).body
        cut = body.index(_OUTPUTS_KEY)
        answers.append((body[:cut], body[cut:]))
    # a model the general way micro-batches (no fast path, or one that prefers batches):
    # no one-row predict here, the row goes to the micro-batcher
    predict_row = None if fast is None or fast.prefers_batches else fast.predict_row
    return check, predict_row, sig.n_features, tuple(answers)


def infer_hot_decode(body: bytes, n_features: int) -> tuple[str | None, list[Any]] | None:
    """The hot path's decode step: ``(id, data)`` of a body that is exactly one FP64
    ``[1, n_features]`` tensor with its data flat (and an ``id`` at most beside it),
    or None."""
    doc = codec.loads_object(body)
    if doc is None:
        return None
    inputs = doc.get("inputs")
    request_id = doc.get("id")
    if len(doc) != (1 if request_id is None else 2) or inputs.__class__ is not list \
            or len(inputs) != 1 or not (request_id is None or request_id.__class__ is str):
        return None
    tensor = inputs[0]
    if tensor.__class__ is not dict or len(tensor) != 4 or tensor.get("datatype") != "FP64":
        return None
    name, shape, data = tensor.get("name"), tensor.get("shape"), tensor.get("data")
    if (name.__class__ is not str or not name or shape.__class__ is not list
            or len(shape) != 2 or data.__class__ is not list):
        return None
    rows, width = shape
    if rows.__class__ is not int or width.__class__ is not int or rows != 1 \
            or width != n_features:
        return None
    return request_id, data


def infer_hot_encode(answer: tuple[bytes, bytes], request_id: str | None) -> Response:
    """The hot path's encode step: the general encoder's answer for the class, with the
    request's id put in."""
    head, tail = answer
    if request_id is None:
        return Response(200, head + tail)
    return Response(200, b"".join((head, b',"id":', codec.dumps_str(request_id).encode(),
                                   tail)))


def infer_hot(name: str, service: Service, query: str, headers: Headers, body: bytes
              ) -> tuple[Response | Deferred, str] | None:
    """``POST /v2/models/NAME/infer`` of one FP64 ``[1, d]`` row (an ``id`` at most
    beside it), for a classifier with a one-row fast path, the short way: the body
    checked for that one shape (:func:`infer_hot_decode`), its data straight into the
    model's row check, the plain-float predict, the general encoder's answer for that
    class with the id put in (:func:`infer_hot_encode`). Anything else returns None:
    :func:`_infer_decode` and :func:`_infer_encode` answer it, errors included. Gives
    the answer and the model."""
    predictor = service.predictor
    if (predictor is None or service.draining or binary.HEADER in headers
            or len(body) > service.config.max_body_bytes):
        return None
    try:
        model = predictor.model(name)
    except FishpredictError:
        return None
    hot: Any = model.memo.get(_HOT)
    if hot is None:
        hot = model.memo[_HOT] = _hot_of(service, model)
    if hot is False:
        return None
    check, predict_row, n_features, answers = hot
    decoded = infer_hot_decode(body, n_features)
    if decoded is None:
        return None
    request_id, data = decoded
    row = check(data)
    if row is None:
        return None
    if predict_row is None:  # the micro-batcher's, as the general way would
        if service.batcher is None:
            return None
        job = Job(model, Rows(1, array=np.array([row], dtype=np.float64)),
                  context=_Context(request_id, (("predict", False),)))
        return Deferred(job, partial(_batched_answer, answers, request_id)), name
    try:
        code = predict_row(row)
    except FishpredictError:  # the estimator's refusal (a row that overflows a scaler)
        return None  # the general way answers it, as a 400
    return infer_hot_encode(answers[code], request_id), name


def _batched_answer(answers: tuple[tuple[bytes, bytes], ...], request_id: str | None,
                    answer: Answer) -> Response:
    assert answer.codes is not None
    return infer_hot_encode(answers[int(answer.codes[0])], request_id)


def _routes() -> tuple[Route, ...]:
    out = [
        Route("/v2", ("GET",), "V2: server name, version and extensions", protocol="v2",
              handler=_server),
        Route("/v2/health/live", ("GET",), "V2: alive", protocol="v2", handler=_live),
        Route("/v2/health/ready", ("GET",), "V2: models loaded and not draining",
              protocol="v2", handler=_ready),
    ]
    for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        out += [
            Route(base, ("GET",), "V2: a model's metadata", protocol="v2", handler=_metadata),
            Route(f"{base}/ready", ("GET",), "V2: a model is ready", protocol="v2",
                  handler=_model_ready),
            Route(f"{base}/infer", ("POST",), "V2: predict from tensors", protocol="v2",
                  decode=_infer_decode, encode=_infer_encode),
        ]
    return tuple(out)


ROUTES: Final = _routes()

__all__ = ["DTYPES", "INFER_ROUTE", "PLATFORM", "ROUTES", "SERVER", "infer_hot", "metadata",
           "version_of"]
