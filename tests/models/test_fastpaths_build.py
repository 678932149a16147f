"""Fast paths as the loader uses them: compiled and checked in ``build``, dropped when
they differ, answering through ``LoadedModel`` exactly what the estimator answers."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

from fishpredict.models import build as build_mod
from fishpredict.models import fastpaths
from fishpredict.models.rows import Rows
from fishpredict.testing.zoo import ZooModel, build_zoo

FAMILIES = {
    "iris-forest": "forest",
    "iris-knn": "knn",
    "wine-scaled-logistic": "linear",
    "cancer-tree": "tree",
    "cancer-minmax-knn": "knn",
    "diabetes-ridge": "linear",
    "diabetes-forest": "forest",
    "diabetes-extra-trees": "forest",
}


@pytest.fixture(scope="module")
def zoo() -> list[ZooModel]:
    return build_zoo()


def loaded(m: ZooModel, fast_path: bool = True) -> build_mod.LoadedModel:
    return build_mod.build(m.estimator, m.name, sha256="0" * 64, source=m.name,
                           fast_path=fast_path)


def test_every_family_of_the_zoo_gets_its_fast_path(zoo: list[ZooModel]) -> None:
    for m in zoo:
        model = loaded(m)
        assert model.info.fast_path == FAMILIES.get(m.name), m.name


def test_loaded_models_answer_as_the_estimator(zoo: list[ZooModel]) -> None:
    for m in zoo:
        if m.name not in FAMILIES:
            continue
        model = loaded(m)
        X = np.ascontiguousarray(m.rows(40), dtype=np.float64)
        rows = Rows(len(X), array=X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = m.estimator.predict(X)
        got = model.predict_values(rows)
        if model.is_classifier:
            assert list(got) == list(want), m.name
            assert [model.predict_row_code(x) for x in X] == list(model.codes_of(want))
            if model.has_proba:
                diff = model.predict_proba(rows) - m.estimator.predict_proba(X)
                assert np.abs(diff).max() <= 1e-12, m.name
        else:
            assert np.array_equal(np.asarray(got, dtype=np.float64), want), m.name


def test_a_fast_path_that_differs_is_dropped(zoo: list[ZooModel],
                                             monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    tree = next(m for m in zoo if m.name == "cancer-tree")
    real = fastpaths.compile

    def broken(estimator: object) -> object:
        fast = real(estimator)
        assert fast is not None
        wrong = 1 - fast._codes_arr  # type: ignore[attr-defined]
        fast._leaf_codes = wrong.data  # type: ignore[attr-defined]  # one-row answers flip
        return fast

    monkeypatch.setattr(fastpaths, "compile", broken)
    with caplog.at_level(logging.WARNING, logger="fishpredict.models"):
        model = loaded(tree)
    assert model.fast is None and model.info.fast_path is None
    assert "differs from the estimator" in caplog.text


def test_a_fast_path_that_raises_while_compiling_is_skipped(
        zoo: list[ZooModel], monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(estimator: object) -> object:
        raise RuntimeError("no")

    monkeypatch.setattr(fastpaths, "compile", boom)
    assert loaded(zoo[0]).fast is None


def test_fast_path_off_means_none(zoo: list[ZooModel]) -> None:
    assert loaded(zoo[0], fast_path=False).fast is None


def test_unknown_estimators_compile_to_none() -> None:
    class Odd:
        def predict(self, X: np.ndarray) -> np.ndarray:
            return np.zeros(len(X))

    assert fastpaths.compile(Odd()) is None
