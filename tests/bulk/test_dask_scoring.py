"""fishpredict.bulk.dask on a real distributed.LocalCluster of 2 worker processes.

One cluster serves the whole module. Every answer is compared with the
Predictor's on the same rows: a forest, a DataFrame pipeline with a text
column and the fish models, read from CSV, Parquet and .npy inputs cut into
several parts. Also: the model is deserialised once per worker (counted on
the workers), a bad row stops the job with one line and leaves no output, a
scheduler address nobody answers is one line.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from distributed import Client, LocalCluster  # noqa: E402

from fishpredict.bulk import dask as dask_scoring  # noqa: E402
from fishpredict.bulk.dask import score_files, score_frame  # noqa: E402
from fishpredict.errors import (  # noqa: E402
    DataError,
    FishpredictError,
    InvalidInputError,
    SchedulerError,
)
from fishpredict.fish import training as artifacts  # noqa: E402
from fishpredict.models import manifest  # noqa: E402
from fishpredict.predictor import Predictor  # noqa: E402
from fishpredict.tables import inputs as tables  # noqa: E402

ROWS = 2_400
COLOURS = ("red", "green", "blue")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Client]:
    import dask

    with dask.config.set(dask_scoring.LOCAL_WORKER_CONFIG), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False},
                      silence_logs=logging.ERROR) as lc, Client(lc) as client:
        client.wait_for_workers(2, timeout=60)
        yield client


def _fit_models(directory: Path) -> Path:
    """forest, pipeline and knn-k5 in one directory with a manifest."""
    import joblib
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    artifacts.save_models(directory, ks=(5,))
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(600, 4)), columns=list("abcd"))
    forest = RandomForestClassifier(20, random_state=0).fit(X, (X.a + X.b > 0).astype(int))
    frame = _pipeline_rows(600, rng)
    pipe = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), ["size", "weight"]),
                           ("cat", OneHotEncoder(), ["colour"])]),
        LogisticRegression(max_iter=500),
    ).fit(frame, np.where(frame["size"] > 0, "big", "small"))
    staging = directory.parent / "staging"
    staging.mkdir()
    for name, est in (("forest", forest), ("pipeline", pipe)):
        path = staging / f"{name}.joblib"
        joblib.dump(est, path)
        manifest.add_model(path, directory, name=name, trust=True)
    return directory


def _pipeline_rows(n: int, rng: np.random.Generator) -> Any:
    return pd.DataFrame({"size": rng.normal(size=n), "weight": rng.uniform(1, 9, n),
                         "colour": np.asarray(COLOURS, dtype=object)[rng.integers(0, 3, n)]})


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dask")
    _fit_models(root / "models")
    return root


@pytest.fixture(scope="module")
def forest_npy(work: Path) -> str:
    """The forest's rows in one .npy file."""
    return _write_input(_rows("forest", seed=3), "npy", work / "in-forest")


@pytest.fixture(scope="module")
def predictor(work: Path) -> Predictor:
    return Predictor(work / "models")


def _rows(model: str, seed: int) -> Any:
    rng = np.random.default_rng(seed)
    if model == "forest":
        return pd.DataFrame(rng.normal(size=(ROWS, 4)), columns=list("abcd"))
    if model == "pipeline":
        return _pipeline_rows(ROWS, rng)
    return pd.DataFrame({"length": rng.uniform(8, 45, ROWS), "weight": rng.uniform(5, 1000, ROWS)})


def _write_input(frame: Any, fmt: str, directory: Path) -> str:
    """The rows as an input of several parts: two CSV files, a Parquet file of many row
    groups, or a .npy file; returns the PATH to give score_files."""
    directory.mkdir(parents=True)
    if fmt == "csv":
        half = len(frame) // 2
        renamed = frame.rename(columns=str.capitalize)  # Length,Weight: matched ignoring case
        renamed.iloc[:half].assign(id=range(half)).to_csv(directory / "in-1.csv", index=False)
        renamed.iloc[half:].to_csv(directory / "in-2.csv", index=False)
        return str(directory)
    if fmt == "parquet":
        frame.to_parquet(directory / "in.parquet", row_group_size=300)
        return str(directory / "*.parquet")
    np.save(directory / "in.npy", frame.to_numpy(dtype=np.float64))
    return str(directory / "in.npy")


def _read_output(out: Path) -> Any:
    return tables.read_table(out)


CASES = [(m, f) for m in ("forest", "pipeline", "knn-k5") for f in ("csv", "parquet", "npy")
         if not (m == "pipeline" and f == "npy")]


