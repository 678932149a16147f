"""Hot reload under load (issue 6, item 4), on every backend.

A model directory comes from ``fishpredict train --out DIR --k 5``; the server
serves it with ``--admin-token-env``. While four threads keep sending one batch
of 200 probe rows (``POST /predict?k=5``), the directory is retrained with a
different model under the same name (trained on the fish with their labels
swapped, so every answer flips) and ``POST /admin/reload`` swaps it in.

Then: no request failed; every batch answer is the old model's whole answer or
the new model's whole answer, never a mix; every request sent after the reload
answered is the new model's; ``/models`` shows the new sha256. A corrupt file is
refused (409), the old model keeps serving, ``/models`` and the log say why.
A wrong or missing token is 401, no token configured is 404, SIGHUP reloads.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from fishpredict.fish import training as artifacts
from fishpredict.fish.dataset import FishData, load_fish
from fishpredict.models import manifest
from fishpredict.plugins import list_backends
from fishpredict.predictor import Predictor
from fishpredict.testing import Client, ServerProcess, start_server

BACKENDS = [info.name for info in list_backends() if info.available]
TOKEN_VAR = "FISHPREDICT_TEST_ADMIN_TOKEN"
TOKEN = "reload-token-" + "x" * 24
NAME = "knn-k5"
#: load threads, and the most requests each may send (a bound, besides time)
USERS, MAX_REQUESTS, MAX_SECONDS = 4, 3000, 30.0


def probe_rows() -> np.ndarray:
    """200 fish spread over the whole feature range, fixed by a seed."""
    rng = np.random.default_rng(6)
    lengths = np.round(rng.uniform(8.0, 45.0, 200), 1)
    weights = np.round(rng.uniform(5.0, 1100.0, 200), 1)
    return np.column_stack([lengths, weights])


ROWS = probe_rows()
BODY = json.dumps({"instances": ROWS.tolist()})


def swapped() -> FishData:
    """The 49 fish with bream and smelt swapped: a model that answers the opposite."""
    fish = load_fish()
    return FishData(X=fish.X, y=1 - fish.y)


def answers(directory: Path) -> list[str]:
    """What the k=5 model in ``directory`` answers for the probe rows."""
    return Predictor(directory).predict_many(ROWS, 5)


@dataclass
class Load:
    """Threads that POST the probe batch until stopped (bounded in count and time)."""

    url_host: str
    url_port: int
    #: (monotonic send time, predictions) of every answered request
    done: list[tuple[float, list[str]]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _user(self) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        with Client(self.url_host, self.url_port, timeout=10.0) as client:
            for _ in range(MAX_REQUESTS):
                if self.stop.is_set() or time.monotonic() > deadline:
                    return
                sent = time.monotonic()
                try:
                    reply = client.request(
                        "POST", "/predict?k=5", BODY.encode(), {"Content-Type": "application/json"}
                    )
                except Exception as exc:  # every failure is counted, not raised in the thread
                    with self._lock:
                        self.failures.append(repr(exc))
                    continue
                with self._lock:
                    if reply.status != 200:
                        self.failures.append(f"{reply.status}: {reply.body[:200]!r}")
                    else:
                        self.done.append((sent, reply.json()["predictions"]))

    def start(self) -> Load:
        self._threads = [threading.Thread(target=self._user) for _ in range(USERS)]
        for t in self._threads:
            t.start()
        return self

    def wait_for(self, count: int, seconds: float = 20.0) -> None:
        """Until ``count`` answers arrived (bounded)."""
        deadline = time.monotonic() + seconds
        while len(self.done) < count and time.monotonic() < deadline and not self.failures:
            time.sleep(0.01)  # poll interval of a bounded wait
        assert len(self.done) >= count, f"only {len(self.done)} answers; {self.failures[:3]}"

    def join(self) -> None:
        self.stop.set()
        for t in self._threads:
            t.join(MAX_SECONDS)


def train_cli(out: Path) -> Path:
    """``fishpredict train --out OUT --k 5``: a model directory with manifest and sha256."""
    subprocess.run(
        [sys.executable, "-m", "fishpredict", "train", "--out", str(out), "--k", "5"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[str]]:
    """(old answers, new answers) for the probe rows; they differ on every row."""
    base = tmp_path_factory.mktemp("expected")
    old_dir = train_cli(base / "old")
    new_dir = base / "swapped"
    artifacts.save_models(new_dir, [5], data=swapped())
    old, new = answers(old_dir), answers(new_dir)
    assert all(o != n for o, n in zip(old, new, strict=True))
    return old, new


def serve(backend: str, model_dir: Path, *, token: bool = True) -> ServerProcess:
    env = dict(os.environ)
    args = ["--models", str(model_dir), "--log-level", "info"]
    if token:
        env[TOKEN_VAR] = TOKEN
        args += ["--admin-token-env", TOKEN_VAR]
    return start_server(backend, *args, env=env)


def reload(server: ServerProcess, token: str | None = TOKEN) -> tuple[int, dict[str, object]]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    with server.client() as client:
        reply = client.request("POST", "/admin/reload", b"", headers)
    return reply.status, reply.json()


def models(server: ServerProcess) -> dict[str, object]:
    with server.client() as client:
        reply = client.get("/models")
    assert reply.status == 200
    doc: dict[str, object] = reply.json()
    return doc


def sha_of(server: ServerProcess) -> str:
    listed = models(server)["models"]
    assert isinstance(listed, list)
    return next(str(m["sha256"]) for m in listed if m["name"] == NAME)


def batch(server: ServerProcess) -> list[str]:
    with server.client() as client:
        reply = client.post_json("/predict?k=5", json.loads(BODY))
    assert reply.status == 200, reply
    preds: list[str] = reply.json()["predictions"]
    return preds


@dataclass
class Served:
    server: ServerProcess
    models: Path


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Served]]:
    """One server per backend for the module (the SIGHUP test, last, stops it)."""
    running: dict[str, Served] = {}
    try:
        yield running
    finally:
        for s in running.values():
            s.server.close()


@pytest.fixture(params=BACKENDS)
def served(
    request: pytest.FixtureRequest,
    started: dict[str, Served],
    tmp_path_factory: pytest.TempPathFactory,
    expected: tuple[list[str], list[str]],
) -> Served:
    """This backend's server, serving the original model again (retrained and reloaded)."""
    backend: str = request.param
    if backend not in started:
        directory = train_cli(tmp_path_factory.mktemp(backend) / "models")
        started[backend] = Served(serve(backend, directory), directory)
    s = started[backend]
    assert s.server.proc.poll() is None, s.server.stderr_text()
    artifacts.save_models(s.models, [5])
    assert reload(s.server)[0] == 200
    assert batch(s.server) == expected[0]
    return s


