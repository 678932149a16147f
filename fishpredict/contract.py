"""The HTTP contract, once, independent of any transport.

A backend turns bytes into ``(method, path, query, headers, body)`` and calls
:meth:`Service.handle_async` (or :meth:`Service.handle`); it writes back the
:class:`Response` it gets. Routing, validation, errors, labels, encoding and
metrics all live here, so every backend answers byte for byte alike.

Routes (the one spec is ``fishpredict/openapi.json``):

==========  ==================  =============================================
GET         /fish               one fish from the query (the seed's API)
POST        /predict            one fish or a batch, JSON or ``.npy``
GET         /healthz            alive
GET         /readyz             models loaded and not draining
GET         /models             what is loaded
GET         /metrics            Prometheus text format
GET         /openapi.json       the spec
POST        /admin/reload       reload models (only with an admin token)
==========  ==================  =============================================
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Final

import numpy as np

from . import codec
from .config import ServeConfig
from .dataset import LANGUAGES, Language
from .errors import FishpredictError, InvalidInputError, ModelLoadError
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Metrics
from .predictor import LoadedModel, Predictor, check_value

if TYPE_CHECKING:
    from .batching import MicroBatcher

log = logging.getLogger("fishpredict.server")

Headers = Mapping[str, str]  # lower-case names


@dataclass(frozen=True, slots=True)
class Response:
    """What a backend writes back: status, content type, extra headers, body."""

    status: int
    body: bytes
    content_type: str = codec.JSON
    headers: tuple[tuple[str, str], ...] = ()


#: methods that get their own metric label; any other is counted as "other"
KNOWN_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def error(
    status: int, code: str, message: str, headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    """The JSON error every failure answers with: ``{"error": {"code", "message"}}``."""
    return Response(
        status, codec.dumps({"error": {"code": code, "message": message}}), headers=headers
    )


class _Reply(Exception):
    """Raised inside a handler to answer at once with ``response``."""

    def __init__(self, response: Response) -> None:
        self.response = response


def _spec_bytes() -> bytes:
    return resources.files("fishpredict").joinpath("openapi.json").read_bytes()


class Service:
    """The fishpredict HTTP application: one per worker process."""

    def __init__(
        self,
        predictor: Predictor | None,
        config: ServeConfig | None = None,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config or ServeConfig()
        self.metrics = (
            metrics if metrics is not None else (Metrics() if self.config.metrics else None)
        )
        self.predictor: Predictor | None = None
        self.draining = False
        self.batcher: MicroBatcher | None = None
        if self.config.batch_max > 1:
            from .batching import MicroBatcher

            self.batcher = MicroBatcher(
                self.config.batch_max, self.config.batch_wait_us, metrics=self.metrics
            )
        self._spec: bytes | None = None
        self._label_json: dict[tuple[str, str, int], str] = {}
        #: /fish answers around the two numbers, per (model, k, labels, class)
        self._fish_parts: dict[tuple[str, int | None, str, int], tuple[str, str]] = {}
        self._routes: dict[str, tuple[tuple[str, ...], Callable[..., Response]]] = {
            "/fish": (("GET",), self._fish),
            "/predict": (("POST",), self._predict),
            "/healthz": (("GET",), self._healthz),
            "/readyz": (("GET",), self._readyz),
            "/models": (("GET",), self._models),
            "/metrics": (("GET",), self._metrics),
            "/openapi.json": (("GET",), self._openapi),
            "/admin/reload": (("POST",), self._reload),
        }
        if predictor is not None:
            self.set_predictor(predictor)

    # -- lifecycle --

    @property
    def ready(self) -> bool:
        return self.predictor is not None and not self.draining

    def set_predictor(self, predictor: Predictor) -> None:
        self.predictor = predictor
        if self.metrics is not None:
            self.metrics.models_loaded.set(len(predictor.models()))
            self.metrics.model_loads.labels("ok").inc(len(predictor.models()))

    def overloaded(self) -> Response:
        """The 503 for a request past ``max_inflight`` (every backend answers it alike)."""
        return error(
            503,
            "overloaded",
            f"more than {self.config.max_inflight} requests in flight; retry later",
            headers=(("Retry-After", str(self.config.retry_after)),),
        )

    def cut_off(self) -> Response:
        """The 503 for a request still running when the drain timeout ran out."""
        return error(
            503,
            "draining",
            "the server shut down before this request finished",
            headers=(("Retry-After", str(self.config.retry_after)),),
        )

    def body_limit_response(self, content_length: int) -> Response | None:
        """A 413 if a body of ``content_length`` bytes is over the limit (check before reading)."""
        if content_length > self.config.max_body_bytes:
            return error(
                413,
                "payload_too_large",
                f"request body of {content_length} bytes is over the limit of "
                f"{self.config.max_body_bytes} bytes",
            )
        return None

    async def read_body(
        self, declared_length: int | None, next_chunk: Callable[[], Awaitable[bytes]]
    ) -> bytes | Response:
        """Read a request body with the limits applied; the body, or the refusal.

        For adapters whose framework hands the body over in chunks:
        ``next_chunk()`` returns the next piece, ``b""`` at the end. A declared
        length over ``max_body_bytes`` is refused before reading (413); a body
        that grows past it is cut off (413); one that does not arrive within
        ``request_timeout`` seconds gets a 408. After a refusal the adapter
        should close the connection.
        """
        if declared_length is not None:
            refusal = self.body_limit_response(declared_length)
            if refusal is not None:
                return refusal
        limit = self.config.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.config.request_timeout):
                while chunk := await next_chunk():
                    size += len(chunk)
                    if size > limit:
                        return self.body_limit_response(size) or error(
                            413, "payload_too_large", "request body is too large")
                    chunks.append(chunk)
        except TimeoutError:
            return error(408, "request_timeout", "request body not received in time")
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    # -- entry points --

    def handle(
        self, method: str, path: str, query: str, headers: Headers, body: bytes = b""
    ) -> Response:
        """Answer one request synchronously (no micro-batching)."""
        start = time.perf_counter()
        route, response = self._dispatch(method, path, query, headers, body)
        self._observe(route, method, response.status, start)
        return response

    async def handle_async(
        self, method: str, path: str, query: str, headers: Headers, body: bytes = b""
    ) -> Response:
        """Answer one request; one-fish predictions go through the micro-batcher
        when it is on and the model has no fast path."""
        if self.batcher is None or path != "/fish" or method != "GET":
            return self.handle(method, path, query, headers, body)
        start = time.perf_counter()
        predicted: str | None = None
        try:
            model, x, w, labels = self._fish_args(query)
            if model.fast is not None or self.predictor is None or not self.predictor.cache:
                code = self._predict_one(model, x, w)
            else:
                code = await self.batcher.predict_one(model, x, w)
            response = self._fish_response(model, x, w, code, labels)
            predicted = model.name
        except _Reply as reply:
            response = reply.response
        except FishpredictError as exc:
            response = error(exc.status if exc.status < 500 else 500, exc.code, exc.message)
        except Exception:
            log.exception("unexpected error on GET /fish")
            response = error(500, "internal_error", "internal server error")
        if self.metrics is not None:  # "/fish" and GET are known labels: no _observe needed
            self.metrics.observe(
                "/fish", "GET", response.status, time.perf_counter() - start, predicted
            )
        return response

    # -- plumbing --

    def _observe(self, route: str, method: str, status: int, start: float) -> None:
        if self.metrics is not None:
            self.metrics.observe(
                route if route in self._routes else "other",
                method if method in KNOWN_METHODS else "other",
                status,
                time.perf_counter() - start,
            )

    def _dispatch(
        self, method: str, path: str, query: str, headers: Headers, body: bytes
    ) -> tuple[str, Response]:
        entry = self._routes.get(path)
        if entry is None or (path == "/admin/reload" and self.config.admin_token is None):
            return path, error(404, "not_found", f"no route {path[:100]!r}; see /openapi.json")
        methods, handler = entry
        if method not in methods:
            return path, error(
                405,
                "method_not_allowed",
                f"{method[:16]} is not allowed on {path}; use {', '.join(methods)}",
                headers=(("Allow", ", ".join(methods)),),
            )
        try:
            return path, handler(query, headers, body)
        except _Reply as reply:
            return path, reply.response
        except FishpredictError as exc:
            return path, error(exc.status if exc.status < 500 else 500, exc.code, exc.message)
        except Exception:
            log.exception("unexpected error on %s %s", method, path)
            return path, error(500, "internal_error", "internal server error")

    def _require_predictor(self) -> Predictor:
        if self.predictor is None:
            raise _Reply(
                error(
                    503,
                    "not_ready",
                    "models are still loading",
                    headers=(("Retry-After", str(self.config.retry_after)),),
                )
            )
        return self.predictor

    def _pick(self, params: Mapping[str, str]) -> LoadedModel:
        predictor = self._require_predictor()
        if "model" in params:
            return predictor.model(params["model"])
        k = params.get("k")
        if k is None or k == "":
            return predictor.model(None)
        digits = k[1:] if k[:1] in "+-" else k
        if not (digits.isascii() and digits.isdigit() and len(digits) <= 9):
            raise InvalidInputError(f"k must be an integer, got {k[:40]!r}")
        return predictor.model(int(k))

    def _labels(self, params: Mapping[str, str]) -> Language:
        lang = params.get("labels")
        if lang is None:
            return self.config.labels
        for known in LANGUAGES:
            if lang == known:
                return known
        raise InvalidInputError(f"labels must be one of {', '.join(LANGUAGES)}, got {lang[:20]!r}")

    def _predict_one(self, model: LoadedModel, x: float, w: float) -> int:
        if self.predictor is not None and not self.predictor.cache:
            model = self.predictor._live(model.name)
        return model.predict_code(x, w)

    # -- routes --

    def _fish_args(self, query: str) -> tuple[LoadedModel, float, float, Language]:
        params = codec.parse_query(query)
        for name in ("length", "weight"):
            if name not in params:
                raise InvalidInputError(
                    f"missing query parameter {name!r}; expected /fish?length=<cm>&weight=<g>&k=<n>"
                )
        x = check_value("length", params["length"])
        w = check_value("weight", params["weight"])
        return self._pick(params), x, w, self._labels(params)

    def _fish_response(
        self, model: LoadedModel, x: float, w: float, code: int, labels: Language
    ) -> Response:
        key = (model.name, model.info.k, labels, code)
        parts = self._fish_parts.get(key)
        if parts is None:
            label = codec.dumps(model.names[labels][code]).decode()
            k = "null" if model.info.k is None else str(model.info.k)
            parts = self._fish_parts[key] = (
                f'{{"prediction":{label},"length":',
                f',"k":{k},"model":{self._json_name(model)}}}',
            )
        return Response(200, f'{parts[0]}{x!r},"weight":{w!r}{parts[1]}'.encode())

    def _json_name(self, model: LoadedModel) -> str:
        key = (model.name, "en", -1)
        name = self._label_json.get(key)
        if name is None:
            name = self._label_json[key] = codec.dumps(model.name).decode()
        return name

    def _fish(self, query: str, headers: Headers, body: bytes) -> Response:
        model, x, w, labels = self._fish_args(query)
        response = self._fish_response(model, x, w, self._predict_one(model, x, w), labels)
        if self.metrics is not None:
            self.metrics.predicted(model.name, 1)
        return response

    def _predict(self, query: str, headers: Headers, body: bytes) -> Response:
        limit = self.body_limit_response(len(body))
        if limit is not None:
            return limit
        params = codec.parse_query(query)
        mtype = codec.media_type(headers.get("content-type"))
        if mtype == codec.NPY:
            X = codec.instances_from_npy(body)
        elif mtype in (codec.JSON, "") or mtype.endswith("+json"):
            X = codec.instances_from_json(codec.loads(body))
        else:
            return error(
                415,
                "unsupported_media_type",
                f"content type {mtype[:60]!r} is not supported; send {codec.JSON} or {codec.NPY}",
            )
        if X.shape[0] > self.config.max_batch_rows:
            return error(
                413,
                "batch_too_large",
                f"batch of {X.shape[0]} rows is over the limit of "
                f"{self.config.max_batch_rows} rows",
            )
        model = self._pick(params)
        labels = self._labels(params)
        predictor = self._require_predictor()
        codes = predictor.predict_codes(X, model.name)
        if self.metrics is not None:
            self.metrics.predicted(model.name, int(X.shape[0]))
        names = np.asarray(model.names[labels])
        if codec.accepts_npy(headers.get("accept")):
            return Response(200, codec.npy_bytes(names[codes]), content_type=codec.NPY)
        k = "null" if model.info.k is None else str(model.info.k)
        table = [codec.dumps(n).decode() for n in names]
        preds = ",".join([table[c] for c in codes.tolist()])
        return Response(
            200, f'{{"predictions":[{preds}],"k":{k},"model":{self._json_name(model)}}}'.encode()
        )

    def _healthz(self, query: str, headers: Headers, body: bytes) -> Response:
        return Response(200, b'{"status":"ok"}')

    def _readyz(self, query: str, headers: Headers, body: bytes) -> Response:
        if self.draining:
            return error(
                503,
                "draining",
                "shutting down",
                headers=(("Retry-After", str(self.config.retry_after)),),
            )
        predictor = self._require_predictor()
        return Response(200, codec.dumps({"status": "ready", "models": len(predictor.models())}))

    def _models(self, query: str, headers: Headers, body: bytes) -> Response:
        predictor = self._require_predictor()
        return Response(
            200,
            codec.dumps(
                {
                    "models": [m.as_dict() for m in predictor.models()],
                    "default": predictor.model(None).name,
                    "labels": self.config.labels,
                    "last_reload_error": predictor.last_reload_error,
                }
            ),
        )

    def _metrics(self, query: str, headers: Headers, body: bytes) -> Response:
        if self.metrics is None:
            return error(404, "not_found", "metrics are turned off")
        return Response(200, self.metrics.render(), content_type=METRICS_CONTENT_TYPE)

    def _openapi(self, query: str, headers: Headers, body: bytes) -> Response:
        if self._spec is None:
            self._spec = _spec_bytes()
        return Response(200, self._spec)

    def _reload(self, query: str, headers: Headers, body: bytes) -> Response:
        token = self.config.admin_token
        assert token is not None  # the route is 404 without a token
        given = headers.get("authorization", "")
        expected = f"Bearer {token}"
        if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode()):
            return error(
                401,
                "unauthorized",
                "missing or wrong admin token",
                headers=(("WWW-Authenticate", 'Bearer realm="fishpredict-admin"'),),
            )
        return self.reload()

    def reload(self) -> Response:
        """Reload models from disk (also on SIGHUP); the old ones keep serving on failure."""
        predictor = self._require_predictor()
        try:
            changed = predictor.reload()
        except ModelLoadError as exc:
            log.error("model reload refused: %s", exc)
            if self.metrics is not None:
                self.metrics.model_loads.labels("refused").inc()
            return error(409, "reload_failed", f"reload refused, old models keep serving: {exc}")
        if self.metrics is not None:
            self.metrics.model_loads.labels("ok").inc(len(changed))
            self.metrics.models_loaded.set(len(predictor.models()))
        log.info("models reloaded: %s", ", ".join(changed) or "no change")
        return Response(
            200, codec.dumps({"reloaded": changed, "models": [m.name for m in predictor.models()]})
        )


def describe_status(status: int) -> str:
    """The reason phrase for a status code (for backends that write raw HTTP)."""
    return REASONS.get(status, "Unknown")


def route_names() -> list[str]:
    return [
        "/fish",
        "/predict",
        "/healthz",
        "/readyz",
        "/models",
        "/metrics",
        "/openapi.json",
        "/admin/reload",
    ]


__all__ = ["Response", "Service", "describe_status", "error", "route_names"]
