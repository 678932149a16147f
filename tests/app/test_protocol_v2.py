"""The V2 protocol in process (Service.handle): health, metadata, JSON and binary tensors,
outputs, errors, limits, micro-batching and metrics; every answer checked against
scikit-learn's own for the same rows."""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

import numpy as np
import pytest

from fishpredict import Predictor
from fishpredict.app.config import ServeConfig
from fishpredict.app.messages import Response
from fishpredict.app.protocols import v2_binary
from fishpredict.app.protocols.v2 import version_of
from fishpredict.app.service import Service
from fishpredict.testing.protocol_models import CLASSIFIER, FRAME, REGRESSOR, protocol_models, rows


@pytest.fixture(scope="module")
def service() -> Service:
    directory = protocol_models()[1]
    return Service(Predictor(directory), ServeConfig(batch_max=1, max_batch_rows=500,
                                                     max_body_bytes=1 << 20))


def estimator(name: str) -> Any:
    return protocol_models()[0][name].estimator


def post(service: Service, path: str, doc: Any, raw: bytes = b"",
         headers: dict[str, str] | None = None) -> Response:
    head = json.dumps(doc).encode()
    h = dict(headers or {})
    if raw:
        h[v2_binary.HEADER] = str(len(head))
    return service.handle("POST", path, "", h, head + raw)


def outputs(response: Response) -> dict[str, np.ndarray]:
    """The output tensors of an infer answer (JSON or binary) as arrays."""
    assert response.status == 200, response.body
    headers = dict(response.headers)
    n = int(headers.get("Inference-Header-Content-Length", len(response.body)))
    doc = json.loads(response.body[:n])
    rest, out = response.body[n:], {}
    for o in doc["outputs"]:
        size = (o.get("parameters") or {}).get("binary_data_size")
        if size is None:
            data = o["data"]
            arr = np.array(data, dtype=object if o["datatype"] == "BYTES" else None)
        else:
            blob, rest = rest[:size], rest[size:]
            arr = decode_blob(o["datatype"], blob)
        out[o["name"]] = arr.reshape(o["shape"])
    assert rest == b""
    return out


def decode_blob(datatype: str, blob: bytes) -> np.ndarray:
    if datatype != "BYTES":
        return np.frombuffer(blob, dtype={"FP64": "<f8", "INT64": "<i8", "BOOL": "?"}[datatype])
    items, pos = [], 0
    while pos < len(blob):
        (n,) = struct.unpack_from("<I", blob, pos)
        items.append(blob[pos + 4:pos + 4 + n].decode())
        pos += 4 + n
    return np.array(items, dtype=object)


def matrix_input(X: np.ndarray, datatype: str = "FP64", flat: bool = False) -> dict[str, Any]:
    if "INT" in datatype:
        X = X.astype(np.int64)
    data = X.reshape(-1).tolist() if flat else X.tolist()
    return {"name": "input-0", "datatype": datatype, "shape": list(X.shape), "data": data}


def infer_path(name: str) -> str:
    return f"/v2/models/{name}/infer"


# ---- server, health, metadata --------------------------------------------------------


def test_server_metadata_and_health(service: Service) -> None:
    doc = json.loads(service.handle("GET", "/v2", "", {}).body)
    assert doc["name"] == "fishpredict"
    assert doc["extensions"] == ["binary_tensor_data", "model_configuration"]  # no token
    live = service.handle("GET", "/v2/health/live", "", {})
    assert (live.status, json.loads(live.body)) == (200, {"live": True})
    ready = service.handle("GET", "/v2/health/ready", "", {})
    assert (ready.status, json.loads(ready.body)) == (200, {"ready": True})


