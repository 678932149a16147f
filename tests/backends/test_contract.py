"""The HTTP contract suite over every registered backend, and the example plugin.

One generated :class:`fishpredict.testing.ContractSuite` subclass per backend
(built-in, the example ``httpserver`` plugin, and any other installed plugin),
plus a check that all backends answer a fixed list of requests byte for byte
alike.
"""

from __future__ import annotations

import pytest

from fishpredict.errors import ServerError
from fishpredict.plugins import list_backends
from fishpredict.testing import Contract, ContractSuite, check_names, run_contract, start_server
from fishpredict.testing.contract import MAX_BATCH_ROWS, MAX_BODY_BYTES
from fishpredict.testing.transcript import Answer, differences, exchanges, wire_transcript

BUILTIN = ("aiohttp", "socket", "starlette")
EXAMPLE = "httpserver"
EXAMPLE_HINT = "the example plugin is not installed: pip install -e examples/fishpredict-httpserver"

_INFOS = {info.name: info for info in list_backends()}


def _skip_reason(name: str) -> str | None:
    info = _INFOS.get(name)
    if info is None:
        return EXAMPLE_HINT if name == EXAMPLE else f"backend {name!r} is not registered"
    if not info.available:
        return f"backend {name!r} needs {', '.join(info.missing)}"
    return None


NAMES = sorted({*BUILTIN, EXAMPLE, *_INFOS})
AVAILABLE = [name for name in NAMES if _skip_reason(name) is None]
REQUESTS = exchanges(MAX_BATCH_ROWS, MAX_BODY_BYTES)

#: backend -> its answers to REQUESTS, recorded by each class on its own server
_TRANSCRIPTS: dict[str, dict[str, Answer]] = {}


def _record_transcript(self: ContractSuite, contract: Contract) -> None:
    """Record this backend's answers to the fixed requests (compared at the end)."""
    with contract.client() as client:
        _TRANSCRIPTS[self.backend] = wire_transcript(client, REQUESTS)


for _name in NAMES:
    _reason = _skip_reason(_name)
    _cls = type(
        f"TestContract_{_name}",
        (ContractSuite,),
        {
            "backend": _name,
            "pytestmark": [pytest.mark.skip(reason=_reason)] if _reason else [],
            "__doc__": f"The contract suite against the {_name!r} backend.",
            "test_record_transcript": _record_transcript,
        },
    )
    globals()[_cls.__name__] = _cls


def _transcript_of(name: str) -> dict[str, Answer]:
    """The recorded transcript, or one from a fresh server (when run alone, e.g. -k)."""
    if name not in _TRANSCRIPTS:
        limits = ("--max-body-bytes", str(MAX_BODY_BYTES), "--max-batch-rows", str(MAX_BATCH_ROWS))
        with start_server(name, *limits) as server, server.client() as client:
            _TRANSCRIPTS[name] = wire_transcript(client, REQUESTS)
            assert server.stop() == 0, server.stderr_text()
    return _TRANSCRIPTS[name]


def test_run_contract_without_pytest_runner() -> None:
    """``run_contract`` runs checks by name and records the server's clean exit."""
    if not AVAILABLE:
        pytest.skip("no backend available")
    wanted = {"test_healthz", "test_openapi_served", "test_wrong_method_answers_405_with_allow"}
    results = run_contract(AVAILABLE[0], select=wanted.__contains__)
    assert [r.name for r in results] == [*(n for n in check_names() if n in wanted), "clean_exit"]
    assert all(r.outcome == "passed" for r in results), results


def test_start_server_reports_the_servers_stderr() -> None:
    with pytest.raises(ServerError, match="unknown backend 'no-such-backend'"):
        start_server("no-such-backend", timeout=60)


def test_builtin_backends_are_registered() -> None:
    """The three built-in backends always register (available or not)."""
    assert set(BUILTIN) <= set(_INFOS), sorted(_INFOS)


def test_every_backend_answers_the_same_bytes() -> None:
    """Status, media type, contract headers and body agree across all backends.
    (Last in the module, so the classes above have recorded their transcripts.)"""
    if len(AVAILABLE) < 2:
        pytest.skip(f"fewer than two backends available: {AVAILABLE}")
    first, *others = AVAILABLE
    report = []
    for other in others:
        diff = differences(_transcript_of(first), _transcript_of(other))
        report += [f"{first} vs {other}: {line}" for line in diff]
    assert not report, "\n".join(report)
