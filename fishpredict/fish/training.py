"""The fish models: train them, save them with a manifest.

``fishpredict train`` writes one joblib file per k and a ``manifest.json``
(see :mod:`fishpredict.models.manifest`) whose entries carry the fish signature:
features ``length`` and ``weight`` (both ``>= 0``) and the species names.
Other models are added to a manifest with :func:`fishpredict.models.manifest.add_model`.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import joblib

from fishpredict.fish.dataset import FEATURES, FishData, fish_signature, load_fish
from fishpredict.models.build import build
from fishpredict.models.formats import sha256_bytes
from fishpredict.models.loaded import LoadedModel
from fishpredict.models.manifest import (
    ManifestEntry,
    atomic_write,
    now,
    write_manifest,
)

__all__ = [
    "DEFAULT_KS",
    "Scale",
    "build_knn",
    "describe",
    "dumps",
    "embedded_models",
    "model_name",
    "save_models",
    "train",
]

DEFAULT_KS: Final[tuple[int, ...]] = (1, 5, 15, 25, 49)

Scale = Literal["standard"] | None


def model_name(k: int, scale: Scale = None) -> str:
    """The conventional name of the KNN model with ``k`` neighbours."""
    return f"knn-k{k}" + ("-std" if scale == "standard" else "")


def build_knn(k: int, scale: Scale = None) -> Any:
    """An unfitted KNN classifier, optionally behind a StandardScaler."""
    # scikit-learn is imported here, not with the module: the bench's payloads and
    # ``fishpredict --help`` use model_name() and must start without it
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

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


def describe(
    estimator: Any, name: str, file: str, sha256: str, scale: Scale = None
) -> ManifestEntry:
    """The manifest entry of a fish model (with the fish signature)."""
    classes = [c.item() if hasattr(c, "item") else c for c in getattr(estimator, "classes_", [])]
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return ManifestEntry(
        name=name,
        file=file,
        sha256=sha256,
        k=int(final.n_neighbors),
        classes=classes,
        feature_names=list(FEATURES),
        estimator=type(estimator).__name__,
        scale=scale,
        sklearn_version=_sklearn_version(),
        created=now(),
        format="joblib",
        signature=fish_signature(),
    )


def _sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)


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


#: where the embedded models say they come from (``ModelInfo.source``)
EMBEDDED: Final = "embedded"

_embedded_lock = threading.Lock()
_embedded: dict[tuple[tuple[int, ...], str | None, bool], list[LoadedModel]] = {}


def embedded_models(
    ks: Sequence[int], scale: Scale, fast_path: bool
) -> list[LoadedModel]:
    """KNN fish classifiers trained in memory, one per k (cached per process)."""
    key = (tuple(ks), scale, fast_path)
    with _embedded_lock:
        if key not in _embedded:
            models = []
            for k in ks:
                est = train(k, scale=scale)
                blob = dumps(est)
                models.append(build(
                    est, model_name(k, scale), sha256=sha256_bytes(blob),
                    source=EMBEDDED, format="joblib", manifest_signature=fish_signature(),
                    fast_path=fast_path, blob=blob,
                ))
            _embedded[key] = models
        return _embedded[key]