def test_not_ready_and_draining_answer_503() -> None:
    loading = Service(None)
    r = loading.handle("GET", "/v2/health/ready", "", {})
    assert (r.status, json.loads(r.body)) == (503, {"ready": False})
    r = loading.handle("GET", "/v2/models/x", "", {})
    assert r.status == 503 and isinstance(json.loads(r.body)["error"], str)
    draining = Service(Predictor())
    draining.draining = True
    assert draining.handle("GET", "/v2/health/ready", "", {}).status == 503
    assert draining.handle("GET", "/v2/health/live", "", {}).status == 200
    name = draining.require_predictor().models()[0].name
    r = post(draining, infer_path(name), {"inputs": [matrix_input(np.ones((1, 2)))]})
    assert r.status == 503 and "error" in json.loads(r.body)


def test_model_metadata_from_signature(service: Service) -> None:
    meta = json.loads(service.handle("GET", f"/v2/models/{CLASSIFIER}", "", {}).body)
    assert meta["platform"] == "sklearn" and meta["name"] == CLASSIFIER
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 13]}]
    assert meta["outputs"] == [{"name": "predict", "datatype": "BYTES", "shape": [-1, 1]},
                               {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]}]
    frame = json.loads(service.handle("GET", f"/v2/models/{FRAME}", "", {}).body)
    kinds = {i["name"]: (i["datatype"], i["shape"]) for i in frame["inputs"]}
    assert kinds["habitat"] == ("BYTES", [-1]) and kinds["petal width (cm)"] == ("FP64", [-1])
    assert frame["parameters"]["content_type"] == "pd"
    reg = json.loads(service.handle("GET", f"/v2/models/{REGRESSOR}", "", {}).body)
    assert [o["name"] for o in reg["outputs"]] == ["predict"]
    assert reg["outputs"][0]["datatype"] == "FP64"


def test_versions_and_unknown_models(service: Service) -> None:
    version = version_of(service.require_predictor().model(CLASSIFIER))
    base = f"/v2/models/{CLASSIFIER}/versions/{version}"
    assert json.loads(service.handle("GET", base, "", {}).body)["versions"] == [version]
    assert service.handle("GET", base + "/ready", "", {}).status == 200
    r = post(service, base + "/infer", {"inputs": [matrix_input(rows(CLASSIFIER, 2))]})
    assert r.status == 200
    for path in (f"/v2/models/{CLASSIFIER}/versions/nope", "/v2/models/nope",
                 "/v2/models/nope/ready"):
        r = service.handle("GET", path, "", {})
        assert r.status == 404 and isinstance(json.loads(r.body)["error"], str), path
    r = service.handle("GET", f"/v2/models/{CLASSIFIER}/ready", "", {})
    assert json.loads(r.body) == {"name": CLASSIFIER, "ready": True}


# ---- infer, JSON ---------------------------------------------------------------------


