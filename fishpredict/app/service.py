"""The HTTP contract, once, independent of any transport.

A backend turns bytes into ``(method, path, query, headers, body)`` and calls
:meth:`Service.handle_async` (or :meth:`Service.handle`); it writes back the
:class:`Response` it gets. Routing, validation, errors, labels, encoding and
metrics all live here and in the protocol modules, so every backend answers
byte for byte alike.

The routes are one table (:data:`ROUTES`, from :mod:`fishpredict.app.protocols`);
the spec of all of them is ``fishpredict/openapi.json``. A prediction route
decodes its request into a :class:`~fishpredict.app.routes.Job`; the predict step
here runs it (through the micro-batcher for one-row jobs of models without a
fast path), and the route encodes the :class:`~fishpredict.app.routes.Answer`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from http import HTTPStatus
from importlib import resources
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final

from fishpredict.app import codec, reloading
from fishpredict.app.batching import MicroBatcher
from fishpredict.app.config import ServeConfig
from fishpredict.app.hot import Hot, hot_paths
from fishpredict.app.messages import (
    Answer,
    Deferred,
    Headers,
    Job,
    Request,
    Response,
    error,
    plain_error,
)
from fishpredict.app.metrics import Metrics
from fishpredict.app.protocols import all_routes
from fishpredict.app.protocols.served_spec import tailor
from fishpredict.app.routes import Route, RouteTable
from fishpredict.errors import FishpredictError, Reply

if TYPE_CHECKING:
    from fishpredict.app.batching import MicroBatcher
    from fishpredict.predictor import Predictor

log = logging.getLogger("fishpredict.server")


#: methods that get their own metric label; any other is counted as "other"
KNOWN_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def _spec_bytes() -> bytes:
    return resources.files("fishpredict").joinpath("openapi.json").read_bytes()


def _routes() -> tuple[Route, ...]:
    return all_routes()


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
            self.batcher = MicroBatcher(
                self.config.batch_max, self.config.batch_wait_us, metrics=self.metrics
            )
        self.spec: bytes | None = None
        #: per-route caches the protocol modules keep (encoded labels, answer parts)
        self.memo: dict[object, object] = {}
        self.table = RouteTable(_routes())
        #: set by a supervised worker (fishpredict.server.reload): a reload every worker
        #: makes together, answered with the 200 or the 409 of all of them
        self.cluster_reload: Callable[[reloading.Change], Response] | None = None
        #: the hot paths by exact path (:mod:`fishpredict.app.hot`): one dict look-up
        self.hot: dict[str, Hot] = {}
        self._own_handle_async = type(self).handle_async is not Service.handle_async
        if not self._own_handle_async and type(self).respond is Service.respond:
            self.respond = self._respond  # type: ignore[method-assign]  # a call less
        if predictor is not None:
            self.set_predictor(predictor)

    # -- lifecycle --

    @property
    def ready(self) -> bool:
        return self.predictor is not None and not self.draining

    def set_predictor(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.memo.clear()
        self.hot = hot_paths(self)
        self.spec = None  # the served spec describes the loaded models
        if self.metrics is not None:
            self.metrics.models_loaded.set(len(predictor.models()))
            self.metrics.model_loads.labels("ok").inc(len(predictor.models()))

    def retry_after(self) -> tuple[tuple[str, str], ...]:
        return (("Retry-After", str(self.config.retry_after)),)

    def overloaded(self) -> Response:
        """The 503 for a request past ``max_inflight`` (every backend answers it alike)."""
        return error(
            503,
            "overloaded",
            f"more than {self.config.max_inflight} requests in flight; retry later",
            headers=self.retry_after(),
        )

    def cut_off(self) -> Response:
        """The 503 for a request still running when the drain timeout ran out."""
        return error(
            503, "draining", "the server shut down before this request finished",
            headers=self.retry_after(),
        )

    def body_limit_response(self, content_length: int) -> Response | None:
        """A 413 if a body of ``content_length`` bytes is over the limit (check before reading)."""
        limit = self.config.max_body_bytes
        if content_length > limit:
            return error(413, "payload_too_large", f"request body of {content_length} bytes "
                         f"is over the limit of {limit} bytes")
        return None

    def check_body(self, content_length: int) -> None:
        """Answer at once with the 413 of a body over the limit."""
        refusal = self.body_limit_response(content_length)
        if refusal is not None:
            raise Reply(refusal)

    def check_batch(self, n: int) -> None:
        """Answer at once with the 413 of a batch of ``n`` rows over ``max_batch_rows``
        (in the V2/V1 shape on their routes, as every Reply: :meth:`_failure`)."""
        limit = self.config.max_batch_rows
        if n > limit:
            raise Reply(error(413, "batch_too_large",
                              f"batch of {n} rows is over the limit of {limit} rows"))

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

    def require_predictor(self) -> Predictor:
        if self.predictor is None:
            raise Reply(error(503, "not_ready", "models are still loading",
                              headers=self.retry_after()))
        return self.predictor

    # -- entry points --

    def respond(
        self, method: str, path: str, query: str, headers: Headers, body: bytes = b""
    ) -> Response | Coroutine[Any, Any, Response]:
        """Answer one request now, or give the coroutine to await for its answer (only a
        one-row prediction the micro-batcher coalesces has to wait): what
        :meth:`handle_async` does, without a coroutine for the answers that need none
        (a subclass that overrides :meth:`handle_async` is answered through it)."""
        if self._own_handle_async:
            return self.handle_async(method, path, query, headers, body)
        return self._respond(method, path, query, headers, body)

    def _respond(
        self, method: str, path: str, query: str, headers: Headers, body: bytes = b""
    ) -> Response | Coroutine[Any, Any, Response]:
        start = perf_counter()
        hot = self.hot.get(path)
        if hot is not None and hot.method == method:
            answered = hot.answer(hot.arg, self, query, headers, body)
            if answered is not None:
                response, model = answered
                if isinstance(response, Deferred):  # for the micro-batcher
                    return self._hot_batched(hot.route, method, path, query, headers, body,
                                             response, model, start)
                if self.metrics is not None:
                    self.metrics.observe(hot.route, method, 200, perf_counter() - start, model)
                return response
        route, request = self._route(method, path, query, headers, body)
        if isinstance(route, Response):
            self._observe("other", method, route.status, start)
            return route
        if route.decode is None or self.batcher is None:
            return self._answer(route, request, start)
        try:
            assert route.encode is not None
            job = route.decode(self, request)
            if self._batchable(job):
                return self._batched(route, request, job, start)
            response = route.encode(self, job, self.run(job))
        except Exception as exc:
            response = self._failure(route, request, exc)
            self._observe(route.path, method, response.status, start)
            return response
        self._observe(route.path, method, response.status, start, (job.model.name, job.rows.n))
        return response

    def handle(
        self, method: str, path: str, query: str, headers: Headers, body: bytes = b""
    ) -> Response:
        """Answer one request synchronously (no micro-batching)."""
        start = perf_counter()
        hot = self.hot.get(path)
        if hot is not None and hot.method == method:
            answered = hot.answer(hot.arg, self, query, headers, body)
            if answered is not None:
                response, model = answered
                if not isinstance(response, Deferred):  # (no micro-batching here)
                    if self.metrics is not None:
                        self.metrics.observe(hot.route, method, 200, perf_counter() - start,
                                             model)
                    return response
        return self.handle_general(method, path, query, headers, body, start)

    def handle_general(
        self, method: str, path: str, query: str, headers: Headers, body: bytes = b"",
        start: float | None = None,
    ) -> Response:
        """:meth:`handle` the general way, never through a hot path (:mod:`.hot`): what
        every hot path must answer byte for byte alike, or decline."""
        start = perf_counter() if start is None else start
        route, request = self._route(method, path, query, headers, body)
        if isinstance(route, Response):
            self._observe("other", method, route.status, start)
            return route
        return self._answer(route, request, start)

    async def handle_async(
        self, method: str, path: str, query: str, headers: Headers, body: bytes = b""
    ) -> Response:
        """Answer one request; one-row predictions of models without a fast path go
        through the micro-batcher when it is on."""
        answer = self._respond(method, path, query, headers, body)
        if isinstance(answer, Response):
            return answer
        return await answer

    def _answer(self, route: Route, request: Request, start: float) -> Response:
        predicted: LoadedModelName = None
        try:
            if route.handler is not None:
                response = route.handler(self, request)
            else:
                assert route.decode is not None and route.encode is not None
                job = route.decode(self, request)
                response = route.encode(self, job, self.run(job))
                predicted = job.model.name, job.rows.n
        except Exception as exc:
            response = self._failure(route, request, exc)
        self._observe(route.path, request.method, response.status, start, predicted)
        return response

    async def _hot_batched(self, route: str, method: str, path: str, query: str,
                           headers: Headers, body: bytes, deferred: Deferred, model: str,
                           start: float) -> Response:
        """A hot path's job through the micro-batcher: what :meth:`_batched` does."""
        assert self.batcher is not None
        try:
            response = deferred.encode(await self.batcher.submit(deferred.job))
        except Exception as exc:
            found, request = self._route(method, path, query, headers, body)
            assert not isinstance(found, Response)
            response = self._failure(found, request, exc)
            self._observe(route, method, response.status, start)
            return response
        self._observe(route, method, response.status, start, (model, 1))
        return response

    async def _batched(self, route: Route, request: Request, job: Job, start: float
                       ) -> Response:
        assert self.batcher is not None and route.encode is not None
        predicted: LoadedModelName = None
        try:
            answer = await self.batcher.submit(job)
            response = route.encode(self, job, answer)
            predicted = job.model.name, job.rows.n
        except Exception as exc:
            response = self._failure(route, request, exc)
        self._observe(route.path, request.method, response.status, start, predicted)
        return response

    # -- the predict step --

    def _batchable(self, job: Job) -> bool:
        return (
            job.rows.n == 1
            and (job.model.fast is None or job.model.fast.prefers_batches
                 or job.rows.has_nan or job.rows.array is None)
            and self.predictor is not None
            and self.predictor.cache
        )

    def run(self, job: Job) -> Answer:
        """Predict a decoded job now (the naive design reloads the model first)."""
        if self.predictor is not None and not self.predictor.cache:
            return job.run(self.predictor._live(job.model.name))
        return job.run()

    # -- plumbing --

    def _route(
        self, method: str, path: str, query: str, headers: Headers, body: bytes
    ) -> tuple[Route | Response, Request]:
        request = Request(method, path, query, headers, body)
        found = self.table.match(path)
        if found is None or (
            found[0].enabled_by is not None and getattr(self.config, found[0].enabled_by) is None
        ):
            protocol_error = self._error_of(path)
            return protocol_error(404, "not_found",
                                  f"no route {path[:100]!r}; see /openapi.json", ()), request
        route, params = found
        if method not in route.methods:
            allowed = ", ".join(route.methods)
            return self._error_of(path)(
                405, "method_not_allowed",
                f"{method[:16]} is not allowed on {path[:100]}; use {allowed}",
                (("Allow", allowed),),
            ), request
        if params:
            request = Request(method, path, query, headers, body, params)
        return route, request

    @staticmethod
    def _error_of(path: str) -> Callable[..., Response]:
        return plain_error if path.startswith(("/v2", "/v1/")) else error

    def _failure(self, route: Route, request: Request, exc: Exception) -> Response:
        render = error if route.protocol == "native" else plain_error
        if isinstance(exc, Reply):
            return exc.response if render is error else _plain(exc.response)
        if isinstance(exc, FishpredictError):
            status = exc.status if exc.status < 500 else 500
            if status == 500:  # the model's own failure: logged once, with its traceback
                log.error("%s (%s %s)", exc.message, request.method, route.path,
                          exc_info=exc.__cause__ or exc)
            return render(status, exc.code, exc.message, ())
        log.exception("unexpected error on %s %s", request.method, route.path)
        return render(500, "internal_error", "internal server error", ())

    def _observe(
        self, route: str, method: str, status: int, start: float,
        predicted: LoadedModelName = None,
    ) -> None:
        if self.metrics is not None:
            self.metrics.observe(
                route,
                method if method in KNOWN_METHODS else "other",
                status,
                perf_counter() - start,
                None if predicted is None else predicted[0],
                1 if predicted is None else predicted[1],
            )

    def openapi(self) -> bytes:
        """The spec this server answers: routes it does not answer (the admin route
        without a token) are left out, and the rest say what the loaded models take
        (:mod:`fishpredict.app.protocols.served_spec`)."""
        if self.spec is None:
            doc = json.loads(_spec_bytes())
            for r in self.table.routes:
                if r.enabled_by is not None and getattr(self.config, r.enabled_by) is None:
                    doc["paths"].pop(r.path, None)
            doc = tailor(doc, self.predictor)
            self.spec = (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()
        return self.spec

    def reload(self, change: reloading.Change = None) -> Response:
        """Reload models from disk (also on SIGHUP); the old ones keep serving on failure.
        With several workers every one of them swaps, or none (``cluster_reload``).
        ``change``: a model to load or unload as well (:mod:`fishpredict.app.reloading`)."""
        if self.cluster_reload is not None:
            return self.cluster_reload(change)
        return reloading.reload_here(self, change)


LoadedModelName = tuple[str, int] | None


def _plain(response: Response) -> Response:
    """A native error answer in the V2/V1 shape (``{"error": "message"}``)."""
    if response.status < 400 or response.content_type != codec.JSON:
        return response
    try:
        doc = codec.loads(response.body)
        message = doc["error"]["message"]
    except (FishpredictError, KeyError, TypeError):
        return response
    return Response(response.status, codec.dumps({"error": message}), headers=response.headers)


def describe_status(status: int) -> str:
    """The reason phrase for a status code (for backends that write raw HTTP)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def route_names() -> list[str]:
    """Every route's path template, in table order."""
    return [r.path for r in _routes()]


__all__ = ["Service", "describe_status", "route_names"]
