"""fishpredict/app/service.py and fishpredict/app/codec.py through ``Service.handle``: no sockets.

The wire-level suite (tests/backends/test_contract.py) checks the same contract through
every backend; these tests pin the Service itself, including states a live
server rarely shows (not ready, draining, reload failures, internal errors).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fishpredict import Predictor
from fishpredict.app import codec, routes
from fishpredict.app.config import ServeConfig
from fishpredict.app.messages import Response
from fishpredict.app.protocols import all_routes
from fishpredict.app.service import Service, describe_status, route_names
from fishpredict.errors import InvalidInputError
from fishpredict.fish import training as artifacts
from fishpredict.fish.dataset import FishData, load_fish
from fishpredict.testing.checks.errors import BAD_FISH_QUERIES, BAD_PREDICT_BODIES

TOKEN = "unit-test-admin-token-0123456789"
JSON = {"content-type": "application/json"}
NPY = {"content-type": "application/x-npy"}


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor()


@pytest.fixture
def service(predictor: Predictor) -> Service:
    return Service(predictor, ServeConfig(max_body_bytes=4096, max_batch_rows=100))


def doc_of(response: Response) -> Any:
    assert response.content_type == "application/json"
    return json.loads(response.body)


def assert_error(response: Response, status: int, code: str) -> str:
    assert response.status == status, response
    assert doc_of(response) == {
        "error": {"code": code, "message": doc_of(response)["error"]["message"]}
    }
    message: str = doc_of(response)["error"]["message"]
    assert message and "Traceback" not in message
    return message


def post(
    service: Service, body: Any, query: str = "", headers: dict[str, str] | None = None
) -> Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return service.handle("POST", "/predict", query, headers if headers is not None else JSON, data)


# ---- routing -----------------------------------------------------------------------------

#: the routes answered only with an admin token
ADMIN_ONLY = {r.path for r in all_routes() if r.enabled_by == "admin_token"}



def test_route_names_match_the_service(service: Service) -> None:
    model = service.require_predictor().models()[0]
    for route in route_names():
        path = route.replace("{name}", model.name).replace("{version}", model.sha256[:12])
        assert service.handle("GET", path, "", {}).status != 404 or route in ADMIN_ONLY


@pytest.mark.parametrize("path", ["/", "/nope", "/fish/", "/FISH", "/predict/x"])
def test_unknown_route_is_404(service: Service, path: str) -> None:
    message = assert_error(service.handle("GET", path, "", {}), 404, "not_found")
    assert repr(path) in message


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/fish", "GET"),
        ("GET", "/predict", "POST"),
        ("HEAD", "/healthz", "GET"),
        ("DELETE", "/models", "GET"),
        ("PUT", "/metrics", "GET"),
        ("POST", "/openapi.json", "GET"),
    ],
)
def test_wrong_method_is_405_with_allow(
    service: Service, method: str, path: str, allow: str
) -> None:
    response = service.handle(method, path, "", {})
    assert_error(response, 405, "method_not_allowed")
    assert dict(response.headers) == {"Allow": allow}


def test_admin_reload_is_404_without_a_token(service: Service) -> None:
    assert_error(service.handle("POST", "/admin/reload", "", {}), 404, "not_found")


def test_describe_status() -> None:
    assert describe_status(413) == "Request Entity Too Large"  # http.HTTPStatus's phrase
    assert describe_status(299) == "Unknown"


# ---- GET /fish ---------------------------------------------------------------------------


def test_fish_answer_shape(service: Service, predictor: Predictor) -> None:
    response = service.handle("GET", "/fish", "length=30&weight=600&k=15", {})
    assert response.status == 200
    assert doc_of(response) == {
        "prediction": predictor.predict(30, 600, 15),
        "length": 30.0,
        "weight": 600.0,
        "k": 15,
        "model": "knn-k15",
    }


@settings(max_examples=60, deadline=None)
@given(
    length=st.floats(min_value=0, max_value=1e9, allow_nan=False),
    weight=st.floats(min_value=0, max_value=1e9, allow_nan=False),
    k=st.sampled_from([1, 5, 15, 25, 49]),
)
def test_fish_agrees_with_predictor(length: float, weight: float, k: int) -> None:
    predictor = Predictor()
    response = Service(predictor).handle(
        "GET", "/fish", f"length={length!r}&weight={weight!r}&k={k}", {}
    )
    doc = doc_of(response)
    assert doc["prediction"] == predictor.predict(length, weight, k)
    assert (doc["length"], doc["weight"]) == (length, weight)


def test_fish_defaults_and_labels(predictor: Predictor) -> None:
    ko = Service(predictor, ServeConfig(labels="ko"))
    doc = doc_of(ko.handle("GET", "/fish", "length=30&weight=600", {}))
    assert doc["prediction"] == "도미" and doc["model"] == predictor.model(None).name
    assert "도미".encode() in ko.handle("GET", "/fish", "length=30&weight=600", {}).body
    doc = doc_of(ko.handle("GET", "/fish", "length=10&weight=8&labels=en", {}))
    assert doc["prediction"] == "smelt"


def test_fish_model_wins_over_k(service: Service) -> None:
    doc = doc_of(service.handle("GET", "/fish", "length=30&weight=600&k=1&model=knn-k49", {}))
    assert (doc["model"], doc["k"]) == ("knn-k49", 49)


@pytest.mark.parametrize("qs", BAD_FISH_QUERIES)
def test_fish_bad_query_is_400(service: Service, qs: str) -> None:
    assert_error(service.handle("GET", "/fish", qs, {}), 400, "invalid_input")


@pytest.mark.parametrize("qs", ["k=2", "k=0", "k=-5", "model=nope", "model="])
def test_fish_unknown_model_is_404(service: Service, qs: str) -> None:
    assert_error(
        service.handle("GET", "/fish", "length=30&weight=600&" + qs, {}), 404, "unknown_model"
    )


def test_fish_async_matches_sync_through_the_micro_batcher() -> None:
    """Without a fast path, one-fish requests go through the micro-batcher: same bytes."""
    service = Service(Predictor(fast_path=False), ServeConfig(batch_max=64))
    assert service.batcher is not None
    queries = [
        f"length={x}&weight={w}&k={k}" for x, w in [(30, 600), (10, 8), (20, 100)] for k in (1, 49)
    ]
    queries += ["length=abc&weight=1", "length=30&weight=600&k=2"]

    async def all_async() -> list[Response]:
        return list(
            await asyncio.gather(*(service.handle_async("GET", "/fish", q, {}) for q in queries))
        )

    assert asyncio.run(all_async()) == [service.handle("GET", "/fish", q, {}) for q in queries]


def test_one_row_jobs_of_a_forest_that_walks_its_trees_are_micro_batched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forest whose one-row path walks tree by tree (prefers_batches) has its one-row
    requests coalesced like a model without a fast path; a KNN's are answered at once."""
    import joblib
    from sklearn.ensemble import RandomForestClassifier

    from fishpredict.models.fastpaths import trees

    monkeypatch.setattr(trees, "VECTOR_MAX_NODES", 0)
    data = load_fish()
    joblib.dump(RandomForestClassifier(10, random_state=0).fit(data.X, data.y),
                tmp_path / "forest.joblib")
    predictor = Predictor(tmp_path / "forest.joblib", trust=True)
    service = Service(predictor, ServeConfig(batch_max=64))
    assert service.batcher is not None
    fast = predictor.model("forest").fast
    assert fast is not None and fast.prefers_batches
    submitted: list[int] = []
    submit = service.batcher.submit

    async def counting(job: Any) -> Any:
        submitted.append(job.rows.n)
        return await submit(job)

    monkeypatch.setattr(service.batcher, "submit", counting)
    bodies = [json.dumps({"instances": [row]}).encode() for row in data.X[:20].tolist()]

    async def all_async() -> list[Response]:
        return list(await asyncio.gather(*(
            service.handle_async("POST", "/predict", "model=forest", JSON, b)
            for b in bodies)))

    answers = asyncio.run(all_async())
    assert submitted == [1] * len(bodies)
    assert answers == [service.handle("POST", "/predict", "model=forest", JSON, b)
                       for b in bodies]


