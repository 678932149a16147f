"""Checks of the prediction routes: ``GET /fish`` and ``POST /predict``.

Every answer is compared with an in-process :class:`fishpredict.Predictor`
over the same models, for varied rows and every loaded k.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

import numpy as np

from fishpredict.server.client import Client, query
from fishpredict.testing.checks.assertions import assert_json, failures_report
from fishpredict.testing.transcript import npy

if TYPE_CHECKING:
    from fishpredict.testing.contract import Contract

#: (length, weight) rows: training fish, both sides of the class boundary,
#: zeros, fractions, and values far outside the training data
ROWS: tuple[tuple[float, float], ...] = (
    (25.4, 242.0),
    (30.0, 600.0),
    (41.0, 950.0),
    (9.8, 6.7),
    (15.0, 19.9),
    (13.0, 12.2),
    (0.0, 0.0),
    (20.0, 100.0),
    (25.0, 150.0),
    (22.5, 250.0),
    (12.0, 1000.0),
    (45.0, 10.0),
    (100.0, 5000.0),
    (1.5, 0.25),
    (33.3, 333.3),
    (1e6, 1e6),
)

FISH_KEYS = {"prediction", "length", "weight", "k", "model"}
PREDICT_KEYS = {"predictions", "k", "model"}


def _fish(client: Client, length: object, weight: object, **params: object) -> dict[str, object]:
    reply = client.get("/fish" + query(length=length, weight=weight, **params))
    doc = assert_json(reply)
    assert isinstance(doc, dict) and set(doc) == FISH_KEYS, f"bad /fish answer: {doc!r}"
    return doc


class FishChecks:
    """``GET /fish``: the seed's API."""

    def test_fish_matches_predictor_for_every_k(self, contract: Contract) -> None:
        """Every row, every k: the same label as Predictor, and the query echoed."""
        ref = contract.reference
        failures = []
        with contract.client() as c:
            for k in ref.ks:
                name = ref.model(k).name
                for length, weight in ROWS:
                    doc = _fish(c, length, weight, k=k)
                    want = {
                        "prediction": ref.predict(length, weight, k),
                        "length": length,
                        "weight": weight,
                        "k": k,
                        "model": name,
                    }
                    if doc != want:
                        failures.append(f"k={k} ({length}, {weight}): {doc!r} != {want!r}")
        assert not failures, failures_report(failures)

    def test_fish_default_model(self, contract: Contract) -> None:
        """Without k or model, the default model answers (and says which it is)."""
        default = contract.reference.model(None)
        with contract.client() as c:
            for length, weight in ROWS[:6]:
                doc = _fish(c, length, weight)
                assert doc["model"] == default.name and doc["k"] == default.info.k, doc
                assert doc["prediction"] == contract.reference.predict(length, weight), doc

    def test_fish_model_by_name(self, contract: Contract) -> None:
        """``model=<name>`` picks that model, and wins over ``k``."""
        infos = contract.reference.models()
        other_k = infos[0].k
        with contract.client() as c:
            for info in infos:
                doc = _fish(c, 22.5, 250.0, model=info.name, k=other_k)
                assert doc["model"] == info.name and doc["k"] == info.k, doc
                want = contract.reference.predict(22.5, 250.0, info.name)
                assert doc["prediction"] == want, doc

    def test_fish_number_formats(self, contract: Contract) -> None:
        """Integers, exponents, signs and percent-escapes parse as numbers."""
        cases = {
            "length=30&weight=600": (30.0, 600.0),
            "length=3e1&weight=6E2": (30.0, 600.0),
            "length=%2B30.0&weight=600.50": (30.0, 600.5),
            "length=30%2E5&weight=600": (30.5, 600.0),
            "length=0.0&weight=0": (0.0, 0.0),
            "weight=7.5&length=10.5": (10.5, 7.5),
            "length=30&weight=600&length=10": (30.0, 600.0),
        }
        with contract.client() as c:
            for qs, (length, weight) in cases.items():
                doc = assert_json(c.get("/fish?" + qs))
                assert (doc["length"], doc["weight"]) == (length, weight), (qs, doc)
                assert doc["prediction"] == contract.reference.predict(length, weight), (qs, doc)

    def test_fish_korean_labels_by_query(self, contract: Contract) -> None:
        """``labels=ko`` answers 도미/빙어 on an English server, in readable UTF-8."""
        ko = contract.reference_ko
        with contract.client() as c:
            for length, weight in ROWS:
                reply = c.get("/fish" + query(length=length, weight=weight, labels="ko"))
                doc = assert_json(reply)
                want = ko.predict(length, weight)
                assert doc["prediction"] == want, (length, weight, doc)
                assert want.encode() in reply.body, f"label not sent as UTF-8: {reply.body!r}"

    def test_fish_seed_clients_on_korean_server(self, contract: Contract) -> None:
        """The seed's clients, ``/fish?length=&weight=&k=``, against ``--labels ko``."""
        ko = contract.reference_ko
        with contract.client(contract.ko) as c:
            for k in (1, 5, 15, 25, 49):
                if k not in ko.ks:
                    continue
                for length, weight in ROWS:
                    reply = c.get(f"/fish?length={length}&weight={weight}&k={k}")
                    doc = assert_json(reply)
                    assert doc["prediction"] in ("도미", "빙어"), doc
                    assert doc["prediction"] == ko.predict(length, weight, k), (k, doc)
            doc = _fish(c, 30.0, 600.0, labels="en")
            assert doc["prediction"] == contract.reference.predict(30.0, 600.0), doc


