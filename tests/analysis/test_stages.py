"""Judging by load stage and by window (analysis.stages): a slice of the run's windows judged
on its own, the worst window, and the run's verdict made the worst of its stages."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import numpy as np

from analysis.junit import render_junit
from analysis.report import render
from analysis.results import Results, Series, WindowResult
from analysis.stages import (
    Stage,
    _measured,
    judge_all,
    judge_stages,
    stage_columns,
    stage_rows,
    worst_window,
)
from analysis.verdict import Limits, RunHealth, Slo, Verdict
from coordinator.run import build_results
from coordinator.spec import parse_spec
from workers.histogram import Histogram
from workers.load_worker import WorkerReport
from workers.recorder import Window

MS = 1_000_000
RANGES = ((400, 599),)


def window(index: int, latency_ms: float, n: int = 400, errors: int = 0) -> WindowResult:
    """Return a 1 s window of ``n`` requests around ``latency_ms`` (+-10 %), ``errors`` 500s."""
    rng = np.random.default_rng(index)
    values = (latency_ms * MS * rng.uniform(0.9, 1.1, n)).astype(np.int64)
    series = [Series(endpoint="GET /", outcome="status:200", count=n - errors,
                     hdr=Histogram.from_values(values[errors:]).encode())]
    if errors:
        series.append(Series(endpoint="GET /", outcome="status:500", count=errors,
                             hdr=Histogram.from_values(values[:errors]).encode()))
    return WindowResult(index=index, start_s=float(index), scheduled=n, sent=n,
                        lag=Histogram().encode(), latency=series, service=series)


P90 = Slo(metric="latency-p90", upper_limit=50.0)


def test_a_slow_stage_fails_alone() -> None:
    """Three stages of two windows; only the middle one is slow: PASS, FAIL, PASS."""
    windows = [window(i, 100.0 if i in (2, 3) else 10.0) for i in range(6)]
    stages = [Stage(name=f"s{i}", rate=400.0, duration_s=2.0) for i in range(3)]
    judged = judge_stages(stages, [P90], windows, error_ranges=RANGES, window_s=1.0,
                          limits=Limits())
    assert [s.verdict for s in judged] == ["PASS", "FAIL", "PASS"]
    assert [s.requests for s in judged] == [800, 800, 800]
    assert [s.start_s for s in judged] == [0.0, 2.0, 4.0]
    assert 90.0 <= judged[1].objectives[0].value <= 110.0  # type: ignore[operator]
    assert stage_rows(judged)[1][-2:] == ("FAIL", judged[1].reasons[0])


def test_the_run_is_the_worst_of_its_stages() -> None:
    """A run whose whole p90 passes still FAILs when one stage fails, naming the stage."""
    windows = [window(i, 100.0 if i == 5 else 10.0) for i in range(12)]
    spec = {"load": {"window": 1.0, "stages": [{"rate": 400, "duration": 4.0},
                                               {"rate": 800, "duration": 4.0, "name": "peak"},
                                               {"rate": 400, "duration": 4.0}]}}
    measured = _measured(windows, 12.0, RANGES)
    judged, stages = judge_all([P90], measured, RunHealth(), Limits(), windows, spec)
    assert stages is not None and [s.verdict for s in stages] == ["PASS", "FAIL", "PASS"]
    assert judged.verdict.objectives[0].verdict is Verdict.PASS  # the whole run's p90
    assert judged.verdict.verdict is Verdict.FAIL
    assert judged.verdict.reasons[0].startswith("stage 2 (peak, 800 req/s): latency-p90")


def test_worst_window_fails_on_one_slow_window() -> None:
    """p99 in every window: one slow window of ten fails the objective, with its value."""
    windows = [window(i, 300.0 if i == 7 else 10.0) for i in range(10)]
    objective = Slo(metric="latency-p99", upper_limit=200.0, window="worst")
    judged = worst_window(objective, windows, error_ranges=RANGES, window_s=1.0,
                          limits=Limits())
    assert judged.verdict is Verdict.FAIL and judged.objective is objective
    assert judged.value is not None and 300.0 <= judged.value <= 335.0
    assert judged.reason.startswith("window 7 (7-8 s) of 10: ")


def test_worst_window_passes_only_when_every_window_passes() -> None:
    """All windows fast: PASS, the value the slowest window's p99."""
    windows = [window(i, 10.0 + i) for i in range(5)]
    objective = Slo(metric="latency-p99", upper_limit=200.0, window="worst")
    judged = worst_window(objective, windows, error_ranges=RANGES, window_s=1.0,
                          limits=Limits())
    assert judged.verdict is Verdict.PASS
    assert judged.value is not None and 14.0 <= judged.value <= 15.5


