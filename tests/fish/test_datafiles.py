"""Data files: formats round-trip, chunking, sampling, and a clear DataError for
every unusable file (in the library and through the CLI)."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fishpredict.cli import main
from fishpredict.errors import DataError
from fishpredict.fish import csvtext, synth
from fishpredict.fish import files as datafiles

SUFFIXES = [".csv", ".parquet", ".npy", ".npz"]


@pytest.fixture(scope="module")
def fish() -> tuple[np.ndarray, np.ndarray]:
    return synth.sample(20_000, seed=21)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("labelled", [True, False])
def test_round_trip(
    tmp_path: Path, fish: tuple[np.ndarray, np.ndarray], suffix: str, labelled: bool
) -> None:
    X, y = fish
    path = tmp_path / f"f{suffix}"
    written = datafiles.write(path, X, y if labelled else None)
    assert written.format == suffix[1:] and written.rows == len(X)
    X2, y2 = datafiles.read_all(path)
    assert X2.dtype == np.float64 and np.array_equal(X2, X)
    if labelled:
        assert y2 is not None and y2.dtype == np.int64 and np.array_equal(y2, y)
    else:
        assert y2 is None and written.bream is None
    assert datafiles.count_rows(path) == len(X)


def test_on_disk_layouts(tmp_path: Path, fish: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = fish
    datafiles.write(tmp_path / "f.csv", X[:3], y[:3])
    lines = (tmp_path / "f.csv").read_text().splitlines()
    names = {1: "bream", 0: "smelt"}
    assert lines[0] == "Length,Weight,Species"
    assert lines[1:] == [
        f"{a:.1f},{b:.1f},{names[int(c)]}" for (a, b), c in zip(X[:3], y[:3], strict=True)
    ]
    datafiles.write(tmp_path / "f.npy", X, y)
    arr = np.load(tmp_path / "f.npy")
    assert arr.shape == (len(X), 3) and np.array_equal(arr[:, 2], y)
    datafiles.write(tmp_path / "f.npz", X, y)
    with np.load(tmp_path / "f.npz") as z:
        assert set(z.files) == {"X", "y"} and np.array_equal(z["X"], X)
    datafiles.write_chunks(tmp_path / "f.parquet", [(X[:700], y[:700]), (X[700:], y[700:])], len(X))
    table = pq.read_table(tmp_path / "f.parquet")
    assert table.schema.names == ["Length", "Weight", "Species"]
    assert [str(t) for t in table.schema.types] == ["double", "double", "string"]
    assert np.array_equal(table.column("Weight").to_numpy(), X[:, 1])
    assert table.column("Species").to_pylist() == [names[int(c)] for c in y]
    assert pq.ParquetFile(tmp_path / "f.parquet").metadata.num_row_groups == 2  # one per chunk


def test_reads_files_numpy_wrote(tmp_path: Path, fish: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = fish
    np.save(tmp_path / "a.npy", X.astype(np.float32))  # other float types are fine
    np.savez_compressed(tmp_path / "b.npz", X=X, y=y.astype(np.uint8))
    assert np.allclose(datafiles.read_all(tmp_path / "a.npy")[0], X, rtol=1e-6)
    X2, y2 = datafiles.read_all(tmp_path / "b.npz")
    assert np.array_equal(X2, X) and y2 is not None and np.array_equal(y2, y)


def test_reads_parquet_pandas_wrote(tmp_path: Path, fish: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = fish
    frame = pd.DataFrame(
        {"species": np.where(y == 1, " Bream", "빙어"), "WEIGHT": X[:, 1], "length": X[:, 0]},
        index=pd.RangeIndex(5, 5 + len(X)) * 2,  # stored as __index_level_0__, ignored
    )
    frame.to_parquet(tmp_path / "a.parquet", row_group_size=3_000)
    frame.astype({"species": "category"}).to_parquet(tmp_path / "b.parquet")
    labels = frame.assign(species=y.astype(np.int8), length=X[:, 0].astype(np.float32))
    labels.to_parquet(tmp_path / "c.parquet")
    for name in ("a", "b"):
        X2, y2 = datafiles.read_all(tmp_path / f"{name}.parquet")
        assert np.array_equal(X2, X) and y2 is not None and np.array_equal(y2, y)
    X3, y3 = datafiles.read_all(tmp_path / "c.parquet")
    assert np.allclose(X3, X, rtol=1e-6) and y3 is not None and np.array_equal(y3, y)
    unlabelled = pa.table({"Length": pa.array(np.arange(10), pa.int32()), "Weight": [1.5] * 10})
    pq.write_table(unlabelled, tmp_path / "d.parquet")
    X4, y4 = datafiles.read_all(tmp_path / "d.parquet")
    assert X4.tolist() == [[float(i), 1.5] for i in range(10)] and y4 is None


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_reads_fortran_ordered_arrays(
    tmp_path: Path, fish: tuple[np.ndarray, np.ndarray], suffix: str
) -> None:
    X, y = fish
    columns = np.array([X[:, 0], X[:, 1], y]).T  # F-ordered, as np.save keeps it
    path = tmp_path / f"f{suffix}"
    if suffix == ".npy":
        np.save(path, columns)
    else:
        np.savez(path, X=np.asfortranarray(X), y=y)
    chunks = list(datafiles.iter_chunks(path, chunk_rows=3000))
    assert np.array_equal(np.concatenate([c[0] for c in chunks]), X)
    assert np.array_equal(np.concatenate([c[1] for c in chunks]), y)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_chunks_are_bounded_and_complete(
    tmp_path: Path, fish: tuple[np.ndarray, np.ndarray], suffix: str
) -> None:
    X, y = fish
    path = tmp_path / f"f{suffix}"
    datafiles.write(path, X[:1000], y[:1000])
    chunks = list(datafiles.iter_chunks(path, chunk_rows=333))
    assert [len(c[0]) for c in chunks] == [333, 333, 333, 1]
    assert np.array_equal(np.concatenate([c[0] for c in chunks]), X[:1000])


def test_csv_dialects(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    text = (
        '\ufeff"weight", LENGTH ,Species\r\n'
        "242.0,25.4,bream\r\n\r\n"
        '  6.7 ,9.8, "smelt"\r\n'
        "290,26.3,도미\r\n"
        "7.5,10.5,빙어\r\n"
        "   \r\n"
        "340,26.5, Bream \r\n"
        "1e1,11.0,0\r\n"
    )
    path.write_text(text, encoding="utf-8")
    for chunk_rows in (1, 3, 100):
        X, y = (
            datafiles.read_all(path)
            if chunk_rows == 100
            else (
                np.concatenate([c[0] for c in datafiles.iter_chunks(path, chunk_rows)]),
                np.concatenate([c[1] for c in datafiles.iter_chunks(path, chunk_rows)]),
            )
        )
        assert X.tolist() == [
            [25.4, 242.0],
            [9.8, 6.7],
            [26.3, 290.0],
            [10.5, 7.5],
            [26.5, 340.0],
            [11.0, 10.0],
        ]
        assert y is not None and y.tolist() == [1, 0, 1, 0, 1, 0]
    assert datafiles.count_rows(path) == 6


def test_csv_formatting_fast_path_matches_python() -> None:
    rng = np.random.default_rng(0)
    X = np.round(rng.uniform(0, 3000, (5000, 2)), 1)
    X[:4] = [[0.0, 0.1], [1.0, 9.9], [10.0, 99.9], [123456.7, 0.5]]
    y = rng.integers(0, 2, 5000)
    names = {1: "bream", 0: "smelt"}
    want = "".join(f"{a:.1f},{b:.1f},{names[int(c)]}\n" for (a, b), c in zip(X, y, strict=True))
    assert csvtext.format_rows(X, y).decode() == want
    assert csvtext.format_rows(X, None).decode() == "".join(f"{a:.1f},{b:.1f}\n" for a, b in X)


def test_csv_off_grid_values_round_trip_exactly(tmp_path: Path) -> None:
    X = np.array([[1 / 3, 2e-7], [123.456789, 1e17], [0.1 + 0.2, 5.0]])
    datafiles.write(tmp_path / "f.csv", X, np.array([1, 0, 1]))
    assert np.array_equal(datafiles.read_all(tmp_path / "f.csv")[0], X)


# ---- sampling ------------------------------------------------------------------------


def test_sample_is_reproducible_and_independent_of_chunks_and_format(
    tmp_path: Path, fish: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = fish
    samples = []
    for suffix, chunk_rows in [
        (".csv", 1000),
        (".npy", 77),
        (".npz", 10**6),
        (".parquet", 3001),
        (".npy", 4096),
    ]:
        path = tmp_path / f"f{suffix}"
        if not path.exists():
            datafiles.write(path, X, y)
        samples.append(datafiles.sample(path, 500, seed=3, chunk_rows=chunk_rows))
    for Xs, ys in samples[1:]:
        assert np.array_equal(Xs, samples[0][0]) and np.array_equal(ys, samples[0][1])
    other = datafiles.sample(tmp_path / "f.npy", 500, seed=4)
    assert not np.array_equal(other[0], samples[0][0])


def test_sample_is_without_replacement_in_file_order() -> None:
    n = 50_000
    X = np.c_[np.arange(n, dtype=np.float64), np.zeros(n)]
    chunks = [(X[i : i + 999], None) for i in range(0, n, 999)]
    drawn = datafiles.sample_chunks(chunks, 5_000, seed=8)
    picked = drawn.X[:, 0]
    assert drawn.population == n and drawn.y is None
    assert len(np.unique(picked)) == 5_000 and (np.diff(picked) > 0).all()
    # roughly uniform: each tenth of the file holds about a tenth of the sample
    counts = np.bincount((picked // (n // 10)).astype(int), minlength=10)
    assert counts.min() > 400 and counts.max() < 600
    everything = datafiles.sample_chunks(chunks, n, seed=8)
    assert np.array_equal(everything.X, X)


def test_sample_more_than_there_is(tmp_path: Path, fish: tuple[np.ndarray, np.ndarray]) -> None:
    path = tmp_path / "f.npy"
    datafiles.write(path, fish[0][:10], fish[1][:10])
    with pytest.raises(DataError, match=r"has 10 rows; cannot sample 11"):
        datafiles.sample(path, 11)


def test_cli_data_sample(
    tmp_path: Path, fish: tuple[np.ndarray, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    src, out = tmp_path / "all.csv", tmp_path / "part.npz"
    datafiles.write(src, *fish)
    assert (
        main(["data", "sample", "--data", str(src), "--n", "100", "--seed", "5", "--out", str(out)])
        == 0
    )
    assert "100 of 20,000 rows" in capsys.readouterr().out
    X, y = datafiles.read_all(out)
    ref_X, ref_y = datafiles.sample(src, 100, seed=5)
    assert np.array_equal(X, ref_X) and y is not None and np.array_equal(y, ref_y)


def test_cli_commands_take_parquet_by_suffix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full, part = tmp_path / "fish.parquet", tmp_path / "sample.parquet"
    assert main(["data", "generate", "--rows", "9000", "--seed", "2", "--out", str(full)]) == 0
    assert "(parquet," in capsys.readouterr().out
    X, y = datafiles.read_all(full)
    ref_X, ref_y = synth.sample(9000, seed=2)
    assert np.array_equal(X, ref_X) and y is not None and np.array_equal(y, ref_y)
    args = ["data", "sample", "--data", str(full), "--n", "3000", "--seed", "4", "--out", str(part)]
    assert main([*args, "--chunk-rows", "1000"]) == 0
    assert "3,000 of 9,000 rows" in capsys.readouterr().out
    Xs, ys = datafiles.read_all(part)
    ref = datafiles.sample_chunks(synth.generate(9000, seed=2), 3000, seed=4)
    assert np.array_equal(Xs, ref.X) and ys is not None and np.array_equal(ys, ref.y)
    assert main(["evaluate", "--data", str(part), "--k", "1,49", "--chunk-rows", "700"]) == 0
    table = capsys.readouterr().out
    share = f"{np.mean(ys == 1):.3%}"
    assert "3,000 rows" in table and "100.000%" in table and share in table


# ---- bad files -----------------------------------------------------------------------


def _text(content: str | bytes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")

    return make


def _npy(array: np.ndarray) -> Callable[[Path], None]:
    return lambda path: np.save(path, array, allow_pickle=True)


def _truncated_npy(path: Path) -> None:
    np.save(path, np.ones((100, 3)))
    path.write_bytes(path.read_bytes()[:-50])


def _npz(**arrays: np.ndarray) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        with open(path, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]

    return make


def _parquet(**columns: object) -> Callable[[Path], None]:
    return lambda path: pq.write_table(pa.table(columns), path)


def _truncated_parquet(path: Path) -> None:
    pq.write_table(pa.table({"Length": np.ones(1000), "Weight": np.ones(1000)}), path)
    path.write_bytes(path.read_bytes()[:-20])


HEADER = "Length,Weight,Species\n"
BAD_FILES: list[tuple[str, str, Callable[[Path], None] | None, str]] = [
    ("missing", "f.csv", None, "data file not found"),
    ("suffix", "f.txt", _text("x"), "unsupported file type '.txt'"),
    ("empty", "f.csv", _text(""), "empty file"),
    ("header only", "f.csv", _text(HEADER), "no data rows"),
    ("not a header", "f.csv", _text("25.4,242.0,bream\n"), "unexpected column '25.4'"),
    ("missing column", "f.csv", _text("Length,Species\n1,bream\n"), "no Weight column"),
    ("twice", "f.csv", _text("Length,Weight,length\n1,2,3\n"), "a column appears twice"),
    (
        "word",
        "f.csv",
        _text(HEADER + "1,2,bream\n3,heavy,smelt\n"),
        "line 3, column Weight: not a number: 'heavy'",
    ),
    (
        "empty cell",
        "f.csv",
        _text(HEADER + "1,2,bream\n,2,smelt\n"),
        "line 3, column Length: empty cell",
    ),
    (
        "species",
        "f.csv",
        _text(HEADER + "1,2,carp\n"),
        "line 2, column Species: unknown species 'carp'",
    ),
    ("cells", "f.csv", _text(HEADER + "1,2,bream\n1,2\n"), "line 3: expected 3 cells"),
    (
        "negative",
        "f.csv",
        _text(HEADER + "-1,2,bream\n"),
        "line 2, column Length: -1 is not a finite non-negative number",
    ),
    ("nan", "f.csv", _text(HEADER + "1,nan,bream\n"), "line 2, column Weight: nan is not"),
    ("latin-1", "f.csv", _text(b"Length,Weight,Species\n1,2,\xe9\n"), "not UTF-8 text"),
    ("directory", "d.csv", lambda p: p.mkdir(), "is a directory"),
    ("garbage npy", "f.npy", _text("hello"), "not a valid .npy array"),
    ("npy shape", "f.npy", _npy(np.ones((3, 4))), "expected an array of shape (n, 2)"),
    ("npy objects", "f.npy", _npy(np.array([[1, "a"]], dtype=object)), "holds object"),
    ("npy strings", "f.npy", _npy(np.array([["1", "2"]])), "expected plain numbers"),
    ("npy truncated", "f.npy", _truncated_npy, "file is truncated"),
    (
        "npy label",
        "f.npy",
        _npy(np.array([[1.0, 2.0, 1.0], [1.0, 2.0, 2.0]])),
        "row index 1: label 2 is not 1 (bream) or 0 (smelt)",
    ),
    ("npy inf", "f.npy", _npy(np.array([[1.0, np.inf]])), "row index 0, column weight: inf is not"),
    ("npz not zip", "f.npz", _text("PK?"), "not a .npz file"),
    ("npz no X", "f.npz", _npz(features=np.ones((2, 2))), "no array 'X' (found: features)"),
    (
        "npz y length",
        "f.npz",
        _npz(X=np.ones((3, 2)), y=np.ones(2)),
        "array y must have shape (3,)",
    ),
    ("npz X shape", "f.npz", _npz(X=np.ones(3)), "array X must have shape (n, 2)"),
    ("parquet garbage", "f.parquet", _text("hello, parquet"), "not a Parquet file"),
    ("parquet truncated", "f.parquet", _truncated_parquet, "not a Parquet file"),
    ("parquet directory", "d.parquet", lambda p: p.mkdir(), "is a directory"),
    (
        "parquet column",
        "f.parquet",
        _parquet(Length=[1.0], Weight=[2.0], Age=[3]),
        "unexpected column 'Age'; expected columns Length, Weight[, Species]",
    ),
    ("parquet no weight", "f.parquet", _parquet(Length=[1.0]), "no Weight column"),
    (
        "parquet twice",
        "f.parquet",
        _parquet(Length=[1.0], Weight=[2.0], weight=[3.0]),
        "a column appears twice ('Weight', 'weight')",
    ),
    (
        "parquet text",
        "f.parquet",
        _parquet(Length=["1"], Weight=[2.0]),
        "column Length holds string; expected numbers",
    ),
    (
        "parquet species type",
        "f.parquet",
        _parquet(Length=[1.0], Weight=[2.0], Species=[1.0]),
        "column Species holds double; expected species names or 1/0",
    ),
    (
        "parquet null",
        "f.parquet",
        _parquet(Length=[1.0, 2.0], Weight=[2.0, None]),
        "row index 1, column Weight: missing value",
    ),
    (
        "parquet negative",
        "f.parquet",
        _parquet(Length=[1.0, 2.0, -1.0], Weight=[2.0, 3.0, 4.0]),
        "row index 2, column Length: -1 is not a finite non-negative number",
    ),
    (
        "parquet nan",
        "f.parquet",
        _parquet(Length=[1.0], Weight=[float("nan")]),
        "row index 0, column Weight: nan is not a finite non-negative number",
    ),
    (
        "parquet species",
        "f.parquet",
        _parquet(Length=[1.0, 2.0], Weight=[2.0, 3.0], Species=["bream", "carp "]),
        "row index 1, column Species: unknown species 'carp'",
    ),
    (
        "parquet species null",
        "f.parquet",
        _parquet(Length=[1.0], Weight=[2.0], Species=pa.array([None], pa.string())),
        "row index 0, column Species: missing value",
    ),
    (
        "parquet label",
        "f.parquet",
        _parquet(Length=[1.0, 2.0], Weight=[2.0, 3.0], Species=[1, 2]),
        "row index 1, column Species: label 2 is not 1 (bream) or 0 (smelt)",
    ),
    (
        "parquet no rows",
        "f.parquet",
        _parquet(Length=pa.array([], pa.float64()), Weight=pa.array([], pa.float64())),
        "no data rows",
    ),
]


@pytest.mark.parametrize(
    ("name", "filename", "make", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES]
)
def test_bad_file_raises_data_error(
    tmp_path: Path, name: str, filename: str, make: Callable[[Path], None] | None, message: str
) -> None:
    path = tmp_path / filename
    if make is not None:
        make(path)
    with pytest.raises(DataError) as info:
        datafiles.read_all(path)
    text = str(info.value)
    assert message in text and str(path) in text and "\n" not in text


@pytest.mark.parametrize(
    ("name", "filename", "make", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES]
)
def test_bad_file_through_the_cli_is_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    filename: str,
    make: Callable[[Path], None] | None,
    message: str,
) -> None:
    path = tmp_path / filename
    if make is not None:
        make(path)
    code = main(
        ["data", "sample", "--data", str(path), "--n", "1", "--out", str(tmp_path / "out.csv")]
    )
    captured = capsys.readouterr()
    assert code != 0
    assert captured.err.count("\n") == 1 and message in captured.err
    assert captured.err.startswith("fishpredict data: error:")
    assert not (tmp_path / "out.csv").exists()


def test_error_line_numbers_count_across_chunks(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    rows = [f"{10 + i % 5}.0,{12 + i % 7}.5,smelt" for i in range(40)]
    rows[30] = "11.0,,smelt"
    path.write_text(HEADER + "\n".join(rows) + "\n")
    for chunk_rows in (1, 7, 1000):
        with pytest.raises(DataError, match=r"line 32, column Weight: empty cell"):
            list(datafiles.iter_chunks(path, chunk_rows))


def test_parquet_error_rows_count_across_batches_and_row_groups(tmp_path: Path) -> None:
    path = tmp_path / "f.parquet"
    weight = np.arange(5000, dtype=np.float64)
    weight[4321] = -3.0
    pq.write_table(pa.table({"Length": np.ones(5000), "Weight": weight}), path, row_group_size=999)
    for chunk_rows in (7, 1000, 4000, 10_000):
        with pytest.raises(DataError, match=r"row index 4321, column Weight: -3 is not"):
            list(datafiles.iter_chunks(path, chunk_rows))


def test_count_rows_of_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        datafiles.count_rows(tmp_path / "nope.npy")
    (tmp_path / "x.npz").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"not a \.npz file"):
        datafiles.count_rows(tmp_path / "x.npz")
    (tmp_path / "x.parquet").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"x\.parquet: not a Parquet file"):
        datafiles.count_rows(tmp_path / "x.parquet")


# ---- writing errors ------------------------------------------------------------------


def test_write_to_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cannot write .*nowhere"):
        datafiles.write(tmp_path / "nowhere" / "f.csv", np.ones((2, 2)))


def test_write_with_the_wrong_row_count_leaves_nothing(tmp_path: Path) -> None:
    chunk = (np.ones((5, 2)), np.ones(5, dtype=np.int64))
    for suffix in SUFFIXES:
        with pytest.raises(ValueError, match="rows"):
            datafiles.write_chunks(tmp_path / f"f{suffix}", [chunk, chunk], rows=7)
        with pytest.raises(ValueError, match="rows"):
            datafiles.write_chunks(tmp_path / f"f{suffix}", [chunk], rows=6)
    assert not list(tmp_path.iterdir())


def test_npz_is_stored_uncompressed(tmp_path: Path, fish: tuple[np.ndarray, np.ndarray]) -> None:
    datafiles.write(tmp_path / "f.npz", *fish)
    with zipfile.ZipFile(tmp_path / "f.npz") as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