class PredictChecks:
    """``POST /predict``: one fish or a batch, JSON or ``.npy``."""

    def test_predict_one_fish_json(self, contract: Contract) -> None:
        ref = contract.reference
        with contract.client() as c:
            for length, weight in ROWS:
                doc = assert_json(c.post_json("/predict", {"length": length, "weight": weight}))
                assert isinstance(doc, dict) and set(doc) == PREDICT_KEYS, doc
                assert doc["predictions"] == [ref.predict(length, weight)], (length, weight, doc)

    def test_predict_batch_json_every_k(self, contract: Contract) -> None:
        ref = contract.reference
        rows = [list(r) for r in ROWS]
        with contract.client() as c:
            for k in ref.ks:
                doc = assert_json(c.post_json(f"/predict?k={k}", {"instances": rows}))
                assert doc == {
                    "predictions": ref.predict_many(rows, k),
                    "k": k,
                    "model": ref.model(k).name,
                }, (k, doc)

    def test_predict_batch_at_the_row_limit(self, contract: Contract) -> None:
        """Exactly ``--max-batch-rows`` rows is still accepted."""
        rng = np.random.default_rng(49)
        X = np.round(rng.uniform([5.0, 1.0], [45.0, 1100.0], (contract.max_batch_rows, 2)), 1)
        with contract.client() as c:
            doc = assert_json(c.post_json("/predict", {"instances": X.tolist()}))
        assert doc["predictions"] == contract.reference.predict_many(X), "batch differs"

    def test_predict_empty_batch(self, contract: Contract) -> None:
        with contract.client() as c:
            doc = assert_json(c.post_json("/predict", {"instances": []}))
        assert doc["predictions"] == [], doc

    def test_predict_korean_labels(self, contract: Contract) -> None:
        rows = [list(r) for r in ROWS]
        want = contract.reference_ko.predict_many(rows)
        with contract.client() as c:
            doc = assert_json(c.post_json("/predict?labels=ko", {"instances": rows}))
        assert doc["predictions"] == want, doc
        with contract.client(contract.ko) as c:
            doc = assert_json(c.post_json("/predict", {"instances": rows}))
        assert doc["predictions"] == want, doc

    def test_predict_json_content_type_variants(self, contract: Contract) -> None:
        """``charset`` parameters, ``+json`` types and no Content-Type at all are JSON."""
        body = json.dumps({"instances": [[30.0, 600.0], [10.5, 7.5]]}).encode()
        want = contract.reference.predict_many([[30.0, 600.0], [10.5, 7.5]])
        with contract.client() as c:
            for ctype in ("application/json; charset=utf-8", "application/vnd.fish+json", None):
                headers = {} if ctype is None else {"Content-Type": ctype}
                doc = assert_json(c.request("POST", "/predict", body, headers))
                assert doc["predictions"] == want, (ctype, doc)

    def test_predict_chunked_body(self, contract: Contract) -> None:
        """A body sent with ``Transfer-Encoding: chunked`` reads like any other."""
        rows = [list(r) for r in ROWS]
        body = json.dumps({"instances": rows}).encode()
        with contract.client() as c:
            reply = c.request(
                "POST", "/predict", body, {"Content-Type": "application/json"}, chunked=True
            )
            doc = assert_json(reply)
        assert doc["predictions"] == contract.reference.predict_many(rows), doc

    def test_predict_npy_body(self, contract: Contract) -> None:
        """A ``.npy`` body (float64 and float32, int) answers like the same rows as JSON."""
        rows = [list(r) for r in ROWS[:12]]
        want = contract.reference.predict_many(rows)
        buf = io.BytesIO()
        np.save(buf, np.asarray([[30, 600], [10, 7]], dtype=np.int64), allow_pickle=False)
        with contract.client() as c:
            headers = {"Content-Type": "application/x-npy"}
            doc = assert_json(c.request("POST", "/predict", npy(rows), headers))
            assert doc["predictions"] == want, doc
            doc = assert_json(c.request("POST", "/predict", buf.getvalue(), headers))
            assert doc["predictions"] == contract.reference.predict_many([[30, 600], [10, 7]])

    def test_predict_npy_answer(self, contract: Contract) -> None:
        """``Accept: application/x-npy`` answers a ``.npy`` array of the labels."""
        rows = [list(r) for r in ROWS]
        accept = {"Accept": "application/x-npy"}
        with contract.client() as c:
            for ctype, body in (("application/x-npy", npy(rows)), ("application/json", None)):
                data = body if body is not None else json.dumps({"instances": rows}).encode()
                reply = c.request(
                    "POST", "/predict?labels=ko", data, {"Content-Type": ctype, **accept}
                )
                assert reply.status == 200, reply
                assert reply.content_type == "application/x-npy", reply
                arr = np.load(io.BytesIO(reply.body), allow_pickle=False)
                assert arr.shape == (len(rows),), arr.shape
                assert arr.tolist() == contract.reference_ko.predict_many(rows), (ctype, arr)
