"""Writing predictions: one CSV or Parquet file, or a directory of parts in the input's
row order; nothing under the final name until the job is complete."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

from fishpredict.errors import DataError
from fishpredict.tables import inputs as tables
from fishpredict.tables import writers as tablewriters
from fishpredict.tables.writers import PartitionedWriter, TableWriter, open_output, prediction_frame

FEATURES = ["width", "depth", "kind"]


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 9_000
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "width": rng.normal(0, 1, n),
            "depth": rng.normal(0, 1, n) * 1e-3 + 0.1,
            "kind": rng.integers(0, 3, n).astype(np.float64),
        }
    )
    frame["label"] = np.where(frame["width"] + 50 * frame["depth"] > 5, "deep", "shallow")
    frame.loc[frame["kind"] == 2, "label"] = "odd"
    return frame


@pytest.fixture(scope="module")
def model(data: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression(max_iter=500).fit(data[FEATURES].to_numpy(), data["label"])


def _input_dir(root: Path, data: pd.DataFrame) -> Path:
    """Three input files of different formats and sizes: the parts of the job."""
    src = root / "input"
    src.mkdir()
    data.iloc[:4000].to_parquet(src / "a-0.parquet")
    data.iloc[4000:4001].to_csv(src / "a-1.csv", index=False)
    data.iloc[4001:].to_parquet(src / "a-2.parquet", row_group_size=700)
    return src


@pytest.mark.parametrize("out_name", ["preds", "preds-csv/", "preds.csv", "preds.parquet"])
def test_a_bulk_job_writes_what_the_model_answers_in_row_order(
    tmp_path: Path, data: pd.DataFrame, model: LogisticRegression, out_name: str
) -> None:
    src = _input_dir(tmp_path, data)
    out = tmp_path / out_name
    kinds: dict[str, tables.Kind] = dict.fromkeys(FEATURES, "number")
    with open_output(out, "csv" if out_name.endswith("/") else None) as writer:
        for chunk in tables.iter_tables(src, [*FEATURES, "id"], chunk_rows=1024, kinds=kinds):
            X = chunk.data[FEATURES].to_numpy()
            frame = prediction_frame(
                model.predict(X),
                model.predict_proba(X),
                model.classes_,
                inputs=chunk.data[["id"]],
                index=chunk.data.index,
            )
            writer.write(frame, chunk.part)
    written = writer.committed
    assert written is not None and written.rows == len(data)
    files = tables.list_inputs(out)
    assert list(written.files) == files
    if out.suffix in (".csv", ".parquet"):
        assert files == [str(out)] and written.format == out.suffix[1:]
    else:
        names = [Path(f).name for f in files]
        fmt = "csv" if out_name.endswith("/") else "parquet"
        assert names == [f"part-0000{i}.{fmt}" for i in range(3)]  # one per input file
        assert tables.row_counts(out) == [
            (f, n) for f, n in zip(files, [4000, 1, 4999], strict=True)
        ]
    assert sorted(os.listdir(tmp_path)) == sorted(["input", out.name])  # nothing else left
    back = tables.read_table(out, kinds={"prediction": "string"})
    X_all = data[FEATURES].to_numpy()
    assert list(back.columns) == ["id", "prediction"] + [f"probability_{c}" for c in model.classes_]
    assert back["id"].tolist() == data["id"].tolist()
    assert back["prediction"].tolist() == model.predict(X_all).tolist()
    probabilities = back[[f"probability_{c}" for c in model.classes_]].to_numpy()
    assert np.array_equal(probabilities, model.predict_proba(X_all))  # float64 exactly


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_values_round_trip_exactly(tmp_path: Path, suffix: str) -> None:
    values = np.array([0.1 + 0.2, 1 / 3, 1e-300, -2.5e17, 5e-324, np.nan, 0.0, -0.0])
    labels = np.array([True, False] * 4)
    path = tmp_path / f"f{suffix}"
    with TableWriter(path) as writer:
        writer.write(prediction_frame(values).assign(flag=labels))
    back = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    got = back["prediction"].to_numpy(dtype=np.float64)
    assert np.array_equal(got, values, equal_nan=True)
    assert np.array_equal(np.signbit(got), np.signbit(values))
    assert back["flag"].tolist() == labels.tolist()


def test_parts_sort_by_name_past_ten(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with PartitionedWriter(out) as writer:
        for part in range(12):
            writer.write(prediction_frame(np.full(3, part)), part)
    files = sorted(os.listdir(out))
    assert files == [f"part-{i:05d}.parquet" for i in range(12)]
    assert tables.read_table(out)["prediction"].tolist() == [i for i in range(12) for _ in "abc"]


def _failing_frames(part: int) -> Iterator[pd.DataFrame]:
    yield prediction_frame(np.arange(5) + part)
    raise RuntimeError("the model fell over")


@pytest.mark.parametrize("out_name", ["out", "out.csv", "out.parquet"])
def test_a_failed_job_leaves_the_old_output_and_no_new_file(tmp_path: Path, out_name: str) -> None:
    out = tmp_path / out_name
    with open_output(out) as writer:
        writer.write(prediction_frame(["old"] * 4), 0)
    before = tables.read_table(out)["prediction"].tolist()
    with pytest.raises(RuntimeError, match="fell over"), open_output(out) as writer:
        writer.write(prediction_frame(["new"] * 2), 0)
        writer.write(prediction_frame(["new"] * 2), 1)
        raise RuntimeError("the model fell over")
    assert tables.read_table(out)["prediction"].tolist() == before == ["old"] * 4
    assert sorted(os.listdir(tmp_path)) == [out.name]
    with open_output(out) as writer:  # a complete job replaces the earlier output
        writer.write(prediction_frame(["new"]), 7)
    assert tables.read_table(out)["prediction"].tolist() == ["new"]
    assert sorted(os.listdir(tmp_path)) == [out.name]


def _worker_part(staging: str, part: int) -> tablewriters.TableOutput:
    frames = (prediction_frame(np.arange(part * 100, part * 100 + 50) + k * 50) for k in (0, 1))
    return tablewriters.write_part(staging, part, frames)


def test_workers_write_parts_in_parallel_into_staging(tmp_path: Path) -> None:
    out = tmp_path / "out"
    writer = PartitionedWriter(out)
    spawn = multiprocessing.get_context("spawn")  # no fork of a process with threads
    with ProcessPoolExecutor(max_workers=2, mp_context=spawn) as pool:
        results = list(pool.map(_worker_part, [str(writer.staging)] * 4, [3, 0, 2, 1]))
    assert [r.rows for r in results] == [100] * 4 and not out.exists()
    with pytest.raises(RuntimeError):
        tablewriters.write_part(writer.staging, 4, _failing_frames(4))
    assert sorted(p.name for p in writer.staging.iterdir()) == [  # no part 4, no temporary
        f"part-{i:05d}.parquet" for i in range(4)
    ]
    written = writer.commit()
    assert written.rows == 400 and not writer.staging.exists()
    assert tables.read_table(out)["prediction"].tolist() == list(range(400))


def test_empty_frames_still_name_the_columns(tmp_path: Path) -> None:
    empty = prediction_frame(np.array([], dtype=np.int64), np.empty((0, 2)), [0, 1])
    for name in ("e.csv", "e.parquet"):
        with TableWriter(tmp_path / name) as writer:
            writer.write(empty)
        assert tables.file_columns(tmp_path / name) == ["prediction", "probability_0",
                                                        "probability_1"]  # fmt: skip
        assert tables.count_rows(tmp_path / name) == 0
    assert pq.read_schema(tmp_path / "e.parquet").field("prediction").type == "int64"


def test_misuse_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unsupported output type '\.txt'"):
        TableWriter(tmp_path / "p.txt")
    with pytest.raises(DataError, match=r"cannot write .*nowhere"):
        TableWriter(tmp_path / "nowhere" / "p.csv")
    with pytest.raises(DataError, match="the suffix says csv, but parquet"):
        open_output(tmp_path / "p.csv", "parquet")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match=r"mine: exists and holds other files \(notes\.txt\)"):
        PartitionedWriter(tmp_path / "mine")
    slash = open_output(f"{tmp_path / 'd.csv'}{os.sep}")  # a trailing slash: a directory
    assert isinstance(slash, PartitionedWriter) and slash.format == "parquet"
    slash.discard()
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="exists and is not a directory"):
        PartitionedWriter(tmp_path / "file")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"

    writer = TableWriter(tmp_path / "p.parquet")
    writer.write(prediction_frame([1, 2]))
    with pytest.raises(ValueError, match="differ from the first"):
        writer.write(prediction_frame([1]).assign(extra=1))
    with pytest.raises(ValueError, match="does not fit the output's types"):
        writer.write(prediction_frame(["a"]))
    writer.discard()
    with pytest.raises(ValueError, match="no frame written"):
        TableWriter(tmp_path / "q.csv").commit()
    parts = PartitionedWriter(tmp_path / "parts")
    parts.write(prediction_frame([1]), 0)
    parts.write(prediction_frame([1]), 1)
    with pytest.raises(ValueError, match="part 0 is already written"):
        parts.write(prediction_frame([1]), 0)
    parts.discard()
    assert sorted(os.listdir(tmp_path)) == ["file", "mine"]


def test_prediction_frame_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match=r"probabilities must be \(rows, classes\) = \(2, 3\)"):
        prediction_frame([1, 2], np.ones((2, 2)), [0, 1, 2])
    with pytest.raises(ValueError, match="distinct names"):
        prediction_frame([1], np.ones((1, 2)), [1, "1"])
    with pytest.raises(ValueError, match=r"clash.*'prediction'"):
        prediction_frame([1], inputs=pd.DataFrame({"prediction": [0]}))
    frame = prediction_frame(
        ["a", "b"], [[0.5, 0.5], [0.1, 0.9]], ["a", "b"], inputs=pd.DataFrame({"id": [7, 8]}),
        index=pd.RangeIndex(100, 102),
    )  # fmt: skip
    assert list(frame.columns) == ["id", "prediction", "probability_a", "probability_b"]
    assert list(frame.index) == [100, 101] and frame["id"].tolist() == [7, 8]
