"""Tables of any model's columns: CSV, Parquet and .npy files, globs and directories,
read in chunks by column name, with a one-line DataError for every unusable input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fishpredict.errors import DataError
from fishpredict.tables import inputs as tables

ROWS = 10_000
KINDS: dict[str, tables.Kind] = {"size": "number", "colour": "string", "code": "string"}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """Numbers, strings that look like numbers or like null markers, and missing values."""
    rng = np.random.default_rng(3)
    size = rng.normal(10, 3, ROWS)
    size[[5, 4321, ROWS - 1]] = np.nan
    colour = rng.choice(np.array(["red", "green", "NA", "None", "a, b", 'say "hi"']), ROWS)
    colour = colour.astype(object)
    colour[[7, 8000]] = None
    code = rng.choice(np.array(["01", "1", "007"]), ROWS)
    return pd.DataFrame(
        {"extra": np.arange(ROWS), "code": code, "size": size, "colour": colour, "n": 2}
    )


def _write(df: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, row_group_size=3_333)
    return path


def _expected(df: pd.DataFrame, columns: list[str], start: int = 0) -> pd.DataFrame:
    want = df[columns].copy()
    for c in columns:
        if KINDS.get(c) == "string":
            want[c] = want[c].astype("str")
        elif KINDS.get(c) == "number":
            want[c] = want[c].astype(np.float64)
    want.index = pd.RangeIndex(start, start + len(want))
    return want


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_columns_by_name_in_any_order_across_chunks(
    tmp_path: Path, frame: pd.DataFrame, suffix: str
) -> None:
    path = _write(frame, tmp_path / f"t{suffix}")
    columns = ["colour", "size", "code"]  # not the file's order; extra and n are ignored
    chunks = list(tables.iter_tables(path, columns, chunk_rows=999, kinds=KINDS))
    assert [len(c) for c in chunks] == [999] * 10 + [10]
    assert [c.file_row for c in chunks] == [c.row for c in chunks] == list(range(0, ROWS, 999))
    assert {(c.source, c.part) for c in chunks} == {(str(path), 0)}
    for c in chunks:
        assert list(c.data.index) == list(range(c.row, c.row + len(c)))
    got = pd.concat([c.data for c in chunks])
    pd.testing.assert_frame_equal(got, _expected(frame, columns))
    assert got["code"].tolist()[:5] == frame["code"].tolist()[:5]  # "01" stays "01"
    assert got["colour"].isna().sum() == 2 and (got["colour"] == "NA").any()
    assert got["size"].isna().sum() == 3


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_without_kinds_pandas_infers(tmp_path: Path, frame: pd.DataFrame, suffix: str) -> None:
    path = _write(frame, tmp_path / f"t{suffix}")
    got = tables.read_table(path, ["size", "extra", "colour"])
    assert got["extra"].dtype == np.int64 and got["size"].dtype == np.float64
    assert got["colour"].fillna("<null>").tolist() == frame["colour"].fillna("<null>").tolist()


def test_columns_none_are_the_first_files(tmp_path: Path, frame: pd.DataFrame) -> None:
    _write(frame.iloc[:100], tmp_path / "a.csv")
    _write(frame.iloc[100:300][["n", "colour", "code", "extra", "size"]], tmp_path / "b.parquet")
    got = tables.read_table(tmp_path, kinds=KINDS)
    assert list(got.columns) == list(frame.columns)
    pd.testing.assert_frame_equal(got, _expected(frame.iloc[:300], list(frame.columns)))
    assert tables.file_columns(tmp_path / "b.parquet") == ["n", "colour", "code", "extra", "size"]


def test_names_match_ignoring_case_when_not_exact(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text("\ufeff Length ,Weight,Species,weight2\n25.4,242,bream,1\n")
    got = tables.read_table(tmp_path / "f.csv", ["length", "weight"], kinds={"length": "number"})
    assert list(got.columns) == ["length", "weight"] and got.values.tolist() == [[25.4, 242.0]]
    (tmp_path / "g.csv").write_text("a,A,b\n1,2,3\n")
    assert tables.read_table(tmp_path / "g.csv", ["A"]).values.tolist() == [[2]]  # exact wins
    with pytest.raises(DataError, match=r"g\.csv: column ' a' appears more than once \('a' and"):
        tables.read_table(tmp_path / "g.csv", [" a"])
    with pytest.raises(DataError, match=r"g\.csv: columns 'b' and 'B' both match column 'b'"):
        tables.read_table(tmp_path / "g.csv", ["b", "B"])


def test_glob_and_directory_in_natural_order(tmp_path: Path, frame: pd.DataFrame) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    bounds = [0, 1000, 1001, 4000, 7500, ROWS]
    names = ["part.0.parquet", "part.1.csv", "part.2.parquet", "part.10.csv", "part.9.parquet"]
    order = [0, 1, 2, 4, 3]  # part.9 before part.10
    for i, name in enumerate(names):
        k = order.index(i)
        _write(frame.iloc[bounds[k] : bounds[k + 1]], parts / name)
    (parts / "_SUCCESS").write_text("")
    (parts / ".part.11.csv.123.part").write_text("junk")
    (parts / "README.md").write_text("not data")
    (parts / "sub").mkdir()
    expected_files = [str(parts / names[i]) for i in order]
    assert tables.list_inputs(parts) == expected_files
    assert tables.list_inputs(parts / "part.*") == expected_files
    with pytest.raises(DataError, match=r"README\.md: unsupported file type '\.md'"):
        tables.list_inputs(parts / "*")
    for path in (parts, parts / "part.*"):
        chunks = list(tables.iter_tables(path, ["size", "colour"], chunk_rows=2048, kinds=KINDS))
        assert all(len(c) <= 2048 for c in chunks)
        for c in chunks:  # no chunk spans two files
            k = c.part
            assert c.source == expected_files[k] and c.row == bounds[k] + c.file_row
            assert c.row + len(c) <= bounds[k + 1]
        got = pd.concat([c.data for c in chunks])
        pd.testing.assert_frame_equal(got, _expected(frame, ["size", "colour"]))
    assert tables.row_counts(parts) == [
        (f, bounds[k + 1] - bounds[k]) for k, f in enumerate(expected_files)
    ]
    assert tables.count_rows(parts / "part.*") == ROWS


def test_npy_columns_are_named_by_the_caller_or_numbered(tmp_path: Path) -> None:
    a = np.random.default_rng(1).random((5_000, 3))
    np.save(tmp_path / "c.npy", a)
    np.save(tmp_path / "f.npy", np.asfortranarray(a.astype(np.float32)))
    got = tables.read_table(tmp_path / "c.npy", ["p", "q", "r"], kinds={"q": "number"})
    assert list(got.columns) == ["p", "q", "r"] and np.array_equal(got.to_numpy(), a)
    chunks = list(tables.iter_tables(tmp_path / "f.npy", chunk_rows=1_500))
    assert [len(c) for c in chunks] == [1500, 1500, 1500, 500]
    assert list(chunks[0].data.columns) == ["x0", "x1", "x2"]
    got_f = pd.concat([c.data for c in chunks]).to_numpy()
    assert np.array_equal(got_f, a.astype(np.float32).astype(np.float64))
    assert tables.file_columns(tmp_path / "c.npy") == ["x0", "x1", "x2"]
    assert tables.count_rows(tmp_path / "c.npy") == 5_000


def test_number_cells_nan_and_inf_text(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("a,b\n1.5,x\nnan,y\n-inf,\n,z\n 7 ,w\n")
    got = tables.read_table(path, ["a", "b"], kinds={"a": "number"})
    assert got["a"].tolist()[:3] == [1.5, pytest.approx(np.nan, nan_ok=True), -np.inf]
    assert np.isnan(got["a"][3]) and got["a"][4] == 7.0 and got["a"].dtype == np.float64
    assert got["b"].isna().tolist() == [False, False, True, False, False]
    other = tables.read_table(path, ["b"], nulls=("", "z"))
    assert other["b"].isna().tolist() == [False, False, True, True, False]


def test_parquet_types_are_converted_to_the_kinds(tmp_path: Path) -> None:
    table = pa.table(
        {
            "i": pa.array([1, None, 3], pa.int32()),
            "d": pa.array(["x", "y", None]).dictionary_encode(),
            "none": pa.array([None, None, None], pa.null()),
        }
    )
    pq.write_table(table, tmp_path / "f.parquet")
    kinds: dict[str, tables.Kind] = {"i": "number", "d": "string", "none": "number"}
    got = tables.read_table(tmp_path / "f.parquet", kinds=kinds)
    assert got["i"].dtype == np.float64 and got["i"].isna().tolist() == [False, True, False]
    assert got["d"].dtype == "str" and got["d"].tolist()[:2] == ["x", "y"]
    assert got["none"].dtype == np.float64 and got["none"].isna().all()
    undeclared = tables.read_table(tmp_path / "f.parquet", ["d"])
    assert undeclared["d"].dtype == "str"  # a dictionary column comes back as its values


# ---- errors --------------------------------------------------------------------------


def _text(content: str | bytes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")

    return make


def _parquet(**columns: object) -> Callable[[Path], None]:
    return lambda path: pq.write_table(pa.table(columns), path)


def _npy(array: np.ndarray) -> Callable[[Path], None]:
    return lambda path: np.save(path, array)


def _truncated_npy(path: Path) -> None:
    np.save(path, np.ones((100, 2)))
    path.write_bytes(path.read_bytes()[:-50])


def _many_rows(bad: str) -> Callable[[Path], None]:
    rows = [f"{i}.5,x" for i in range(5_000)]
    rows[3_210] = bad
    return _text("a,b\n" + "\n".join(rows) + "\n")


AB = ["a", "b"]
BAD: list[tuple[str, str, Callable[[Path], None] | None, list[str], str]] = [
    ("missing", "f.csv", None, AB, "data file not found"),
    ("suffix", "f.txt", _text("a\n1\n"), AB, "unsupported file type '.txt'"),
    ("empty", "f.csv", _text("\n\n"), AB, "empty file; expected a header row"),
    ("header only", "f.csv", _text("a,b\n"), AB, "no data rows"),
    ("no column", "f.csv", _text("a,c\n1,2\n"), AB, "no column 'b' (found: 'a', 'c')"),
    ("twice", "f.csv", _text("a,b,b\n1,2,3\n"), AB, "column 'b' appears more than once"),
    (
        "too many cells",
        "f.csv",
        _text("a,b\n1,x\n3,4\n5,6,7\n"),
        AB,
        "row index 2: expected 2 cells, found 3",
    ),
    (
        "too few cells",
        "f.csv",
        _text("a,b\n1,x\n3\n5,6\n"),
        AB,
        "row index 1: expected 2 cells, found 1",
    ),
    (
        "spaces only",
        "f.csv",
        _text("a,b\n1,x\n   \n"),
        AB,
        "row index 1: expected 2 cells, found 1",
    ),
    (
        "word after blank lines",
        "f.csv",
        _text("a,b\n1,x\n\n\n2,y\nheavy,z\n"),
        AB,
        "row index 2, column a: not a number: 'heavy'",
    ),
    ("latin-1", "f.csv", _text(b"a,b\n1,\xe9\n"), AB, "not UTF-8 text"),
    ("word", "f.csv", _many_rows("1.0_0,x"), AB, "row index 3210, column a: not a number: '1.0_0'"),
    ("bool", "f.csv", _text("a,b\nTrue,x\n"), AB, "row index 0, column a: not a number: 'True'"),
    ("directory", "d.csv", lambda p: p.mkdir(), AB, "no .csv, .parquet or .npy files"),
    ("no match", "nothing-*.csv", None, AB, "no files match"),
    ("parquet garbage", "f.parquet", _text("PAR1 hello"), AB, "not a Parquet file"),
    (
        "parquet no column",
        "f.parquet",
        _parquet(a=[1.0], c=[2.0]),
        AB,
        "no column 'b' (found: 'a', 'c')",
    ),
    (
        "parquet text",
        "f.parquet",
        _parquet(a=["1"], b=["x"]),
        AB,
        "column a holds string; expected numbers",
    ),
    (
        "parquet number as text",
        "f.parquet",
        _parquet(a=[1.0], b=[2]),
        AB,
        "column b holds int64; expected text",
    ),
    (
        "npy width",
        "f.npy",
        _npy(np.ones((3, 3))),
        ["a", "x"],
        "the array has 3 columns; expected 2 (a, x)",
    ),
    ("npy 1-d", "f.npy", _npy(np.ones(3)), ["a"], "expected a 2-D array (n, d), got shape (3,)"),
    ("npy text", "f.npy", _npy(np.ones((3, 2))), ["b", "a"], "column b is text, but a .npy"),
    ("npy truncated", "f.npy", _truncated_npy, ["a", "x"], "file is truncated"),
    ("npy garbage", "f.npy", _text("hello"), ["a", "x"], "not a valid .npy array"),
]


@pytest.mark.parametrize(
    ("name", "filename", "make", "columns", "message"), BAD, ids=[b[0] for b in BAD]
)
def test_bad_input_is_one_data_error_naming_the_file(
    tmp_path: Path,
    name: str,
    filename: str,
    make: Callable[[Path], None] | None,
    columns: list[str],
    message: str,
) -> None:
    path = tmp_path / filename
    if make is not None:
        make(path)
    with pytest.raises(DataError) as info:
        for _ in tables.iter_tables(
            path, columns, chunk_rows=1000, kinds={"a": "number", "b": "string"}
        ):
            pass
    text = str(info.value)
    assert message in text and str(path) in text and "\n" not in text


def test_a_missing_column_in_a_later_file_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "1.csv").write_text("a,b\n1,2\n")
    (tmp_path / "2.csv").write_text("b,c\n1,2\n")
    chunks = tables.iter_tables(tmp_path)
    first = next(chunks)
    assert first.data.values.tolist() == [[1, 2]]
    with pytest.raises(DataError, match=r"2\.csv: no column 'a' \(found: 'b', 'c'\)"):
        next(chunks)


def test_count_rows_is_exact_for_csv(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text('\n\na,b\n1,"two\nlines"\n\n3,4\n\n5,6\n')
    assert tables.count_rows(path) == len(tables.read_table(path)) == 3
    assert tables.read_table(path)["b"].tolist() == ["two\nlines", "4", "6"]
    (tmp_path / "short.csv").write_text("a,b\n1,2\n3\n")
    with pytest.raises(DataError, match=r"short\.csv: row index 1: expected 2 cells, found 1"):
        tables.count_rows(tmp_path / "short.csv")
    with pytest.raises(DataError, match="not found"):
        tables.count_rows(tmp_path / "nope.parquet")
    (tmp_path / "x.parquet").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"x\.parquet: not a Parquet file"):
        tables.count_rows(tmp_path / "x.parquet")


def test_bad_arguments(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="chunk_rows"):
        next(tables.iter_tables(tmp_path / "f.csv", chunk_rows=0))
    with pytest.raises(ValueError, match="kind of 'a'"):
        next(tables.iter_tables(tmp_path / "f.csv", kinds={"a": "int"}))  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="unique"):
        next(tables.iter_tables(tmp_path / "f.csv", ["a", "a"]))
