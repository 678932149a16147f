"""Model artifacts: train, save, load, and the manifest that vouches for them.

A model directory holds one joblib file per model and a ``manifest.json``::

    {"format": 1, "created": "...", "models": [
        {"name": "knn-k5", "k": 5, "file": "knn-k5.joblib", "sha256": "...",
         "classes": [0, 1], "feature_names": ["length", "weight"],
         "estimator": "KNeighborsClassifier", "scale": null,
         "sklearn_version": "1.5.0", "created": "..."}]}

Loading a pickle runs code, so :func:`load_artifact` refuses a file whose
sha256 does not match the manifest, and a file with no manifest entry unless
the caller passes ``trust=True``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import joblib
import sklearn
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from .dataset import FEATURES, FishData, load_fish
from .errors import IntegrityError, ModelLoadError

MANIFEST_NAME: Final = "manifest.json"
MANIFEST_FORMAT: Final = 1
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


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def neighbours_of(estimator: Any) -> int | None:
    """The ``n_neighbors`` of a KNN estimator (bare or last pipeline step), else None."""
    final = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    k = getattr(final, "n_neighbors", None)
    return int(k) if isinstance(k, int) else None


@dataclass(frozen=True)
class ManifestEntry:
    """One model in a manifest."""

    name: str
    file: str
    sha256: str
    k: int | None = None
    classes: list[Any] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=lambda: list(FEATURES))
    estimator: str = ""
    scale: str | None = None
    sklearn_version: str = ""
    created: str = ""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def describe(
    estimator: Any, name: str, file: str, sha256: str, scale: Scale = None
) -> ManifestEntry:
    classes = [c.item() if hasattr(c, "item") else c for c in getattr(estimator, "classes_", [])]
    return ManifestEntry(
        name=name,
        file=file,
        sha256=sha256,
        k=neighbours_of(estimator),
        classes=classes,
        feature_names=list(FEATURES),
        estimator=type(estimator).__name__,
        scale=scale,
        sklearn_version=sklearn.__version__,
        created=_now(),
    )


def dumps(estimator: Any) -> bytes:
    """The joblib bytes of an estimator (what :func:`save_models` writes)."""
    buf = io.BytesIO()
    joblib.dump(estimator, buf)
    return buf.getvalue()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        _atomic_write(out_dir / file, blob)
        entries.append(describe(est, name, file, sha256_bytes(blob), scale))
    write_manifest(out_dir, entries)
    return entries


def write_manifest(directory: str | os.PathLike[str], entries: Sequence[ManifestEntry]) -> Path:
    path = Path(directory) / MANIFEST_NAME
    doc = {"format": MANIFEST_FORMAT, "created": _now(), "models": [asdict(e) for e in entries]}
    _atomic_write(path, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode())
    return path


def read_manifest(directory: str | os.PathLike[str]) -> list[ManifestEntry]:
    """The entries of ``directory/manifest.json``; :class:`ModelLoadError` if unusable."""
    path = Path(directory) / MANIFEST_NAME
    try:
        doc = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"no {MANIFEST_NAME} in {directory}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from None
    try:
        if doc.get("format") != MANIFEST_FORMAT:
            raise ModelLoadError(f"{path}: unsupported manifest format {doc.get('format')!r}")
        known = set(ManifestEntry.__dataclass_fields__)
        entries = [
            ManifestEntry(**{k: v for k, v in m.items() if k in known}) for m in doc["models"]
        ]
    except (AttributeError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{path}: malformed manifest ({exc})") from None
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ModelLoadError(f"{path}: duplicate model names")
    for e in entries:
        if Path(e.file).name != e.file:
            raise ModelLoadError(f"{path}: model file {e.file!r} must be a plain file name")
    return entries


def check_estimator(obj: Any, source: str) -> Any:
    """Raise :class:`ModelLoadError` unless ``obj`` is a fitted estimator with ``predict``."""
    if not callable(getattr(obj, "predict", None)):
        raise ModelLoadError(f"{source} does not hold a model (got a {type(obj).__name__})")
    final = obj.steps[-1][1] if isinstance(obj, Pipeline) else obj
    if not hasattr(final, "classes_") and not hasattr(final, "n_features_in_"):
        raise ModelLoadError(f"{source} holds an unfitted {type(obj).__name__}")
    n_in = getattr(obj, "n_features_in_", None)
    if n_in is not None and n_in != len(FEATURES):
        raise ModelLoadError(
            f"{source}: model expects {n_in} features, fishpredict serves {len(FEATURES)} "
            f"({', '.join(FEATURES)})"
        )
    return obj


def loads(blob: bytes, source: str) -> Any:
    """Unpickle joblib bytes already vouched for, and check they hold a model."""
    try:
        obj = joblib.load(io.BytesIO(blob))
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        ImportError,
        IndexError,
        KeyError,
        OSError,
    ) as exc:
        raise ModelLoadError(f"{source} is not a readable joblib/pickle file ({exc})") from None
    return check_estimator(obj, source)


def read_verified(
    path: str | os.PathLike[str], expected_sha256: str | None, *, trust: bool
) -> bytes:
    """Read a model file's bytes and check them against ``expected_sha256``.

    With no expected hash the file is refused unless ``trust`` is true.
    """
    try:
        blob = Path(path).read_bytes()
    except FileNotFoundError:
        raise ModelLoadError(f"model file not found: {path}") from None
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc.strerror}") from None
    digest = sha256_bytes(blob)
    if expected_sha256 is None:
        if not trust:
            raise IntegrityError(
                f"{path} has no manifest entry to vouch for it; loading a pickle runs code, "
                "so pass trust=True (--trust) only for files you made yourself"
            )
    elif digest != expected_sha256:
        raise IntegrityError(
            f"{path}: sha256 {digest[:12]}… does not match the manifest's "
            f"{expected_sha256[:12]}…; refusing to unpickle it"
        )
    return blob


def load_artifact(
    path: str | os.PathLike[str], expected_sha256: str | None = None, *, trust: bool = False
) -> Any:
    """Load one model file, verified against ``expected_sha256`` (or trusted)."""
    return loads(read_verified(path, expected_sha256, trust=trust), str(path))
