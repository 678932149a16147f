"""A reload reaches every worker (issue 20, item 2): ``--workers 2`` and ``--workers 4``.

Keep-alive connections are opened before the reload (the kernel spreads them over
the workers). ``POST /admin/reload`` on one worker answers 200 only after every
worker swapped: right after it, every connection, old or new, answers with the
new model, and the 200 lists each worker with the same version. A corrupt file is
refused by all (409) and every worker keeps the model it had; SIGHUP to the
supervisor reloads them all too.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fishpredict.fish import training as artifacts
from fishpredict.fish.dataset import FishData, load_fish
from fishpredict.predictor import Predictor
from fishpredict.testing import Client, ServerProcess, start_server

TOKEN_VAR = "FISHPREDICT_TEST_ADMIN_TOKEN"
TOKEN = "workers-token-" + "x" * 24
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROWS = np.column_stack([np.linspace(8, 45, 40), np.linspace(5, 1100, 40)]).round(1)
#: keep-alive connections opened before a reload, and fresh ones after it
KEPT, FRESH = 8, 12


def save(directory: Path, swapped: bool) -> None:
    fish = load_fish()
    data = FishData(X=fish.X, y=1 - fish.y) if swapped else None
    artifacts.save_models(directory, [5], data=data)


def predictions(c: Client) -> list[str]:
    reply = c.post_json("/predict?k=5", {"instances": ROWS.tolist()})
    assert reply.status == 200, reply
    got: list[str] = reply.json()["predictions"]
    return got


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, list[str]]:
    out = {}
    for swapped in (False, True):
        d = tmp_path_factory.mktemp(f"answers-{swapped}")
        save(d, swapped)
        out[swapped] = Predictor(d).predict_many(ROWS, 5)
    assert all(a != b for a, b in zip(out[False], out[True], strict=True))
    return out


@pytest.fixture(scope="module", params=[("socket", 2), ("socket", 4)],
                ids=["socket-2", "socket-4"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[ServerProcess, Path, int]]:
    backend, workers = request.param
    directory = tmp_path_factory.mktemp(f"{backend}-{workers}") / "models"
    save(directory, False)
    env = dict(os.environ, **{TOKEN_VAR: TOKEN})
    with start_server(backend, "--models", str(directory), "--workers", str(workers),
                      "--admin-token-env", TOKEN_VAR, env=env) as server:
        yield server, directory, workers
        assert server.stop() == 0, server.stderr_text()


def check_everywhere(server: ServerProcess, kept: list[Client], want: list[str]) -> None:
    for c in kept:
        assert predictions(c) == want
    for _ in range(FRESH):
        with server.client() as c:
            assert predictions(c) == want


def reload(server: ServerProcess) -> tuple[int, dict[str, object]]:
    with server.client() as c:
        reply = c.request("POST", "/admin/reload", b"", AUTH)
    return reply.status, reply.json()


def test_every_worker_swaps_before_the_200(
        served: tuple[ServerProcess, Path, int], answers: dict[bool, list[str]]) -> None:
    server, directory, workers = served
    kept = [server.client(timeout=30) for _ in range(KEPT)]
    try:
        for swapped in (True, False):  # there and back: both directions swap everywhere
            check_everywhere(server, kept, answers[not swapped])
            save(directory, swapped)
            status, doc = reload(server)
            assert status == 200, doc
            listed = doc["workers"]
            assert isinstance(listed, list) and len(listed) == workers, doc
            assert sorted(w["worker"] for w in listed) == list(range(workers))
            assert len({w["pid"] for w in listed}) == workers
            assert {w["version"] for w in listed} == {doc["version"]}, doc
            check_everywhere(server, kept, answers[swapped])
    finally:
        for c in kept:
            c.close()


def test_a_failed_load_leaves_every_worker_on_the_old_model(
        served: tuple[ServerProcess, Path, int], answers: dict[bool, list[str]]) -> None:
    server, directory, _ = served
    kept = [server.client(timeout=30) for _ in range(KEPT)]
    try:
        now = predictions(kept[0])
        model_file = next(directory.glob("*.joblib"))
        good = model_file.read_bytes()
        model_file.write_bytes(b"not a model")
        try:
            status, doc = reload(server)
            assert status == 409, doc
            assert "sha256" in json.dumps(doc) and "--replace" in json.dumps(doc)
            check_everywhere(server, kept, now)
            for _ in range(FRESH // 2):  # every worker says why
                with server.client() as c:
                    assert c.get("/models").json()["last_reload_error"]
        finally:
            model_file.write_bytes(good)
        assert reload(server)[0] == 200
        check_everywhere(server, kept, now)
    finally:
        for c in kept:
            c.close()


def test_sighup_to_the_supervisor_reloads_every_worker(
        served: tuple[ServerProcess, Path, int], answers: dict[bool, list[str]]) -> None:
    server, directory, _ = served
    with server.client() as c:
        before = predictions(c)
    flipped = answers[True] if before == answers[False] else answers[False]
    save(directory, flipped == answers[True])
    os.kill(server.pid, signal.SIGHUP)
    deadline = time.monotonic() + 30

    def all_flipped() -> bool:
        for _ in range(FRESH):
            with server.client() as c:
                if predictions(c) != flipped:
                    return False
        return True

    while time.monotonic() < deadline and not all_flipped():  # no answer to wait on
        time.sleep(0.05)  # poll interval of a bounded wait
    check_everywhere(server, [], flipped)