@pytest.mark.parametrize(("model", "fmt"), CASES)
def test_answers_equal_the_predictors(
    cluster: Client, work: Path, predictor: Predictor, model: str, fmt: str
) -> None:
    frame = _rows(model, seed=len(model) + len(fmt))
    data = _write_input(frame, fmt, work / f"in-{model}-{fmt}")
    out = work / f"out-{model}-{fmt}"
    summary = score_files(models=work / "models", model=model, data=data, out=out,
                          scheduler=cluster.scheduler.address, proba=True, labels="en",
                          partition_rows=1_000, progress=False)
    parts = sorted(out.iterdir())
    expected_parts = {"csv": 2, "parquet": 2, "npy": 3}[fmt]
    assert [p.name for p in parts] == [f"part-{i:05d}.parquet" for i in range(expected_parts)]
    assert summary["rows"] == ROWS and summary["files"] == expected_parts
    assert summary["workers"] == 2 and summary["seconds"] > 0
    got = _read_output(out)
    assert list(got["prediction"]) == predictor.predict_rows(frame, model)
    classes = predictor.signature(model).classes
    assert list(got.columns) == ["prediction", *(f"probability_{c}" for c in classes)]
    np.testing.assert_array_equal(got.iloc[:, 1:].to_numpy(), predictor.predict_proba(frame, model))


