"""Evaluate and predict through a real running server (socket backend)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fishpredict import Predictor
from fishpredict.bulk.client import Client
from fishpredict.bulk.remote import evaluate_remote
from fishpredict.cli import main
from fishpredict.errors import ConfigError, ServerError
from fishpredict.fish import files as datafiles
from fishpredict.fish import synth
from fishpredict.fish.sweep import evaluate
from fishpredict.server.process import ServerProcess, start_server


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with start_server("socket") as srv:
        yield srv


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "sample.csv"
    synth.write(path, 30_000, seed=5, progress=False)
    return path


def test_remote_evaluation_equals_local(server: ServerProcess, sample: Path) -> None:
    ks = [1, 5, 15, 25, 49]
    remote = evaluate_remote(server.url, datafiles.iter_chunks(sample, 7_000), ks)
    X, y = datafiles.read_all(sample)
    assert y is not None
    local = evaluate(Predictor(), X, y, ks)
    for r, loc in zip(remote, local, strict=True):
        assert (r.k, r.rows, r.correct, r.bream_answers) == (loc.k, loc.rows, loc.correct,
                                                             loc.bream_answers)
    assert remote[0].accuracy == 1.0 and remote[-1].all_bream


def test_cli_predict_writes_one_column_per_k(server: ServerProcess, sample: Path,
                                             tmp_path: Path) -> None:
    out = tmp_path / "pred.csv"
    assert main(["predict", "--url", server.url, "--data", str(sample), "--k", "1,49",
                 "--out", str(out), "--chunk-rows", "4096"]) == 0
    with open(out, encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["Length", "Weight", "Species", "k1", "k49"]
    assert len(rows) == 30_001
    X, _ = datafiles.read_all(sample)
    p = Predictor()
    assert [r[3] for r in rows[1:]] == p.predict_many(X, 1)
    assert {r[4] for r in rows[1:]} == {"bream"}
    assert float(rows[1][0]) == X[0, 0] and float(rows[1][1]) == X[0, 1]


def test_cli_evaluate_url(server: ServerProcess, sample: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--url", server.url, "--data", str(sample), "--k", "5,49"]) == 0
    out = capsys.readouterr().out
    assert "100.000%" in out and "bream share" in out


def test_errors_are_one_line(server: ServerProcess, sample: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "p.csv")
    cases = [
        (["predict", "--url", server.url, "--data", str(sample), "--k", "7", "--out", out],
         "no model for k=7"),
        (["predict", "--url", "http://127.0.0.1:9", "--data", str(sample), "--out", out],
         "cannot reach"),
        (["predict", "--url", "ftp://x", "--data", str(sample), "--out", out], "http://"),
        (["predict", "--url", server.url, "--data", str(tmp_path / "none.csv"), "--out", out],
         "none.csv"),
        (["predict", "--url", server.url, "--data", str(sample), "--out",
          str(tmp_path / "p.txt")], ".csv"),
        (["evaluate", "--url", server.url, "--data", str(sample), "--models", "x"], "local"),
    ]
    for argv, needle in cases:
        assert main(argv) != 0, argv
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert not Path(out).exists() and not Path(out + ".part").exists()


def test_client_reports_server_errors(server: ServerProcess) -> None:
    with Client(server.url) as c:
        with pytest.raises(ServerError, match="HTTP 400 invalid_input"):
            c.predict_npy(np.array([[1.0, -2.0]]), 5)
        assert list(c.predict_npy(np.array([[30.0, 600.0]]), 5)) == ["bream"]
        assert c.get_json("/healthz") == {"status": "ok"}
    with pytest.raises(ConfigError):
        Client("localhost:80")
