"""fishpredict's own routes: the seed's ``GET /fish``, ``POST /predict`` for any
model, and the service routes (health, readiness, models, metrics, spec, reload).

Errors here are ``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from fishpredict.app import codec
from fishpredict.app.messages import Answer, Headers, Job, Request, Response, error
from fishpredict.app.metrics import content_type
from fishpredict.app.protocols.answers import label_table, values_json
from fishpredict.app.routes import Route
from fishpredict.errors import FishpredictError, InvalidInputError, MetricsUnavailable, Reply
from fishpredict.fish.dataset import LANGUAGES, Language
from fishpredict.models import rows as rowslib
from fishpredict.models.loaded import LoadedModel
from fishpredict.predictor import check_value

if TYPE_CHECKING:
    from fishpredict.app.service import Service

#: the query keys of the seed's ``/fish``, in feature order
FISH_FEATURES: Final = ("length", "weight")
#: the longest k accepted as a number (longer digit strings are refused as out of range)
K_DIGITS: Final = 18
_TRUE: Final = frozenset({"true", "1", "yes"})
_FALSE: Final = frozenset({"false", "0", "no"})


# ---- query parameters ---------------------------------------------------------------


def pick(service: Service, params: Mapping[str, str]) -> LoadedModel:
    """The model a query names (``model=``, else ``k=``, else the default)."""
    predictor = service.require_predictor()
    if "model" in params:
        return predictor.model(params["model"])
    k = params.get("k")
    if k is None:
        return predictor.model(None)
    digits = k[1:] if k[:1] in "+-" else k
    if not (digits.isascii() and digits.isdigit()):
        raise InvalidInputError(f"k must be an integer, got {k[:40]!r}")
    if len(digits) > K_DIGITS:
        raise InvalidInputError(f"k is out of range: {k[:40]}…")
    return predictor.model(int(k))


def labels_of(service: Service, params: Mapping[str, str]) -> Language:
    lang = params.get("labels")
    if lang is None:
        return service.config.labels
    for known in LANGUAGES:
        if lang == known:
            return known
    raise InvalidInputError(f"labels must be one of {', '.join(LANGUAGES)}, got {lang[:20]!r}")


def flag(params: Mapping[str, str], name: str) -> bool:
    value = params.get(name)
    if value is None:
        return False
    low = value.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise InvalidInputError(f"{name} must be true or false, got {value[:20]!r}")


# ---- GET /fish ----------------------------------------------------------------------


def _fish_decode(service: Service, req: Request) -> Job:
    params = codec.parse_query(req.query)
    for name in FISH_FEATURES:
        if name not in params:
            raise InvalidInputError(
                f"missing query parameter {name!r}; expected /fish?length=<cm>&weight=<g>&k=<n>"
            )
    x = check_value("length", params["length"])
    w = check_value("weight", params["weight"])
    model = pick(service, params)
    labels = labels_of(service, params)
    sig = model.signature
    if sig.names != FISH_FEATURES:
        raise InvalidInputError(
            f"model {model.name!r} takes {', '.join(sig.names)}; /fish serves models of "
            "(length, weight): use POST /predict"
        )
    for value, f in zip((x, w), sig.features, strict=True):
        if (f.minimum is not None and value < f.minimum) or (
            f.maximum is not None and value > f.maximum
        ):
            rowslib.check_numbers(sig, np.array([[x, w]]))
    rows = rowslib.Rows(1, array=np.array([[x, w]], dtype=np.float64))
    return Job(model, rows, labels=labels, context=(x, w))


def _fish_parts(service: Service, model: LoadedModel, labels: str | None, code: int
                ) -> tuple[str, str]:
    """A classifier's ``/fish`` answer for class ``code``, around length and weight."""
    key = ("fish", model.info.name, labels, code)
    cached = service.memo.get(key)
    if cached is None:
        label = label_table(model, labels)[code]
        k = "null" if model.info.k is None else str(model.info.k)
        cached = service.memo[key] = (
            f'{{"prediction":{label},"length":',
            f',"k":{k},"model":{codec.dumps(model.name).decode()}}}',
        )
    return cached  # type: ignore[return-value]


