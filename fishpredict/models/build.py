"""From a fitted estimator to a :class:`~fishpredict.models.loaded.LoadedModel`.

Reads the signature (estimator + manifest; whether it takes missing values is asked
of the model itself, :mod:`fishpredict.models.probes`), compiles a fast path where one
exists and keeps it only if it answers exactly like the estimator on its
load-time check set, and records what was found in the model's info.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from fishpredict.errors import ModelLoadError
from fishpredict.models import fastpaths
from fishpredict.models.loaded import FastPath, LoadedModel, ModelInfo
from fishpredict.models.probes import accepts_missing
from fishpredict.models.signature import Signature, signature_of, with_manifest

log = logging.getLogger("fishpredict.models")


def neighbours_of(estimator: Any) -> int | None:
    """The ``n_neighbors`` of a KNN estimator (bare or last pipeline step), else None."""
    steps = getattr(estimator, "steps", None)
    final = steps[-1][1] if isinstance(steps, list) and steps else estimator
    k = getattr(final, "n_neighbors", None)
    return int(k) if isinstance(k, int) else None


def compile_fast(estimator: Any, signature: Signature, name: str = "") -> FastPath | None:
    """A verified fast path for ``estimator``, or None (the estimator answers)."""
    if not signature.numeric or signature.frame or not signature.features:
        return None
    try:
        fast = fastpaths.compile(estimator)
        if fast is None:
            return None
        wrong = fastpaths.verify(fast, estimator)
    except Exception as exc:  # a fast path must never stop a model from loading
        log.warning("model %s: fast path skipped (%s: %s)", name, type(exc).__name__, exc)
        return None
    if wrong:
        log.warning("model %s: fast path differs from the estimator on %d check rows; "
                    "serving through scikit-learn", name, wrong)
        return None
    return fast


def build(
    estimator: Any,
    name: str,
    *,
    sha256: str,
    source: str,
    format: str = "joblib",
    manifest_signature: Mapping[str, Any] | None = None,
    fast_path: bool = True,
    blob: bytes = b"",
    path: str | None = None,
) -> LoadedModel:
    """A loaded model from a fitted estimator; :class:`ModelLoadError` if its manifest
    contradicts it or it takes no features."""
    try:
        signature = with_manifest(signature_of(estimator), manifest_signature)
    except ValueError as exc:
        raise ModelLoadError(f"{source}: {exc}") from None
    if not signature.features:
        raise ModelLoadError(
            f"{source}: cannot tell how many features the model takes "
            "(no n_features_in_); list them in the manifest's signature"
        )
    if not signature.allows_nan and "allows_nan" not in (manifest_signature or {}):
        signature = replace(signature, allows_nan=accepts_missing(estimator, signature))
    fast = compile_fast(estimator, signature, name) if fast_path else None
    info = ModelInfo(
        name=name,
        estimator=type(estimator).__name__,
        sha256=sha256,
        source=source,
        signature=signature,
        format=format,
        fast_path=None if fast is None else fast.family,
        k=neighbours_of(estimator),
        sklearn_version=str(getattr(estimator, "__sklearn_version__", "") or ""),
    )
    return LoadedModel(info=info, estimator=estimator, fast=fast, blob=blob, path=path)
