"""Where the rows come from: generated fish, or a data file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fishpredict.bench.source import generated_rows, load_rows, read_rows
from fishpredict.fish import files as datafiles


def test_generated_rows_are_labelled_and_reproducible() -> None:
    a, b = generated_rows(200, seed=5), generated_rows(200, seed=5)
    assert len(a) == 200 and a.y is not None
    assert (a.X == b.X).all() and set(np.unique(a.y)) == {0, 1}
    assert not (generated_rows(200, seed=6).X == a.X).all()


def test_small_file_is_read_whole(tmp_path: Path) -> None:
    X = np.array([[30.0, 500.0], [11.0, 9.0]])
    path = tmp_path / "fish.csv"
    datafiles.write(path, X, np.array([1, 0]))
    rows = read_rows(str(path), limit=10)
    assert (rows.X == X).all() and rows.y is not None and list(rows.y) == [1, 0]


def test_large_file_is_sampled_to_the_limit(tmp_path: Path) -> None:
    X = np.column_stack([np.arange(1000.0) + 1, np.arange(1000.0) + 2])
    path = tmp_path / "fish.npy"
    datafiles.write(path, X, None)
    rows = load_rows(str(path), limit=100, seed=1)
    assert len(rows) == 100 and rows.y is None
    assert len(np.unique(rows.X[:, 0])) == 100  # without replacement