@pytest.mark.parametrize("flat", [False, True])
def test_classifier_answers_scikit_learns(service: Service, flat: bool) -> None:
    X = rows(CLASSIFIER)
    doc = {"id": "req-7", "inputs": [matrix_input(X, flat=flat)],
           "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}
    r = post(service, infer_path(CLASSIFIER), doc)
    head = json.loads(r.body)
    assert head["id"] == "req-7" and head["model_name"] == CLASSIFIER
    out = outputs(r)
    assert out["predict"].shape == (len(X), 1)
    assert out["predict"].ravel().tolist() == estimator(CLASSIFIER).predict(X).tolist()
    np.testing.assert_allclose(out["predict_proba"].astype(float),
                               estimator(CLASSIFIER).predict_proba(X), rtol=0, atol=1e-9)


def test_regressor_values_are_scikit_learns_to_the_bit(service: Service) -> None:
    X = rows(REGRESSOR)
    out = outputs(post(service, infer_path(REGRESSOR), {"inputs": [matrix_input(X)]}))
    assert list(out) == ["predict"]
    assert out["predict"].ravel().tolist() == estimator(REGRESSOR).predict(X).tolist()


def test_one_tensor_per_feature_makes_dataframe_columns(service: Service) -> None:
    frame = rows(FRAME)
    inputs = [{"name": c, "datatype": "BYTES" if c == "habitat" else "FP64",
               "shape": [len(frame)], "data": frame[c].tolist()} for c in reversed(frame.columns)]
    for params in ({}, {"parameters": {"content_type": "pd"}}):
        out = outputs(post(service, infer_path(FRAME), {"inputs": inputs, **params}))
        assert out["predict"].ravel().tolist() == estimator(FRAME).predict(frame).tolist()
    # a numeric model takes per-feature tensors too ([n, 1] columns, any order)
    X = rows(REGRESSOR, 5)
    names = [f"x{i}" for i in range(X.shape[1])]
    cols = [{"name": n, "datatype": "FP32", "shape": [5, 1], "data": X[:, i].tolist()}
            for i, n in enumerate(names)][::-1]
    out = outputs(post(service, infer_path(REGRESSOR), {"inputs": cols}))
    expected = estimator(REGRESSOR).predict(X.astype(np.float32).astype(np.float64))
    assert out["predict"].ravel().tolist() == expected.tolist()


@pytest.mark.parametrize("datatype", ["INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16",
                                      "UINT32", "UINT64", "FP16", "FP32", "FP64"])
def test_every_numeric_datatype(service: Service, datatype: str) -> None:
    X = np.round(rows(CLASSIFIER, 4)) % 100  # fits every integer type
    out = outputs(post(service, infer_path(CLASSIFIER), {"inputs": [matrix_input(X, datatype)]}))
    assert out["predict"].ravel().tolist() == estimator(CLASSIFIER).predict(X).tolist()


def test_bool_counts_as_zero_and_one(service: Service) -> None:
    X = np.array([[True, False] * 6 + [True]])
    out = outputs(post(service, infer_path(CLASSIFIER), {"inputs": [matrix_input(X, "BOOL")]}))
    assert out["predict"].ravel().tolist() == estimator(CLASSIFIER).predict(
        X.astype(float)).tolist()


# ---- infer, binary -------------------------------------------------------------------


def test_binary_inputs_and_outputs(service: Service) -> None:
    X = rows(CLASSIFIER)
    raw = X.astype("<f4").tobytes()
    doc = {"inputs": [{"name": "x", "datatype": "FP32", "shape": list(X.shape),
                       "parameters": {"binary_data_size": len(raw)}}],
           "outputs": [{"name": "predict", "parameters": {"binary_data": True}},
                       {"name": "predict_proba"}]}
    r = post(service, infer_path(CLASSIFIER), doc, raw)
    assert r.content_type == v2_binary.OCTET_STREAM
    out = outputs(r)
    X32 = X.astype(np.float32).astype(np.float64)
    assert out["predict"].ravel().tolist() == estimator(CLASSIFIER).predict(X32).tolist()
    head = json.loads(r.body[:int(dict(r.headers)["Inference-Header-Content-Length"])])
    assert "data" in head["outputs"][1] and "data" not in head["outputs"][0]
    # binary_data_output for every output, unless an output says otherwise
    doc["parameters"] = {"binary_data_output": True}
    doc["outputs"] = [{"name": "predict_proba"}, {"name": "predict",
                                                  "parameters": {"binary_data": False}}]
    r = post(service, infer_path(CLASSIFIER), doc, raw)
    out = outputs(r)
    np.testing.assert_allclose(out["predict_proba"], estimator(CLASSIFIER).predict_proba(X32),
                               atol=1e-9)


def test_binary_bytes_columns(service: Service) -> None:
    frame = rows(FRAME, 6)
    inputs, blobs = [], []
    for c in frame.columns:
        if c == "habitat":
            blob = b"".join(struct.pack("<I", len(s)) + s.encode() for s in frame[c])
            inputs.append({"name": c, "datatype": "BYTES", "shape": [6, 1],
                           "parameters": {"binary_data_size": len(blob)}})
        else:
            blob = frame[c].to_numpy(dtype="<f8").tobytes()
            inputs.append({"name": c, "datatype": "FP64", "shape": [6],
                           "parameters": {"binary_data_size": len(blob)}})
        blobs.append(blob)
    doc = {"inputs": inputs, "parameters": {"binary_data_output": True}}
    out = outputs(post(service, infer_path(FRAME), doc, b"".join(blobs)))
    assert out["predict"].ravel().tolist() == estimator(FRAME).predict(frame).tolist()


# ---- errors ---------------------------------------------------------------------------


def _error(r: Response, status: int = 400) -> str:
    assert r.status == status, r.body
    message = json.loads(r.body)["error"]
    assert isinstance(message, str)
    return message


BAD_DOCS = [
    ({"inputs": [{"name": "x", "datatype": "FP64", "shape": [2, 12], "data": [0.0] * 24}]},
     "expected shape [n, 13]"),
    ({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 13], "data": [0.0] * 12}]},
     "holds 13 elements, data has 12"),
    ({"inputs": [{"name": "x", "datatype": "FP8", "shape": [1, 13], "data": [0.0] * 13}]},
     "datatype must be one of"),
    ({"inputs": [{"name": "x", "datatype": "BOOL", "shape": [1, 13], "data": [1] * 13}]},
     "BOOL data must be true/false"),
    ({"inputs": [{"name": "x", "datatype": "INT8", "shape": [1, 13], "data": [300] * 13}]},
     "out of the INT8 range"),
    ({"inputs": [{"name": "x", "datatype": "INT64", "shape": [1, 13], "data": [1.5] * 13}]},
     "INT64 data must be integers"),
    ({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 13],
                  "data": [True] + [1.0] * 12}]}, "must be numbers"),
    ({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 13],
                  "data": [None] + [1.0] * 12}]}, "missing value"),
    ({"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1, 13], "data": ["a"] * 13}]},
     "expected a number"),
    ({"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 13], "data": []}]},
     "shape must be a list of non-negative integers"),
    ({"inputs": []}, "inputs is empty"),
    ({"instances": [[1, 2]]}, '"inputs"'),
    ({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 13], "data": [0.0] * 13}],
      "outputs": [{"name": "transform"}]}, "has no output 'transform'"),
    ({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 13], "data": [0.0] * 13}],
      "id": 5}, "id must be a string"),
    ({"inputs": [{"name": "alcohol", "datatype": "FP64", "shape": [1], "data": [1.0]},
                 {"name": "malic", "datatype": "FP64", "shape": [1], "data": [1.0]}]},
     "not a feature of the model"),
]


