"""fishpredict perf peers: MLServer's settings, the V2 requests, and whole runs.

The whole run is driven for real (servers as processes, the bench engine, the
report) against a stand-in ``mlserver`` executable: a script that reads the
repository the suite wrote for MLServer and serves the same model files with
``fishpredict serve``, so everything but MLServer itself is exercised. The
run against the real MLServer needs its virtual environment (a minute or two to
make, and network access) and runs only with FISHPREDICT_PEERS_LIVE=1.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import httptools
import joblib
import pytest

from fishpredict.errors import ConfigError
from fishpredict.perf import mlserver_env, peer_workload, peers
from fishpredict.perf.mlserver_server import write_repository

FAKE_MLSERVER = '''#!{python}
"""A stand-in for `mlserver start REPO`: serves the repository's model files with
fishpredict on the port its settings.json names."""
import json, os, sys
from pathlib import Path
assert sys.argv[1] == "start", sys.argv
repo = Path(sys.argv[2])
settings = json.loads((repo / "settings.json").read_text())
uris = [json.loads(p.read_text())["parameters"]["uri"]
        for p in sorted(repo.glob("*/model-settings.json"))]
models = {{os.path.dirname(u) for u in uris}}
assert len(models) == 1, uris
os.execv(sys.executable, [sys.executable, "-m", "fishpredict", "serve", "--backend",
         "socket", "--host", settings["host"], "--port", str(settings["http_port"]),
         "--models", models.pop(), "--trust"])
'''


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[peer_workload.PeerModel]:
    return peer_workload.write_models(tmp_path_factory.mktemp("peer-models"))


def _fake_mlserver(directory: Path) -> Path:
    exe = directory / "mlserver"
    exe.write_text(FAKE_MLSERVER.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


# ---- the model files ------------------------------------------------------------------

def test_model_files_are_the_two_models_of_the_issue(
        models: list[peer_workload.PeerModel]) -> None:
    assert [m.name for m in models] == ["logistic", "forest"]
    assert sorted(p.name for p in models[0].path.parent.iterdir()) == [
        "forest.joblib", "logistic.joblib"]
    logistic, forest = (joblib.load(m.path) for m in models)
    assert [type(s).__name__ for _n, s in logistic.steps] == [
        "StandardScaler", "LogisticRegression"]
    assert logistic.n_features_in_ == 30
    assert type(forest).__name__ == "RandomForestClassifier"
    assert len(forest.estimators_) == 100 and forest.n_features_in_ == 30
    for m, est in zip(models, (logistic, forest), strict=True):
        assert m.rows.shape == (peer_workload.N_ROWS, 30)
        assert list(est.predict(m.rows)) == list(m.expected)
        assert len(set(m.expected)) == 3  # the answers vary with the rows


# ---- MLServer's repository -------------------------------------------------------------

def test_repository_settings(tmp_path: Path, models: list[peer_workload.PeerModel]) -> None:
    write_repository(tmp_path, [(m.name, m.path) for m in models], 18080, 18081)
    settings = json.loads((tmp_path / "settings.json").read_text())
    assert settings["host"] == "127.0.0.1"
    assert (settings["http_port"], settings["grpc_port"]) == (18080, 18081)
    assert settings["metrics_endpoint"] is None
    for m in models:
        ms = json.loads((tmp_path / m.name / "model-settings.json").read_text())
        assert ms["name"] == m.name
        assert ms["implementation"] == "mlserver_sklearn.SKLearnModel"
        assert (ms["max_batch_size"], ms["max_batch_time"]) == (64, 0.005)
        uri = Path(ms["parameters"]["uri"])
        assert uri.is_absolute() and uri.samefile(m.path)


# ---- the requests ------------------------------------------------------------------------

class _Parsed:
    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.body = b""
        self.done = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done = True


def test_pool_requests_are_whole_v2_requests_one_varied_row_each(
        models: list[peer_workload.PeerModel]) -> None:
    m = models[1]
    pool = peer_workload.v2_pool(m, "127.0.0.1:9")
    assert len(pool) == peer_workload.N_ROWS and pool.rows_per_request == 1
    assert not pool.checks_answers
    bodies = set()
    for i, raw in enumerate(pool.requests):
        got = _Parsed()
        parser = httptools.HttpRequestParser(got)
        parser.feed_data(raw)
        assert got.done and parser.get_method() == b"POST"
        assert got.url == b"/v2/models/forest/infer"
        assert got.headers[b"content-type"] == b"application/json"
        assert int(got.headers[b"content-length"]) == len(got.body)
        body = json.loads(got.body)
        assert body["id"] == str(i)
        (tensor,) = body["inputs"]
        assert tensor["datatype"] == "FP64" and tensor["shape"] == [1, 30]
        assert tensor["data"] == [float(v) for v in m.rows[i]]  # exact: repr round-trips
        bodies.add(got.body)
    assert len(bodies) == len(pool)


def test_predict_output_reads_v2_answers() -> None:
    answer = {"model_name": "m", "outputs": [
        {"name": "predict_proba", "shape": [1, 2], "datatype": "FP64", "data": [0.1, 0.9]},
        {"name": "predict", "shape": [1, 1], "datatype": "INT64", "data": [[2]]},
    ]}
    assert peer_workload.predict_output(answer) == [2]
    assert peer_workload.predict_output({"outputs": []}) is None
    assert peer_workload.predict_output({"error": "x"}) is None


def test_answer_check_counts_wrong_answers(models: list[peer_workload.PeerModel]) -> None:
    import dataclasses

    from fishpredict.perf.servers import fishpredict_server

    m = models[0]
    wrong = dataclasses.replace(m, expected=tuple((v + 1) % 3 for v in m.expected))
    directory = str(m.path.parent)
    with fishpredict_server("socket", "--models", directory, "--trust") as srv:
        right = peer_workload.check_answers("127.0.0.1", srv.port, m, count=8)
        bad = peer_workload.check_answers("127.0.0.1", srv.port, wrong, count=8)
        missing = peer_workload.check_answers(
            "127.0.0.1", srv.port, dataclasses.replace(m, name="nosuch"), count=2)
    assert right.ok and right.checked == 8
    assert not bad.ok and bad.correct == 0
    assert bad.first_problem is not None and bad.first_problem.startswith("row 0: HTTP 200")
    assert not missing.ok and "HTTP 404" in (missing.first_problem or "")


# ---- the environment -------------------------------------------------------------------

def test_mlserver_executable_takes_a_venv_or_an_executable(tmp_path: Path) -> None:
    exe = _fake_mlserver(tmp_path)
    assert mlserver_env.mlserver_executable(str(exe)) == exe
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    with pytest.raises(ConfigError, match="not a virtual environment with mlserver"):
        mlserver_env.mlserver_executable(str(venv))
    _fake_mlserver(venv / "bin")
    assert mlserver_env.mlserver_executable(str(venv)) == venv / "bin" / "mlserver"
    with pytest.raises(ConfigError, match="neither"):
        mlserver_env.mlserver_executable(str(tmp_path / "missing"))


def test_an_environment_is_ready_only_with_its_marker_and_packages(tmp_path: Path) -> None:
    pins = mlserver_env.pinned_packages()
    assert pins[:2] == ("mlserver==1.7.1", "mlserver-sklearn==1.7.1")
    import sklearn
    assert f"scikit-learn=={sklearn.__version__}" in pins
    (tmp_path / "bin").mkdir()
    _fake_mlserver(tmp_path / "bin")
    assert not mlserver_env.is_ready(tmp_path, pins)  # an interrupted install: no marker
    (tmp_path / mlserver_env.MARKER).write_text(json.dumps({"packages": list(pins)}))
    assert mlserver_env.is_ready(tmp_path, pins)
    assert not mlserver_env.is_ready(tmp_path, (*pins, "extra==1"))
    # ensure_venv keeps a ready environment as it is (no install)
    assert mlserver_env.ensure_venv(tmp_path, say=lambda _s: None, packages=pins) == tmp_path


# ---- whole runs ---------------------------------------------------------------------------

def _check_report(report: dict[str, object]) -> None:
    assert set(report) == {"load", "peer", "models", "targets_met", "passed"}
    models = report["models"]
    assert isinstance(models, dict) and set(models) == {"logistic", "forest"}
    verdicts = report["targets_met"]
    assert isinstance(verdicts, dict)
    for name, fig in models.items():
        for server in ("MLServer", "fishpredict"):
            run = fig[server]
            assert run["requests"] > 0 and run["rps"] > 0
            assert run["error_count"] == 0, run["errors"]
            assert run["answers"] == {"checked": 32, "correct": 32, "first_problem": None}
            assert run["p50_ms"] <= run["p99_ms"]
        assert fig["ratio"] == pytest.approx(fig["fishpredict"]["rps"] / fig["MLServer"]["rps"])
        assert verdicts[f"{name}_ratio"] is (fig["ratio"] >= peers.TARGET_RATIO)
        assert verdicts[f"{name}_clean"] is True
    assert report["passed"] is all(verdicts.values())


def test_a_whole_run_against_a_stand_in_peer(tmp_path: Path) -> None:
    """Every step of the run but MLServer itself: the stand-in serves the repository the
    suite wrote (so its settings must name the port and the model files), is waited for
    on the V2 health and model-ready routes, loaded, and stopped by its pid."""
    lines: list[str] = []
    report = peers.run(quick=True, mlserver=str(_fake_mlserver(tmp_path)), connections=8,
                       say=lines.append)
    _check_report(report)
    text = "\n".join(lines)
    for needle in ("## requests/s at 8 connections", "target: logistic: fishpredict >= 6x",
                   "target: forest: fishpredict >= 6x", "vs MLServer"):
        assert needle in text
    # the same server on both sides: near 1x, which must not pass as 6x
    for fig in report["models"].values():
        assert fig["ratio"] < peers.TARGET_RATIO
    assert report["passed"] is False
    assert _left_running() == []


def _left_running() -> list[str]:
    """Processes whose command line names a peers run's working directory."""
    import psutil

    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or ())
        if "fishpredict-peers-" in cmd:
            out.append(cmd)
    return out


@pytest.mark.skipif(os.environ.get("FISHPREDICT_PEERS_LIVE") != "1",
                    reason="against the real MLServer only with FISHPREDICT_PEERS_LIVE=1 "
                           "(its virtual environment takes minutes to make)")
def test_a_whole_run_against_mlserver() -> None:
    report = peers.run(quick=True, say=lambda _s: None)
    _check_report(report)
    assert _left_running() == []


def test_a_bad_mlserver_path_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "fishpredict", "perf", "peers", "--quick", "--mlserver",
         str(tmp_path / "missing")], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert "neither a virtual environment nor an executable mlserver" in line
