"""Checks of every error the contract answers: 400, 404, 405, 413, 415.

Each case asserts the status, the error code, the JSON shape
``{"error": {"code", "message"}}`` with no traceback, and that the server
still answers ``/healthz`` afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from fishpredict.testing.checks.assertions import assert_error, failures_report
from fishpredict.testing.transcript import npy

if TYPE_CHECKING:
    from fishpredict.server.client import Client
    from fishpredict.testing.contract import Contract

JSON = {"Content-Type": "application/json"}
NPY = {"Content-Type": "application/x-npy"}

#: query strings of /fish that must answer 400 invalid_input
BAD_FISH_QUERIES = (
    "",
    "length=30",
    "weight=600",
    "length=&weight=600",
    "length=abc&weight=600",
    "length=30&weight=six",
    "length=nan&weight=600",
    "length=NaN&weight=600",
    "length=30&weight=inf",
    "length=-inf&weight=600",
    "length=1e400&weight=600",
    "length=-1&weight=600",
    "length=30&weight=-0.5",
    "length=0x1E&weight=600",
    "length=30&weight=600&k=abc",
    "length=30&weight=600&k=1.5",
    "length=30&weight=600&k=" + "9" * 5000,
    "length=30&weight=600&labels=fr",
    "length=30&weight=600&labels=",
    "length=%ZZ&weight=600",
)

#: (body, headers) of POST /predict that must answer 400 invalid_input
BAD_PREDICT_BODIES: tuple[tuple[bytes, dict[str, str]], ...] = (
    (b"", JSON),
    (b"   ", JSON),
    (b"{bad json", JSON),
    (b'{"instances": [[30, 600]]', JSON),
    (b'{"length": NaN, "weight": 600}', JSON),
    (b'{"instances": [[30, Infinity]]}', JSON),
    (b'{"instances": [[-Infinity, 1]]}', JSON),
    (b'{"instances": [[1e400, 600]]}', JSON),
    (b"\xff\xfe\x00", JSON),
    (b"[" * 100 + b"]" * 100, JSON),
    (b"[[30, 600]]", JSON),
    (b'"fish"', JSON),
    (b"{}", JSON),
    (b'{"instances": "many"}', JSON),
    (b'{"instances": [30, 600]}', JSON),
    (b'{"instances": [[30, 600, 1]]}', JSON),
    (b'{"instances": [[30]]}', JSON),
    (b'{"instances": [[30, 600], [10]]}', JSON),
    (b'{"instances": [["30", "600"]]}', JSON),
    (b'{"instances": [[null, 600]]}', JSON),
    (b'{"instances": [[true, false]]}', JSON),
    (b'{"instances": [[30, -600]]}', JSON),
    (b'{"length": 30}', JSON),
    (b'{"length": "30", "weight": 600}', JSON),
    (b'{"length": true, "weight": 600}', JSON),
    (b'{"length": -30, "weight": 600}', JSON),
    (b'{"length": 30, "weight": null}', JSON),
    (b"not an npy file", NPY),
    (b"\x93NUMPY\x01\x00", NPY),
    (npy([30.0, 600.0]), NPY),
    (npy([[30.0, 600.0, 1.0]]), NPY),
    (npy([[30.0, float("nan")]]), NPY),
    (npy([[30.0, -1.0]]), NPY),
)


#: (method, target, body, headers) of one request
Case = tuple[str, str, bytes | None, Mapping[str, str]]


def _collect(
    contract: Contract, client: Client, cases: Sequence[Case], status: int, code: str
) -> list[str]:
    """Send each case; the failures, one line each. After every case the server
    must still answer ``/healthz`` (on a fresh connection)."""
    failures = []
    for method, target, body, headers in cases:
        reply = client.request(method, target, body, headers)
        try:
            assert_error(reply, status, code)
            contract.assert_alive()
        except AssertionError as exc:
            failures.append(f"{method} {target} {body!r:.80}: {exc}")
    return failures


class ErrorChecks:
    """Every client error answers the JSON error, and the server stays up."""

    def test_fish_bad_values_answer_400(self, contract: Contract) -> None:
        cases: list[Case] = [("GET", "/fish?" + qs, None, {}) for qs in BAD_FISH_QUERIES]
        with contract.client() as c:
            failures = _collect(contract, c, cases, 400, "invalid_input")
        assert not failures, failures_report(failures)
        contract.assert_alive()

    def test_predict_bad_bodies_answer_400(self, contract: Contract) -> None:
        cases: list[Case] = [("POST", "/predict", body, h) for body, h in BAD_PREDICT_BODIES]
        cases += [
            ("POST", "/predict?k=abc", b'{"length": 30, "weight": 600}', JSON),
            ("POST", "/predict?labels=xx", b'{"length": 30, "weight": 600}', JSON),
        ]
        with contract.client() as c:
            failures = _collect(contract, c, cases, 400, "invalid_input")
        assert not failures, failures_report(failures)
        contract.assert_alive()

    def test_unknown_route_answers_404(self, contract: Contract) -> None:
        cases: list[Case] = [
            ("GET", target, None, {})
            for target in ("/", "/nope", "/fish/", "/FISH", "/fish/extra", "/healthz/x", "/%00")
        ]
        cases.append(("POST", "/nope", b"{}", JSON))
        with contract.client() as c:
            failures = _collect(contract, c, cases, 404, "not_found")
        assert not failures, failures_report(failures)
        contract.assert_alive()

    def test_unknown_model_answers_404(self, contract: Contract) -> None:
        missing_k = max(contract.reference.ks, default=0) + 1000
        body = json.dumps({"length": 30, "weight": 600}).encode()
        cases: list[Case] = [
            ("GET", f"/fish?length=30&weight=600&k={missing_k}", None, {}),
            ("GET", "/fish?length=30&weight=600&k=0", None, {}),
            ("GET", "/fish?length=30&weight=600&model=no-such-model", None, {}),
            ("POST", f"/predict?k={missing_k}", body, JSON),
            ("POST", "/predict?model=no-such-model", body, JSON),
        ]
        with contract.client() as c:
            failures = _collect(contract, c, cases, 404, "unknown_model")
        assert not failures, failures_report(failures)

    def test_wrong_method_answers_405_with_allow(self, contract: Contract) -> None:
        cases = {
            ("POST", "/fish?length=30&weight=600"): "GET",
            ("PUT", "/fish"): "GET",
            ("GET", "/predict"): "POST",
            ("DELETE", "/predict"): "POST",
            ("POST", "/healthz"): "GET",
            ("PATCH", "/models"): "GET",
            ("DELETE", "/metrics"): "GET",
            ("POST", "/openapi.json"): "GET",
        }
        failures = []
        with contract.client() as c:
            for (method, target), allow in cases.items():
                body = b"{}" if method in ("POST", "PUT", "PATCH") else None
                reply = c.request(method, target, body, JSON if body else {})
                try:
                    assert_error(reply, 405, "method_not_allowed")
                    assert reply.headers.get("allow") == allow, reply.headers
                except AssertionError as exc:
                    failures.append(f"{method} {target}: {exc}")
        assert not failures, failures_report(failures)
        contract.assert_alive()

    def test_body_over_limit_answers_413(self, contract: Contract) -> None:
        """A body over ``--max-body-bytes`` is refused (413), JSON or .npy."""
        limit = contract.max_body_bytes
        rows = [[30.0, 600.0]] * (limit // 10)
        cases: list[Case] = [
            ("POST", "/predict", json.dumps({"instances": rows}).encode(), JSON),
            ("POST", "/predict", npy([[30.0, 600.0]] * (limit // 16 + 8)), NPY),
            ("POST", "/predict", b" " * (limit + 1), JSON),
        ]
        for _, _, body, _ in cases:
            assert body is not None and len(body) > limit
        with contract.client() as c:
            failures = _collect(contract, c, cases, 413, "payload_too_large")
        assert not failures, failures_report(failures)
        contract.assert_alive()

    def test_batch_over_limit_answers_413(self, contract: Contract) -> None:
        """More rows than ``--max-batch-rows`` is refused (413) even when the body fits."""
        rows = [[1.0, 1.0]] * (contract.max_batch_rows + 1)
        body = json.dumps({"instances": rows}, separators=(",", ":")).encode()
        assert len(body) <= contract.max_body_bytes, "suite limits are inconsistent"
        cases: list[Case] = [("POST", "/predict", body, JSON), ("POST", "/predict", npy(rows), NPY)]
        with contract.client() as c:
            failures = _collect(contract, c, cases, 413, "batch_too_large")
        assert not failures, failures_report(failures)
        contract.assert_alive()

    def test_unsupported_media_type_answers_415(self, contract: Contract) -> None:
        body = b"length=30&weight=600"
        cases: list[Case] = [
            ("POST", "/predict", body, {"Content-Type": ctype})
            for ctype in (
                "text/plain",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x",
                "application/xml",
            )
        ]
        with contract.client() as c:
            failures = _collect(contract, c, cases, 415, "unsupported_media_type")
        assert not failures, failures_report(failures)
        contract.assert_alive()
