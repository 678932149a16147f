"""``fishpredict models inspect`` and ``models add`` (fishpredict/cli/models.py) on a
model a user trained: a random forest on iris, fitted on a DataFrame."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

from fishpredict.cli import main
from fishpredict.models.manifest import read_manifest


@pytest.fixture(scope="module")
def rf_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    path = tmp_path_factory.mktemp("own") / "rf.joblib"
    joblib.dump(model, path)
    return path


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) != 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1, captured
    return captured.err


def test_inspect_needs_trust_for_a_pickle(rf_file: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    err = one_line_error(capsys, ["models", "inspect", str(rf_file)])
    assert err.startswith("fishpredict models: error:") and "--trust" in err


def test_inspect_json_is_the_signature(rf_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "inspect", str(rf_file), "--trust", "--json"]) == 0
    (info,) = json.loads(capsys.readouterr().out)
    assert info["name"] == "rf" and info["estimator"] == "RandomForestClassifier"
    sig = info["signature"]
    assert [f["name"] for f in sig["features"]] == list(load_iris(as_frame=True).data.columns)
    assert sig["task"] == "classifier" and sig["classes"] == [0, 1, 2]
    assert "predict_proba" in sig["outputs"]


def test_inspect_text(rf_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "inspect", str(rf_file), "--trust"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("rf: RandomForestClassifier (joblib, sha256 ")
    assert "classes     0, 1, 2" in out and "features    4" in out
    assert "sepal length (cm)" in out


def test_add_writes_the_manifest_then_no_trust_is_needed(
    rf_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "models"
    assert main(["models", "add", str(rf_file), "--to", str(target), "--name", "iris-rf",
                 "--trust"]) == 0
    assert "added iris-rf (rf.joblib, RandomForestClassifier" in capsys.readouterr().out
    (entry,) = read_manifest(target)
    assert entry.name == "iris-rf" and (target / "rf.joblib").exists()
    assert main(["models", "inspect", str(target), "--json"]) == 0  # the manifest vouches
    assert json.loads(capsys.readouterr().out)[0]["name"] == "iris-rf"
    err = one_line_error(capsys, ["models", "add", str(rf_file), "--to", str(target),
                                  "--name", "iris-rf", "--trust"])
    assert "already lists a model named 'iris-rf'" in err
    assert main(["models", "add", str(rf_file), "--to", str(target), "--name", "iris-rf",
                 "--trust", "--replace"]) == 0


def test_add_refuses_an_untrusted_pickle(rf_file: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    one_line_error(capsys, ["models", "add", str(rf_file), "--to", str(tmp_path / "m")])
    assert not (tmp_path / "m" / "manifest.json").exists()


def test_missing_file_is_a_usage_error(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["models", "inspect", str(tmp_path / "none.joblib")])
    assert exc.value.code == 2
    assert "does not exist" in capsys.readouterr().err


def test_list_replace_and_remove(rf_file: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    models = tmp_path / "models"
    assert main(["models", "add", str(rf_file), "--to", str(models), "--trust"]) == 0
    capsys.readouterr()
    assert main(["models", "add", str(rf_file), "--to", str(models), "--trust"]) != 0
    err = capsys.readouterr().err
    assert "--replace" in err and err.count("\n") == 1, err
    # the file overwritten in place: the load is refused, naming the way to record it
    X, y = load_iris(return_X_y=True, as_frame=True)
    joblib.dump(RandomForestClassifier(n_estimators=3, random_state=1).fit(X, y),
                models / rf_file.name)
    assert main(["models", "inspect", str(models)]) != 0
    err = capsys.readouterr().err
    assert "does not match the manifest" in err and "--replace" in err, err
    assert main(["models", "add", str(models / rf_file.name), "--to", str(models), "--trust",
                 "--replace"]) == 0
    assert main(["models", "inspect", str(models)]) == 0
    capsys.readouterr()
    assert main(["models", "list", str(models)]) == 0
    assert capsys.readouterr().out.startswith(f"{rf_file.stem}\t{rf_file.name}\t")
    assert main(["models", "remove", rf_file.stem, "--from", str(models)]) == 0
    assert read_manifest(models) == [] and not (models / rf_file.name).exists()
    capsys.readouterr()
    assert main(["models", "remove", rf_file.stem, "--from", str(models)]) != 0
    err = capsys.readouterr().err
    assert "lists no model named" in err and err.count("\n") == 1, err