def _fish_encode(service: Service, job: Job, answer: Answer) -> Response:
    model = job.model
    x, w = job.context
    if answer.codes is None:  # a regressor on (length, weight)
        assert answer.values is not None
        value = values_json(answer.values)[1:-1]
        parts = (f'{{"prediction":{value},"length":', f',"k":null,"model":'
                 f'{codec.dumps(model.name).decode()}}}')
    else:
        parts = _fish_parts(service, model, job.labels, int(answer.codes[0]))
    return Response(200, f'{parts[0]}{x!r},"weight":{w!r}{parts[1]}'.encode())


#: the query of ``/fish`` in its usual order: length, weight, then k or nothing
_FISH_QUERY: Final = re.compile(
    rf"length=([^&]*)&weight=([^&]*)(?:&k=([0-9]{{1,{K_DIGITS}}}))?")
_FISH_HOT: Final = "fish-hot"


def _fish_state(model: LoadedModel) -> Any:
    """``(row check, predict_row)`` of a ``/fish`` classifier with a one-row fast path
    that the general way answers at once (not micro-batched), or False."""
    fast, check = model.fast, model.row_check
    if (fast is None or check is None or fast.prefers_batches or not model.is_classifier
            or model.signature.names != FISH_FEATURES):
        return False
    return check, fast.predict_row


def fish_hot_decode(query: str) -> tuple[str | None, float, float] | None:
    """The hot path's decode step: ``(k, length, weight)`` of a query in the usual order
    with plain numbers (no escape, no ``_``, ASCII), or None."""
    if "%" in query or "+" in query:
        return None
    m = _FISH_QUERY.fullmatch(query)
    if m is None:
        return None
    length, weight, k = m.groups()
    if "_" in length or "_" in weight or not (length.isascii() and weight.isascii()):
        return None  # check_value refuses them
    try:
        return k, float(length), float(weight)
    except ValueError:
        return None


def fish_hot_encode(service: Service, model: LoadedModel, code: int, x: float, w: float
                    ) -> Response:
    """The hot path's encode step: the answer for class ``code`` from its cached parts."""
    parts = _fish_parts(service, model, service.config.labels, code)
    return Response(200, f'{parts[0]}{x!r},"weight":{w!r}{parts[1]}'.encode())


def fish_hot(_: str, service: Service, query: str, headers: Headers, body: bytes
             ) -> tuple[Response, str] | None:
    """``GET /fish?length=..&weight=..[&k=..]`` of a classifier with a one-row fast path,
    the short way: the query matched in one step (:func:`fish_hot_decode`), the model's
    own row check, its plain-float predict, the answer's cached parts
    (:func:`fish_hot_encode`). Anything else (another order or parameter, an escape, a
    value the check declines, a model the general way would batch) returns None:
    :func:`_fish_decode` and :func:`_fish_encode` answer it, errors included. Gives the
    answer and the model."""
    predictor = service.predictor
    if predictor is None or not predictor.cache:
        return None
    decoded = fish_hot_decode(query)
    if decoded is None:
        return None
    k, x, w = decoded
    try:
        model = predictor.model(None if k is None else int(k))
    except FishpredictError:
        return None
    state: Any = model.memo.get(_FISH_HOT)
    if state is None:
        state = model.memo[_FISH_HOT] = _fish_state(model)
    if state is False:
        return None
    check, predict_row = state
    row = check((x, w))  # finite and within the signature's bounds, or None
    if row is None:
        return None
    try:
        code = predict_row(row)
    except FishpredictError:  # the estimator's refusal (a row that overflows a scaler)
        return None  # the general way answers it, as a 400
    return fish_hot_encode(service, model, code, x, w), model.info.name


# ---- POST /predict ------------------------------------------------------------------


def decode_body(job_model: LoadedModel, req: Request) -> rowslib.Rows:
    """The rows of a ``/predict`` body: JSON instances (lists or objects), one object of
    features, or a ``.npy`` array."""
    sig = job_model.signature
    mtype = codec.media_type(req.headers.get("content-type"))
    if mtype == codec.NPY:
        return rowslib.from_array(sig, codec.array_from_npy(req.body))
    if not (mtype in (codec.JSON, "") or mtype.endswith("+json")):
        raise Reply(error(
            415, "unsupported_media_type",
            f"content type {mtype[:60]!r} is not supported; send {codec.JSON} or {codec.NPY}",
        ))
    doc = codec.loads(req.body)
    if not isinstance(doc, dict):
        raise InvalidInputError(
            'expected a JSON object: {"instances": [row, ...]} or one row as an object '
            "of features"
        )
    if "instances" in doc:
        return rowslib.from_json_rows(sig, doc["instances"])
    if not doc:
        raise InvalidInputError(
            f'expected "instances" (a list of rows) or one row of features '
            f"({', '.join(sig.names)})"
        )
    return rowslib.from_json_rows(sig, [doc])


