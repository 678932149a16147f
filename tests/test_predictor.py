"""Predictor: caching, reload, the naive cache=False mode, labels, bad input."""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from fishpredict import (
    IntegrityError,
    InvalidInputError,
    ModelLoadError,
    Predictor,
    UnknownModelError,
    predictor,
)
from fishpredict.fish import training as artifacts
from fishpredict.fish.dataset import load_fish
from fishpredict.models import manifest
from fishpredict.models import store as modelsource


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    artifacts.save_models(tmp_path / "models", ks=(1, 5, 49))
    predictor.clear_cache()
    return tmp_path / "models"


def test_embedded_default_has_the_seed_models() -> None:
    p = Predictor()
    assert p.ks == [1, 5, 15, 25, 49]
    assert [m.name for m in p.models()] == ["knn-k1", "knn-k5", "knn-k15", "knn-k25", "knn-k49"]
    assert all(m.fast_path for m in p.models())
    assert p.predict(30.0, 600.0) == "bream"
    assert p.predict(10.0, 9.0, k=1) == "smelt"
    assert p.predict(10.0, 9.0, k=49) == "bream"  # every fish: the majority wins


def test_korean_labels() -> None:
    assert Predictor(labels="ko").predict(10.0, 9.0) == "빙어"
    assert Predictor().predict(30.0, 600.0, labels="ko") == "도미"
    with pytest.raises(InvalidInputError):
        Predictor(labels="fr")  # type: ignore[arg-type]


def test_pick_model_by_k_and_name() -> None:
    p = Predictor()
    assert p.model(15).name == "knn-k15"
    assert p.model("knn-k25").info.k == 25
    assert p.model(None).name == "knn-k5"
    with pytest.raises(UnknownModelError, match="loaded k: 1, 5, 15, 25, 49"):
        p.predict(30, 600, k=7)
    with pytest.raises(UnknownModelError, match="no model named 'nope'"):
        p.model("nope")


def test_predict_many_matches_sklearn_with_and_without_fast_path() -> None:
    fish = load_fish()
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(5, 45, 5000), rng.uniform(0, 1100, 5000)])
    fast, slow = Predictor(), Predictor(fast_path=False)
    assert not any(m.fast_path for m in slow.models())
    for k in fast.ks:
        assert fast.predict_many(X, k) == slow.predict_many(X, k)
        est = artifacts.train(k)
        expected = ["bream" if c == 1 else "smelt" for c in est.predict(X)]
        assert fast.predict_many(X, k) == expected
    assert fast.predict_many(fish.X, 1) == ["bream"] * 35 + ["smelt"] * 14


def test_cache_hit_unpickles_once(model_dir: Path) -> None:
    before = modelsource.load_count
    a = Predictor(model_dir)
    after_first = modelsource.load_count
    b = Predictor(model_dir)
    assert after_first - before == 3
    assert modelsource.load_count == after_first  # the second Predictor reused the cache
    assert a.model(5).estimator is b.model(5).estimator


def test_reload_picks_up_changed_files(model_dir: Path) -> None:
    p = Predictor(model_dir)
    assert p.reload() == []  # nothing changed
    old = p.model(5).info.sha256
    artifacts.save_models(model_dir, ks=(1, 5, 49), scale="standard")  # new names too
    changed = p.reload()
    assert "knn-k5-std" in changed
    assert p.model(5).info.sha256 != old


def test_reload_refuses_bad_file_and_keeps_serving(model_dir: Path) -> None:
    p = Predictor(model_dir)
    (model_dir / "knn-k5.joblib").write_bytes(b"garbage")
    with pytest.raises(IntegrityError, match="does not match the manifest"):
        p.reload()
    assert p.last_reload_error is not None
    assert p.predict(30, 600, k=5) == "bream"  # the old model keeps serving


def test_cache_false_unpickles_every_call(model_dir: Path) -> None:
    p = Predictor(model_dir, cache=False)
    before = modelsource.load_count
    for _ in range(4):
        assert p.predict(30, 600, k=5) == "bream"
    assert modelsource.load_count - before == 4
    e = Predictor(cache=False)  # embedded models: unpickled from their bytes
    before = modelsource.load_count
    e.predict(30, 600)
    e.predict_many([[30, 600]])
    assert modelsource.load_count - before == 2


