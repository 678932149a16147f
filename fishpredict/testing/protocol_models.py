"""Three models for the protocol tests (V2 and V1, in process and with real clients).

``wine-pipeline``: StandardScaler + LogisticRegression on the wine data, with
text labels (a classifier pipeline: ``BYTES`` labels, probabilities).
``habitat-frame``: a ColumnTransformer pipeline on a DataFrame with a text
column (one tensor per feature). ``diabetes-forest``: a 20-tree random forest
regressor. Trained and written to a manifest directory once per process.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from fishpredict.fish.training import save_models
from fishpredict.testing.zoo import ZooModel, _habitat_frame, save_zoo

CLASSIFIER = "wine-pipeline"
FRAME = "habitat-frame"
REGRESSOR = "diabetes-forest"


@functools.cache
def protocol_models() -> tuple[dict[str, ZooModel], Path]:
    """The three models by name, and the directory they are saved in."""
    from sklearn import datasets
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    Xw, yw = datasets.load_wine(return_X_y=True)
    wine_names = np.array(["barolo", "grignolino", "barbera"], dtype=object)[yw]
    Xd, yd = datasets.load_diabetes(return_X_y=True)
    frame, frame_y = _habitat_frame()
    numeric = [c for c in frame.columns if c != "habitat"]
    models = [
        ZooModel(CLASSIFIER, make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
                 .fit(Xw, wine_names), Xw),
        ZooModel(FRAME, make_pipeline(
            ColumnTransformer([("num", StandardScaler(), numeric),
                               ("cat", OneHotEncoder(handle_unknown="error"), ["habitat"])]),
            LogisticRegression(max_iter=2000)).fit(frame, frame_y), frame),
        ZooModel(REGRESSOR, RandomForestRegressor(20, random_state=0).fit(Xd, yd), Xd),
    ]
    directory = Path(tempfile.mkdtemp(prefix="fishpredict-protocol-models-"))
    save_zoo(models, directory)
    return {m.name: m for m in models}, directory


def rows(name: str, n: int = 12) -> Any:
    """``n`` rows of a model's training data spread over the whole set (array or DataFrame)."""
    m = protocol_models()[0][name]
    idx = np.linspace(0, len(m.X) - 1, n).astype(int)
    return m.X.iloc[idx].reset_index(drop=True) if m.frame else np.asarray(m.X)[idx]


@functools.cache
def fuzz_models() -> Path:
    """Models for fuzzing the served spec, one of each task, whose estimators take every
    finite value (a forest's float32 cast or a scaler's overflow refuses huge values
    with a 400 ``model_refused`` no spec can foretell): the fish KNN ``knn-k5`` (the
    default: ``/fish`` and ``/predict`` take its rows), ``diabetes-ridge`` (a
    regressor) and ``habitat-logistic`` (a DataFrame pipeline with a text column)."""
    from sklearn import datasets
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    Xd, yd = datasets.load_diabetes(return_X_y=True)
    frame, frame_y = _habitat_frame()
    numeric = [c for c in frame.columns if c != "habitat"]
    models = [
        ZooModel("diabetes-ridge", Ridge(alpha=0.5).fit(Xd, yd), Xd),
        ZooModel("habitat-logistic", make_pipeline(
            ColumnTransformer([("num", "passthrough", numeric),
                               ("cat", OneHotEncoder(handle_unknown="error"), ["habitat"])]),
            LogisticRegression(max_iter=3000)).fit(frame, frame_y), frame),
    ]
    directory = Path(tempfile.mkdtemp(prefix="fishpredict-fuzz-models-"))
    save_models(directory, ks=(5,))
    save_zoo(models, directory)
    return directory