def test_worst_window_error_rate_uses_each_windows_interval() -> None:
    """error-rate per window: a window with 10 % errors of 400 fails a 2 % limit even when
    the run's overall rate (1 %) would pass it."""
    windows = [window(i, 10.0, errors=40 if i == 3 else 0) for i in range(10)]
    objective = Slo(metric="error-rate", upper_limit=0.02, window="worst")
    judged = worst_window(objective, windows, error_ranges=RANGES, window_s=1.0,
                          limits=Limits())
    assert judged.verdict is Verdict.FAIL and judged.value == 0.1


def staged_users_run() -> Results:
    """Return a results document of stages of 2 then 6 users (two 1 s windows each, 1,000
    requests in each of the first, 100 in each of the second) whose last window is slow
    (100 ms against a 50 ms p90 limit): the second stage fails, the whole run's p90 passes."""
    spec = parse_spec({"name": "users", "target": "http://127.0.0.1:8080",
                       "load": {"stages": [{"users": 2, "duration": 2},
                                           {"users": 6, "duration": 2, "name": "peak"}]},
                       "objectives": ["p(90)<50ms"]})
    windows = []
    for index, (n, latency_ms) in enumerate([(1000, 10), (1000, 10), (100, 10), (100, 100)]):
        latency = {("GET /", "status:200"): Histogram.from_values(
            np.full(n, latency_ms * MS, dtype=np.int64))}
        windows.append(Window(index=index, start_s=float(index), latency=latency,
                              service=latency, lag=Histogram.from_values(np.full(n, 50_000)),
                              scheduled=n, sent=n))
    report = WorkerReport(worker_index=0, host="h", pid=1, started_at=0.0, measured_s=4.0,
                          windows=tuple(windows), warmup_requests=0, unsent=0)
    start = datetime(2026, 12, 1, tzinfo=UTC)
    return build_results(spec, [report], started=start, ended=start + timedelta(seconds=4))


def test_stages_of_users_are_judged_and_shown_by_their_users() -> None:
    """Stages of users are judged one by one like stages of rates; the run FAILs naming the
    stage by its users, the table has a users column, and the document keeps them."""
    results = staged_users_run()
    assert results.stages is not None
    assert [(s.users, s.rate, s.verdict) for s in results.stages] == [
        (2, None, "PASS"), (6, None, "FAIL")]
    assert results.verdict == "FAIL"
    assert results.reasons[0].startswith("stage 2 (peak, 6 users): latency-p90")
    assert [s.requests for s in results.stages] == [2000, 200]
    assert stage_columns(results.stages)[1] == "users"
    assert [row[1] for row in stage_rows(results.stages)] == ["2 users", "6 users"]
    assert "| stage | users | requests |" in render(results, "markdown")
    for fmt in ("text", "html"):
        assert "6 users" in render(results, fmt, width=200), fmt
    again = Results.model_validate_json(results.to_json())
    assert again.stages == results.stages
    assert '"rate"' not in json.dumps(json.loads(results.to_json())["stages"])


def test_junit_has_each_stages_objectives_as_cases_of_their_own() -> None:
    """The JUnit report shows which stage failed: each stage's objectives are test cases named
    after the stage, besides the whole run's."""
    suite = ET.fromstring(render_junit(staged_users_run()))
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert list(cases) == ["latency-p90", "stage 1 (stage 1, 2 users): latency-p90",
                           "stage 2 (peak, 6 users): latency-p90", "run"]
    assert cases["stage 1 (stage 1, 2 users): latency-p90"].find("failure") is None
    failure = cases["stage 2 (peak, 6 users): latency-p90"].find("failure")
    assert failure is not None and (failure.get("message") or "").endswith("is not <= 50 ms")
    assert cases["latency-p90"].find("failure") is None  # the whole run's p90 passes
    assert suite.get("failures") == "2"  # the slow stage, and the run it fails
