"""The k sweep reproduces the seed on generated data, the fast path agrees with
scikit-learn on it, and the table explains k = 49."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fishpredict.cli import main
from fishpredict.errors import DataError, UnknownModelError
from fishpredict.fish import files as datafiles
from fishpredict.fish import synth
from fishpredict.fish.dataset import BREAM
from fishpredict.fish.sweep import Row, evaluate, evaluate_chunks, format_table
from fishpredict.predictor import Predictor

KS = (1, 5, 15, 25, 49)


@pytest.fixture(scope="module")
def fish() -> tuple[np.ndarray, np.ndarray]:
    return synth.sample(200_000, seed=2024)


@pytest.mark.parametrize("scale", [None, "standard"])
def test_evaluate_reproduces_the_seed(
    fish: tuple[np.ndarray, np.ndarray], scale: str | None
) -> None:
    X, y = fish
    X, y = X[:50_000], y[:50_000]
    rows = evaluate(
        Predictor(ks=KS, scale=scale),
        X,
        y,
        KS,  # type: ignore[arg-type]
        chunk_rows=16_384,
    )
    bream = int(np.count_nonzero(y == BREAM))
    assert [r.k for r in rows] == list(KS)
    for r in rows:
        assert r.rows == len(y) and r.bream_rows == bream and r.seconds > 0
    for r in rows[:-1]:
        assert r.correct == len(y) and r.accuracy == 1.0 and not r.all_bream
    k49 = rows[-1]
    assert k49.all_bream and k49.bream_answers == len(y)
    assert k49.correct == bream and k49.accuracy == pytest.approx(y.mean())


@pytest.mark.parametrize("scale", [None, "standard"])
def test_fast_path_equals_scikit_learn_on_generated_data(
    fish: tuple[np.ndarray, np.ndarray], scale: str | None
) -> None:
    X, _ = fish
    fast = Predictor(ks=KS, scale=scale)  # type: ignore[arg-type]
    slow = Predictor(ks=KS, scale=scale, fast_path=False)  # type: ignore[arg-type]
    for k in KS:
        assert fast.model(k).fast is not None and slow.model(k).fast is None
        ours, theirs = fast.predict_codes(X, k), slow.predict_codes(X, k)
        assert np.array_equal(ours, theirs), f"k={k}: {np.count_nonzero(ours != theirs)} differ"


def test_chunked_evaluation_counts_like_one_pass(fish: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = fish
    X, y = X[:10_000], y[:10_000]
    predictor = Predictor(ks=KS)
    whole = evaluate(predictor, X, y, KS, chunk_rows=10**6)
    pieces = evaluate(predictor, X, y, KS, chunk_rows=999)
    for a, b in zip(whole, pieces, strict=True):
        assert (a.k, a.rows, a.correct, a.bream_answers, a.bream_rows) == (
            b.k,
            b.rows,
            b.correct,
            b.bream_answers,
            b.bream_rows,
        )


def test_format_table_explains_an_all_bream_model(fish: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = fish
    rows = evaluate(Predictor(ks=KS), X[:5_000], y[:5_000], KS)
    text = format_table(rows)
    share = f"{np.mean(y[:5_000] == BREAM):.3%}"
    lines = text.splitlines()
    assert lines[0].startswith(f"data: 5,000 rows, {share} bream")
    for k in KS:
        assert any(line.split()[0] == str(k) for line in lines[2:])
    notes = [line for line in lines if line.startswith("note:")]
    assert notes == [
        f"note: k=49: every answer is bream, so accuracy {share} = bream share {share}"
    ]
    assert "도미" in format_table(rows, labels="ko")


def test_format_table_of_rows_made_elsewhere() -> None:
    """Another evaluator (e.g. over HTTP) fills Rows itself; the table only reads them."""
    rows = [
        Row(k=3, rows=10, correct=9, seconds=0.5, bream_answers=6, bream_rows=7),
        Row(k=49, rows=10, correct=7, seconds=0.25, bream_answers=10, bream_rows=7),
    ]
    assert rows[0].rows_per_s == 20 and rows[1].bream_share == 0.7
    text = format_table(rows)
    assert "90.000%" in text and "70.000%" in text
    assert text.count("note:") == 1 and "k=49" in text
    assert format_table([]) == "no results"


def test_evaluation_needs_labels_and_loaded_models(fish: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = fish
    with pytest.raises(DataError, match="no labels"):
        evaluate_chunks(Predictor(ks=KS), [(X[:10], None)], KS)
    with pytest.raises(UnknownModelError, match="k=7"):
        evaluate_chunks(Predictor(ks=KS), [(X[:10], None)], [7])


def test_cli_evaluate(
    tmp_path: Path, fish: tuple[np.ndarray, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    X, y = fish
    path = tmp_path / "sample.csv"
    datafiles.write(path, X[:20_000], y[:20_000])
    assert main(["evaluate", "--data", str(path), "--chunk-rows", "6000"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for k in (1, 5, 15, 25):
        line = next(line for line in lines if line.split()[:1] == [str(k)])
        assert "100.000%" in line
    share = f"{np.mean(y[:20_000] == BREAM):.3%}"
    assert f"bream share {share}" in out


def test_cli_evaluate_own_model_directory(
    tmp_path: Path, fish: tuple[np.ndarray, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    X, y = fish
    path = tmp_path / "sample.npy"
    datafiles.write(path, X[:2_000], y[:2_000])
    assert main(["train", "--k", "5,49", "--out", str(tmp_path / "models")]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(path),
                "--k",
                "5,49",
                "--models",
                str(tmp_path / "models"),
                "--no-fast-path",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "knn-k5" in out and "note: k=49" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--k", "60"], "k must be between 1 and 49"),
        (["--k", "7", "--models", "MODELS"], "no model with k=7"),
        (["--scale", "standard", "--models", "MODELS"], "--scale applies to the built-in models"),
        (["--data", "UNLABELLED"], "no labels"),
        (["--data", "MISSING"], "data file not found"),
    ],
)
def test_cli_evaluate_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    labelled, unlabelled = tmp_path / "l.npy", tmp_path / "u.npy"
    datafiles.write(labelled, np.array([[30.0, 500.0]]), np.array([1]))
    datafiles.write(unlabelled, np.array([[30.0, 500.0]]))
    assert main(["train", "--k", "5", "--out", str(tmp_path / "models")]) == 0
    capsys.readouterr()
    subst = {
        "MODELS": str(tmp_path / "models"),
        "UNLABELLED": str(unlabelled),
        "MISSING": str(tmp_path / "missing.csv"),
    }
    argv = ["evaluate", "--data", str(labelled), *[subst.get(a, a) for a in args]]
    assert main(argv) != 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and message in captured.err
    assert captured.err.startswith("fishpredict evaluate: error:")
