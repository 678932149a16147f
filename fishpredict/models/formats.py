"""Model files: joblib/pickle, skops and ONNX, each to an estimator with ``predict``.

========  ===================  ==============================================
suffix    format               what vouches for it
========  ===================  ==============================================
.joblib   joblib (a pickle)    a manifest's sha256, or ``trust=True``
.pkl      pickle               a manifest's sha256, or ``trust=True``
.pickle   pickle               a manifest's sha256, or ``trust=True``
.skops    skops                skops' own check: only types it trusts load
                               without a manifest entry or ``trust=True``;
                               otherwise refused, naming the untrusted types
.onnx     ONNX (onnxruntime)   nothing needed: a graph runs no Python code
========  ===================  ==============================================

A manifest's sha256, when there is one, is checked for every format before the
file is read any further.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fishpredict.errors import IntegrityError, ModelLoadError
from fishpredict.models.onnxmodel import OnnxModel

#: suffix -> format name
SUFFIXES: Final[dict[str, str]] = {
    ".joblib": "joblib",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".skops": "skops",
    ".onnx": "onnx",
}
FORMATS: Final[tuple[str, ...]] = ("joblib", "pickle", "skops", "onnx")


@dataclass(frozen=True)
class ModelFile:
    """A model read from a file: the estimator, its format and the file's sha256."""

    estimator: Any
    format: str
    sha256: str
    source: str


def format_of(path: str | os.PathLike[str]) -> str:
    """The format of a model file, from its suffix; :class:`ModelLoadError` if unknown."""
    suffix = Path(path).suffix.lower()
    try:
        return SUFFIXES[suffix]
    except KeyError:
        known = ", ".join(SUFFIXES)
        raise ModelLoadError(
            f"{path}: unknown model file type {suffix or '(no suffix)'!r}; known: {known}"
        ) from None


def is_model_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in SUFFIXES


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelLoadError(f"model file not found: {path}") from None
    except IsADirectoryError:
        raise ModelLoadError(f"{path} is a directory, not a model file") from None
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc.strerror}") from None


def _check_sha(path: Path, blob: bytes, expected: str | None) -> str:
    digest = sha256_bytes(blob)
    if expected is not None and digest != expected:
        raise IntegrityError(
            f"{path}: sha256 {digest[:12]}… does not match the manifest's "
            f"{expected[:12]}…; refusing to load it. If the file is a new version, record "
            f"it: fishpredict models add {path} --to {Path(path).parent} --name NAME "
            "--replace (--trust for a pickle)"
        )
    return digest


def check_estimator(obj: Any, source: str) -> Any:
    """``obj`` if it is a fitted model with ``predict``, else :class:`ModelLoadError`."""
    if not callable(getattr(obj, "predict", None)):
        raise ModelLoadError(f"{source} does not hold a model (got a {type(obj).__name__})")
    try:
        from sklearn.base import BaseEstimator
        from sklearn.utils.validation import check_is_fitted

        if isinstance(obj, BaseEstimator):
            check_is_fitted(obj)
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        pass
    except Exception:
        raise ModelLoadError(f"{source} holds an unfitted {type(obj).__name__}") from None
    return obj


def _load_pickle(path: Path, blob: bytes, expected: str | None, trust: bool) -> Any:
    if expected is None and not trust:
        raise IntegrityError(
            f"{path} has no manifest entry to vouch for it; loading a pickle runs code, "
            "so pass trust=True (--trust) only for files you made yourself"
        )
    import joblib

    try:
        return joblib.load(io.BytesIO(blob))
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            ImportError, IndexError, KeyError, OSError) as exc:
        raise ModelLoadError(f"{path} is not a readable joblib/pickle file ({exc})") from None


def _load_skops(path: Path, blob: bytes, expected: str | None, trust: bool) -> Any:
    try:
        import skops.io as sio
    except ImportError:
        raise ModelLoadError(
            f"{path}: reading .skops files needs skops (pip install 'fishpredict[skops]')"
        ) from None
    try:
        untrusted = sio.get_untrusted_types(data=blob)
    except Exception as exc:
        raise ModelLoadError(f"{path} is not a readable skops file ({exc})") from None
    if untrusted and expected is None and not trust:
        raise IntegrityError(
            f"{path}: skops does not trust the types {', '.join(untrusted)}; pass trust=True "
            "(--trust), or vouch for the file with a manifest entry, only if you made it"
        )
    try:
        return sio.loads(blob, trusted=untrusted)
    except Exception as exc:
        raise ModelLoadError(f"{path} is not a readable skops file ({exc})") from None


def _load_onnx(path: Path, blob: bytes) -> Any:
    return OnnxModel.from_bytes(blob, str(path))


def read_model_file(
    path: str | os.PathLike[str], expected_sha256: str | None = None, *, trust: bool = False
) -> ModelFile:
    """Read one model file in any supported format, checked before it is loaded.

    ``expected_sha256`` comes from a manifest; pickles and skops files with
    untrusted types need it or ``trust=True``.
    """
    p = Path(path)
    fmt = format_of(p)
    blob = _read(p)
    digest = _check_sha(p, blob, expected_sha256)
    if fmt in ("joblib", "pickle"):
        obj = _load_pickle(p, blob, expected_sha256, trust)
    elif fmt == "skops":
        obj = _load_skops(p, blob, expected_sha256, trust)
    else:
        obj = _load_onnx(p, blob)
    del blob  # no second copy of the model in memory
    return ModelFile(check_estimator(obj, str(p)), fmt, digest, str(p))
