"""fishpredict/app/hot.py: every hot path answers byte for byte as the general way, or declines.

Each request goes through ``Service.handle`` (hot path first) and
``Service.handle_general`` (never the hot path); status, body, content type and
headers must be equal. The hot path must also really be taken for the plain shapes
(else the comparison proves nothing).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fishpredict import Predictor
from fishpredict.app.config import ServeConfig
from fishpredict.app.protocols import native, v2
from fishpredict.app.service import Service
from fishpredict.fish import training

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Service:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    tmp: Path = tmp_path_factory.mktemp("hot")
    training.save_models(tmp / "fish", ks=(1, 5, 25))
    X, y = load_iris(return_X_y=True)
    iris = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    joblib.dump(iris, tmp / "iris.joblib")
    names = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(
        X, [("setosa", "versicolor", "virginica")[int(v)] for v in y])
    joblib.dump(names, tmp / "names.joblib")
    predictor = Predictor([tmp / "fish", tmp / "iris.joblib", tmp / "names.joblib"],
                          trust=True)
    return Service(predictor, ServeConfig(max_body_bytes=2048, labels="ko"))


def same(service: Service, method: str, path: str, query: str = "",
         headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    got = service.handle(method, path, query, headers or {}, body)
    want = service.handle_general(method, path, query, headers or {}, body)
    assert (got.status, got.body, got.content_type, got.headers) == (
        want.status, want.body, want.content_type, want.headers), (path, query, body)
    return got.body


def infer(model: str, body: Any) -> tuple[str, bytes]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return f"/v2/models/{model}/infer", raw


def tensor(data: Any, shape: Any = None, **extra: Any) -> dict[str, Any]:
    t = {"name": "input-0", "datatype": "FP64",
         "shape": shape if shape is not None else [1, len(data)], "data": data}
    t.update(extra)
    return t


# -- the plain shapes take the hot path --


def test_the_plain_shapes_are_answered_hot(service: Service) -> None:
    assert native.fish_hot("", service, "length=30&weight=600&k=5", {}, b"") is not None
    for model, row in (("knn-k5", [30.0, 600]), ("iris", [5.1, 3.5, 1.4, 0.2]),
                       ("names", [5.1, 3.5, 1.4, 0.2])):
        path, body = infer(model, {"id": "7", "inputs": [tensor(row)]})
        assert v2.infer_hot(model, service, "", JSON, body) is not None
        assert service.hot[path].route == "/v2/models/{name}/infer"


def test_hot_answers_are_counted_like_general_ones(service: Service) -> None:
    assert service.metrics is not None
    before = dict(service.metrics.requests)
    service.handle("GET", "/fish", "length=30&weight=600&k=5", {})
    key = ("/fish", "GET", 200)
    assert service.metrics.requests[key] == before.get(key, 0) + 1


# -- the same bytes, whatever comes --

FISH_QUERIES = [
    "length=30&weight=600", "length=30&weight=600&k=1", "length=30&weight=600&k=25",
    "length=30&weight=600&k=7", "length=30&weight=600&k=05", "length=30&weight=600&k=+5",
    "length=30&weight=600&k=5&k=1", "length=30&length=31&weight=600", "weight=600",
    "length=-1&weight=600", "length=nan&weight=600", "length=inf&weight=600",
    "length=1e400&weight=600", "length=1_0&weight=600", "length=%33%30&weight=600",
    "length=30&weight=600&labels=en", "length=30&weight=600&model=iris",
    "length=30&weight=600&model=knn-k5", "length=30&weight=600&", "", "&",
    "length=30.000000000000001&weight=600.5", "length=3e1&weight=6e2&k=5",
    "length=٣&weight=600", "length= 30&weight=600 ", "LENGTH=30&weight=600",
]


@pytest.mark.parametrize("query", FISH_QUERIES)
def test_fish_queries(service: Service, query: str) -> None:
    same(service, "GET", "/fish", query)
    same(service, "POST", "/fish", query)
    same(service, "HEAD", "/fish", query)


@settings(max_examples=300, deadline=None)
@given(length=st.floats(allow_nan=True, allow_infinity=True) | st.integers(-5, 10**6),
       weight=st.floats(allow_nan=True, allow_infinity=True) | st.integers(-5, 10**6),
       k=st.sampled_from(["", "&k=1", "&k=5", "&k=25", "&k=3"]))
def test_fish_any_numbers(service: Service, length: float, weight: float, k: str) -> None:
    same(service, "GET", "/fish", f"length={length!r}&weight={weight!r}{k}")


V2_BODIES: list[Any] = [
    {"inputs": [tensor([30, 600])]},
    {"id": "", "inputs": [tensor([30.5, 600.25])]},
    {"id": "é\"\\\n☃", "inputs": [tensor([30.5, 600.25])]},
    {"id": 5, "inputs": [tensor([30.5, 600.25])]},
    {"id": None, "inputs": [tensor([30.5, 600.25])]},
    {"inputs": [tensor([30.5, 600.25])], "outputs": [{"name": "predict"}]},
    {"inputs": [tensor([30.5, 600.25])], "parameters": {"content_type": "np"}},
    {"inputs": [tensor([[30.5, 600.25]])]},
    {"inputs": [tensor([30.5, 600.25], shape=[2])]},
    {"inputs": [tensor([30.5, 600.25], shape=[1, 2.0])]},
    {"inputs": [tensor([30.5, 600.25], shape=[True, 2])]},
    {"inputs": [tensor([30.5, 600.25], shape=[2, 1])]},
    {"inputs": [tensor([30.5, 600.25, 1.0])]},
    {"inputs": [tensor([30.5])]},
    {"inputs": [tensor([True, 600.25])]},
    {"inputs": [tensor(["30", 600.25])]},
    {"inputs": [tensor([None, 600.25])]},
    {"inputs": [tensor([-1, 600.25])]},
    {"inputs": [tensor([10**400, 600.25])]},
    {"inputs": [tensor([2**70, 600.25])]},
    {"inputs": [tensor([30.5, 600.25], datatype="FP32")]},
    {"inputs": [tensor([30, 600], datatype="INT64")]},
    {"inputs": [tensor([30.5, 600.25], name="")]},
    {"inputs": [tensor([30.5, 600.25], name=3)]},
    {"inputs": [tensor([30.5, 600.25], parameters={})]},
    {"inputs": [tensor([30.5, 600.25]), tensor([30.5, 600.25])]},
    {"inputs": []},
    {"inputs": {}},
    {"inputs": [[30.5, 600.25]]},
    {},
    [],
    b"",
    b"{",
    b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [NaN, 1]}]}',
    b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1e999, 1]}]}',
    b"\xff\xfe{}",
    b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}],'
    b' "inputs": []}',
    b"[" * 40 + b"]" * 40,
    json.dumps({"inputs": [tensor([30.5, 600.25])], "pad": "x" * 4000}).encode(),
]


@pytest.mark.parametrize("model", ["knn-k5", "knn-k25", "iris", "names", "missing"])
@pytest.mark.parametrize("body", V2_BODIES, ids=range(len(V2_BODIES)))
def test_v2_bodies(service: Service, model: str, body: Any) -> None:
    if model in ("iris", "names") and isinstance(body, dict) and body.get("inputs"):
        body = json.loads(json.dumps(body).replace("[30.5, 600.25]", "[5.1, 3.5, 1.4, 0.2]"))
    path, raw = infer(model, body)
    same(service, "POST", path, "", JSON, raw)
    same(service, "GET", path, "", JSON, raw)
    same(service, "POST", path, "", {**JSON, "inference-header-content-length": "10"}, raw)


@settings(max_examples=300, deadline=None)
@example(row=[1e308, 3.5, 1.4, 0.2], request_id=None, model="iris")  # a scaler overflows
@example(row=[-1.7e308, 1e308, 1e308, 1e308], request_id="x", model="names")
@given(row=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64)
                    | st.integers(-10, 10**20), min_size=4, max_size=4),
       request_id=st.none() | st.text(max_size=8),
       model=st.sampled_from(["iris", "names"]))
def test_v2_any_iris_rows(service: Service, row: list[float], request_id: str | None,
                          model: str) -> None:
    doc: dict[str, Any] = {"inputs": [tensor(row)]}
    if request_id is not None:
        doc["id"] = request_id
    path, raw = infer(model, doc)
    same(service, "POST", path, "", JSON, raw)


@settings(max_examples=300, deadline=None)
@given(length=st.floats(-10, 2000), weight=st.floats(-10, 3000),
       model=st.sampled_from(["knn-k1", "knn-k5", "knn-k25"]))
def test_v2_any_fish_rows(service: Service, length: float, weight: float, model: str) -> None:
    path, raw = infer(model, {"id": "1", "inputs": [tensor([length, weight])]})
    same(service, "POST", path, "", JSON, raw)


def test_draining_and_not_ready_go_the_general_way(service: Service) -> None:
    path, raw = infer("knn-k5", {"inputs": [tensor([30.0, 600.0])]})
    service.draining = True
    try:
        assert same(service, "POST", path, "", JSON, raw).startswith(b'{"error"')
    finally:
        service.draining = False
    idle = Service(None)
    assert native.fish_hot("", idle, "length=30&weight=600", {}, b"") is None
    assert idle.handle("GET", "/fish", "length=30&weight=600", {}).status == 503


def test_a_reload_rebuilds_the_hot_paths(service: Service) -> None:
    assert service.predictor is not None
    names = {m.name for m in service.predictor.models()}
    assert {p for p in service.hot if p.startswith("/v2/")} == {
        f"/v2/models/{n}/infer" for n in names}


def test_a_micro_batched_model_goes_hot_to_the_batcher_and_answers_alike(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """A model without a fast path (an RBF SVC): the hot path decodes the row and hands it
    to the micro-batcher; the answer is the general way's, byte for byte."""
    import asyncio

    from sklearn.datasets import load_iris
    from sklearn.svm import SVC

    from fishpredict.app.messages import Deferred

    tmp: Path = tmp_path_factory.mktemp("batched")
    X, y = load_iris(return_X_y=True)
    joblib.dump(SVC().fit(X, y), tmp / "svc.joblib")
    service = Service(Predictor([tmp / "svc.joblib"], trust=True), ServeConfig(batch_max=64))
    assert service.predictor is not None and service.predictor.model("svc").fast is None
    bodies = [json.dumps({"id": str(i), "inputs": [tensor(list(map(float, row)))]}).encode()
              for i, row in enumerate(X[::7])]
    bodies += [json.dumps({"inputs": [tensor([5, 3, 1, 0.5])]}).encode(),
               json.dumps({"inputs": [tensor([-1.0, 3.0, 1.0, 0.5])]}).encode()]
    path = "/v2/models/svc/infer"
    answered = v2.infer_hot("svc", service, "", JSON, bodies[0])
    assert answered is not None and isinstance(answered[0], Deferred)

    async def answers(hot: bool) -> list[tuple[int, bytes]]:
        saved = service.hot
        if not hot:
            service.hot = {}
        try:  # concurrently, so the micro-batcher coalesces them
            got = await asyncio.gather(*(service.handle_async("POST", path, "", JSON, b)
                                         for b in bodies))
        finally:
            service.hot = saved
        return [(r.status, r.body) for r in got]

    assert asyncio.run(answers(True)) == asyncio.run(answers(False))
    assert service.batcher is not None and service.batcher.calls > 0
