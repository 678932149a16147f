"""Real clients against every backend: Triton's ``tritonclient[http]`` (V2, binary
tensors on and off) and KServe's ``InferenceRESTClient`` (V2 and V1, from its own
virtual environment), on a classifier pipeline, a DataFrame pipeline and a
regressor; every answer is scikit-learn's own."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fishpredict.plugins import list_backends
from fishpredict.testing import ServerProcess, start_server
from fishpredict.testing.protocol_models import CLASSIFIER, FRAME, REGRESSOR, protocol_models, rows

tritonclient_http = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

BACKENDS = [info.name for info in list_backends() if info.available]
PROBE = Path(__file__).with_name("kserve_probe.py")


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    directory = protocol_models()[1]
    with start_server(request.param, "--models", str(directory)) as srv:
        yield srv
        assert srv.stop() == 0, srv.stderr_text()


@pytest.fixture()
def triton(server: ServerProcess) -> Iterator[Any]:
    client = tritonclient_http.InferenceServerClient(f"{server.host}:{server.port}",
                                                     network_timeout=30.0)
    yield client
    client.close()


def estimator(name: str) -> Any:
    return protocol_models()[0][name].estimator


def text(values: Any) -> list[Any]:
    return [v.decode() if isinstance(v, bytes) else v for v in np.asarray(values).ravel()]


# ---- tritonclient --------------------------------------------------------------------


def test_triton_health_and_metadata(triton: Any) -> None:
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready(CLASSIFIER) and not triton.is_model_ready("no-such-model")
    meta = triton.get_model_metadata(CLASSIFIER)
    assert meta["platform"] == "sklearn"
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 13]}]
    version = meta["versions"][0]
    assert triton.is_model_ready(CLASSIFIER, model_version=version)
    assert triton.get_model_metadata(CLASSIFIER, model_version=version)["name"] == CLASSIFIER
    assert "binary_tensor_data" in triton.get_server_metadata()["extensions"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_triton_infer_classifier_pipeline(triton: Any, binary: bool) -> None:
    X = rows(CLASSIFIER)
    inp = tritonclient_http.InferInput("input-0", list(X.shape), "FP64")
    inp.set_data_from_numpy(X, binary_data=binary)
    outs = [tritonclient_http.InferRequestedOutput(n, binary_data=binary)
            for n in ("predict", "predict_proba")]
    result = triton.infer(CLASSIFIER, [inp], outputs=outs, request_id="t-1")
    assert result.get_response()["id"] == "t-1"
    assert result.as_numpy("predict").shape == (len(X), 1)
    assert text(result.as_numpy("predict")) == estimator(CLASSIFIER).predict(X).tolist()
    np.testing.assert_allclose(result.as_numpy("predict_proba").astype(float),
                               estimator(CLASSIFIER).predict_proba(X), rtol=0, atol=1e-9)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_triton_infer_regressor(triton: Any, binary: bool) -> None:
    X = rows(REGRESSOR)
    inp = tritonclient_http.InferInput("input-0", list(X.shape), "FP64")
    inp.set_data_from_numpy(X, binary_data=binary)
    # no outputs named: tritonclient asks for every output in binary (binary_data_output)
    outputs = None if binary else [tritonclient_http.InferRequestedOutput(
        "predict", binary_data=False)]
    result = triton.infer(REGRESSOR, [inp], outputs=outputs)
    got = result.as_numpy("predict").ravel().tolist()
    assert got == estimator(REGRESSOR).predict(X).tolist()  # to the bit


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_triton_infer_dataframe_pipeline(triton: Any, binary: bool) -> None:
    frame = rows(FRAME)
    inputs = []
    for column in frame.columns:
        values = frame[column].to_numpy()
        datatype = "BYTES" if column == "habitat" else "FP64"
        inp = tritonclient_http.InferInput(column, [len(frame)], datatype)
        inp.set_data_from_numpy(values.astype(object if datatype == "BYTES" else np.float64),
                                binary_data=binary)
        inputs.append(inp)
    outs = [tritonclient_http.InferRequestedOutput("predict", binary_data=binary)]
    result = triton.infer(FRAME, inputs, outputs=outs)
    assert text(result.as_numpy("predict")) == estimator(FRAME).predict(frame).tolist()


def test_triton_wrong_shape_is_a_400(triton: Any) -> None:
    X = rows(CLASSIFIER, 3)[:, :12]
    inp = tritonclient_http.InferInput("input-0", list(X.shape), "FP64")
    inp.set_data_from_numpy(X)
    with pytest.raises(InferenceServerException) as info:
        triton.infer(CLASSIFIER, [inp])
    assert info.value.status() == "400"
    assert "expected shape [n, 13]" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        triton.infer(CLASSIFIER, [inp], outputs=[
            tritonclient_http.InferRequestedOutput("transform")])
    assert info.value.status() == "400"


# ---- KServe's InferenceRESTClient (its own environment) ------------------------------


@pytest.fixture(scope="session")
def kserve_python() -> Path:
    from fishpredict.testing.kserve_env import ensure

    return ensure()


def test_kserve_client_v2_and_v1(server: ServerProcess, kserve_python: Path) -> None:
    Xc, Xr, frame = rows(CLASSIFIER, 8), rows(REGRESSOR, 8), rows(FRAME, 8)
    matrix = lambda X: [{"name": "input-0", "datatype": "FP64", "shape": list(X.shape),  # noqa: E731
                         "data": X.tolist()}]
    columns = [{"name": c, "datatype": "BYTES" if c == "habitat" else "FP64",
                "shape": [len(frame)], "data": frame[c].tolist()} for c in frame.columns]
    plan = {
        "url": server.url, "models": [CLASSIFIER, FRAME, REGRESSOR],
        "v2": [
            *({"model": CLASSIFIER, "inputs": matrix(Xc), "binary": b,
               "outputs": ["predict", "predict_proba"]} for b in (False, True)),
            *({"model": REGRESSOR, "inputs": matrix(Xr), "binary": b, "outputs": ["predict"]}
              for b in (False, True)),
            {"model": FRAME, "inputs": columns, "binary": True, "outputs": ["predict"]},
        ],
        "v1": [{"model": CLASSIFIER, "instances": Xc.tolist()},
               {"model": REGRESSOR, "instances": Xr.tolist()},
               {"model": FRAME, "instances": frame.values.tolist()}],
    }
    done = subprocess.run([str(kserve_python), str(PROBE)], input=json.dumps(plan),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout)
    assert got["live"] is True and got["ready"] is True
    assert got["model_ready"] == dict.fromkeys(plan["models"], True)
    assert got["missing_ready"] is False
    assert got["v1_ready"] == dict.fromkeys(plan["models"], True)
    wine, forest, habitat = (estimator(n) for n in (CLASSIFIER, REGRESSOR, FRAME))
    for answer in got["v2"][:2]:
        assert answer["id"] == "kserve-1" and answer["model"] == CLASSIFIER
        assert answer["outputs"]["predict"] == wine.predict(Xc).tolist()
        np.testing.assert_allclose(np.reshape(answer["outputs"]["predict_proba"], (8, 3)),
                                   wine.predict_proba(Xc), atol=1e-9)
    for answer in got["v2"][2:4]:
        assert answer["outputs"]["predict"] == forest.predict(Xr).tolist()
    assert got["v2"][4]["outputs"]["predict"] == habitat.predict(frame).tolist()
    assert got["v1"][0] == {"predictions": wine.predict(Xc).tolist()}
    assert got["v1"][1] == {"predictions": forest.predict(Xr).tolist()}
    assert got["v1"][2] == {"predictions": habitat.predict(frame).tolist()}
