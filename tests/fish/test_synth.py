"""The synthetic fish generator: reproducible, chunking-independent, and as separable
as the seed's 100% accuracy requires."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from fishpredict.cli import main
from fishpredict.fish import files as datafiles
from fishpredict.fish import synth
from fishpredict.fish.dataset import BREAM, SMELT, load_fish
from fishpredict.predictor import Predictor


def _concat(chunks: object) -> tuple[np.ndarray, np.ndarray]:
    parts = list(chunks)  # type: ignore[call-overload]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    X1, y1 = synth.sample(10_000, seed=7)
    X2, y2 = synth.sample(10_000, seed=7)
    X3, _ = synth.sample(10_000, seed=8)
    assert np.array_equal(X1, X2) and np.array_equal(y1, y2)
    assert not np.array_equal(X1, X3)


@pytest.mark.parametrize("chunk_rows", [1, 999, synth.BLOCK_ROWS, synth.BLOCK_ROWS + 1, 10**6])
def test_rows_do_not_depend_on_chunk_size(chunk_rows: int) -> None:
    rows = 2 * synth.BLOCK_ROWS + 123 if chunk_rows > 1 else 3000
    ref_X, ref_y = synth.sample(rows, seed=3)
    chunks = list(synth.generate(rows, seed=3, chunk_rows=chunk_rows))
    assert all(len(X) == len(y) <= chunk_rows for X, y in chunks)
    X, y = _concat(chunks)
    assert np.array_equal(X, ref_X) and np.array_equal(y, ref_y)


def test_shorter_run_is_a_prefix_of_a_longer_one() -> None:
    X_short, y_short = synth.sample(70_001, seed=11)
    X_long, y_long = synth.sample(140_000, seed=11)
    assert np.array_equal(X_short, X_long[:70_001])
    assert np.array_equal(y_short, y_long[:70_001])


def test_shapes_types_and_value_grid() -> None:
    X, y = synth.sample(50_000, seed=1)
    assert X.shape == (50_000, 2) and X.dtype == np.float64
    assert y.shape == (50_000,) and y.dtype == np.int64
    assert set(np.unique(y)) == {BREAM, SMELT}
    assert (X >= synth.MIN_VALUE).all()
    assert np.array_equal(np.round(X, 1), X)  # measured to 0.1 cm / 0.1 g, like the seed


def test_bream_share_is_the_seeds() -> None:
    n = 400_000
    _, y = synth.sample(n, seed=5)
    p = synth.BREAM_SHARE
    assert p == 35 / 49
    assert abs(y.mean() - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_fit_is_mean_and_covariance_of_the_built_in_fish() -> None:
    fish = load_fish()
    fits = synth.fit_species()
    for label, fit in fits.items():
        logs = np.log(fish.X[fish.y == label])
        assert fit.n_fit == len(logs)
        assert np.allclose(fit.mean, logs.mean(axis=0))
        assert np.allclose(fit.cov, np.cov(logs.T))
        chol = np.array(fit.chol)
        assert np.allclose(chol @ chol.T, fit.cov)


def test_generated_moments_match_the_truncated_model() -> None:
    """Symmetric truncation keeps the mean; it scales the covariance by
    E[r^2 | r <= R] / 2 for the radius r of a standard 2-D normal."""
    X, y = synth.sample(600_000, seed=9)
    R = synth.RADIUS
    shrink = (2 - R * R * math.exp(-R * R / 2) / (1 - math.exp(-R * R / 2))) / 2
    for label, fit in synth.fit_species().items():
        logs = np.log(X[y == label])
        assert np.allclose(logs.mean(axis=0), fit.mean, atol=2e-3)
        assert np.allclose(np.cov(logs.T), np.array(fit.cov) * shrink, rtol=0.03)
        # every row lies inside the ellipse (plus what rounding to 0.1 moves)
        z = logs - np.array(fit.mean)
        d = np.sqrt(np.einsum("ij,jk,ik->i", z, np.linalg.inv(fit.cov), z))
        assert d.max() <= R + 0.3


def _ellipse_grid(fit: synth.SpeciesModel, steps: int = 161) -> np.ndarray:
    """Points filling the truncation ellipse of ``fit``, its rim, and their rounded twins."""
    R = synth.RADIUS
    g = np.linspace(-R, R, steps)
    z = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    z = z[(z**2).sum(axis=1) <= R * R]
    angle = np.linspace(0, 2 * np.pi, 4000, endpoint=False)
    z = np.vstack([z, R * np.c_[np.cos(angle), np.sin(angle)]])
    X = np.exp(np.array(fit.mean) + z @ np.array(fit.chol).T)
    return np.vstack([X, np.round(X, 1)])


@pytest.mark.parametrize("scale", [None, "standard"])
def test_every_point_of_both_regions_is_labelled_right(scale: str | None) -> None:
    """The documented claim: inside radius RADIUS, KNN on the 49 fish with
    k = 1, 5, 15, 25 is always right, and k = 49 always answers bream."""
    predictor = Predictor(ks=(1, 5, 15, 25, 49), scale=scale)  # type: ignore[arg-type]
    for label, fit in synth.fit_species().items():
        X = _ellipse_grid(fit)
        for k in (1, 5, 15, 25):
            classes = np.array(predictor.model(k).info.classes)
            wrong = np.count_nonzero(classes[predictor.predict_codes(X, k)] != label)
            assert wrong == 0, f"k={k} scale={scale} species={label}: {wrong} wrong"
        classes = np.array(predictor.model(49).info.classes)
        assert (classes[predictor.predict_codes(X, 49)] == BREAM).all()


def test_the_untruncated_tail_would_cross_the_boundary() -> None:
    """Why the truncation exists: slightly outside it, k = 25 calls light bream smelt."""
    fit = synth.fit_species()[BREAM]
    z = np.array([[-2.6, 0.0]])  # a short, light bream 2.6 standard deviations out
    X = np.exp(np.array(fit.mean) + z @ np.array(fit.chol).T)
    assert Predictor(ks=(25,)).predict_many(X, 25) == ["smelt"]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        next(synth.generate(-1))
    with pytest.raises(ValueError):
        next(synth.generate(10, chunk_rows=0))
    with pytest.raises(ValueError):
        next(synth.generate(10, seed=-1))
    assert list(synth.generate(0)) == []


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npy", ".npz"])
@pytest.mark.parametrize("progress", [False, True])
def test_write_reads_back_as_generated(tmp_path: Path, suffix: str, progress: bool) -> None:
    path = tmp_path / f"fish{suffix}"
    written = synth.write(path, 5_000, seed=4, chunk_rows=1_234, progress=progress)
    X, y = datafiles.read_all(path)
    ref_X, ref_y = synth.sample(5_000, seed=4)
    assert np.array_equal(X, ref_X) and y is not None and np.array_equal(y, ref_y)
    assert written.rows == 5_000 and written.bream == int((ref_y == BREAM).sum())
    assert written.size == path.stat().st_size
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind


def test_cli_data_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fish.npz"
    assert (
        main(
            [
                "data",
                "generate",
                "--rows",
                "3000",
                "--seed",
                "6",
                "--out",
                str(out),
                "--chunk-rows",
                "700",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "3,000 rows" in printed and str(out) in printed
    X, y = datafiles.read_all(out)
    ref_X, ref_y = synth.sample(3000, seed=6)
    assert np.array_equal(X, ref_X) and y is not None and np.array_equal(y, ref_y)


def test_cli_data_generate_bad_suffix_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "generate", "--rows", "10", "--out", str(tmp_path / "f.txt")]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unsupported file type" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_cli_data_sample_without_data_draws_from_the_generator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.csv"
    assert main(["data", "sample", "--n", "500", "--seed", "12", "--out", str(out)]) == 0
    assert "generator" in capsys.readouterr().out
    X, y = datafiles.read_all(out)
    ref_X, ref_y = synth.sample(500, seed=12)
    assert np.array_equal(X, ref_X) and y is not None and np.array_equal(y, ref_y)
