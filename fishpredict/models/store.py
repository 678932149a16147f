"""Where a Predictor's models come from: model files and directories, cached.

A *source* is a path and, optionally, the name to serve it under:

- a model file: one model, named by its manifest entry (a ``manifest.json``
  beside it that lists it) or else by its file stem;
- a directory with a ``manifest.json``: every model it lists;
- a directory without one: every model file in it, in name order, named by
  file stem (pickles then need ``trust``, as any unvouched pickle does);
- with a name (``NAME=PATH`` on the command line): the one model the path
  holds, under that name.

Loaded files are cached process-wide by identity (path, size, mtime, sha256,
fast path, manifest signature), so a reload or a second Predictor over the
same files loads nothing again.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fishpredict.errors import ModelLoadError
from fishpredict.models import formats, manifest
from fishpredict.models.build import build
from fishpredict.models.loaded import LoadedModel


@dataclass(frozen=True)
class Source:
    """One place models come from, and the name to serve its one model under."""

    path: Path
    name: str | None = None


def sources_of(models: Any) -> list[Source]:
    """The sources a Predictor's ``models`` argument names (``None``: none, embedded)."""
    if models is None:
        return []
    if isinstance(models, Source):
        return [models]
    if isinstance(models, (str, os.PathLike)):
        return [Source(Path(models))]
    if isinstance(models, Mapping):
        return [Source(Path(p), str(n)) for n, p in models.items()]
    if isinstance(models, Sequence):
        out: list[Source] = []
        for m in models:
            out.extend(sources_of(m))
        if not out:
            raise ModelLoadError("no model sources given")
        return out
    raise ModelLoadError(f"models must be a path, a list of paths or a mapping, not "
                         f"{type(models).__name__}")


# ---- the file cache -----------------------------------------------------------------

_Key = tuple[str, int, int, str, bool, str]
_cache: dict[_Key, LoadedModel] = {}
_lock = threading.Lock()
#: how many times a model file was deserialised in this process (tests, /metrics)
load_count: int = 0


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def load_file(
    path: Path,
    name: str,
    *,
    sha256: str | None,
    signature: Mapping[str, Any] | None,
    trust: bool,
    fast_path: bool,
) -> LoadedModel:
    """One model file, through the cache."""
    global load_count
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ModelLoadError(f"model file not found: {path}") from None
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc.strerror}") from None
    formats.format_of(path)  # an unknown suffix fails before anything is read
    digest = sha256 or manifest.sha256_file(path)
    sig_key = json.dumps(signature, sort_keys=True, default=str)
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, digest, fast_path, sig_key)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            return hit if hit.name == name else replace(hit, info=replace(hit.info, name=name))
        loaded = formats.read_model_file(path, sha256, trust=trust)
        load_count += 1
        model = build(
            loaded.estimator, name, sha256=loaded.sha256, source=str(path),
            format=loaded.format, manifest_signature=signature, fast_path=fast_path,
            path=str(path),
        )
        _cache[key] = model
        return model


def _from_manifest(directory: Path, *, trust: bool, fast_path: bool) -> list[LoadedModel]:
    entries = manifest.read_manifest(directory)
    if not entries:
        raise ModelLoadError(f"{directory / manifest.MANIFEST_NAME} lists no models")
    return [
        load_file(directory / e.file, e.name, sha256=e.sha256, signature=e.signature,
                  trust=trust, fast_path=fast_path)
        for e in entries
    ]


def _from_directory(directory: Path, *, trust: bool, fast_path: bool) -> list[LoadedModel]:
    files = sorted(p for p in directory.iterdir() if formats.is_model_file(p))
    if not files:
        raise ModelLoadError(
            f"{directory} holds no manifest.json and no model file "
            f"({', '.join(formats.SUFFIXES)})"
        )
    return [load_file(p, p.stem, sha256=None, signature=None, trust=trust, fast_path=fast_path)
            for p in files]


def load_source(source: Source, *, trust: bool, fast_path: bool) -> list[LoadedModel]:
    """The models one source holds."""
    path = source.path
    if path.is_dir():
        if manifest.has_manifest(path):
            models = _from_manifest(path, trust=trust, fast_path=fast_path)
        else:
            models = _from_directory(path, trust=trust, fast_path=fast_path)
    elif path.exists():
        entry = manifest.entry_for(path)
        models = [load_file(
            path, entry.name if entry else path.stem,
            sha256=entry.sha256 if entry else None,
            signature=entry.signature if entry else None,
            trust=trust, fast_path=fast_path,
        )]
    else:
        raise ModelLoadError(f"model path not found: {path}")
    if source.name is None:
        return models
    if len(models) != 1:
        raise ModelLoadError(
            f"{path} holds {len(models)} models; NAME=PATH needs a path with exactly one"
        )
    m = models[0]
    return [replace(m, info=replace(m.info, name=source.name))]


def reread(model: LoadedModel) -> LoadedModel:
    """``model`` with its estimator deserialised again (the seed's per-request load)."""
    global load_count
    if model.path:
        loaded = formats.read_model_file(model.path, model.info.sha256, trust=True)
        est = loaded.estimator
    else:
        import io

        import joblib

        est = joblib.load(io.BytesIO(model.blob))
    load_count += 1
    return model.with_estimator(est, None)
