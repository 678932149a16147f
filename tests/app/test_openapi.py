"""fishpredict/openapi.json: a valid OpenAPI document that describes the Service exactly.

Without sockets: the spec validates, lists exactly the contract's routes and
methods, documents every error code, and every answer the in-process Service
gives to a fixed list of requests is documented for its operation and
validates against the documented schema. Over sockets: a bounded,
deterministic schemathesis run against every available backend.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate

from fishpredict import InvalidInputError, Predictor, UnknownModelError
from fishpredict.app.config import ServeConfig
from fishpredict.app.service import Service, route_names
from fishpredict.plugins import list_backends
from fishpredict.testing import ServerProcess, start_server
from fishpredict.testing.transcript import exchanges

ROOT = Path(__file__).resolve().parents[2]
SPEC: dict[str, Any] = json.loads(
    resources.files("fishpredict").joinpath("openapi.json").read_text("utf-8")
)
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
TOKEN = "t" * 32


@pytest.fixture(scope="module")
def service() -> Service:
    """An in-process Service with an admin token (so /admin/reload is routed)."""
    config = ServeConfig(max_body_bytes=65536, max_batch_rows=1000, admin_token=TOKEN)
    return Service(Predictor(), config)


def test_spec_is_valid_openapi() -> None:
    validate(SPEC)
    assert SPEC["openapi"].startswith("3.1")


def test_spec_version_matches_package() -> None:
    import fishpredict

    assert SPEC["info"]["version"] == fishpredict.__version__


def test_routes_are_the_contracts() -> None:
    assert sorted(SPEC["paths"]) == sorted(route_names())


def test_methods_are_the_contracts(service: Service) -> None:
    """Each path documents exactly the methods the Service allows (its 405 ``Allow``)."""
    for path in route_names():
        allowed = set()
        for method in METHODS:
            response = service.handle(method, path, "", {})
            if response.status == 405:
                allow = dict(response.headers)["Allow"]
                allowed = {m.strip() for m in allow.split(",")}
                break
        documented = {m.upper() for m in SPEC["paths"][path]}
        assert documented == allowed, (path, documented, allowed)


def test_every_error_code_is_documented() -> None:
    """Every code the core can answer with is named in the spec."""
    source = "\n".join(p.read_text() for p in sorted((ROOT / "fishpredict" / "app").rglob("*.py")))
    codes = set(re.findall(r'error\(\s*\d{3},\s*"([a-z_]+)"', source))
    codes |= {InvalidInputError.code, UnknownModelError.code}  # raised under the Service
    text = json.dumps(SPEC)
    assert codes, "found no error codes in fishpredict/app"
    missing = sorted(c for c in codes if c not in text)
    assert not missing, f"error codes not documented in openapi.json: {missing}"


def _schema_validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """A 2020-12 validator for ``schema`` whose ``#/components/...`` refs resolve."""
    root = {**schema, "components": SPEC["components"]}
    return jsonschema.Draft202012Validator(root)


def _operation(path: str, method: str) -> dict[str, Any] | None:
    operation: dict[str, Any] | None = SPEC["paths"].get(path, {}).get(method.lower())
    return operation


