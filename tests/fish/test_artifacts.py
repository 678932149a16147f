"""Training, saving and the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sklearn

from fishpredict.cli import main
from fishpredict.fish import training as artifacts
from fishpredict.models import manifest


def test_save_models_writes_files_and_manifest(tmp_path: Path) -> None:
    entries = artifacts.save_models(tmp_path, ks=(1, 5), scale="standard")
    doc = json.loads((tmp_path / "manifest.json").read_text())
    assert doc["format"] == 2
    assert [m["name"] for m in doc["models"]] == ["knn-k1-std", "knn-k5-std"]
    for e, m in zip(entries, doc["models"], strict=True):
        assert m["k"] == e.k
        assert m["classes"] == [0, 1]
        assert m["feature_names"] == ["length", "weight"]
        assert m["sklearn_version"] == sklearn.__version__
        assert m["scale"] == "standard"
        assert m["created"]
        assert m["format"] == "joblib"
        assert [f["name"] for f in m["signature"]["features"]] == ["length", "weight"]
        assert all(f["minimum"] == 0 for f in m["signature"]["features"])
        assert m["signature"]["display"] == {"en": ["smelt", "bream"], "ko": ["빙어", "도미"]}
        assert manifest.sha256_file(tmp_path / m["file"]) == m["sha256"]
    assert manifest.read_manifest(tmp_path) == entries


def test_train_rejects_k_larger_than_the_data() -> None:
    with pytest.raises(ValueError, match="between 1 and 49"):
        artifacts.train(50)


def test_cli_train(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--k", "1,5,15,25,49", "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "knn-k49" in out and "manifest" in out
    assert len(manifest.read_manifest(tmp_path / "m")) == 5


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "--k", "0"], "positive"),
        (["train", "--k", "x"], "comma-separated"),
        (["train", "--k", "60"], "between 1 and 49"),
        (["train", "--scale", "minmax"], "Invalid value for '--scale'"),
    ],
)
def test_cli_train_errors_are_one_line(argv: list[str], needle: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*argv, "--out", str(tmp_path / "m")]
    try:
        code = main(argv)
    except SystemExit as exc:  # usage errors exit through SystemExit
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code != 0
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_cli_train_unwritable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["train", "--out", str(blocker / "sub")]) != 0
    err = capsys.readouterr().err
    assert "cannot write" in err and len(err.strip().splitlines()) == 1
