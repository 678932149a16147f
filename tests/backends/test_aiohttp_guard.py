"""What backends/aiohttp_guard.py adds to aiohttp, against a real aiohttp server.

The limits as a client sees them are the shared guard suite's
(:class:`fishpredict.testing.guards.GuardSuite`: head size and fields, exact at
the limit however the head is split, trailers, the head deadline, junk, the
connection limit, the linger, ``/metrics``), run here against aiohttp. What is
aiohttp's alone: the methods and state the guard hooks still exist, aiohttp's
parse errors map to 431 or 400 without echoing the request, a head is measured
as every backend measures it, a
stalled body lingers 2 s (not aiohttp's 10 s), and ``Expect: 100-continue``
works without aiohttp's router.
"""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest

pytest.importorskip("aiohttp")

from aiohttp.http_exceptions import BadHttpMessage, BadStatusLine, LineTooLong
from fishpredict_backends import aiohttp_guard

from fishpredict.app.messages import error
from fishpredict.errors import BackendUnavailableError
from fishpredict.server.flow import LINGER_SECONDS
from fishpredict.soak.faults import exchange
from fishpredict.testing import ServerProcess
from fishpredict.testing.guards import MARGIN, SETTINGS, GuardSuite, ask


class TestAiohttpGuard(GuardSuite):
    backend = "aiohttp"
    junk_log_lines = 1  # one WARNING line, not aiohttp's ERROR and traceback
    foreign_words = (b"text/plain", b"aiohttp")

    def test_a_stalled_body_is_closed_soon_after_its_408(self, server: ServerProcess) -> None:
        """aiohttp would keep reading for 10 s (its lingering_time); the guard's is 2 s."""
        raw = b"POST /predict HTTP/1.1\r\nHost: fish\r\nContent-Length: 100\r\n\r\n{"
        reply = exchange(server.host, server.port, raw, timeout=10.0)
        assert reply.statuses == [408], reply.raw[:200]
        assert reply.closed or reply.reset
        limit = SETTINGS["request_timeout"] + LINGER_SECONDS + MARGIN
        assert reply.elapsed <= limit, reply.elapsed

    def test_expect_100_continue(self, server: ServerProcess) -> None:
        body = b'{"instances":[[30,600]]}'
        post = (
            b"POST /predict HTTP/1.1\r\nHost: fish\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n"
        )
        with socket.create_connection((server.host, server.port), timeout=5) as sock:
            sock.sendall(post % len(body))
            assert sock.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"
            sock.sendall(body)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        # over the body limit: 413 at once, no "100 Continue"
        reply = ask(server, post % (SETTINGS["max_body_bytes"] + 1))
        assert reply.statuses == [413] and b"100 Continue" not in reply.raw


def test_every_hooked_method_is_still_aiohttps() -> None:
    aiohttp_guard.check_aiohttp()


def test_a_moved_hook_refuses_to_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    hooks = dict(aiohttp_guard.HOOKS)
    hooks[BadHttpMessage] = ("gone_method",)
    monkeypatch.setattr(aiohttp_guard, "HOOKS", hooks)
    with pytest.raises(BackendUnavailableError, match="gone_method"):
        aiohttp_guard.check_aiohttp()


def test_moved_state_refuses_to_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiohttp_guard, "STATE", (*aiohttp_guard.STATE, "_gone_state"))
    with pytest.raises(BackendUnavailableError, match=r"RequestHandler\._gone_state"):
        aiohttp_guard.check_aiohttp()


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (LineTooLong(b"x" * 100, 8190), 431),
        (BadHttpMessage("Too many headers received"), 431),
        (BadStatusLine("secret-junk"), 400),
        (BadHttpMessage("Duplicate 'Content-Length' header found."), 400),
        (None, 400),
    ],
)
def test_parse_errors_map_to_431_or_400_without_echo(
    exc: BaseException | None, status: int
) -> None:
    response, reason = aiohttp_guard.head_refusal(exc)
    assert response.status == status
    assert reason == ("headers_too_large" if status == 431 else "bad_request")
    assert b"secret" not in response.body and b"xxxx" not in response.body


def test_a_guard_refusal_carries_its_own_answer() -> None:
    slow = error(408, "request_timeout", "request head not received in time")
    refusal = aiohttp_guard.GuardRefusal(slow, "header_timeout")
    assert refusal.code == 408
    assert aiohttp_guard.head_refusal(refusal) == (slow, "header_timeout")


def test_head_size_counts_as_every_backend() -> None:
    """The target's bytes plus each field's name and value + 4 (": " and CRLF)."""
    message = SimpleNamespace(path="/fish?k=é", raw_headers=((b"Host", b"fish"), (b"X-A", b"")))
    assert aiohttp_guard.head_size(message) == len("/fish?k=é".encode()) + (4 + 4 + 4) + (3 + 4)
