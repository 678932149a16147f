"""The hostile-model suite: models that misbehave, and real models at their edges, served
by a backend; every answer is scikit-learn's (or onnxruntime's) own, or a refusal where
it refuses, and nothing crosses between requests.

A plugin author runs it like the other suites::

    from fishpredict.testing.hostile_suite import HostileSuite

    class TestMyBackendHostile(HostileSuite):
        backend = "mine"

It trains the models of :mod:`fishpredict.testing.hostile` once per process, serves
them once per class (micro-batching on, as by default), and checks: no crossed
answer among 64 concurrent one-row clients of a model that drops rows; a model's own
failure is a 500 with a JSON body naming it, on every protocol, and the server
stays up; bad input is never a 500; a fast path refuses where scikit-learn refuses
(values that overflow after scaling, or past float32 in a tree); an imputer
pipeline takes ``null``; category-dtype models take labels as strings; ONNX files
as skl2onnx writes them answer what onnxruntime answers.
"""

from __future__ import annotations

import functools
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from fishpredict.server.client import Client
from fishpredict.server.process import ServerProcess, start_server
from fishpredict.testing.hostile import HostileModel, build_hostile, save_hostile

#: concurrent clients, and one-row requests each sends
CLIENTS, ROUNDS = 64, 4


@functools.cache
def hostile() -> tuple[dict[str, HostileModel], Path]:
    """The hostile models, trained and saved once per process."""
    models = build_hostile()
    directory = save_hostile(models, tempfile.mkdtemp(prefix="fishpredict-hostile-"))
    return {m.name: m for m in models}, directory


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _rows(X: Any) -> list[list[Any]]:
    if hasattr(X, "columns"):
        X = X.astype(object).where(X.notna(), None).to_numpy()
    return [[None if isinstance(v, float) and v != v else _plain(v) for v in row]
            for row in np.asarray(X, dtype=object).tolist()]


def _predict(c: Client, name: str, rows: Any, query: str = "") -> Any:
    return c.post_json(f"/predict?model={name}{query}", {"instances": rows})


def _ok(reply: Any) -> Any:
    assert reply.status == 200, reply
    return reply.json()


def _failed(reply: Any, name: str, plain: bool = False) -> str:
    """The message of a 500 of model ``name``'s own failure (a JSON body)."""
    assert reply.status == 500, reply
    doc = reply.json()
    message: str = doc["error"] if plain else doc["error"]["message"]
    if not plain:
        assert doc["error"]["code"] == "model_failed", doc
    assert name in message, message
    return message


def _onnx_answers(m: HostileModel, X: Any) -> tuple[list[Any], Any]:
    import onnxruntime as ort

    session = ort.InferenceSession(m.onnx, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.asarray(X, dtype=np.float32)}
    labels, probs = session.run(None, feed)[:2]
    if isinstance(probs, list):  # ZipMap: one {label: probability} per row
        keys = list(probs[0])
        probs = np.array([[row[k] for k in keys] for row in probs])
    return [_plain(v) for v in np.asarray(labels).ravel()], np.asarray(probs, dtype=np.float64)


