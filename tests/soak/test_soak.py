"""``fishpredict soak``: a short bounded soak passes, and a wrong server fails it.

The full 60 s run and its output are in docs/reliability.md; here it runs for
8 s against a socket-backend server it starts itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from fishpredict.fish import training as artifacts
from fishpredict.fish.dataset import FishData, load_fish
from fishpredict.soak.mix import EXPECTED_STATUS, GOOD, MIX, Request, check_answer, schedule
from fishpredict.testing import start_server


def soak(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fishpredict", "soak", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_mix_has_fixed_proportions_and_every_bad_kind_its_status() -> None:
    order = schedule(0)
    assert len(order) == 100
    assert Counter(order) == {kind: weight for kind, weight, _ in MIX}
    assert schedule(0) == order and schedule(1) != order
    assert sorted(GOOD) == ["fish", "predict_json", "predict_npy"]
    assert all(400 <= EXPECTED_STATUS[k] < 500 for k, _, _ in MIX if k not in GOOD)


def test_check_answer_catches_each_kind_of_wrong() -> None:
    good = Request("predict_json", b"", ("bream", "smelt"))
    assert check_answer(good, 200, b'{"predictions":["bream","smelt"]}') is None
    assert check_answer(good, 200, b'{"predictions":["smelt","smelt"]}') == "wrong answer"
    assert check_answer(good, 200, b"{") == "unreadable answer"
    assert check_answer(good, 503, b"") == "5xx"
    assert check_answer(good, 400, b"") == "status 400 (want 200)"
    bad = Request("oversized_body", b"")
    assert check_answer(bad, 413, b"") is None
    assert check_answer(bad, 200, b"") == "status 200 (want 413)"


def test_short_soak_passes_with_nothing_lost(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    run = soak("--backend", "socket", "--duration", "8", "--json", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "unexpected errors    0" in run.stdout
    assert "result               PASS" in run.stdout
    doc = json.loads(out.read_text())
    assert doc["passed"] is True
    assert doc["unexpected"] == {}
    assert doc["served"] > 5000, doc["served"]
    assert {k for k, _, _ in MIX} <= set(doc["by_kind"])  # every kind was sent
    assert set(doc["by_status"]) <= {"200", "400", "404", "405", "413", "415"}
    assert doc["server"] == {"exit": 0, "tracebacks": 0, "healthy_after": True}
    rss = doc["rss"]
    assert rss["start"] > 0 and rss["end"] > 0
    assert rss["growth_pct"] <= 10.0


def test_soak_of_a_server_with_other_models_fails(tmp_path: Path) -> None:
    """A server whose answers differ from the truth fails the soak (exit 1)."""
    fish = load_fish()
    models = tmp_path / "swapped"
    artifacts.save_models(models, data=FishData(X=fish.X, y=1 - fish.y))
    with start_server("socket", "--models", str(models), "--max-body-bytes", "65536",
                      "--max-batch-rows", "1000") as server:  # fmt: skip
        run = soak(server.url, "--duration", "2", "--pid", str(server.pid))
        assert server.stop() == 0
    assert run.returncode == 1, run.stdout
    assert "wrong answer" in run.stdout
    assert "result               FAIL" in run.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["http://127.0.0.1:9", "--backend", "socket"], "either a URL or --backend"),
        (["http://example.com"], "non-loopback"),
        (["--duration", "4000"], "duration"),
    ],
)
def test_soak_usage_errors_are_one_line(args: list[str], message: str) -> None:
    run = soak(*args, timeout=60)
    assert run.returncode == 2
    assert message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert "Traceback" not in run.stderr
