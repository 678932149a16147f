"""The fish models: train them, save them with a manifest.

``fishpredict train`` writes one joblib file per k and a ``manifest.json``
(see :mod:`fishpredict.manifest`) whose entries carry the fish signature:
features ``length`` and ``weight`` (both ``>= 0``) and the species names.
Other models are added to a manifest with :func:`fishpredict.manifest.add_model`.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final, Literal

import joblib
import sklearn
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from .dataset import FEATURES, FishData, fish_signature, load_fish
from .manifest import (
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    ManifestEntry,
    atomic_write,
    now,
    read_manifest,
    sha256_file,
    write_manifest,
)

__all__ = [
    "DEFAULT_KS",
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "ManifestEntry",
    "Scale",
    "build_knn",
    "describe",
    "dumps",
    "model_name",
    "read_manifest",
    "save_models",
    "sha256_bytes",
    "sha256_file",
    "train",
    "write_manifest",
]

DEFAULT_KS: Final[tuple[int, ...]] = (1, 5, 15, 25, 49)

Scale = Literal["standard"] | None


def model_name(k: int, scale: Scale = None) -> str:
    """The conventional name of the KNN model with ``k`` neighbours."""
    return f"knn-k{k}" + ("-std" if scale == "standard" else "")


def build_knn(k: int, scale: Scale = None) -> Any:
    """An unfitted KNN classifier, optionally behind a StandardScaler."""
    knn = KNeighborsClassifier(n_neighbors=k)
    if scale == "standard":
        return Pipeline([("scale", StandardScaler()), ("knn", knn)])
    if scale is not None:
        raise ValueError(f"unknown scale {scale!r}; known: standard")
    return knn


def train(k: int, data: FishData | None = None, scale: Scale = None) -> Any:
    """Fit a KNN classifier with ``k`` neighbours on ``data`` (default: the 49 fish)."""
    data = data if data is not None else load_fish()
    if not 1 <= k <= len(data):
        raise ValueError(f"k must be between 1 and {len(data)} (the training set size), got {k}")
    return build_knn(k, scale).fit(data.X, data.y)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def describe(
    estimator: Any, name: str, file: str, sha256: str, scale: Scale = None
) -> ManifestEntry:
    """The manifest entry of a fish model (with the fish signature)."""
    classes = [c.item() if hasattr(c, "item") else c for c in getattr(estimator, "classes_", [])]
    final = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    return ManifestEntry(
        name=name,
        file=file,
        sha256=sha256,
        k=int(final.n_neighbors),
        classes=classes,
        feature_names=list(FEATURES),
        estimator=type(estimator).__name__,
        scale=scale,
        sklearn_version=sklearn.__version__,
        created=now(),
        format="joblib",
        signature=fish_signature(),
    )


def dumps(estimator: Any) -> bytes:
    """The joblib bytes of an estimator (what :func:`save_models` writes)."""
    buf = io.BytesIO()
    joblib.dump(estimator, buf)
    return buf.getvalue()


def save_models(
    out: str | os.PathLike[str],
    ks: Iterable[int] = DEFAULT_KS,
    scale: Scale = None,
    data: FishData | None = None,
) -> list[ManifestEntry]:
    """Train one model per k, write ``<name>.joblib`` files and ``manifest.json``.

    Files are written atomically (temp file + rename), so a server reloading
    the directory never sees half a file.
    """
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for k in ks:
        est = train(k, data, scale)
        name = model_name(k, scale)
        blob = dumps(est)
        file = f"{name}.joblib"
        atomic_write(out_dir / file, blob)
        entries.append(describe(est, name, file, sha256_bytes(blob), scale))
    write_manifest(out_dir, entries)
    return entries


