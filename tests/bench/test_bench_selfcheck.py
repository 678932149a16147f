"""selfcheck runs both engines on its own nginx and reports a ratio (not judged here:
speed is shown by `fishpredict bench selfcheck`, never asserted by a timed test)."""

from __future__ import annotations

import io

import pytest

from fishpredict.bench.selfcheck import selfcheck
from fishpredict.bench.wrk import wrk_path
from fishpredict.ops.nginx import nginx_path


@pytest.mark.skipif(nginx_path() is None or wrk_path() is None, reason="needs nginx and wrk")
def test_selfcheck_reports_both_engines() -> None:
    out = io.StringIO()
    report = selfcheck(seconds=1, connections=8, rounds=1, users=40, out=out)
    ((w, n),) = report.rounds
    assert w.engine == "wrk" and n.engine == "native"
    assert w.successes > 0 and n.successes > 0
    assert report.ratios[0] == pytest.approx(n.rps / w.rps)
    assert report.many_users is not None and report.many_users.users == 40
    assert report.users_ok
    text = out.getvalue()
    assert "median ratio native/wrk" in text and "40 virtual users" in text
