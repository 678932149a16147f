"""tritonclient's repository calls against every backend (issue 20, item 8):
``get_model_repository_index``, ``load_model``, ``unload_model`` and ``get_model_config``,
with two workers (a load or unload reaches both) and an admin token."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from fishpredict.plugins import list_backends
from fishpredict.testing import ServerProcess, start_server
from fishpredict.testing.protocol_models import CLASSIFIER, FRAME, REGRESSOR, protocol_models

tritonclient_http = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

BACKENDS = [info.name for info in list_backends() if info.available]
TOKEN_VAR = "FISHPREDICT_TEST_ADMIN_TOKEN"
TOKEN = "repo-token-" + "y" * 24
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    directory = protocol_models()[1]
    env = dict(os.environ, **{TOKEN_VAR: TOKEN})
    with start_server(request.param, "--models", str(directory), "--workers", "2",
                      "--admin-token-env", TOKEN_VAR, env=env) as srv:
        yield srv
        assert srv.stop() == 0, srv.stderr_text()


@pytest.fixture()
def triton(server: ServerProcess) -> Iterator[Any]:
    client = tritonclient_http.InferenceServerClient(f"{server.host}:{server.port}",
                                                     network_timeout=30.0)
    yield client
    client.close()


def states(triton: Any) -> dict[str, str]:
    return {m["name"]: m["state"] for m in triton.get_model_repository_index(headers=AUTH)}


def ready_everywhere(server: ServerProcess, name: str) -> set[bool]:
    """Whether ``name`` is ready, as seen over several fresh connections (both workers)."""
    seen = set()
    for _ in range(6):
        c = tritonclient_http.InferenceServerClient(f"{server.host}:{server.port}")
        try:
            seen.add(bool(c.is_model_ready(name)))
        finally:
            c.close()
    return seen


def test_index_unload_load(server: ServerProcess, triton: Any) -> None:
    assert set(states(triton).values()) == {"READY"}
    assert {CLASSIFIER, FRAME, REGRESSOR} <= set(states(triton))
    triton.unload_model(REGRESSOR, headers=AUTH)
    assert states(triton)[REGRESSOR] == "UNAVAILABLE"
    assert ready_everywhere(server, REGRESSOR) == {False}
    ready = triton.get_model_repository_index(headers=AUTH, query_params=None)
    assert any(m["name"] == REGRESSOR for m in ready)
    triton.load_model(REGRESSOR, headers=AUTH)
    assert states(triton)[REGRESSOR] == "READY"
    assert ready_everywhere(server, REGRESSOR) == {True}


def test_server_metadata_names_the_repository_extension(triton: Any) -> None:
    extensions = triton.get_server_metadata()["extensions"]  # a token is set here
    assert {"model_repository", "model_configuration", "binary_tensor_data"} <= set(extensions)


def test_repository_needs_the_admin_token(triton: Any) -> None:
    with pytest.raises(InferenceServerException, match="admin token"):
        triton.get_model_repository_index()
    with pytest.raises(InferenceServerException, match="admin token"):
        triton.unload_model(CLASSIFIER, headers={"Authorization": "Bearer wrong"})


def test_load_of_an_unknown_model_fails_and_changes_nothing(triton: Any) -> None:
    with pytest.raises(InferenceServerException, match="no model named"):
        triton.load_model("no-such-model", headers=AUTH)
    assert set(states(triton).values()) == {"READY"}


def test_model_config(triton: Any) -> None:
    config = triton.get_model_config(CLASSIFIER)
    assert config["name"] == CLASSIFIER and config["platform"] == "sklearn"
    assert config["input"] == [{"name": "input-0", "data_type": "TYPE_FP64", "dims": [13]}]
    assert [o["name"] for o in config["output"]] == ["predict", "predict_proba"]
    frame = triton.get_model_config(FRAME)
    assert all(i["dims"] == [1] for i in frame["input"])
    with pytest.raises(InferenceServerException):
        triton.get_model_config("no-such-model")
