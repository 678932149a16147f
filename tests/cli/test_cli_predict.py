"""``fishpredict serve --models NAME=PATH`` with a user's own models, and
``fishpredict predict --url --model`` reading their columns by header name
(fishpredict/cli/serve.py, cli/predict.py, bulk/tables.py), on a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import Ridge

from fishpredict.bulk.client import Client
from fishpredict.cli import main
from fishpredict.server.process import ServerProcess, start_server


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("own")
    X, y = load_iris(return_X_y=True, as_frame=True)
    joblib.dump(RandomForestClassifier(n_estimators=7, random_state=0).fit(X, y),
                root / "rf.joblib")
    D, t = load_diabetes(return_X_y=True, as_frame=True)
    joblib.dump(Ridge().fit(D, t), root / "ridge.joblib")
    # the input: the model's columns in another order, an extra id column first
    frame = X.iloc[::3, ::-1].copy()
    frame.insert(0, "id", range(len(frame)))
    frame.to_csv(root / "iris.csv", index=False)
    (root / "parts").mkdir()
    half = len(frame) // 2
    frame.iloc[:half].to_parquet(root / "parts" / "a.parquet")
    frame.iloc[half:].to_parquet(root / "parts" / "b.parquet")
    D.iloc[:50].to_csv(root / "diabetes.csv", index=False)
    (root / "broken.joblib").write_bytes(b"not a pickle at all")
    return {p.stem if p.is_file() else p.name: p for p in root.iterdir()}


@pytest.fixture(scope="module")
def server(files: dict[str, Path]) -> Iterator[ServerProcess]:
    with start_server("socket", "--models", f"iris-rf={files['rf']}",
                      "--models", str(files["ridge"]), "--trust") as srv:
        yield srv


def expected(files: dict[str, Path]) -> tuple[np.ndarray, np.ndarray]:
    model = joblib.load(files["rf"])
    X = pd.read_csv(files["iris"])[list(model.feature_names_in_)]
    return model.predict(X), model.predict_proba(X)


def test_serves_every_named_model(server: ServerProcess) -> None:
    with Client(server.url) as c:
        names = [m["name"] for m in c.get_json("/models")["models"]]
    assert names == ["iris-rf", "ridge"]


def test_predict_by_model_name_reads_columns_by_header(
    server: ServerProcess, files: dict[str, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "p.csv"
    assert main(["predict", "--url", server.url, "--model", "iris-rf", "--data",
                 str(files["iris"]), "--out", str(out), "--proba", "--chunk-rows", "7"]) == 0
    assert "predicted by iris-rf" in capsys.readouterr().out
    got = pd.read_csv(out)
    labels, proba = expected(files)
    assert got["prediction"].tolist() == labels.tolist()
    assert list(got.columns) == ["prediction", "probability_0", "probability_1",
                                 "probability_2"]
    np.testing.assert_allclose(got.iloc[:, 1:].to_numpy(), proba, atol=1e-12)


def test_predict_a_directory_of_parquet_into_parts(
    server: ServerProcess, files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert main(["predict", "--url", server.url, "--model", "iris-rf", "--data",
                 str(files["parts"]), "--out", str(out)]) == 0
    parts = sorted(out.iterdir())
    assert [p.name for p in parts] == ["part-00000.parquet", "part-00001.parquet"]
    got = pd.concat([pd.read_parquet(p) for p in parts])["prediction"].tolist()
    assert got == expected(files)[0].tolist()


def test_a_regressor_writes_the_servers_floats_exactly(
    server: ServerProcess, files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "r.parquet"
    assert main(["predict", "--url", server.url, "--model", "ridge", "--data",
                 str(files["diabetes"]), "--out", str(out)]) == 0
    written = pd.read_parquet(out)["prediction"].tolist()
    rows = pd.read_csv(files["diabetes"])
    body = json.dumps({"instances": rows.to_numpy().tolist()}).encode()
    with Client(server.url) as c:
        status, _, answer = c.request("POST", "/predict?model=ridge", body,
                                      {"Content-Type": "application/json"})
    assert status == 200 and written == json.loads(answer)["predictions"]
    # scikit-learn's own last bit depends on the array's memory layout (BLAS kernels)
    np.testing.assert_allclose(written, joblib.load(files["ridge"]).predict(rows), rtol=1e-12)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "nosuch"], "no model named 'nosuch'; it has: iris-rf, ridge"),
        ([], "the server has 2 models (iris-rf, ridge); name one with --model"),
        (["--model", "ridge", "--proba"], "has no predict_proba"),
        (["--model", "iris-rf", "--data", "DIABETES"], "sepal length (cm)"),
        (["--model", "iris-rf", "--k", "5"], "--model or --k"),
        (["--model", "iris-rf", "--models", "x.joblib"], "apply to --scheduler"),
    ],
)
def test_errors_are_one_line(server: ServerProcess, files: dict[str, Path], tmp_path: Path,
                             capsys: pytest.CaptureFixture[str], args: list[str],
                             needle: str) -> None:
    out = tmp_path / "p.csv"
    data = str(files["diabetes"]) if "DIABETES" in args else str(files["iris"])
    args = [a for a in args if a != "DIABETES"]
    if "--data" in args:
        args = args[: args.index("--data")]
    assert main(["predict", "--url", server.url, "--data", data, "--out", str(out),
                 *args]) != 0
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err
    assert not out.exists()


def test_predict_needs_one_of_url_and_scheduler(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", "--data", "x.csv"]) == 2
    assert "give one of --url" in capsys.readouterr().err
    assert main(["predict", "--data", "x.csv", "--url", "http://127.0.0.1:9",
                 "--scheduler", "local"]) == 2


def serve_once(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fishpredict", "serve", "--port", "0", *args],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    ("which", "needle"),
    [
        (["broken", "--trust"], "broken.joblib"),
        (["rf"], "--trust"),
        (["rf", "rf", "--trust"], "two models are named 'rf'"),
    ],
)
def test_a_model_that_fails_to_load_is_one_line(files: dict[str, Path], which: list[str],
                                                needle: str) -> None:
    args: list[str] = []
    for w in which:
        args += [w] if w.startswith("--") else ["--models", str(files[w])]
    result = serve_once(*args)
    assert result.returncode != 0
    assert result.stderr.startswith("fishpredict serve: error:"), result.stderr
    assert needle in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_predict_on_dask_writes_the_models_answers(files: dict[str, Path],
                                                   tmp_path: Path) -> None:
    """``--scheduler local:1``: a real local cluster scores the file; then a scheduler
    that does not answer is one line."""
    out = tmp_path / "dask-out"
    argv = [sys.executable, "-m", "fishpredict", "predict", "--models", f"iris-rf={files['rf']}",
            "--trust", "--model", "iris-rf", "--data", str(files["iris"]), "--out", str(out),
            "--proba"]
    done = subprocess.run([*argv, "--scheduler", "local:1"], capture_output=True, text=True,
                          timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["rows"] == len(pd.read_csv(files["iris"])) and summary["workers"] == 1
    got = pd.concat(pd.read_parquet(p) for p in sorted(out.iterdir()))
    labels, proba = expected(files)
    assert got["prediction"].tolist() == labels.tolist()
    np.testing.assert_allclose(got.filter(like="probability_").to_numpy(), proba, atol=1e-12)
    refused = subprocess.run([*argv[:-3], "--out", str(tmp_path / "never"), "--scheduler",
                              "127.0.0.1:9"], capture_output=True, text=True, timeout=60,
                             check=False)
    assert refused.returncode != 0
    assert refused.stderr.startswith("fishpredict predict: error: no Dask scheduler answers")
    assert refused.stderr.count("\n") == 1 and not (tmp_path / "never").exists()


def test_keep_carries_the_id_column_through(server: ServerProcess, files: dict[str, Path],
                                            tmp_path: Path) -> None:
    out = tmp_path / "kept.csv"
    assert main(["predict", "--url", server.url, "--model", "iris-rf", "--data",
                 str(files["iris"]), "--out", str(out), "--keep", "id",
                 "--chunk-rows", "7"]) == 0
    got = pd.read_csv(out)
    assert list(got.columns) == ["id", "prediction"]
    assert got["id"].tolist() == pd.read_csv(files["iris"])["id"].tolist()
    assert got["prediction"].tolist() == expected(files)[0].tolist()


def test_unknown_out_suffix_is_refused(server: ServerProcess, files: dict[str, Path],
                                       tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    for mode in (["--url", server.url], ["--scheduler", "local:1", "--models",
                                         str(files["rf"]), "--trust"]):
        out = tmp_path / "p.json"
        assert main(["predict", *mode, "--model", "iris-rf" if "--url" in mode else "rf",
                     "--data", str(files["iris"]), "--out", str(out)]) != 0
        err = capsys.readouterr().err
        assert "unknown output type '.json'" in err and err.count("\n") == 1, err
        assert not out.exists()


def test_row_numbers_are_the_files_own_on_both_paths(server: ServerProcess,
                                                     files: dict[str, Path],
                                                     tmp_path: Path) -> None:
    """A missing value Ridge refuses, at row 37 of the file: both paths name row index 37,
    in one line (no Dask traceback)."""
    rows = pd.read_csv(files["diabetes"])
    rows.iloc[37, 2] = np.nan
    data = tmp_path / "gappy.csv"
    rows.to_csv(data, index=False)
    by_url = subprocess.run(
        [sys.executable, "-m", "fishpredict", "predict", "--url", server.url, "--model",
         "ridge", "--data", str(data), "--out", str(tmp_path / "u.csv"), "--chunk-rows", "10"],
        capture_output=True, text=True, timeout=120, check=False)
    on_dask = subprocess.run(
        [sys.executable, "-m", "fishpredict", "predict", "--scheduler", "local:1", "--models",
         str(files["ridge"]), "--trust", "--model", "ridge", "--data", str(data), "--out",
         str(tmp_path / "d")], capture_output=True, text=True, timeout=180, check=False)
    for done in (by_url, on_dask):
        assert done.returncode != 0
        assert done.stderr.count("\n") == 1, done.stderr[-2000:]
        assert "gappy.csv: row index 37, feature 'bmi'" in done.stderr, done.stderr