# ---- POST /predict -----------------------------------------------------------------------


def test_predict_one_and_batch(service: Service, predictor: Predictor) -> None:
    rows = load_fish().X[::3].tolist()
    assert doc_of(post(service, {"length": 30, "weight": 600})) == {
        "predictions": ["bream"],
        "k": 5,
        "model": "knn-k5",
    }
    assert doc_of(post(service, {"instances": rows}, "k=1"))[
        "predictions"
    ] == predictor.predict_many(rows, 1)
    assert doc_of(post(service, {"instances": []}))["predictions"] == []


def test_predict_npy_in_and_out(service: Service, predictor: Predictor) -> None:
    rows = np.array([[30.0, 600.0], [10.0, 8.0]], dtype=np.float32)
    body = codec.npy_bytes(rows)
    assert doc_of(post(service, body, headers=NPY))["predictions"] == ["bream", "smelt"]
    response = post(service, body, "labels=ko", {**NPY, "accept": "application/x-npy"})
    assert response.content_type == codec.NPY
    assert np.load(io.BytesIO(response.body), allow_pickle=False).tolist() == ["도미", "빙어"]


def test_predict_refuses_pickled_npy(service: Service) -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([[30, {"x": 1}]], dtype=object), allow_pickle=True)
    assert_error(post(service, buf.getvalue(), headers=NPY), 400, "invalid_input")


