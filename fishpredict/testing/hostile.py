"""Hostile models: estimators that misbehave as real ones do, and real models at the edges.

Misbehaving (defined here, so a server process can unpickle them):

- :class:`DropsNegative` answers only the rows whose first value is not negative
  (a custom step that drops rows): its output is shorter than its input;
- :class:`Echo` answers each row's first value (a crossed answer shows at once);
- :class:`Divides` raises ``ZeroDivisionError`` on a row whose first value is 0;
- :class:`Unserialisable` answers objects JSON cannot carry;
- :class:`WrongProba` answers probabilities of the wrong shape.

At the edges (scikit-learn and onnxruntime themselves): a scaler + logistic pipeline
and a tree (values that overflow after scaling, or past float32), an imputer pipeline
(JSON ``null``), a HistGradientBoosting model on a pandas ``category`` column and an
encoder pipeline over category columns (labels as JSON strings), and ONNX files as
skl2onnx writes them by default (ZipMap, text labels) and without ZipMap.

:func:`build_hostile` trains them all (small, seeded); :func:`save_hostile` writes a
model directory with a manifest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from fishpredict.models.manifest import add_model


class _Fitted(BaseEstimator):  # type: ignore[misc]
    def fit(self, X: Any, y: Any = None) -> Any:
        self.n_features_in_ = np.asarray(X).shape[1]
        if y is not None and isinstance(self, ClassifierMixin):
            self.classes_ = np.unique(y)
        return self


class DropsNegative(RegressorMixin, _Fitted):  # type: ignore[misc]
    """Answers the first value of every row whose first value is not negative."""

    def predict(self, X: Any) -> Any:
        X = np.asarray(X, dtype=np.float64)
        return X[X[:, 0] >= 0, 0].copy()


class Echo(RegressorMixin, _Fitted):  # type: ignore[misc]
    """Answers each row's first value."""

    def predict(self, X: Any) -> Any:
        return np.asarray(X, dtype=np.float64)[:, 0].copy()


class Divides(RegressorMixin, _Fitted):  # type: ignore[misc]
    """Answers 1 / first value; a 0 raises ZeroDivisionError."""

    def predict(self, X: Any) -> Any:
        return np.array([1.0 / float(v) for v in np.asarray(X, dtype=np.float64)[:, 0]])


class Unserialisable(RegressorMixin, _Fitted):  # type: ignore[misc]
    """Answers an object per row that JSON cannot carry."""

    def predict(self, X: Any) -> Any:
        return np.array([object() for _ in range(len(X))], dtype=object)


class WrongProba(ClassifierMixin, _Fitted):  # type: ignore[misc]
    """A classifier whose probabilities have one column too many."""

    def predict(self, X: Any) -> Any:
        return np.full(len(X), self.classes_[0])

    def predict_proba(self, X: Any) -> Any:
        return np.full((len(X), len(self.classes_) + 1), 0.5)


@dataclass
class HostileModel:
    name: str
    estimator: Any  # what answers: a scikit-learn estimator, or an onnxruntime session
    X: Any = None  # rows to ask with (an array, or a DataFrame for frame models)
    file: str = ""  # the file written (set by save_hostile)
    onnx: bytes = b""  # the ONNX graph, for ONNX models


def _onnx(est: Any, X: Any, zipmap: bool) -> bytes:
    from skl2onnx import to_onnx

    options = None if zipmap else {id(est): {"zipmap": False}}
    blob: bytes = to_onnx(est, X[:1].astype(np.float32), options=options,
                          target_opset=17).SerializeToString()
    return blob


def build_hostile() -> list[HostileModel]:
    """Every hostile model, trained on small seeded data."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_iris
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.tree import DecisionTreeRegressor

    rng = np.random.default_rng(20)
    X = rng.normal(size=(120, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    out = [
        HostileModel("drops-negative", DropsNegative().fit(X)),
        HostileModel("echo", Echo().fit(X)),
        HostileModel("divides", Divides().fit(X)),
        HostileModel("unserialisable", Unserialisable().fit(X)),
        HostileModel("wrong-proba", WrongProba().fit(X, y)),
    ]
    for m in out:
        m.X = X[:8]
    small = X * 1e-3  # a tiny scale_: 1e308 overflows once scaled
    scaled = make_pipeline(StandardScaler(), LogisticRegression()).fit(small, y)
    tree = DecisionTreeRegressor(max_depth=4, random_state=0).fit(X, X[:, 0] * 2)
    gappy = X.copy()
    gappy[rng.random(gappy.shape) < 0.2] = np.nan
    imputer = make_pipeline(SimpleImputer(), LogisticRegression()).fit(gappy, y)
    out += [HostileModel("scaled-logistic", scaled, small[:8]),
            HostileModel("tree-regressor", tree, X[:8]),
            HostileModel("imputer-logistic", imputer, gappy[:8])]
    colours = pd.Categorical(rng.choice(["red", "green", "blue"], 120))
    frame = pd.DataFrame({"colour": colours, "size": X[:, 0]})
    target = (frame["colour"] == "red").to_numpy() | (X[:, 0] > 1)
    hgb = HistGradientBoostingClassifier(categorical_features="from_dtype", max_iter=15,
                                         random_state=0).fit(frame, target)
    encoder = make_pipeline(
        ColumnTransformer([("colour", OneHotEncoder(), ["colour"])], remainder="passthrough"),
        LogisticRegression()).fit(frame, target)
    out += [HostileModel("category-hgb", hgb, frame.iloc[:8]),
            HostileModel("category-encoder", encoder, frame.iloc[:8])]
    iris_X, iris_y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[iris_y]
    logistic = LogisticRegression(max_iter=500).fit(iris_X, names)
    forest = RandomForestClassifier(5, random_state=0).fit(iris_X, iris_y)
    rows = iris_X[::15]
    out += [HostileModel("onnx-text-zipmap", logistic, rows, onnx=_onnx(logistic, rows, True)),
            HostileModel("onnx-text-plain", logistic, rows, onnx=_onnx(logistic, rows, False)),
            HostileModel("onnx-forest-zipmap", forest, rows, onnx=_onnx(forest, rows, True))]
    return out


def save_hostile(models: list[HostileModel], directory: str | os.PathLike[str]) -> Path:
    """Write every model (joblib, or .onnx) into ``directory`` with a manifest."""
    import joblib

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    stage = d / ".files"
    stage.mkdir(exist_ok=True)
    for m in models:
        path = stage / (f"{m.name}.onnx" if m.onnx else f"{m.name}.joblib")
        if m.onnx:
            path.write_bytes(m.onnx)
        else:
            joblib.dump(m.estimator, path)
        add_model(path, d, name=m.name, trust=True)
        m.file = str(d / path.name)
    for p in stage.iterdir():
        p.unlink()
    stage.rmdir()
    return d