@pytest.mark.parametrize(("doc", "needle"), BAD_DOCS)
def test_bad_requests_answer_400(service: Service, doc: Any, needle: str) -> None:
    assert needle in _error(post(service, infer_path(CLASSIFIER), doc))


def test_bad_binary_requests_answer_400(service: Service) -> None:
    X = rows(CLASSIFIER, 2)
    raw = X.astype("<f8").tobytes()
    inp = {"name": "x", "datatype": "FP64", "shape": [2, 13],
           "parameters": {"binary_data_size": len(raw)}}
    path = infer_path(CLASSIFIER)
    assert "no output" not in _error(post(service, path, {"inputs": [inp]}, raw[:-8]))
    assert "follow the JSON header" in _error(post(service, path, {"inputs": [inp]}, raw + b"x"))
    head = json.dumps({"inputs": [inp]}).encode()
    for length in ("0", "abc", str(len(head) + len(raw) + 1)):
        r = service.handle("POST", path, "", {v2_binary.HEADER: length}, head + raw)
        assert "Inference-Header-Content-Length" in _error(r), length
    r = service.handle("POST", path, "", {}, head + raw)  # binary sizes without the header
    _error(r)


def test_regressor_has_no_probabilities(service: Service) -> None:
    doc = {"inputs": [matrix_input(rows(REGRESSOR, 2))], "outputs": [{"name": "predict_proba"}]}
    assert "predict_proba" in _error(post(service, infer_path(REGRESSOR), doc))


