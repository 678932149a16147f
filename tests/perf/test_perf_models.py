"""``perf models``: the suite runs on a tiny configuration and reports every model with
both figures, ratios, targets and verdicts (no timing asserts: this machine is shared)."""

from __future__ import annotations

import json

from fishpredict.perf import models


def test_a_quick_run_reports_every_model_in_one_table() -> None:
    lines: list[str] = []
    result = models.run(quick=True, seconds=0.02, only=("iris-knn", "cancer-forest",
                                                       "diabetes-ridge", "digits-svc"),
                        say=lines.append, http=False)
    names = [m["name"] for m in result["models"]]
    assert names == ["iris-knn", "cancer-forest-10", "diabetes-ridge", "digits-svc"]
    families = {m["name"]: m["fast_path"] for m in result["models"]}
    assert families == {"iris-knn": "knn", "cancer-forest-10": "forest",
                        "diabetes-ridge": "linear", "digits-svc": None}
    for m in result["models"]:
        for part in ("one_row", "rows_64"):
            p = m[part]
            assert p["sklearn_s"] > 0 and p["fishpredict_s"] > 0
            assert p["speedup"] > 0  # the median of the rounds' ratios
            assert p["met"] == (p["speedup"] >= p["target"])
    assert {m["name"]: m["one_row"]["target"] for m in result["models"]}["cancer-forest-10"] == 50
    assert result["models"][-1]["one_row"]["target"] < 1  # "at most 10% slower"
    text = "\n".join(lines)
    assert text.startswith("# fishpredict perf models")
    table = result["table"]
    assert table in text
    for name in names:
        row = next(line for line in table.splitlines() if line.startswith(name))
        assert row.count("x  ") >= 2 and ("MET" in row)
    assert "targets:" in text and "noise:" in text
    json.dumps(result)  # --json can write it as it is


def test_paired_ratios_say_which_call_does_more_work() -> None:
    """Twenty times the work is slower in the median round, whatever else the machine
    runs; the medians of the rounds' times are given beside it."""
    pair = models.paired(lambda: sum(range(20_000)), lambda: sum(range(1_000)), 0.2, rounds=8)
    assert pair.ratio > 2 and pair.a_s > pair.b_s > 0
    back = models.paired(lambda: sum(range(1_000)), lambda: sum(range(20_000)), 0.2, rounds=8)
    assert back.ratio < 0.5


def test_the_http_part_serves_both_models_with_batching_on_and_off() -> None:
    """Four real servers (two models x batching on/off), a short load each: every
    figure is there, zero errors, and the target line says what it judged."""
    from fishpredict.perf.modelbatching import http_part

    lines: list[str] = []
    result = http_part(quick=True, connections=4, say=lines.append)
    assert set(result["models"]) == {"logistic", "forest"}
    for figures in result["models"].values():
        assert figures["on"]["rps"] > 0 and figures["off"]["rps"] > 0
        assert figures["on"]["error_count"] == figures["off"]["error_count"] == 0
        assert figures["ratio"] == figures["on"]["rps"] / figures["off"]["rps"]
    text = "\n".join(lines)
    assert "on vs off" in text and text.count("\nforest ") == 2
    assert lines[-1].startswith("target: micro-batching on >= 10x off")
    assert lines[-1].endswith("MET")
