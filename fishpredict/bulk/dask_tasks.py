"""What runs on a Dask worker: the model loaded once per process, parts scored.

A task carries a :class:`ModelRef` (the model file's path, sha256 and
signature: a few hundred bytes), never the model. :func:`worker_model` loads
the file on a worker's first task, through :func:`fishpredict.models.store.load_file`
(which checks the sha256), compares the signature with the client's, and keeps
the model in a per-process cache keyed by sha256; :data:`worker_loads` counts
the loads (one per model per worker process).

:func:`score_file_part` (an input file's part, :mod:`fishpredict.bulk.dask_parts`)
and :func:`score_block` (a Dask DataFrame's partition or an array's block of
rows) read their rows in chunks, check each chunk against the model's
signature and answer it as :class:`~fishpredict.predictor.Predictor` does
(:mod:`fishpredict.models.rows`, then the
:class:`~fishpredict.models.loaded.LoadedModel` with its fast path), and write
one output part into the job's staging directory with
:func:`~fishpredict.tables.writers.write_part`. A bad row is an
:class:`~fishpredict.errors.InvalidInputError` naming the file (or partition),
the row index there and the feature.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fishpredict.bulk import dask_parts
from fishpredict.bulk.dask_parts import FilePart
from fishpredict.bulk.located import at_file_row
from fishpredict.errors import (
    FishpredictError,
    InvalidInputError,
    ModelFailedError,
    ModelLoadError,
)
from fishpredict.fish.training import embedded_models
from fishpredict.models import manifest
from fishpredict.models import rows as rowslib
from fishpredict.models import store as modelsource
from fishpredict.models.loaded import LoadedModel
from fishpredict.models.signature import Signature
from fishpredict.predictor import Predictor
from fishpredict.tables.inputs import CHUNK_ROWS
from fishpredict.tables.writers import prediction_frame, write_part

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ModelRef", "Options", "model_ref", "score_block", "score_chunk", "score_file_part",
           "worker_loads", "worker_model"]



# ---- the model, shipped by reference -------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    """What a worker needs to load the model the client chose: small, picklable."""

    name: str
    sha256: str
    #: the model file (None: an embedded fish model, trained on the worker)
    path: str | None
    signature: Signature
    #: the signature its manifest gives (as the client's Predictor read it)
    manifest_signature: Mapping[str, Any] | None = None
    k: int | None = None
    trust: bool = False
    fast_path: bool = True


def model_ref(
    models: Any, model: str | int | None = None, *, trust: bool = False, fast_path: bool = True
) -> tuple[ModelRef, LoadedModel]:
    """The model ``model`` of ``models`` (what :class:`Predictor` takes), loaded here once
    to check it and read its signature, and the reference a worker loads it by.

    Here it is loaded without its fast path (the client predicts nothing; compiling
    and checking a 100-tree forest's fast path takes seconds); ``fast_path`` is what
    the workers do.
    """
    m = Predictor(models, trust=trust, fast_path=False).model(model)
    sig_doc = None
    if m.path is not None:
        entry = manifest.entry_for(Path(m.path))
        sig_doc = entry.signature if entry is not None else None
    elif m.info.k is None:
        raise ModelLoadError(f"model {m.name!r} has no file a worker could load")
    ref = ModelRef(m.name, m.info.sha256, m.path and str(Path(m.path).resolve()), m.signature,
                   sig_doc, m.info.k, trust, fast_path)
    return ref, m


_models: dict[tuple[str, str, bool], LoadedModel] = {}
_models_lock = threading.Lock()
#: models this process loaded for :func:`worker_model` (one per model per worker)
worker_loads: int = 0


def worker_model(ref: ModelRef) -> LoadedModel:
    """The model ``ref`` names, loaded once per process (its sha256 checked), then cached."""
    global worker_loads
    key = (ref.sha256, ref.name, ref.fast_path)
    with _models_lock:
        hit = _models.get(key)
        if hit is not None:
            return hit
        if ref.path is None:
            found = [m for m in embedded_models((ref.k or 5,), None, ref.fast_path)
                     if m.info.sha256 == ref.sha256]
            if not found:
                raise ModelLoadError(f"model {ref.name!r}: the embedded model differs here")
            loaded = found[0].renamed(ref.name)
        else:
            loaded = modelsource.load_file(
                Path(ref.path), ref.name, sha256=ref.sha256, signature=ref.manifest_signature,
                trust=ref.trust, fast_path=ref.fast_path,
            )
        if loaded.signature != ref.signature:
            raise ModelLoadError(f"{ref.path}: model {ref.name!r} loads with another "
                                 "signature on this worker than on the client")
        _models[key] = loaded
        worker_loads += 1
        return loaded


# ---- scoring on the worker -----------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """How every part is scored and written."""

    format: str = "parquet"
    proba: bool = False
    #: None: predictions as the estimator gives them; a language: display names
    labels: str | None = None
    chunk_rows: int = CHUNK_ROWS
    #: input columns written beside each answer (ids), in this order
    keep: tuple[str, ...] = ()


def _located(exc: FishpredictError, where: str, first_row: int) -> FishpredictError:
    """``exc`` with ``where`` named and its row counted from the start of ``where``
    (``first_row``: the chunk's first row there)."""
    return type(exc)(at_file_row(exc.message, where, first_row))


def score_chunk(
    model: LoadedModel, frame: pd.DataFrame, opts: Options, where: str, first_row: int
) -> pd.DataFrame:
    """The output frame of one chunk: its rows checked, predicted (and probabilities)."""
    import numpy as np

    try:
        rows = rowslib.from_frame(model.signature, frame)
        if opts.labels is not None and model.is_classifier:
            shown = np.asarray(model.labels_for(opts.labels), dtype=object)
            values = shown[model.predict_codes(rows)]
        else:
            values = model.predict_values(rows)
        probs = model.predict_proba(rows) if opts.proba else None
    except (InvalidInputError, ModelFailedError) as exc:
        raise _located(exc, where, first_row) from None
    kept = frame[list(opts.keep)] if opts.keep else None
    return prediction_frame(values, probs, model.info.classes if opts.proba else None,
                            inputs=kept)


def _empty_frame(model: LoadedModel, keep: tuple[str, ...] = ()) -> pd.DataFrame:
    import pandas as pd

    cols = {f.name: pd.Series([], dtype=object if f.kind == "string" else float)
            for f in model.signature.features}
    cols.update({k: pd.Series([], dtype=object) for k in keep if k not in cols})
    return pd.DataFrame(cols)


def _write(
    model: LoadedModel, frames: Iterator[pd.DataFrame], part: int, staging: str, opts: Options
) -> dict[str, int]:
    def outputs() -> Iterator[pd.DataFrame]:
        empty = True
        for frame in frames:
            empty = False
            yield frame
        if empty:
            yield score_chunk(model, _empty_frame(model, opts.keep), opts, "", 0)

    written = write_part(staging, part, outputs(), opts.format)
    return {"part": part, "rows": written.rows, "pid": os.getpid()}


def score_file_part(part: FilePart, ref: ModelRef, staging: str, opts: Options) -> dict[str, int]:
    """A worker task: read ``part`` in chunks, score them, write its output part."""
    model = worker_model(ref)
    kinds = {f.name: f.kind for f in model.signature.features}
    names = list(model.signature.names)
    columns = names + [k for k in opts.keep if k not in names]
    chunks = dask_parts.read_part(part, columns, opts.chunk_rows, kinds=kinds)
    frames = (score_chunk(model, frame, opts, part.source, row)
              for row, frame in chunks if len(frame))
    return _write(model, frames, part.part, staging, opts)


def score_block(
    block: Any, ref: ModelRef, part: int, first_row: int | None, staging: str, opts: Options
) -> dict[str, int]:
    """A worker task: one partition of a Dask DataFrame, or one block of rows of a
    Dask array (``first_row``: its first row's index in the array), scored and written."""
    import numpy as np
    import pandas as pd

    model = worker_model(ref)
    sig = model.signature
    base = 0
    if isinstance(block, np.ndarray):
        if block.ndim != 2 or block.shape[1] != sig.n_features:
            raise InvalidInputError(
                f"array block {part}: expected rows of {sig.n_features} features "
                f"({', '.join(sig.names)}), got shape {block.shape}"
            )
        frame = pd.DataFrame(block, columns=list(sig.names), copy=False)
        where, base = ("array", first_row) if first_row is not None else (
            f"array block {part}", 0)
    else:
        frame, where = block, f"partition {part}"
    step = opts.chunk_rows
    frames = (score_chunk(model, frame.iloc[lo:lo + step], opts, where, base + lo)
              for lo in range(0, len(frame), step))
    return _write(model, frames, part, staging, opts)