def test_raw_values_and_csv_parts(cluster: Client, work: Path, predictor: Predictor) -> None:
    frame = _rows("knn-k5", seed=5)
    data = _write_input(frame, "npy", work / "in-raw")
    out = work / "out-raw.csv"  # the name's suffix picks CSV parts
    score_files(models=work / "models", model=5, data=data, out=out,
                scheduler=cluster.scheduler.address, partition_rows=700, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [f"part-{i:05d}.csv" for i in range(4)]
    m = predictor.model(5)
    expected = m.predict_values(predictor.rows(frame, 5))
    assert list(_read_output(out)["prediction"]) == list(expected)
    assert set(expected) == {0, 1}, "the estimator's classes, not display names"


def test_the_model_is_deserialised_once_per_worker(cluster: Client, work: Path) -> None:
    from fishpredict.models import store as modelsource

    def loads() -> tuple[int, int]:
        from fishpredict.bulk import dask_tasks
        from fishpredict.models import store as modelsource

        return dask_tasks.worker_loads, modelsource.load_count

    before = cluster.run(loads)
    frame = _rows("forest", seed=99)
    fresh = work / "models-fresh"  # a model file no worker has loaded yet
    fresh.mkdir()
    src = work / "models" / "forest.joblib"
    (work / "fresh.joblib").write_bytes(src.read_bytes())  # the same model in a new file
    manifest.add_model(work / "fresh.joblib", fresh, name="fresh", trust=True)
    data = _write_input(frame, "parquet", work / "in-once")
    summary = score_files(models=fresh, model="fresh", data=data, out=work / "out-once",
                          scheduler=cluster.scheduler.address, partition_rows=300,
                          progress=False)
    assert summary["files"] == 8, "8 parts for 2 workers"
    after = cluster.run(loads)
    new_models = {w: after[w][0] - before[w][0] for w in after}
    new_files = {w: after[w][1] - before[w][1] for w in after}
    assert sum(new_models.values()) >= 1
    assert all(n <= 1 for n in new_models.values()), new_models
    assert new_files == new_models, "each load deserialised the file once, through the cache"
    assert modelsource.load_count >= 1  # the client loaded it too, to check it


def test_a_bad_row_stops_the_job_with_one_line(cluster: Client, work: Path) -> None:
    frame = _rows("knn-k5", seed=7)
    frame.loc[1_733, "weight"] = -3.0
    data = _write_input(frame, "parquet", work / "in-bad")
    out = work / "out-bad"
    out.mkdir()
    (out / "part-00000.parquet").write_bytes(b"an earlier run's output")
    with pytest.raises(InvalidInputError) as info:
        score_files(models=work / "models", model="knn-k5", data=data, out=out,
                    scheduler=cluster.scheduler.address, partition_rows=300, progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{work / 'in-bad' / 'in.parquet'}: row index 1733, feature "
                              "'weight': must not be negative"), message
    assert [p.name for p in out.iterdir()] == ["part-00000.parquet"], "the earlier output stays"
    assert (out / "part-00000.parquet").read_bytes() == b"an earlier run's output"
    assert not [p for p in work.iterdir() if p.name.startswith(".out-bad")], "no staging left"


def test_a_bad_csv_cell_names_file_row_and_column(cluster: Client, work: Path) -> None:
    directory = work / "in-badcsv"
    frame = _rows("forest", seed=8)
    data = _write_input(frame, "csv", directory)
    lines = (directory / "in-2.csv").read_text().splitlines()
    lines[41] = "0.5,x1,0.5,0.5"  # data row index 40 of the second file
    (directory / "in-2.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"in-2\.csv: row index 40, column b: not a number"):
        score_files(models=work / "models", model="forest", data=data, out=work / "out-badcsv",
                    scheduler=cluster.scheduler.address, progress=False)
    assert not (work / "out-badcsv").exists()


def test_a_pipeline_refuses_an_unknown_category_by_row(cluster: Client, work: Path) -> None:
    frame = _rows("pipeline", seed=9)
    frame.loc[2_222, "colour"] = "mauve"
    data = _write_input(frame, "parquet", work / "in-mauve")
    with pytest.raises(InvalidInputError,
                       match=r"in\.parquet: row index 2222, feature 'colour': unknown category"):
        score_files(models=work / "models", model="pipeline", data=data,
                    out=work / "out-mauve", scheduler=cluster.scheduler.address,
                    partition_rows=1_000, progress=False)
    assert not (work / "out-mauve").exists()


def test_score_frame_takes_dask_dataframes_and_arrays(
    cluster: Client, work: Path, predictor: Predictor
) -> None:
    import dask.array as da
    import dask.dataframe as dd

    frame = _rows("forest", seed=11)
    ddf = dd.from_pandas(frame, npartitions=3)
    summary = score_frame(ddf, work / "models", model="forest", out=work / "out-ddf",
                          proba=True, client=cluster, progress=False)
    assert summary["files"] == 3 and summary["rows"] == ROWS
    got = _read_output(work / "out-ddf")
    assert list(got["prediction"]) == predictor.predict_rows(frame, "forest")
    np.testing.assert_array_equal(got.iloc[:, 1:].to_numpy(),
                                  predictor.predict_proba(frame, "forest"))

    X = frame.to_numpy().copy()
    X[1_500, 2] = np.inf
    arr = da.from_array(X, chunks=(500, 2))  # column chunks are joined
    with pytest.raises(InvalidInputError, match=r"^array: row index 1500, feature 'c': values "
                                                r"must be finite"):
        score_frame(arr, work / "models", model="forest", out=work / "out-arr",
                    client=cluster, progress=False)
    X[1_500, 2] = 0.0
    summary = score_frame(da.from_array(X, chunks=(500, 2)), work / "models", model="forest",
                          out=work / "out-arr", client=cluster, progress=False)
    assert summary["files"] == 5
    assert list(_read_output(work / "out-arr")["prediction"]) == predictor.predict_rows(
        X, "forest")


def test_a_missing_scheduler_is_one_clear_line(work: Path, forest_npy: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    started = time.monotonic()
    with pytest.raises(SchedulerError) as info:
        score_files(models=work / "models", model="forest", data=forest_npy,
                    out=work / "out-nobody", scheduler=f"127.0.0.1:{port}", progress=False)
    assert time.monotonic() - started < 30
    message = str(info.value)
    assert "\n" not in message and f"no Dask scheduler answers at 127.0.0.1:{port}" in message
    assert isinstance(info.value, FishpredictError)
    assert not (work / "out-nobody").exists()
    assert not [p for p in work.iterdir() if p.name.startswith(".out-nobody")]


def test_bad_arguments_fail_before_any_work(work: Path, forest_npy: str) -> None:
    with pytest.raises(SchedulerError, match="at least one worker"), \
            dask_scoring.open_client("local:0"):
        pass
    with pytest.raises(InvalidInputError, match="the name says csv, but parquet"):
        score_files(models=work / "models", model="forest", data=forest_npy,
                    out=work / "x.csv", scheduler="local:1", format="parquet")
    with pytest.raises(InvalidInputError, match="gives no probabilities"):
        import joblib
        from sklearn.linear_model import Ridge

        Xr = np.arange(20.0).reshape(10, 2)
        joblib.dump(Ridge().fit(Xr, Xr[:, 0]), work / "ridge.joblib")
        score_files(models=work / "ridge.joblib", model=None, data=forest_npy,
                    out=work / "out-ridge", scheduler="local:1", proba=True, trust=True)
    assert not (work / "out-ridge").exists() and not (work / "x.csv").exists()


def test_local_scheduler_starts_its_own_cluster(work: Path, predictor: Predictor,
                                                capfd: pytest.CaptureFixture[str]) -> None:
    frame = _rows("knn-k5", seed=13)
    data = _write_input(frame, "npy", work / "in-local")
    summary = score_files(models=work / "models", model="knn-k5", data=data,
                          out=work / "out-local", scheduler="local:1", labels="ko")
    assert summary["workers"] == 1 and summary["rows"] == ROWS
    got = list(_read_output(work / "out-local")["prediction"])
    assert got == predictor.predict_rows(frame, "knn-k5", labels="ko")
    assert "scoring" not in capfd.readouterr().err, "no progress bar when not a terminal"


def test_the_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    """fishpredict.perf.dask on a few rows: both runs score everything, equally."""
    from fishpredict.perf import dask as bench

    lines: list[str] = []
    result = bench.run(rows=3_000, say=lines.append, work_dir=str(tmp_path))
    assert result["one_process"]["rows"] == result["cluster"]["rows"] == 3_000
    assert result["cluster_small"]["rows"] == 300
    assert result["verdicts"]["equal_answers"] is True
    assert len(result["cluster"]["worker_peak_rss"]) == 2
    assert all(0 < p < 4 * bench.TARGET_WORKER_BYTES for p in result["cluster"]["worker_peak_rss"])
    text = "\n".join(lines)
    assert "speed-up" in text and "peak RSS per worker" in text and "CPU s" in text
    assert list(tmp_path.iterdir()) == [], "the work directory is cleaned up"