@pytest.mark.parametrize(("body", "headers"), BAD_PREDICT_BODIES)
def test_predict_bad_body_is_400(service: Service, body: bytes, headers: dict[str, str]) -> None:
    assert_error(
        post(service, body, headers={k.lower(): v for k, v in headers.items()}),
        400,
        "invalid_input",
    )


def test_predict_limits_are_413(service: Service) -> None:
    assert service.body_limit_response(4096) is None
    assert_error(post(service, b" " * 4097), 413, "payload_too_large")
    assert_error(post(service, {"instances": [[1, 1]] * 101}), 413, "batch_too_large")
    assert post(service, {"instances": [[1, 1]] * 100}).status == 200


@pytest.mark.parametrize(
    "ctype", ["text/plain", "application/xml", "multipart/form-data; boundary=x"]
)
def test_predict_unsupported_media_type_is_415(service: Service, ctype: str) -> None:
    assert_error(
        post(service, b"{}", headers={"content-type": ctype}), 415, "unsupported_media_type"
    )


def test_internal_errors_are_500_without_details(
    predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = Service(predictor)

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(routes.Job, "run", boom)
    response = post(service, {"instances": [[1, 1]]})
    assert_error(response, 500, "internal_error")
    assert b"secret" not in response.body


# ---- operations --------------------------------------------------------------------------


def test_health_ready_models(service: Service, predictor: Predictor) -> None:
    assert doc_of(service.handle("GET", "/healthz", "", {})) == {"status": "ok"}
    assert doc_of(service.handle("GET", "/readyz", "", {})) == {"status": "ready", "models": 5}
    doc = doc_of(service.handle("GET", "/models", "", {}))
    assert [m["name"] for m in doc["models"]] == [m.name for m in predictor.models()]
    assert doc["default"] == "knn-k5" and doc["labels"] == "en"


def test_not_ready_and_draining_are_503() -> None:
    loading = Service(None, ServeConfig(retry_after=3))
    assert loading.handle("GET", "/healthz", "", {}).status == 200
    for method, path in [("GET", "/readyz"), ("GET", "/models"), ("GET", "/fish")]:
        response = loading.handle(method, path, "length=1&weight=1", {})
        assert_error(response, 503, "not_ready")
        assert ("Retry-After", "3") in response.headers
    assert_error(post(loading, {"length": 1, "weight": 1}), 503, "not_ready")
    loading.set_predictor(Predictor())
    assert loading.ready
    loading.draining = True
    assert_error(loading.handle("GET", "/readyz", "", {}), 503, "draining")
    assert (
        loading.handle("GET", "/fish", "length=1&weight=1", {}).status == 200
    )  # in-flight work finishes


def test_metrics_count_requests(service: Service) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    for _ in range(4):
        service.handle("GET", "/healthz", "", {})
    service.handle("GET", "/nowhere", "", {})
    post(service, {"instances": [[1, 1]] * 7}, "k=1")
    response = service.handle("GET", "/metrics", "", {})
    assert response.status == 200 and response.content_type.startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(response.body.decode())
        for s in f.samples
    }
    key = (("method", "GET"), ("route", "/healthz"), ("status", "200"))
    assert samples[("fishpredict_requests_total", key)] == 4
    assert (
        samples[
            (
                "fishpredict_requests_total",
                (("method", "GET"), ("route", "other"), ("status", "404")),
            )
        ]
        == 1
    )
    assert samples[("fishpredict_predictions_total", (("model", "knn-k1"),))] == 7


