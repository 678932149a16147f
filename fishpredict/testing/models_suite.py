"""The any-model suite: a zoo of scikit-learn models served by a backend, each
answer checked against the estimator itself.

A plugin author runs it like the contract suite::

    from fishpredict.testing import ModelSuite

    class TestMyBackendModels(ModelSuite):
        backend = "mine"

It trains the zoo (:mod:`fishpredict.testing.zoo`) once per process, writes it
to a model directory with a manifest, starts
``python -m fishpredict serve --backend <name> --models <dir>`` once per
class, and compares every prediction with scikit-learn's for the same rows
(labels equal, regression values equal to the bit, probabilities within
1e-9), then sends each kind of bad input and expects a 400 naming the row and
the feature.
"""

from __future__ import annotations

import functools
import json
import random
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from fishpredict.server.client import Client
from fishpredict.server.process import ServerProcess, start_server
from fishpredict.testing.models_cases import bad_rows
from fishpredict.testing.transcript import npy
from fishpredict.testing.zoo import ZooModel, build_zoo, save_zoo

#: probabilities may differ from scikit-learn's by at most this much
PROBA_TOLERANCE = 1e-9


@functools.cache
def zoo() -> tuple[list[ZooModel], Path]:
    """The zoo, trained and saved once per process."""
    models = build_zoo()
    directory = Path(tempfile.mkdtemp(prefix="fishpredict-zoo-"))
    save_zoo(models, directory)
    return models, directory


def plain(value: Any) -> Any:
    """A numpy scalar as the JSON value the server answers with."""
    return value.item() if isinstance(value, np.generic) else value


def json_rows(m: ZooModel, rows: Any) -> list[list[Any]]:
    """Rows as JSON lists in feature order (NaN as null)."""
    if m.frame:
        listed = rows.astype(object).where(rows.notna(), None).values.tolist()
    else:
        listed = np.asarray(rows, dtype=object).tolist()
    return [[None if isinstance(v, float) and v != v else plain(v) for v in r] for r in listed]


