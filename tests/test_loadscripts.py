"""examples/locust and examples/ngrinder: the load scripts ask what the contract
answers. Locust is not installed here, so the locustfile runs against a stub
``locust`` module whose client calls :class:`fishpredict.app.service.Service`
in-process; the Groovy script is checked for the same routes and fish.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from fishpredict.app.service import Service, route_names
from fishpredict.fish.dataset import load_fish
from fishpredict.predictor import Predictor

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "examples" / "locust" / "locustfile.py"
GROOVY = ROOT / "examples" / "ngrinder" / "FishPredict.groovy"


class FakeResponse:
    """What Locust's ``catch_response=True`` context manager yields."""

    def __init__(self, status: int, body: bytes, failures: list[str]) -> None:
        self.status_code = status
        self.text = body.decode()
        self._failures = failures

    def failure(self, message: str) -> None:
        self._failures.append(message)

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class FakeClient:
    """A Locust HTTP client that answers through the contract, in-process."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.failures: list[str] = []
        self.paths: list[str] = []

    def _call(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> FakeResponse:
        parts = urlsplit(url)
        self.paths.append(parts.path)
        r = self.service.handle(method, parts.path, parts.query, headers, body)
        return FakeResponse(r.status, r.body, self.failures)

    def get(self, url: str, name: str = "", catch_response: bool = False) -> FakeResponse:
        return self._call("GET", url, b"", {})

    def post(
        self, url: str, json: Any = None, name: str = "", catch_response: bool = False
    ) -> FakeResponse:
        body = _json_dumps(json)
        return self._call("POST", url, body, {"content-type": "application/json"})


def _json_dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _stub_locust() -> types.ModuleType:
    mod = types.ModuleType("locust")

    class FastHttpUser:
        client: Any = None

    def task(weight: int | Callable[..., Any] = 1) -> Any:
        if callable(weight):
            return weight
        return lambda f: f

    mod.FastHttpUser = FastHttpUser  # type: ignore[attr-defined]
    mod.constant = lambda seconds: seconds  # type: ignore[attr-defined]
    mod.task = task  # type: ignore[attr-defined]
    return mod


@pytest.fixture
def locustfile(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    monkeypatch.setitem(sys.modules, "locust", _stub_locust())
    spec = importlib.util.spec_from_file_location("fishpredict_locustfile", LOCUSTFILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module


def test_locustfile_fish_are_the_seeds_49(locustfile: types.ModuleType) -> None:
    fish = load_fish()
    rows = [tuple(map(float, x)) for x in fish.X]
    assert rows == locustfile.BREAM + locustfile.SMELT
    assert len(locustfile.BREAM) == int(fish.y.sum()) == 35


@pytest.mark.parametrize("labels", ["en", "ko"])
def test_locust_tasks_get_right_answers_from_the_contract(
    locustfile: types.ModuleType, labels: str
) -> None:
    from fishpredict.app.config import ServeConfig

    service = Service(Predictor(labels=labels), ServeConfig(labels=labels))
    user = locustfile.FishUser()
    user.client = FakeClient(service)
    user.on_start()
    for _ in range(300):
        user.fish()
    for _ in range(5):
        user.predict_batch()
    assert user.client.failures == []
    assert set(user.client.paths) == {"/fish", "/predict"} <= set(route_names())


def test_locust_failures_are_reported(locustfile: types.ModuleType) -> None:
    class Wrong(Service):
        def handle(self, *args: Any, **kwargs: Any) -> Any:
            r = super().handle(*args, **kwargs)
            return type(r)(r.status, r.body.replace(b"bream", b"smelt"))

    user = locustfile.FishUser()
    user.client = FakeClient(Wrong(Predictor()))
    user.on_start()
    for _ in range(50):
        user.fish()
    assert user.client.failures, "a wrong species must count as a failure"


def test_ngrinder_script_hits_the_contract_with_the_seeds_fish() -> None:
    text = GROOVY.read_text()
    assert "@RunWith(GrinderRunner)" in text and "org.ngrinder.http.HTTPRequest" in text
    for path in re.findall(r"\$\{baseUrl\}(/[a-z]+)", text):
        assert path in route_names()
    assert "[length: " in text and "weight: " in text and "k: " in text
    pairs = re.findall(r"\[(\d+\.\d+), (\d+\.\d+)\]", text)
    rows = [(float(a), float(b)) for a, b in pairs]
    assert rows == [tuple(map(float, x)) for x in load_fish().X]
