"""The manifest: a model directory's list of files, each vouched for by sha256.

``manifest.json`` in a model directory::

    {"format": 2, "created": "...", "models": [
        {"name": "iris-rf", "file": "iris-rf.joblib", "sha256": "...",
         "format": "joblib", "estimator": "RandomForestClassifier", "k": null,
         "classes": [0, 1, 2], "feature_names": ["sepal length (cm)", ...],
         "signature": {"features": [{"name": ..., "kind": "number", "minimum": 0}],
                       "allows_nan": false, "display": {"en": [...]}},
         "sklearn_version": "1.9.1", "created": "..."}]}

Loading a pickle runs code, so a pickle is loaded only when its sha256 matches
its entry here (or the caller trusts the file). ``signature`` completes what
the estimator tells of itself (see :mod:`fishpredict.models.signature`).
Format-1 manifests (written before signatures existed) are still read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from fishpredict.errors import ModelLoadError
from fishpredict.models import formats
from fishpredict.models.build import build
from fishpredict.models.signature import manifest_part

MANIFEST_NAME: Final = "manifest.json"
MANIFEST_FORMAT: Final = 2
READABLE_FORMATS: Final = (1, 2)


@dataclass(frozen=True)
class ManifestEntry:
    """One model in a manifest."""

    name: str
    file: str
    sha256: str
    k: int | None = None
    classes: list[Any] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)
    estimator: str = ""
    scale: str | None = None
    sklearn_version: str = ""
    created: str = ""
    format: str = ""
    signature: dict[str, Any] | None = None


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: a reader never
    sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_manifest(directory: str | os.PathLike[str], entries: Sequence[ManifestEntry]) -> Path:
    path = Path(directory) / MANIFEST_NAME
    doc = {"format": MANIFEST_FORMAT, "created": now(), "models": [asdict(e) for e in entries]}
    atomic_write(path, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode())
    return path


def has_manifest(directory: str | os.PathLike[str]) -> bool:
    return (Path(directory) / MANIFEST_NAME).is_file()


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
        if doc.get("format") not in READABLE_FORMATS:
            raise ModelLoadError(f"{path}: unsupported manifest format {doc.get('format')!r}")
        known = set(ManifestEntry.__dataclass_fields__)
        entries = [
            ManifestEntry(**{k: v for k, v in m.items() if k in known}) for m in doc["models"]
        ]
    except (AttributeError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{path}: malformed manifest ({exc})") from None
    names = [e.name for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ModelLoadError(f"{path}: model name {dupes[0]!r} is listed twice")
    for e in entries:
        if Path(e.file).name != e.file:
            raise ModelLoadError(f"{path}: model file {e.file!r} must be a plain file name")
        if e.signature is not None and not isinstance(e.signature, dict):
            raise ModelLoadError(f"{path}: the signature of {e.name!r} must be an object")
    return entries


def entry_for(path: Path) -> ManifestEntry | None:
    """The manifest entry of a model file, from the manifest beside it (if any)."""
    if not has_manifest(path.parent):
        return None
    try:
        entries = read_manifest(path.parent)
    except ModelLoadError:
        return None
    return next((e for e in entries if e.file == path.name), None)


def add_model(
    file: str | os.PathLike[str],
    to: str | os.PathLike[str],
    *,
    name: str | None = None,
    trust: bool = False,
    replace: bool = False,
    signature: Mapping[str, Any] | None = None,
) -> ManifestEntry:
    """Copy a model file into directory ``to`` (if it is not there) and list it in the
    manifest with its sha256 and signature (completed by ``signature``: feature names
    for a model fitted without them, kinds, bounds, display names of classes).

    The file is loaded first, to read its signature and to prove it is a model,
    so a pickle needs ``trust=True``. A name already listed is an error unless
    ``replace``.
    """
    src = Path(file)
    directory = Path(to)
    loaded = formats.read_model_file(src, None, trust=trust)
    model_name = name or src.stem
    directory.mkdir(parents=True, exist_ok=True)
    entries = read_manifest(directory) if has_manifest(directory) else []
    clash = next((e for e in entries if e.name == model_name), None)
    if clash is not None and not replace:
        raise ModelLoadError(
            f"{directory / MANIFEST_NAME} already lists a model named {model_name!r} "
            f"({clash.file}); pass --replace to replace it, or choose another --name"
        )
    target = directory / src.name
    if not target.exists() or target.resolve() != src.resolve():
        others = [e.name for e in entries if e.file == src.name and e.name != model_name]
        if target.exists() and sha256_file(target) != loaded.sha256 and (others or not replace):
            raise ModelLoadError(
                f"{target} already exists with other contents"
                + (f" (model {others[0]!r})" if others else "")
                + "; rename the file" + ("" if others else ", or pass --replace")
            )
        tmp = directory / f".{src.name}.adding"
        shutil.copyfile(src, tmp)
        os.replace(tmp, target)
    model = build(loaded.estimator, model_name, sha256=loaded.sha256, source=str(target),
                  format=loaded.format, manifest_signature=signature, fast_path=False)
    sig = model.signature
    entry = ManifestEntry(
        name=model_name,
        file=src.name,
        sha256=loaded.sha256,
        k=model.info.k,
        classes=list(sig.classes or ()),
        feature_names=list(sig.names),
        estimator=model.info.estimator,
        sklearn_version=model.info.sklearn_version,
        created=now(),
        format=loaded.format,
        signature=manifest_part(sig),
    )
    kept = [e for e in entries if e.name != model_name]
    write_manifest(directory, [*kept, entry])
    return entry


def remove_model(directory: str | os.PathLike[str], name: str, *,
                 keep_file: bool = False) -> ManifestEntry:
    """Take model ``name`` out of ``directory``'s manifest, and delete its file unless
    ``keep_file`` or another entry uses it. A server serving the directory stops
    serving it at its next reload."""
    d = Path(directory)
    entries = read_manifest(d)
    entry = next((e for e in entries if e.name == name), None)
    if entry is None:
        names = ", ".join(e.name for e in entries) or "none"
        raise ModelLoadError(f"{d / MANIFEST_NAME} lists no model named {name!r}; "
                             f"it lists: {names}")
    kept = [e for e in entries if e.name != name]
    write_manifest(d, kept)
    if not keep_file and not any(e.file == entry.file for e in kept):
        (d / entry.file).unlink(missing_ok=True)
    return entry