def test_limits_apply() -> None:
    svc = Service(Predictor(protocol_models()[1]), ServeConfig(max_batch_rows=3,
                                                               max_body_bytes=4000))
    r = post(svc, infer_path(CLASSIFIER), {"inputs": [matrix_input(rows(CLASSIFIER, 4))]})
    assert "over the limit of 3 rows" in _error(r, 413)
    big = {"inputs": [matrix_input(np.zeros((1, 13)))], "id": "x" * 5000}
    assert "over the limit" in _error(post(svc, infer_path(CLASSIFIER), big), 413)
    r = svc.handle("DELETE", "/v2/health/live", "", {})
    assert r.status == 405 and "error" in json.loads(r.body)


# ---- micro-batching and metrics ------------------------------------------------------


def test_one_row_requests_are_micro_batched_and_counted_by_route() -> None:
    """The DataFrame pipeline has no fast path: its one-row jobs share predict calls."""
    svc = Service(Predictor(protocol_models()[1]), ServeConfig(batch_max=64, batch_wait_us=2000))
    frame = rows(FRAME, 16)

    def body(i: int) -> bytes:
        inputs = [{"name": c, "datatype": "BYTES" if c == "habitat" else "FP64", "shape": [1],
                   "data": [frame[c][i]]} for c in frame.columns]
        return json.dumps({"inputs": inputs}).encode()

    async def go() -> list[Response]:
        return await asyncio.gather(*(svc.handle_async("POST", infer_path(FRAME), "", {},
                                                       body(i)) for i in range(len(frame))))

    answers = asyncio.run(go())
    got = [outputs(r)["predict"][0, 0] for r in answers]
    assert got == estimator(FRAME).predict(frame).tolist()
    assert svc.batcher is not None and svc.batcher.rows == 16 and svc.batcher.calls < 16
    assert svc.metrics is not None
    text = svc.metrics.render().decode()
    assert 'route="/v2/models/{name}/infer"' in text
    assert 'fishpredict_predictions_total{model="habitat-frame"} 16.0' in text


def test_hot_reload_serves_the_new_model_under_a_new_version(tmp_path: Any) -> None:
    import shutil

    import joblib
    from sklearn.linear_model import Ridge

    from fishpredict.models import manifest

    directory = tmp_path / "models"
    shutil.copytree(protocol_models()[1], directory)
    svc = Service(Predictor(directory))
    old = json.loads(svc.handle("GET", f"/v2/models/{REGRESSOR}", "", {}).body)["versions"][0]
    assert f"/v2/models/{REGRESSOR}/versions/{old}/infer" in json.loads(svc.openapi())["paths"]
    X = rows(REGRESSOR, 4)
    ridge = Ridge().fit(protocol_models()[0][REGRESSOR].X, np.arange(442.0))
    joblib.dump(ridge, tmp_path / "new.joblib")
    manifest.add_model(tmp_path / "new.joblib", directory, name=REGRESSOR, trust=True,
                       replace=True)
    assert svc.reload().status == 200
    new = json.loads(svc.handle("GET", f"/v2/models/{REGRESSOR}", "", {}).body)["versions"][0]
    assert new != old
    out = outputs(post(svc, infer_path(REGRESSOR), {"inputs": [matrix_input(X)]}))
    assert out["predict"].ravel().tolist() == ridge.predict(X).tolist()
    r = post(svc, f"/v2/models/{REGRESSOR}/versions/{old}/infer", {"inputs": [matrix_input(X)]})
    assert r.status == 404
    paths = json.loads(svc.openapi())["paths"]
    assert f"/v2/models/{REGRESSOR}/versions/{new}/infer" in paths
