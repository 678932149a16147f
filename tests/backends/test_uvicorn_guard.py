"""What backends/uvicorn_guard.py adds to uvicorn, against a real starlette server.

The limits as a client sees them are the shared guard suite's
(:class:`fishpredict.testing.guards.GuardSuite`: head size and fields, exact at
the limit however the head is split, trailers, the head deadline, junk, the
connection limit, the linger, ``/metrics``), run here against starlette. What is
uvicorn's alone: the methods the guard hooks still exist, uvicorn's own words
never reach a client, and a refusal behind pipelined requests is not answered
(the last answer closes instead).
"""

from __future__ import annotations

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("httptools")

from fishpredict_backends import uvicorn_guard

from fishpredict.errors import BackendUnavailableError
from fishpredict.testing.guards import GuardSuite


class TestUvicornGuard(GuardSuite):
    backend = "starlette"
    junk_log_lines = 1  # uvicorn's WARNING "Invalid HTTP request received."
    foreign_words = (b"Invalid HTTP request", b"text/plain")
    answers_refusal_after_pipelined = False


def test_every_hooked_method_is_still_uvicorns() -> None:
    uvicorn_guard.check_uvicorn()  # the installed uvicorn has them all


def test_a_moved_hook_refuses_to_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uvicorn_guard, "HOOKS", (*uvicorn_guard.HOOKS, "on_gone"))
    with pytest.raises(BackendUnavailableError, match="on_gone"):
        uvicorn_guard.check_uvicorn()