def feature_names(m: ZooModel) -> list[str]:
    names = getattr(m.estimator, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    return [f"x{i}" for i in range(m.estimator.n_features_in_)]


def expected(m: ZooModel, rows: Any) -> list[Any]:
    return [plain(v) for v in m.estimator.predict(rows)]


def has_proba(m: ZooModel) -> bool:
    return hasattr(m.estimator, "predict_proba") and hasattr(m.estimator, "classes_")


def _doc(client: Client, target: str, body: Any) -> Any:
    reply = client.post_json(target, body)
    assert reply.status == 200, f"POST {target}: {reply.status} {reply.body[:300]!r}"
    return reply.json()


def _error(client: Client, target: str, body: Any, status: int = 400) -> str:
    reply = client.post_json(target, body)
    assert reply.status == status, f"POST {target} {json.dumps(body)[:200]}: {reply!r}"
    doc = reply.json()
    assert set(doc) == {"error"} and set(doc["error"]) == {"code", "message"}, doc
    message: str = doc["error"]["message"]
    return message


class ModelSuite:
    """Every model of the zoo, through the backend named by ``backend``."""

    backend: ClassVar[str] = ""
    server_args: ClassVar[tuple[str, ...]] = ()

    @pytest.fixture(scope="class")
    @classmethod
    def served(cls) -> Iterator[tuple[ServerProcess, list[ZooModel]]]:
        if not cls.backend:
            pytest.fail(f"{cls.__name__} must set `backend = <name>`")
        models, directory = zoo()
        server = start_server(cls.backend, "--models", str(directory), *cls.server_args)
        try:
            yield server, models
        finally:
            code = server.stop()
        assert code == 0, f"the {cls.backend} server exited {code}:\n{server.stderr_text()}"

    def test_models_show_every_signature(self, served: Any) -> None:
        server, models = served
        with server.client() as c:
            reply = c.get("/models")
        listed = {m["name"]: m for m in reply.json()["models"]}
        for m in models:
            sig = listed[m.name]["signature"]
            assert [f["name"] for f in sig["features"]] == feature_names(m), m.name
            task = "classifier" if hasattr(m.estimator, "classes_") else "regressor"
            assert sig["task"] == task, m.name
            assert ("predict_proba" in sig["outputs"]) == has_proba(m), m.name

    def test_batches_equal_scikit_learn(self, served: Any) -> None:
        server, models = served
        with server.client() as c:
            for m in models:
                rows = m.rows()
                doc = _doc(c, f"/predict?model={m.name}", {"instances": json_rows(m, rows)})
                assert doc["model"] == m.name
                assert doc["predictions"] == expected(m, rows), m.name

    def test_object_rows_in_any_order_equal_scikit_learn(self, served: Any) -> None:
        server, models = served
        shuffle = random.Random(0).shuffle
        with server.client() as c:
            for m in models:
                rows = m.rows(8)
                names = feature_names(m)
                objects = []
                for row in json_rows(m, rows):
                    pairs = list(zip(names, row, strict=True))
                    shuffle(pairs)
                    objects.append(dict(pairs))
                doc = _doc(c, f"/predict?model={m.name}", {"instances": objects})
                assert doc["predictions"] == expected(m, rows), m.name

    def test_one_row_requests_equal_scikit_learn(self, served: Any) -> None:
        """One row per request: the fast paths' one-row code and the micro-batcher."""
        server, models = served
        jobs = []
        for m in models:
            rows = m.rows(6)
            want = expected(m, rows)
            jobs += [(m.name, row, want[i]) for i, row in enumerate(json_rows(m, rows))]

        def ask(job: tuple[str, list[Any], Any]) -> tuple[str, Any, Any]:
            name, row, want = job
            with server.client() as c:
                return name, _doc(c, f"/predict?model={name}", {"instances": [row]}), want

        with ThreadPoolExecutor(8) as pool:  # concurrent: the batcher coalesces them
            for name, doc, want in pool.map(ask, jobs * 2):
                assert doc["predictions"] == [want], name

    def test_npy_bodies_equal_scikit_learn(self, served: Any) -> None:
        server, models = served
        with server.client() as c:
            for m in models:
                if m.frame:
                    continue
                rows = np.asarray(m.rows(), dtype=np.float64)
                reply = c.request("POST", f"/predict?model={m.name}", npy(rows.tolist()),
                                  {"Content-Type": "application/x-npy"})
                assert reply.status == 200, (m.name, reply)
                assert reply.json()["predictions"] == expected(m, rows), m.name

    def test_probabilities_within_tolerance(self, served: Any) -> None:
        server, models = served
        with server.client() as c:
            for m in models:
                if not has_proba(m):
                    continue
                rows = m.rows()
                doc = _doc(c, f"/predict?model={m.name}&proba=true",
                           {"instances": json_rows(m, rows)})
                assert doc["classes"] == [plain(v) for v in m.estimator.classes_], m.name
                got = np.array(doc["probabilities"], dtype=np.float64)
                want = m.estimator.predict_proba(rows)
                assert got.shape == want.shape, m.name
                assert np.abs(got - want).max() <= PROBA_TOLERANCE, m.name
                assert doc["predictions"] == expected(m, rows), m.name

    def test_probabilities_of_a_model_without_them_are_400(self, served: Any) -> None:
        server, models = served
        with server.client() as c:
            for m in models:
                if has_proba(m):
                    continue
                row = json_rows(m, m.rows(1))
                message = _error(c, f"/predict?model={m.name}&proba=true", {"instances": row})
                assert m.name in message, message

    def test_missing_values_where_the_model_takes_them(self, served: Any) -> None:
        server, models = served
        with server.client() as c:
            for m in models:
                X = np.asarray(m.X) if not m.frame else None
                if X is None or not np.isnan(X).any():
                    continue
                rows = X[np.isnan(X).any(axis=1)][:5]
                doc = _doc(c, f"/predict?model={m.name}", {"instances": json_rows(m, rows)})
                assert doc["predictions"] == expected(m, rows), m.name

    def test_bad_input_is_400_naming_row_and_feature(self, served: Any) -> None:
        """Each kind of bad input, in row 2 of a batch of 3, on every model it applies to."""
        server, models = served
        failures = []
        with server.client() as c:
            for m in models:
                good = json_rows(m, m.rows(3))[:2]
                for kind, bad, needle in bad_rows(m, good[0], feature_names(m)):
                    message = _error(c, f"/predict?model={m.name}", {"instances": [*good, bad]})
                    if "row 2" not in message or (needle and needle not in message):
                        failures.append(f"{m.name} {kind}: {message!r} (wanted {needle!r})")
        assert not failures, "\n".join(failures)

    def test_a_model_that_raises_answers_400(self, served: Any) -> None:
        server, models = served
        m = next(m for m in models if m.name == "iris-refusing")
        rows = json_rows(m, m.rows(3))
        rows[1][0] = -1.0
        with server.client() as c:
            reply = c.post_json(f"/predict?model={m.name}", {"instances": rows})
            assert reply.status == 400, reply
            error = reply.json()["error"]
            assert error["code"] == "model_refused"
            assert "row 1" in error["message"] and "negative values" in error["message"], error
            assert c.get("/healthz").status == 200