def _predict_decode(service: Service, req: Request) -> Job:
    service.check_body(len(req.body))
    params = codec.parse_query(req.query)
    model = pick(service, params)
    labels = labels_of(service, params)
    proba = flag(params, "proba")
    if proba and not model.has_proba:
        raise InvalidInputError(f"model {model.name!r} gives no probabilities (proba=true)")
    rows = decode_body(model, req)
    service.check_batch(rows.n)
    npy_out = codec.accepts_npy(req.headers.get("accept"))
    return Job(model, rows, proba=proba, labels=labels, context=npy_out)


def _predict_encode(service: Service, job: Job, answer: Answer) -> Response:
    model = job.model
    if job.context:  # Accept: application/x-npy
        if answer.codes is not None:
            shown = np.asarray(model.labels_for(job.labels))
            return Response(200, codec.npy_bytes(shown[answer.codes]), content_type=codec.NPY)
        assert answer.values is not None
        return Response(200, codec.npy_bytes(np.asarray(answer.values)), content_type=codec.NPY)
    if answer.codes is not None:
        table = label_table(model, job.labels)
        preds = "[" + ",".join([table[c] for c in answer.codes.tolist()]) + "]"
    else:
        assert answer.values is not None
        preds = values_json(answer.values)
    parts = [f'{{"predictions":{preds}']
    if model.info.k is not None:
        parts.append(f',"k":{model.info.k}')
    parts.append(f',"model":{codec.dumps(model.name).decode()}')
    if answer.proba is not None:
        classes = codec.dumps(list(model.labels_for(job.labels))).decode()
        parts.append(f',"classes":{classes},"probabilities":{values_json(answer.proba)}')
    parts.append("}")
    return Response(200, "".join(parts).encode())


# ---- the service routes -------------------------------------------------------------


def _healthz(service: Service, req: Request) -> Response:
    return Response(200, b'{"status":"ok"}')


def _readyz(service: Service, req: Request) -> Response:
    if service.draining:
        raise Reply(error(503, "draining", "shutting down", headers=service.retry_after()))
    predictor = service.require_predictor()
    return Response(200, codec.dumps({"status": "ready", "models": len(predictor.models())}))


def _models(service: Service, req: Request) -> Response:
    predictor = service.require_predictor()
    doc: dict[str, Any] = {
        "models": [m.as_dict() for m in predictor.models()],
        "default": predictor.model(None).name,
        "labels": service.config.labels,
        "last_reload_error": predictor.last_reload_error,
    }
    return Response(200, codec.dumps(doc))


def _metrics(service: Service, req: Request) -> Response:
    if service.metrics is None:
        return error(404, "not_found", "metrics are turned off")
    try:  # prometheus-client is imported now, for the first scrape
        return Response(200, service.metrics.render(), content_type=content_type())
    except MetricsUnavailable as exc:
        return error(exc.status, exc.code, exc.message)


def _openapi(service: Service, req: Request) -> Response:
    return Response(200, service.openapi())


def _reload(service: Service, req: Request) -> Response:
    token = service.config.admin_token
    assert token is not None  # the route is 404 without a token
    given = req.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode("utf-8", "replace"), f"Bearer {token}".encode()):
        return error(
            401, "unauthorized", "missing or wrong admin token",
            headers=(("WWW-Authenticate", 'Bearer realm="fishpredict-admin"'),),
        )
    return service.reload()


ROUTES: Final = (
    Route("/fish", ("GET",), "one fish from the query (the seed's API)",
          decode=_fish_decode, encode=_fish_encode),
    Route("/predict", ("POST",), "rows for any model, JSON or .npy; probabilities on request",
          decode=_predict_decode, encode=_predict_encode),
    Route("/healthz", ("GET",), "alive", handler=_healthz),
    Route("/readyz", ("GET",), "models loaded and not draining", handler=_readyz),
    Route("/models", ("GET",), "what is loaded, with each model's signature", handler=_models),
    Route("/metrics", ("GET",), "Prometheus text format", handler=_metrics),
    Route("/openapi.json", ("GET",), "the spec", handler=_openapi),
    Route("/admin/reload", ("POST",), "reload models (only with an admin token)",
          handler=_reload, enabled_by="admin_token"),
)
