"""Bulk work through a running server: remote evaluation and file prediction.

Rows stream from a data file in chunks; each chunk goes to ``POST /predict``
as ``.npy`` once per k, the k requests of a chunk in parallel (one keep-alive
connection per k), so memory stays flat whatever the file size.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, TextIO

import numpy as np
import numpy.typing as npt

from fishpredict.bulk.client import Client
from fishpredict.errors import ConfigError, ServerError
from fishpredict.fish.dataset import BREAM, SPECIES_NAMES
from fishpredict.fish.sweep import Row

FloatArray = npt.NDArray[np.float64]
LabelArray = npt.NDArray[np.int64]
Chunk = tuple[FloatArray, LabelArray | None]


class _Clients:
    """One Client per (thread, k), so every k keeps its own keep-alive connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._all: list[Client] = []
        self._lock = threading.Lock()

    def get(self) -> Client:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = Client(self.url)
            with self._lock:
                self._all.append(client)
        return client

    def close(self) -> None:
        for c in self._all:
            c.close()


def _timed_predict(clients: _Clients, X: FloatArray, k: int) -> tuple[npt.NDArray[np.str_], float]:
    start = time.perf_counter()
    labels = clients.get().predict_npy(X, k, labels="en")
    return labels, time.perf_counter() - start


def _check_ks(client: Client, ks: Sequence[int]) -> None:
    loaded = {m.get("k") for m in client.get_json("/models")["models"]}
    missing = [k for k in ks if k not in loaded]
    if missing:
        known = ", ".join(str(k) for k in sorted(x for x in loaded if x is not None))
        raise ConfigError(f"the server has no model for k={missing[0]}; it serves k: {known}")


_ROW: Final = re.compile(r": row (\d+)")


def _at_file_row(message: str, first: int) -> str:
    """A server's error about a chunk (``... HTTP 400 invalid_input: row 3, ...``) with
    the row counted from the start of the input (``row index N``, as every bulk path)."""
    return _ROW.sub(lambda m: f": row index {int(m[1]) + first}", message, count=1)


def predict_chunks(url: str, chunks: Iterable[Chunk], ks: Sequence[int]
                   ) -> Iterator[tuple[Chunk, dict[int, npt.NDArray[np.str_]], dict[int, float]]]:
    """For each chunk: the chunk, its labels per k, and the seconds each request took."""
    clients = _Clients(url)
    with Client(url) as probe:
        _check_ks(probe, ks)
    try:
        with ThreadPoolExecutor(max_workers=len(ks), thread_name_prefix="fishpredict-k") as pool:
            first = 0  # the chunk's first row in the file: errors name the file's rows
            for chunk in chunks:
                futures = {k: pool.submit(_timed_predict, clients, chunk[0], k) for k in ks}
                try:
                    results = {k: f.result() for k, f in futures.items()}
                except ServerError as exc:
                    raise ServerError(_at_file_row(exc.message, first)) from None
                first += len(chunk[0])
                yield (chunk, {k: r[0] for k, r in results.items()},
                       {k: r[1] for k, r in results.items()})
    finally:
        clients.close()


def evaluate_remote(url: str, chunks: Iterable[Chunk], ks: Sequence[int]) -> list[Row]:
    """The k sweep through a server: same table as the local one (times are request times)."""
    bream_name = SPECIES_NAMES["en"][BREAM]
    correct = dict.fromkeys(ks, 0)
    answers = dict.fromkeys(ks, 0)
    seconds = dict.fromkeys(ks, 0.0)
    rows = bream_rows = 0
    for (_X, y), labels, secs in predict_chunks(url, chunks, ks):
        if y is None:
            raise ConfigError("the data has no labels (a Species column); evaluation needs them")
        truth = y == BREAM
        for k in ks:
            said = labels[k] == bream_name
            correct[k] += int(np.count_nonzero(said == truth))
            answers[k] += int(np.count_nonzero(said))
            seconds[k] += secs[k]
        rows += len(y)
        bream_rows += int(np.count_nonzero(truth))
    return [Row(k=k, rows=rows, correct=correct[k], seconds=seconds[k],
                bream_answers=answers[k], bream_rows=bream_rows, model=f"knn-k{k}")
            for k in ks]


@dataclass(frozen=True)
class PredictSummary:
    rows: int
    seconds: float
    out: str

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def _write_csv_chunk(f: TextIO, chunk: Chunk, labels: dict[int, npt.NDArray[np.str_]],
                     ks: Sequence[int]) -> None:
    X, y = chunk
    cols: list[Any] = [X[:, 0].tolist(), X[:, 1].tolist()]
    if y is not None:
        names = np.array([SPECIES_NAMES["en"].get(i, str(i)) for i in (0, 1)])
        cols.append(names[np.clip(y, 0, 1)].tolist())
    cols.extend(labels[k].tolist() for k in ks)
    f.write("".join(",".join(map(str, row)) + "\n" for row in zip(*cols, strict=True)))


def predict_to_csv(url: str, chunks: Iterable[Chunk], ks: Sequence[int], out: str,
                   has_labels: bool, progress: Any = None) -> PredictSummary:
    """Write ``Length,Weight[,Species],k1,k5,...`` rows with the server's predictions."""
    if not out.endswith(".csv"):
        raise ConfigError(f"--out must be a .csv file, got {out!r}")
    tmp = f"{out}.part"
    start = time.perf_counter()
    rows = 0
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            head = ["Length", "Weight"] + (["Species"] if has_labels else [])
            f.write(",".join(head + [f"k{k}" for k in ks]) + "\n")
            for chunk, labels, _ in predict_chunks(url, chunks, ks):
                _write_csv_chunk(f, chunk if has_labels else (chunk[0], None), labels, ks)
                rows += len(chunk[0])
                if progress is not None:
                    progress.update(len(chunk[0]))
        os.replace(tmp, out)
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return PredictSummary(rows=rows, seconds=time.perf_counter() - start, out=out)


__all__ = ["PredictSummary", "ServerError", "evaluate_remote", "predict_chunks",
           "predict_to_csv"]