def _resolve(obj: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in obj:
        node: Any = SPEC
        for part in obj["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        obj = node
    return obj


def test_every_service_answer_is_documented(service: Service) -> None:
    """Status, media type and body of each answer match the spec for its operation."""
    checked = 0
    extra = [
        ("POST", "/admin/reload", {}, b""),
        ("POST", "/admin/reload", {"authorization": f"Bearer {TOKEN}"}, b""),
        ("GET", "/metrics", {}, b""),
    ]
    requests = [
        (ex.method, ex.target, {k.lower(): v for k, v in ex.headers().items()}, ex.body)
        for ex in exchanges(1000, 65536)
    ] + [(m, p, h, b) for m, p, h, b in extra]
    problems = []
    for method, target, headers, body in requests:
        path, _, query = target.partition("?")
        op = _operation(path, method)
        if op is None:
            continue  # 404/405 for undeclared routes and methods: no operation to check
        response = service.handle(method, path, query, headers, body)
        documented = op["responses"].get(str(response.status))
        if documented is None:
            problems.append(f"{method} {target}: status {response.status} not documented")
            continue
        content = _resolve(documented).get("content", {})
        media = response.content_type.split(";", 1)[0]
        if media not in content:
            problems.append(f"{method} {target}: {media} not documented for {response.status}")
            continue
        if media == "application/json":
            errors = list(
                _schema_validator(content[media]["schema"]).iter_errors(json.loads(response.body))
            )
            problems += [f"{method} {target}: {e.message}" for e in errors]
        checked += 1
    assert checked > 40, checked
    assert not problems, "\n".join(problems)


def test_examples_validate() -> None:
    """The examples in the spec are valid against their own schemas."""
    for name, schema in SPEC["components"]["schemas"].items():
        if "example" in schema:
            _schema_validator({"$ref": f"#/components/schemas/{name}"}).validate(schema["example"])
    body = SPEC["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    for example in body["examples"].values():
        _schema_validator(body["schema"]).validate(example["value"])


def test_predict_request_schema_is_exclusive() -> None:
    """A batch and one row each match exactly one branch; with ``instances``
    present the document is a batch (the Service ignores other fields)."""
    validator = _schema_validator({"$ref": "#/components/schemas/PredictRequest"})
    assert validator.is_valid({"instances": [[30, 600]]})
    assert validator.is_valid({"length": 30, "weight": 600})
    assert validator.is_valid({"instances": [[30, 600]], "length": 30, "weight": 600})
    one_fish = _schema_validator({"$ref": "#/components/schemas/OneFish"})
    assert not one_fish.is_valid({"instances": [[30, 600]], "length": 30, "weight": 600})
    # bounds and widths are each model's (its signature), not the spec's
    assert validator.is_valid({"instances": [{"sepal width": 3.5, "colour": "red"}]})
    assert not validator.is_valid({})
    assert not validator.is_valid({"instances": "many"})
    assert not validator.is_valid({"instances": [[]]})


# ---- schemathesis, over a real socket, per backend ---------------------------------------

BACKENDS = [info.name for info in list_backends() if info.available]


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with start_server(request.param, "--max-body-bytes", "65536") as srv:
        yield srv
        assert srv.stop() == 0, srv.stderr_text()


def test_schemathesis_conformance(server: ServerProcess) -> None:
    """Generated requests (positive and negative) for every operation: every
    answer conforms to the spec (status, content type, headers, body) and none
    is a 5xx. Bounded: 25 examples per operation and mode (or
    ``FISHPREDICT_FUZZ_EXAMPLES``, for a deeper run on demand), derandomized."""
    import requests
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    failures: list[str] = []
    calls = 0
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()  # type: ignore[union-attr]  # the spec is valid
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @settings(
                    max_examples=int(os.environ.get("FISHPREDICT_FUZZ_EXAMPLES") or 25),
                    derandomize=True,
                    database=None,
                    deadline=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=operation.as_strategy(generation_mode=mode))
                def run(case: Any) -> None:
                    nonlocal calls
                    calls += 1
                    case.call_and_validate(base_url=server.url, session=session, checks=checks)

                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        run()
                except Unsatisfiable:
                    continue  # nothing to make invalid (no parameters, no body)
                except (Exception, BaseExceptionGroup) as exc:  # schemathesis: FailureGroup
                    failures.append(f"{operation.label} [{mode.value}]: {exc}"[:3000])
    assert calls > 100, calls
    assert not failures, "\n\n".join(failures)


# ---- docs/http-api.md: its curl examples answer what the page shows -----------------------


def _curl_examples() -> list[tuple[str, str]]:
    """``(command, shown output)`` for each ``$ curl`` in docs/http-api.md followed by
    one complete JSON line (abridged outputs and commands using shell variables are
    skipped)."""
    text = (ROOT / "docs" / "http-api.md").read_text("utf-8").replace("\\\n", " ")
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines[:-2]):
        shown, after = lines[i + 1], lines[i + 2]
        one_line = after.startswith(("$ ", "```"))
        if line.startswith("$ curl") and "$" not in line[1:] and shown.startswith("{") and one_line:
            found.append((line[2:], shown))
    return found


@pytest.mark.parametrize(("command", "shown"), _curl_examples())
def test_http_api_doc_examples(command: str, shown: str, service: Service) -> None:
    import shlex
    from urllib.parse import urlsplit

    args = shlex.split(command)[1:]
    method, headers, body, url = "GET", {}, b"", ""
    while args:
        arg = args.pop(0)
        if arg == "-X":
            method = args.pop(0)
        elif arg == "-H":
            name, _, value = args.pop(0).partition(":")
            headers[name.strip().lower()] = value.strip()
        elif arg == "-d":
            body = args.pop(0).encode()
            method = "POST" if method == "GET" else method
            headers.setdefault("content-type", "application/x-www-form-urlencoded")
        elif not arg.startswith("-"):
            url = arg
    parts = urlsplit(url)
    response = service.handle(method, parts.path, parts.query, headers, body)
    assert response.body.decode() == shown, command


def test_http_api_doc_has_examples() -> None:
    assert len(_curl_examples()) >= 8