class HostileSuite:
    """Every hostile model, through the backend named by ``backend``."""

    backend: ClassVar[str] = ""
    server_args: ClassVar[tuple[str, ...]] = ()

    @pytest.fixture(scope="class")
    @classmethod
    def served(cls) -> Iterator[tuple[ServerProcess, dict[str, HostileModel]]]:
        if not cls.backend:
            pytest.fail(f"{cls.__name__} must set `backend = <name>`")
        models, directory = hostile()
        server = start_server(cls.backend, "--models", str(directory), *cls.server_args)
        try:
            yield server, models
        finally:
            code = server.stop()
        assert code == 0, f"the {cls.backend} server exited {code}:\n{server.stderr_text()}"

    def test_no_crossed_answer_among_64_concurrent_clients(self, served: Any) -> None:
        """One-row requests micro-batched together; half of them rows the model drops."""
        server, _ = served
        problems: list[str] = []
        lock = threading.Lock()
        start = threading.Barrier(CLIENTS, timeout=30)

        def client(i: int) -> None:
            with server.client(timeout=30) as c:
                start.wait()
                for r in range(ROUNDS):
                    v = float(i * ROUNDS + r + 1) * (-1 if (i + r) % 2 else 1)
                    for name in ("drops-negative", "echo"):
                        reply = _predict(c, name, [[v, 0.5, 0.5]])
                        bad = None
                        if v < 0 and name == "drops-negative":
                            if reply.status != 500 or name not in reply.body.decode():
                                bad = f"{name} {v}: {reply!r}"
                        elif reply.status != 200 or reply.json()["predictions"] != [v]:
                            bad = f"{name} {v}: {reply!r}"
                        if bad:
                            with lock:
                                problems.append(bad)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads), "clients did not finish"
        assert not problems, "\n".join(problems[:10])

    def test_a_models_own_failure_is_a_500_naming_it(self, served: Any) -> None:
        server, models = served
        rows = _rows(models["divides"].X[:3])
        rows[1][0] = 0.0
        with server.client() as c:
            assert "ZeroDivisionError" in _failed(_predict(c, "divides", rows), "divides")
            assert _ok(_predict(c, "divides", [rows[0]]))["predictions"] == [1.0 / rows[0][0]]
            _failed(_predict(c, "unserialisable", _rows(models["unserialisable"].X[:2])),
                    "unserialisable")
            _failed(_predict(c, "wrong-proba", _rows(models["wrong-proba"].X[:2]), "&proba=1"),
                    "wrong-proba")
            body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 3],
                                "data": [0.0, 1.0, 1.0]}]}
            _failed(c.post_json("/v2/models/divides/infer", body), "divides", plain=True)
            _failed(c.post_json("/v1/models/divides:predict", {"instances": [[0.0, 1.0, 1.0]]}),
                    "divides", plain=True)
            assert c.get("/healthz").status == 200

    def test_bad_input_is_never_a_500(self, served: Any) -> None:
        server, _ = served
        bad = [
            ("POST", "/predict?model=echo", b'{"instances": [[1, 2]]}'),
            ("POST", "/predict?model=echo", b'{"instances": [["a", 2, 3]]}'),
            ("POST", "/predict?model=echo", b'{"instances": [[1e400, 2, 3]]}'),
            ("POST", "/predict?model=echo", b'{"instances": [[1, 2, 3]'),
            ("POST", "/predict?model=category-encoder", b'{"instances": [["purple", 1.0]]}'),
            ("POST", "/predict?model=category-encoder", b'{"instances": [[3, 1.0]]}'),
            ("POST", "/predict?model=category-hgb", b'{"instances": [[1.5, 1.0]]}'),
            ("POST", "/predict?model=scaled-logistic", b'{"instances": [[1e308, 0, 0]]}'),
            ("POST", "/predict?model=scaled-logistic", b'{"instances": [[null, 0, 0]]}'),
            ("POST", "/predict?model=tree-regressor&proba=1", b'{"instances": [[1, 2, 3]]}'),
            ("POST", "/v2/models/echo/infer", b'{"inputs": [{"name": "input-0"}]}'),
            ("POST", "/v1/models/echo:predict", b'{"instances": [[1]]}'),
        ]
        with server.client() as c:
            for method, target, body in bad:
                reply = c.request(method, target, body, {"Content-Type": "application/json"})
                assert 400 <= reply.status < 500, (target, body, reply)
                assert reply.json()["error"], reply

    def test_fast_paths_refuse_where_scikit_learn_refuses(self, served: Any) -> None:
        server, models = served
        cases = {"scaled-logistic": [1e308, 1e300, 1e30, 1.0, -1e308],
                 "tree-regressor": [3.5e38, -1e39, 3.4e38, 1e30, 1.0]}
        with server.client() as c:
            for name, values in cases.items():
                m = models[name]
                for v in values:
                    row = np.array([[v, 0.1, -0.1]])
                    try:
                        # the overflow scikit-learn warns of is this test's subject
                        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                            want: Any = [_plain(x) for x in m.estimator.predict(row)]
                    except ValueError:
                        want = None
                    for rows in ([row[0].tolist()], [row[0].tolist()] * 3):
                        reply = _predict(c, name, rows)
                        if want is None:
                            assert reply.status == 400, (name, v, reply)
                        else:
                            assert _ok(reply)["predictions"] == want * len(rows), (name, v)

    def test_imputer_pipeline_takes_null(self, served: Any) -> None:
        server, models = served
        m = models["imputer-logistic"]
        X = np.asarray(m.X)
        assert np.isnan(X).any()
        with server.client() as c:
            got = _ok(_predict(c, m.name, _rows(X)))["predictions"]
            one = _ok(_predict(c, m.name, [[None, None, None]]))["predictions"]
        assert got == [_plain(v) for v in m.estimator.predict(X)]
        assert one == [_plain(v) for v in m.estimator.predict(np.full((1, 3), np.nan))]

    def test_category_models_take_labels_as_strings(self, served: Any) -> None:
        import pandas as pd

        server, models = served
        with server.client() as c:
            for name in ("category-hgb", "category-encoder"):
                m = models[name]
                got = _ok(_predict(c, name, _rows(m.X)))
                assert got["predictions"] == [_plain(v) for v in m.estimator.predict(m.X)], name
            # a label HistGradientBoosting never saw is missing to it: it answers
            m = models["category-hgb"]
            unseen = pd.DataFrame({"colour": ["purple"], "size": [0.3]})  # as object text
            got = _ok(_predict(c, m.name, [["purple", 0.3]]))["predictions"]
            assert got == [_plain(v) for v in m.estimator.predict(unseen)]

    def test_onnx_answers_equal_onnxruntime(self, served: Any) -> None:
        server, models = served
        with server.client() as c:
            for name in ("onnx-text-zipmap", "onnx-text-plain", "onnx-forest-zipmap"):
                m = models[name]
                labels, probs = _onnx_answers(m, m.X)
                doc = _ok(_predict(c, name, _rows(m.X), "&proba=1"))
                assert doc["predictions"] == labels, name
                np.testing.assert_allclose(doc["probabilities"], probs, rtol=0, atol=1e-6)
                assert doc["predictions"] == [_plain(v) for v in m.estimator.predict(m.X)]


__all__ = ["HostileSuite", "hostile"]