def _samples(service: Service) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    body = service.handle("GET", "/metrics", "", {}).body.decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(body)
        for s in f.samples
    }


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast", "batched"])
def test_one_fish_requests_count_each_prediction_once(fast_path: bool) -> None:
    """Every entry point counts a one-fish answer's prediction once, and a refused one
    not at all (handle_async counts it with the request, under one lock)."""
    service = Service(Predictor(fast_path=fast_path), ServeConfig())

    async def run() -> list[int]:
        replies = await asyncio.gather(
            *(service.handle_async("GET", "/fish", f"length={20 + i}&weight=300&k=5", {})
              for i in range(6)),
            service.handle_async("GET", "/fish", "length=-1&weight=300&k=5", {}),
        )
        return [r.status for r in replies]

    assert asyncio.run(run()) == [200] * 6 + [400]
    assert service.handle("GET", "/fish", "length=25&weight=300&k=5", {}).status == 200
    assert service.handle("GET", "/fish", "length=25&k=5", {}).status == 400
    samples = _samples(service)
    assert samples[("fishpredict_predictions_total", (("model", "knn-k5"),))] == 7
    ok = (("method", "GET"), ("route", "/fish"), ("status", "200"))
    bad = (("method", "GET"), ("route", "/fish"), ("status", "400"))
    assert samples[("fishpredict_requests_total", ok)] == 7
    assert samples[("fishpredict_requests_total", bad)] == 2
    count = samples[("fishpredict_request_duration_seconds_count", (("route", "/fish"),))]
    assert count == 9


def test_metrics_off_is_404(predictor: Predictor) -> None:
    service = Service(predictor, ServeConfig(metrics=False))
    assert_error(service.handle("GET", "/metrics", "", {}), 404, "not_found")


def test_metrics_method_label_is_bounded(service: Service) -> None:
    for i in range(200):
        service.handle(f"X{i}", "/healthz", "", {})
    text = service.handle("GET", "/metrics", "", {}).body.decode()
    assert text.count('method="X') < 10


def test_openapi_is_the_packaged_file_tailored_to_the_models(service: Service) -> None:
    """The served spec is the packaged one with each templated model path made concrete
    for every loaded model; every other path and every component is the packaged one."""
    served = json.loads(service.handle("GET", "/openapi.json", "", {}).body)
    packaged = json.loads(resources.files("fishpredict").joinpath("openapi.json").read_bytes())
    names = [m.name for m in service.require_predictor().models()]
    plain = {p for p in packaged["paths"] if "{" not in p and p not in ADMIN_ONLY}
    assert plain <= set(served["paths"])
    extra = set(served["paths"]) - plain
    assert extra and all(any(n in p for n in names) for p in extra), extra
    assert set(served["components"]["schemas"]) >= set(packaged["components"]["schemas"])


# ---- admin reload ------------------------------------------------------------------------


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    artifacts.save_models(tmp_path, ks=[1, 5])
    return tmp_path


