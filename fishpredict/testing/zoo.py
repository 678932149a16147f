"""A zoo of scikit-learn models, trained on the datasets scikit-learn ships.

The any-model suite (:mod:`fishpredict.testing.models_suite`) serves the zoo on
every backend and checks each answer against the estimator itself. Every
family the fast paths cover is here (KNN, linear, scaler + linear, trees,
forests, extra trees), next to models only scikit-learn answers (gradient
boosting, an SVC, an MLP, polynomial features, a DataFrame pipeline with a
text column, a model that accepts missing values, a model that refuses some
rows). Training takes a few seconds; no download.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fishpredict.models import manifest


class RefuseNegative:
    """A transformer that refuses any negative value (a model that raises on some rows)."""

    def fit(self, X: Any, y: Any = None) -> RefuseNegative:
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X: Any) -> Any:
        arr = np.asarray(X, dtype=np.float64)
        if (arr < 0).any():
            raise ValueError("negative values are not allowed in this pipeline")
        return arr

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        return self.fit(X, y).transform(X)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {}

    def set_params(self, **params: Any) -> RefuseNegative:
        return self


@dataclass
class ZooModel:
    """One trained model of the zoo and rows to ask it about."""

    name: str
    estimator: Any
    X: Any  # rows as the estimator takes them (array or DataFrame)
    fmt: str = "joblib"
    #: manifest signature overrides (bounds ...)
    signature: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def frame(self) -> bool:
        return hasattr(self.X, "columns")

    def rows(self, n: int = 24) -> Any:
        """The first rows to check, plus a few perturbed ones (not training points)."""
        if self.frame:
            return self.X.iloc[:n].reset_index(drop=True)
        rng = np.random.default_rng(len(self.name))
        base = np.asarray(self.X[:n], dtype=np.float64)
        jitter = base[: n // 2] * (1 + rng.normal(0, 0.05, base[: n // 2].shape))
        return np.vstack([base, jitter])


def _datasets() -> dict[str, tuple[Any, Any]]:
    from sklearn import datasets

    return {
        "iris": datasets.load_iris(return_X_y=True),
        "wine": datasets.load_wine(return_X_y=True),
        "cancer": datasets.load_breast_cancer(return_X_y=True),
        "diabetes": datasets.load_diabetes(return_X_y=True),
        "digits": datasets.load_digits(return_X_y=True),
    }


def _habitat_frame() -> tuple[Any, Any]:
    """Iris as a DataFrame with a text column, and string labels."""
    import pandas as pd
    from sklearn import datasets

    iris = datasets.load_iris(as_frame=True)
    frame = iris.frame.drop(columns=["target"])
    habitats = np.array(["marsh", "river", "lake"], dtype=object)
    frame["habitat"] = habitats[(np.arange(len(frame)) * 7) % 3]
    labels = np.asarray(iris.target_names)[iris.target]
    return pd.DataFrame(frame), labels


def build_zoo() -> list[ZooModel]:
    """Train every model of the zoo (deterministic: fixed seeds)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import (
        ExtraTreesRegressor,
        GradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import (
        MinMaxScaler,
        OneHotEncoder,
        PolynomialFeatures,
        StandardScaler,
    )
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    d = _datasets()
    Xi, yi = d["iris"]
    Xw, yw = d["wine"]
    Xc, yc = d["cancer"]
    Xd, yd = d["diabetes"]
    Xg, yg = d["digits"]
    wine_names = np.array(["barolo", "grignolino", "barbera"], dtype=object)[yw]
    iris_bounds = {"features": [{"name": f"x{i}", "minimum": 0.0} for i in range(4)]}
    Xnan = Xd.copy()
    Xnan[::7, 2] = np.nan
    frame, frame_y = _habitat_frame()
    numeric = [c for c in frame.columns if c != "habitat"]
    seed = 0
    train: list[tuple[str, Callable[[], Any], Any, dict[str, Any]]] = [
        ("iris-forest", lambda: RandomForestClassifier(30, random_state=seed).fit(Xi, yi), Xi,
         {"signature": iris_bounds}),
        ("iris-knn", lambda: KNeighborsClassifier(7, weights="distance").fit(Xi, yi), Xi, {}),
        ("iris-poly-logistic", lambda: make_pipeline(
            PolynomialFeatures(2), LogisticRegression(max_iter=2000)).fit(Xi, yi), Xi, {}),
        ("wine-scaled-logistic", lambda: make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=2000)).fit(Xw, wine_names), Xw,
         {"fmt": "skops"}),
        ("cancer-tree", lambda: DecisionTreeClassifier(max_depth=6, random_state=seed)
         .fit(Xc, yc == 1), Xc, {}),
        ("cancer-boosting", lambda: GradientBoostingClassifier(
            n_estimators=20, random_state=seed).fit(Xc, yc), Xc, {}),
        ("cancer-minmax-knn", lambda: make_pipeline(MinMaxScaler(), KNeighborsClassifier(5))
         .fit(Xc, yc), Xc, {}),
        ("diabetes-ridge", lambda: Ridge(alpha=0.5).fit(Xd, yd), Xd, {"fmt": "skops"}),
        ("diabetes-forest", lambda: RandomForestRegressor(20, random_state=seed).fit(Xd, yd),
         Xd, {}),
        ("diabetes-extra-trees", lambda: ExtraTreesRegressor(20, random_state=seed)
         .fit(Xd, yd), Xd, {}),
        ("diabetes-hist-boosting-nan", lambda: HistGradientBoostingRegressor(
            max_iter=30, random_state=seed).fit(Xnan, yd), Xnan, {}),
        ("digits-svc", lambda: SVC(gamma=0.001).fit(Xg, yg), Xg, {}),
        ("digits-mlp", lambda: MLPClassifier((32,), max_iter=300, random_state=seed)
         .fit(Xg / 16.0, yg), Xg / 16.0, {}),
        ("habitat-frame", lambda: make_pipeline(
            ColumnTransformer([("num", StandardScaler(), numeric),
                               ("cat", OneHotEncoder(handle_unknown="error"), ["habitat"])]),
            LogisticRegression(max_iter=2000)).fit(frame, frame_y), frame, {}),
        ("iris-refusing", lambda: make_pipeline(RefuseNegative(), LogisticRegression(
            max_iter=2000)).fit(Xi, yi), Xi, {}),
    ]
    import warnings

    zoo = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of the small MLP
        for name, fit, X, extra in train:
            zoo.append(ZooModel(name, fit(), X, **extra))
    return zoo


def save_zoo(zoo: list[ZooModel], directory: str | os.PathLike[str]) -> Path:
    """Write every model to ``directory`` and list it in the manifest (as
    ``fishpredict models add`` does); returns the directory."""
    import joblib

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    staging = out / ".staging"
    staging.mkdir(exist_ok=True)
    for m in zoo:
        if m.fmt == "skops":
            import skops.io as sio

            path = staging / f"{m.name}.skops"
            sio.dump(m.estimator, path)
        else:
            path = staging / f"{m.name}.joblib"
            joblib.dump(m.estimator, path)
        manifest.add_model(path, out, name=m.name, trust=True, signature=m.signature)
        path.unlink()
    staging.rmdir()
    return out
