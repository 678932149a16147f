"""Checks of the operational routes and of the connection itself: health,
readiness, models, metrics, the spec, admin reload, keep-alive, and the
byte-for-byte agreement with the in-process Service."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import TYPE_CHECKING

from fishpredict.app.protocols import all_routes
from fishpredict.app.service import route_names
from fishpredict.server.client import raw_exchange
from fishpredict.testing.checks.assertions import assert_error, assert_json, failures_report
from fishpredict.testing.transcript import (
    differences,
    exchanges,
    service_transcript,
    wire_transcript,
)

if TYPE_CHECKING:
    from fishpredict.testing.contract import Contract


def _requests_total(text: str, route: str, method: str, status: str) -> float:
    """The ``fishpredict_requests_total`` sample for these labels (0 if absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        if family.name != "fishpredict_requests":
            continue
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "fishpredict_requests_total"
                and labels.get("route") == route
                and labels.get("method") == method
                and labels.get("status") == status
            ):
                return float(sample.value)
    return 0.0


class ServiceChecks:
    """Health, readiness, models, metrics, the spec, admin, and the connection."""

    def test_healthz(self, contract: Contract) -> None:
        with contract.client() as c:
            assert assert_json(c.get("/healthz")) == {"status": "ok"}

    def test_readyz(self, contract: Contract) -> None:
        with contract.client() as c:
            doc = assert_json(c.get("/readyz"))
        assert doc == {"status": "ready", "models": len(contract.reference.models())}, doc

    def test_models(self, contract: Contract) -> None:
        """Names, k, classes and sha256 of every model, the default and the labels."""
        with contract.client() as c:
            doc = assert_json(c.get("/models"))
        assert set(doc) == {"models", "default", "labels", "last_reload_error"}, doc
        got = [(m["name"], m["k"], m["classes"], m["sha256"]) for m in doc["models"]]
        want = [(i.name, i.k, list(i.classes), i.sha256) for i in contract.reference.models()]
        assert got == want, f"/models lists {got}, expected {want}"
        for m in doc["models"]:
            assert re.fullmatch(r"[0-9a-f]{64}", m["sha256"]), m
        assert doc["default"] == contract.reference.model(None).name, doc
        assert doc["labels"] == "en" and doc["last_reload_error"] is None, doc
        with contract.client(contract.ko) as c:
            assert assert_json(c.get("/models"))["labels"] == "ko"

    def test_metrics_parse_and_count(self, contract: Contract) -> None:
        """Prometheus text that parses, and counts exactly the requests made."""
        from prometheus_client.parser import text_string_to_metric_families

        with contract.client() as c:
            first = c.get("/metrics")
            assert first.status == 200 and first.content_type == "text/plain", first
            families = {f.name: f for f in text_string_to_metric_families(first.body.decode())}
            assert families["fishpredict_requests"].type == "counter", families.keys()
            assert "fishpredict_request_duration_seconds" in families, families.keys()
            before = _requests_total(first.body.decode(), "/healthz", "GET", "200")
            before_404 = _requests_total(first.body.decode(), "other", "GET", "404")
            for _ in range(7):
                assert c.get("/healthz").status == 200
            for _ in range(3):
                assert c.get("/no-such-route").status == 404
            after = c.get("/metrics").body.decode()
        assert _requests_total(after, "/healthz", "GET", "200") - before == 7, after
        assert _requests_total(after, "other", "GET", "404") - before_404 == 3, after

    def test_openapi_served(self, contract: Contract) -> None:
        """``/openapi.json`` is the package's spec made exact for the loaded models
        (what the in-process Service serves): every route, a model route once per
        model, the admin route only when it is answered."""
        packaged = resources.files("fishpredict").joinpath("openapi.json").read_bytes()
        with contract.client() as c:
            reply = c.get("/openapi.json")
        assert_json(reply)
        assert reply.body == contract.service().openapi(), "served spec differs from the Service's"
        served, spec = json.loads(reply.body), json.loads(packaged)
        admin = {r.path for r in all_routes() if r.enabled_by == "admin_token"}
        per_model = sorted(p for p in spec["paths"] if "{name}" in p)
        off = sorted(set(spec["paths"]) - set(served["paths"]) - set(per_model))
        # routes answered only when enabled (the admin routes without a token) are
        # left out of the spec of a server that does not answer them
        assert off in ([], sorted(p for p in admin if "{" not in p)), off
        if off:
            per_model = [p for p in per_model if p not in admin]
        for path in off:
            with contract.client() as c:
                assert c.request("POST", path).status == 404
        for info in contract.reference.models():
            for template in per_model:
                path = template.replace("{name}", info.name)
                assert any(re.fullmatch(re.sub(r"\\{version\\}", "[0-9a-f]+", re.escape(path)),
                                        p) for p in served["paths"]), path
        fixed = set(route_names()) - set(per_model) - set(off) - (admin if off else set())
        assert fixed <= set(served["paths"]), sorted(fixed - set(served["paths"]))

    def test_bodies_match_the_service_byte_for_byte(self, contract: Contract) -> None:
        """A fixed list of requests answers exactly what ``Service.handle`` answers
        in-process: status, media type, Allow/Retry-After/WWW-Authenticate, body."""
        requests = exchanges(contract.max_batch_rows, contract.max_body_bytes)
        with contract.client() as c:
            got = wire_transcript(c, requests)
        diff = differences(service_transcript(contract.service("en"), requests), got)
        assert not diff, failures_report(diff)

    def test_keep_alive(self, contract: Contract) -> None:
        """Several requests, errors included, on one kept-alive connection."""
        with contract.client() as c:
            c.get("/healthz")
            port = c.local_port
            for target in ("/fish?length=30&weight=600", "/fish?length=x", "/nope", "/readyz"):
                c.get(target)
            c.post_json("/predict", {"instances": [[30.0, 600.0]]})
            c.post_json("/predict", b"{bad json")
            c.request("POST", "/fish", b"{}", {"Content-Type": "application/json"})
            assert c.get("/healthz").status == 200
            assert c.connections_opened == 1, "the server closed a keep-alive connection"
            assert c.local_port == port

    def test_connection_close_honoured(self, contract: Contract) -> None:
        """``Connection: close`` ends the connection after the answer."""
        head = (
            f"GET /healthz HTTP/1.1\r\nHost: {contract.main.host}\r\nConnection: close\r\n\r\n"
        ).encode()
        data = raw_exchange(contract.main.host, contract.main.port, head, timeout=5.0)
        assert data.startswith(b"HTTP/1.1 200"), data[:200]
        assert data.endswith(b'{"status":"ok"}'), data[-200:]

    def test_head_answers_without_a_body(self, contract: Contract) -> None:
        """HEAD is a method like any other (405 on GET routes), and its answer has
        headers only: the connection stays usable."""
        with contract.client() as c:
            reply = c.request("HEAD", "/healthz")
            assert reply.status == 405 and reply.body == b"", reply
            assert reply.headers.get("allow") == "GET", reply.headers
            assert c.get("/healthz").status == 200
            assert c.connections_opened == 1

    def test_absolute_form_target(self, contract: Contract) -> None:
        """``GET http://host/path`` routes like ``GET /path`` (RFC 9112, 3.2.2)."""
        host, port = contract.main.host, contract.main.port
        head = (
            f"GET http://{host}:{port}/fish?length=30&weight=600 HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\nConnection: close\r\n\r\n"
        ).encode()
        data = raw_exchange(host, port, head, timeout=5.0)
        assert data.startswith(b"HTTP/1.1 200"), data[:300]
        want = contract.service().handle("GET", "/fish", "length=30&weight=600", {}).body
        assert data.endswith(want), data[-300:]

    def test_survives_garbage(self, contract: Contract) -> None:
        """Malformed HTTP never kills or wedges the server."""
        host, port = contract.main.host, contract.main.port
        for junk in (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS hello
            b"GARBAGE\r\n\r\n",
            b"GET /healthz HTTP/9.9\r\n\r\n",
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n{}",
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{",
        ):
            data = raw_exchange(host, port, junk, timeout=0.5)
            assert b"Traceback" not in data, data[:500]
            contract.assert_alive()

    def test_admin_reload_off_without_token(self, contract: Contract) -> None:
        with contract.client() as c:
            assert_error(c.request("POST", "/admin/reload"), 404, "not_found")

    def test_admin_reload_with_token(self, contract: Contract) -> None:
        """401 without or with a wrong token, 200 with the right one, 405 for GET."""
        with contract.client(contract.ko) as c:
            reply = c.request("POST", "/admin/reload")
            assert_error(reply, 401, "unauthorized")
            assert reply.headers.get("www-authenticate", "").startswith("Bearer"), reply.headers
            wrong = {"Authorization": "Bearer " + "x" * len(contract.admin_token)}
            assert_error(c.request("POST", "/admin/reload", headers=wrong), 401, "unauthorized")
            right = {"Authorization": f"Bearer {contract.admin_token}"}
            doc = assert_json(c.request("POST", "/admin/reload", headers=right))
            assert set(doc) == {"reloaded", "models", "version", "workers"}, doc
            assert doc["models"] == [m.name for m in contract.reference.models()], doc
            reply = c.get("/admin/reload", headers=right)
            assert_error(reply, 405, "method_not_allowed")
            assert reply.headers.get("allow") == "POST", reply.headers
        contract.assert_alive(contract.ko)

    def test_all_routes_documented(self, contract: Contract) -> None:
        """Each route of the contract answers something other than 404 on the wire."""
        failures = []
        with contract.client(contract.ko) as c:
            model = json.loads(c.get("/models").body)["models"][0]
            version = model["sha256"][:12]  # a model's V2 version
            for template in route_names():
                route = template.replace("{name}", model["name"]).replace("{version}", version)
                reply = c.request("GET" if route != "/predict" else "POST", route)
                if reply.status == 404:
                    failures.append(f"{route}: {reply!r}")
        assert not failures, failures_report(failures)