def test_admin_reload_auth_and_changes(model_dir: Path) -> None:
    service = Service(Predictor(model_dir), ServeConfig(admin_token=TOKEN))
    response = service.handle("POST", "/admin/reload", "", {})
    assert_error(response, 401, "unauthorized")
    assert dict(response.headers)["WWW-Authenticate"].startswith("Bearer")
    assert_error(
        service.handle("POST", "/admin/reload", "", {"authorization": "Bearer nope"}),
        401,
        "unauthorized",
    )
    auth = {"authorization": f"Bearer {TOKEN}"}
    doc = doc_of(service.handle("POST", "/admin/reload", "", auth))
    version = service.require_predictor().version
    assert doc == {
        "reloaded": [],
        "models": ["knn-k1", "knn-k5"],
        "version": version,
        "workers": [{"worker": 0, "pid": os.getpid(), "version": version}],
    }
    fish = load_fish()
    artifacts.save_models(model_dir, ks=[1, 5], data=FishData(fish.X[:40], fish.y[:40]))
    assert doc_of(service.handle("POST", "/admin/reload", "", auth))["reloaded"] == [
        "knn-k1",
        "knn-k5",
    ]


def test_admin_reload_failure_is_409_and_old_models_serve(model_dir: Path) -> None:
    service = Service(Predictor(model_dir), ServeConfig(admin_token=TOKEN))
    before = service.handle("GET", "/fish", "length=30&weight=600", {})
    with (model_dir / "knn-k5.joblib").open("ab") as f:
        f.write(b"tampered")
    auth = {"authorization": f"Bearer {TOKEN}"}
    assert_error(service.handle("POST", "/admin/reload", "", auth), 409, "reload_failed")
    assert service.handle("GET", "/fish", "length=30&weight=600", {}) == before
    assert doc_of(service.handle("GET", "/models", "", {}))["last_reload_error"]


# ---- codec -------------------------------------------------------------------------------


def test_parse_query() -> None:
    assert codec.parse_query("") == {}
    assert codec.parse_query("a=1&b=x%20y&a=2&&c") == {"a": "1", "b": "x y", "c": ""}
    assert codec.parse_query("labels=%EB%8F%84&x=a+b") == {"labels": "도", "x": "a b"}


def test_media_type_and_accept() -> None:
    assert codec.media_type("Application/JSON; charset=utf-8") == "application/json"
    assert codec.media_type(None) == ""
    assert codec.accepts_npy("application/json, application/x-npy")
    assert not codec.accepts_npy(None) and not codec.accepts_npy("*/*")


def test_loads_is_strict() -> None:
    assert codec.loads(b'{"a": [1, 2.5]}') == {"a": [1, 2.5]}
    for bad in (b"", b"  ", b"[" * 40 + b"]" * 40, b"\xff", b"{", b"NaN", b"[-Infinity]"):
        with pytest.raises(InvalidInputError):
            codec.loads(bad)


def test_dumps_is_compact_utf8_and_refuses_nan() -> None:
    assert codec.dumps({"p": "도미", "x": [1.5]}) == '{"p":"도미","x":[1.5]}'.encode()
    with pytest.raises(ValueError):
        codec.dumps(float("nan"))
    assert codec.labels_json(["도미", "smelt"]) == '["도미", "smelt"]'.replace(", ", ",")
    assert codec.labels_json([]) == "[]"


def test_npy_round_trip() -> None:
    rows = np.array([[1, 2], [3, 4]], dtype=np.int16)
    assert codec.array_from_npy(codec.npy_bytes(rows)).tolist() == [[1, 2], [3, 4]]
    with pytest.raises(InvalidInputError):
        codec.array_from_npy(codec.npy_bytes(np.array(["a", "b"])))


def test_predict_refuses_booleans_in_rows(service: Service) -> None:
    assert post(service, {"instances": [[True, 1.5]]}).status == 400


@pytest.mark.parametrize(
    "qs",
    ["length=1_000&weight=600", "length=%D9%A3%D9%A0&weight=600", "length=30&weight=600&k=%D9%A5"],
)
def test_query_numbers_are_ascii_decimals(service: Service, qs: str) -> None:
    assert service.handle("GET", "/fish", qs, {}).status == 400