@pytest.mark.parametrize(
    ("length", "weight", "message"),
    [
        (float("nan"), 1.0, "finite"),
        (1.0, math.inf, "finite"),
        (-1.0, 1.0, "negative"),
        ("abc", 1.0, "must be a number"),
        (None, 1.0, "must be a number"),
        (True, 1.0, "boolean"),
    ],
)
def test_bad_values(length: object, weight: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Predictor().predict(length, weight)


def test_numeric_strings_are_numbers() -> None:
    assert Predictor().predict("30", "600") == "bream"


@pytest.mark.parametrize(
    ("X", "message"),
    [
        ([[1.0, 2.0, 3.0]], "row 0 has 3 values; the model takes 2"),
        ([[1.0, float("nan")]], "feature 'weight': missing value"),
        ([[1.0, -2.0]], "feature 'weight': must not be negative"),
        ([["a", "b"]], "feature 'length': expected a number"),
        (np.zeros((2, 2, 2)), "shape"),
    ],
)
def test_bad_arrays(X: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Predictor().predict_many(X)


def test_empty_batch() -> None:
    assert Predictor().predict_many(np.empty((0, 2))) == []


def test_missing_and_corrupt_files(tmp_path: Path, model_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        Predictor(tmp_path / "nowhere")
    with pytest.raises(ModelLoadError, match=r"no manifest\.json"):
        Predictor(tmp_path)
    (model_dir / "knn-k1.joblib").unlink()
    with pytest.raises(ModelLoadError, match="model file not found"):
        Predictor(model_dir)


def test_sha_mismatch_is_refused(model_dir: Path) -> None:
    path = model_dir / "knn-k5.joblib"
    joblib.dump(artifacts.train(15), path)  # a valid model, but not the one vouched for
    with pytest.raises(IntegrityError, match="refusing to load"):
        Predictor(model_dir)


def test_unvouched_file_needs_trust(tmp_path: Path) -> None:
    path = tmp_path / "mine.joblib"
    joblib.dump(artifacts.train(3), path)
    with pytest.raises(IntegrityError, match="trust"):
        Predictor(path)
    p = Predictor(path, trust=True)
    assert p.model(None).info.k == 3
    # no manifest gives this file display names: its labels are the estimator's own
    assert p.predict(30, 600) == 1


def test_file_vouched_by_neighbouring_manifest(model_dir: Path) -> None:
    p = Predictor(model_dir / "knn-k49.joblib")
    assert p.model(None).info.k == 49


def _vouch(tmp_path: Path, obj: object) -> Path:
    d = tmp_path / "m"
    d.mkdir()
    joblib.dump(obj, d / "x.joblib")
    entry = manifest.ManifestEntry(name="x", file="x.joblib",
                                    sha256=manifest.sha256_file(d / "x.joblib"))
    manifest.write_manifest(d, [entry])
    return d


def test_pickle_that_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not hold a model"):
        Predictor(_vouch(tmp_path, {"not": "a model"}))


def test_any_feature_count_is_served(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.random((20, 3))
    est = LogisticRegression().fit(X, np.arange(20) % 2)
    p = Predictor(_vouch(tmp_path, est))
    assert p.signature().names == ("x0", "x1", "x2")
    assert p.predict_rows(X) == est.predict(X).tolist()
    with pytest.raises(InvalidInputError, match="row 0 has 2 values; the model takes 3"):
        p.predict_rows([[1.0, 2.0]])


def test_corrupt_vouched_file(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (d / "x.joblib").write_bytes(b"\x80\x04not really a pickle")
    manifest.write_manifest(d, [manifest.ManifestEntry(
        name="x", file="x.joblib", sha256=manifest.sha256_file(d / "x.joblib"))])
    with pytest.raises(ModelLoadError, match="not a readable"):
        Predictor(d)


def test_malformed_manifest(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{nope")
    with pytest.raises(ModelLoadError, match="cannot read"):
        Predictor(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"format": 1, "models": [{"name": "a", "file": "../etc/passwd", "sha256": "0"}]}))
    with pytest.raises(ModelLoadError, match="plain file name"):
        Predictor(tmp_path)


def test_other_estimators_served_through_predict(tmp_path: Path) -> None:
    fish = load_fish()
    est = LogisticRegression().fit(fish.X, fish.y)
    p = Predictor(_vouch(tmp_path, est))
    info = p.model(None).info
    assert info.k is None and info.estimator == "LogisticRegression"
    assert p.predict_many(fish.X) == est.predict(fish.X).tolist()


def test_thread_safe_under_concurrent_reload(model_dir: Path) -> None:
    p = Predictor(model_dir)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                assert p.predict(30, 600, k=5) == "bream"
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    # two readers spinning against four reloads (each file changes, the scaler comes
    # and goes): enough to interleave; more threads only contend for the GIL
    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(4):
        artifacts.save_models(model_dir, ks=(1, 5, 49), scale="standard" if i % 2 else None)
        p.reload()
    stop.set()
    for t in threads:
        t.join(10)
    assert errors == []


def test_usable_from_async_code() -> None:
    p = Predictor()

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        return await asyncio.gather(*[
            loop.run_in_executor(None, p.predict, 30.0, 600.0) for _ in range(8)])

    assert asyncio.run(main()) == ["bream"] * 8


def test_no_manifest_write_leaves_temp_files(model_dir: Path) -> None:
    assert not [f for f in os.listdir(model_dir) if f.startswith(".")]