def test_reload_under_load_loses_nothing_and_never_mixes(
    served: Served, expected: tuple[list[str], list[str]]
) -> None:
    server, model_dir = served.server, served.models
    old, new = expected
    old_sha = sha_of(server)
    load = Load(server.host, server.port).start()
    try:
        load.wait_for(20)
        artifacts.save_models(model_dir, [5], data=swapped())  # retrain in place, same name
        status, doc = reload(server)
        reloaded_at = time.monotonic()
        assert status == 200, doc
        assert doc["reloaded"] == [NAME]
        load.wait_for(len(load.done) + 20)
    finally:
        load.join()
    n_old = sum(p == old for _, p in load.done)
    n_new = sum(p == new for _, p in load.done)
    print(f"\n{server.backend}: {len(load.done)} batches of {len(ROWS)} rows answered, "
          f"{len(load.failures)} failed; {n_old} old model, {n_new} new model, "
          f"{len(load.done) - n_old - n_new} mixed")  # fmt: skip
    assert load.failures == [], f"{len(load.failures)} failed: {load.failures[:3]}"
    mixed = [p for _, p in load.done if p not in (old, new)]
    assert mixed == [], f"{len(mixed)} answers were neither the old nor the new model's"
    assert any(p == old for _, p in load.done) and any(p == new for _, p in load.done)
    late_old = [t for t, p in load.done if t > reloaded_at and p == old]
    assert late_old == [], "a request sent after the reload answered got the old model"
    new_sha = manifest.read_manifest(model_dir)[0].sha256
    assert new_sha != old_sha
    assert sha_of(server) == new_sha
    assert models(server)["last_reload_error"] is None


def test_corrupt_file_is_refused_and_old_model_keeps_serving(
    served: Served, expected: tuple[list[str], list[str]]
) -> None:
    server, model_dir = served.server, served.models
    old, _ = expected
    sha = sha_of(server)
    (model_dir / f"{NAME}.joblib").write_bytes(b"not a model, and not the manifest's sha256")
    status, doc = reload(server)
    assert status == 409, doc
    assert doc["error"]["code"] == "reload_failed"  # type: ignore[index]
    assert batch(server) == old
    assert sha_of(server) == sha
    error = models(server)["last_reload_error"]
    assert isinstance(error, str) and NAME in error, error
    assert "model reload refused" in server.stderr_text()
    # a good file afterwards reloads and clears the error
    artifacts.save_models(model_dir, [5], data=swapped())
    assert reload(server)[0] == 200
    assert models(server)["last_reload_error"] is None


def test_wrong_or_missing_token_is_401(served: Served) -> None:
    server = served.server
    for token in (None, "wrong-token-" + "y" * 24, TOKEN[:-1], TOKEN + "x"):
        status, doc = reload(server, token)
        assert status == 401, (token, doc)
    with server.client() as client:
        reply = client.request("POST", "/admin/reload", b"", {"Authorization": TOKEN})
    assert reply.status == 401  # no "Bearer " scheme
    assert reply.headers.get("www-authenticate", "").startswith("Bearer")


def test_sighup_reloads(served: Served, expected: tuple[list[str], list[str]]) -> None:
    """SIGHUP reloads too (the last test per backend: it stops the server after)."""
    server, model_dir = served.server, served.models
    _, new = expected
    artifacts.save_models(model_dir, [5], data=swapped())
    new_sha = manifest.read_manifest(model_dir)[0].sha256
    os.kill(server.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while sha_of(server) != new_sha and time.monotonic() < deadline:
        time.sleep(0.05)  # poll interval of a bounded wait
    assert sha_of(server) == new_sha
    assert batch(server) == new
    assert server.stop() == 0, server.stderr_text()


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_token_configured_is_404(backend: str, tmp_path: Path) -> None:
    """Admin routes are off by default: the route does not exist."""
    with serve(backend, train_cli(tmp_path / "models"), token=False) as srv:
        status, doc = reload(srv, TOKEN)
        assert status == 404, doc
        assert status == reload(srv, None)[0]
