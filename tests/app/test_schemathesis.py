"""``schemathesis run URL/openapi.json --checks all`` as a user runs it, against every
backend serving a model of each task: no failure. And the served spec itself: exact
for the loaded models (fishpredict.app.protocols.served_spec)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from fishpredict import Predictor
from fishpredict.app.config import ServeConfig
from fishpredict.app.service import Service
from fishpredict.plugins import list_backends
from fishpredict.testing import start_server
from fishpredict.testing.protocol_models import fuzz_models

BACKENDS = [info.name for info in list_backends() if info.available]
#: examples per operation and phase: each run stays under a minute on a busy 2-core
#: machine (FISHPREDICT_FUZZ_EXAMPLES for a deeper run on demand)
EXAMPLES = int(os.environ.get("FISHPREDICT_FUZZ_EXAMPLES") or 6)


def served_spec(config: ServeConfig | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(Service(Predictor(fuzz_models()), config).openapi())
    return doc


def test_served_spec_is_exact_for_the_loaded_models() -> None:
    doc = served_spec()
    validate(doc)
    paths = doc["paths"]
    assert not [p for p in paths if "{name}" in p]  # one concrete path per model instead
    for name in ("knn-k5", "diabetes-ridge", "habitat-logistic"):
        assert f"/v2/models/{name}/infer" in paths and f"/v1/models/{name}:predict" in paths
    row = doc["components"]["schemas"]["Row"]["oneOf"][0]  # the default model's rows
    assert row["minItems"] == row["maxItems"] == 2
    assert row["prefixItems"][0] == {"type": "number", "minimum": 0.0}
    body = paths["/v2/models/habitat-logistic/infer"]["post"]["requestBody"]
    inputs = body["content"]["application/json"]["schema"]["properties"]["inputs"]
    habitat = inputs["prefixItems"][-1]["properties"]
    assert habitat["datatype"] == {"const": "BYTES"}
    assert set(habitat["data"]["prefixItems"][0]["enum"]) == {"marsh", "river", "lake"}
    ridge = paths["/v2/models/diabetes-ridge/infer"]["post"]["requestBody"]
    outputs = ridge["content"]["application/json"]["schema"]["properties"]["outputs"]
    assert outputs["items"]["properties"]["name"] == {"enum": ["predict"]}
    fish = {p["name"]: p for p in paths["/fish"]["get"]["parameters"] if "name" in p}
    assert fish["model"]["schema"] == {"enum": ["knn-k5"]} and fish["k"]["schema"]["enum"] == [5]
    assert "/admin/reload" not in paths
    assert "/admin/reload" in served_spec(ServeConfig(admin_token="t" * 32))["paths"]


def test_without_models_the_spec_is_the_files() -> None:
    doc = json.loads(Service(None).openapi())
    assert "/v2/models/{name}/infer" in doc["paths"]


#: the schemathesis CLI of this interpreter's environment (a venv's bin/ need not be on PATH)
SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which(
    "schemathesis")


@pytest.mark.skipif(SCHEMATHESIS is None, reason="schemathesis CLI not found")
@pytest.mark.parametrize("backend", BACKENDS)
def test_schemathesis_checks_all_finds_nothing(backend: str) -> None:
    with start_server(backend, "--models", str(fuzz_models())) as server:
        done = subprocess.run(
            [SCHEMATHESIS, "run", f"{server.url}/openapi.json", "--checks", "all",
             "--max-examples", str(EXAMPLES), "--seed", "1", "--generation-database", "none",
             "--no-color"],
            capture_output=True, text=True, timeout=240)
        assert server.stop() == 0, server.stderr_text()
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    assert "No issues found" in out, out[-3000:]
