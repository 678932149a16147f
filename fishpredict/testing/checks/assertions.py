"""Assertions the checks share: the error shape, JSON answers, no tracebacks."""

from __future__ import annotations

from typing import Any

from fishpredict.server.client import ClientReply

#: text that must never reach a client (a leaked traceback or repr of internals)
LEAKS = (b"Traceback", b'File "', b"<class ", b"site-packages")


def assert_no_leak(reply: ClientReply) -> None:
    """The body shows no traceback or internals."""
    for needle in LEAKS:
        assert needle not in reply.body, f"answer leaks {needle!r}: {reply.body[:300]!r}"


def assert_json(reply: ClientReply, status: int = 200) -> Any:
    """``reply`` has ``status``, is ``application/json`` and parses; the document."""
    assert reply.status == status, f"expected {status}, got {reply!r}"
    assert reply.content_type == "application/json", f"expected JSON, got {reply!r}"
    length = reply.headers.get("content-length")
    if length is not None:
        assert int(length) == len(reply.body), f"Content-Length {length} != {len(reply.body)}"
    return reply.json()


def assert_error(reply: ClientReply, status: int, code: str | None = None) -> dict[str, str]:
    """``reply`` is the contract's error: ``{"error": {"code", "message"}}`` with
    ``status`` (and ``code`` when given), JSON, and no traceback."""
    doc = assert_json(reply, status)
    assert isinstance(doc, dict) and set(doc) == {"error"}, f"not an error document: {doc!r}"
    err = doc["error"]
    assert isinstance(err, dict) and set(err) == {"code", "message"}, f"bad error: {err!r}"
    assert isinstance(err["code"], str) and err["code"], f"bad code: {err!r}"
    assert isinstance(err["message"], str) and err["message"], f"bad message: {err!r}"
    assert "\n" not in err["message"], f"message is not one line: {err['message']!r}"
    if code is not None:
        assert err["code"] == code, f"expected code {code!r}, got {err!r}"
    assert_no_leak(reply)
    return err


def failures_report(failures: list[str]) -> str:
    """One message for a check that ran many cases and collected what failed."""
    return f"{len(failures)} case(s) failed:\n" + "\n".join(f"  - {f}" for f in failures)
