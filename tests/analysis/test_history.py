"""Run history: Keptn-style drift of the newest run (tolerance, aggregate, reference runs, the
statistical guard), trends from real results documents, and the three report formats."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from analysis.history import (
    CheckState,
    Drift,
    DriftPolicy,
    History,
    RunPoint,
    Track,
    check_metric,
    detect_drift,
    history_of,
    trend_frame,
)
from analysis.history_report import render_history, sparkline
from tests.support.helpers import present
from tests.support.runs import DAY0, document

P99 = Track(metric="latency-p99")
ERRORS = Track(metric="error-rate")
THROUGHPUT = Track(metric="throughput")
COUNT = Track(metric="request-count")


@pytest.mark.parametrize("track, past, newest, interval, state", [
    pytest.param(P99, [10, 10, 10], 11.5, (11.3, 11.7), CheckState.REGRESSED,
                 id="latency-15%-worse-tight-interval-regressed"),
    pytest.param(P99, [10, 10, 10], 11.5, (10.5, 12.5), CheckState.UNCERTAIN,
                 id="latency-15%-worse-wide-interval-not"),
    pytest.param(P99, [10, 10, 10], 11.5, None, CheckState.UNCERTAIN,
                 id="latency-worse-no-interval-not"),
    pytest.param(P99, [10, 10, 10], 10.9, (10.8, 11.0), CheckState.OK,
                 id="latency-9%-worse-within-tolerance"),
    pytest.param(P99, [10, 10, 10], 8.0, (7.9, 8.1), CheckState.OK, id="latency-better"),
    pytest.param(P99, [10, 11, 9], 11.2, (11.05, 11.3), CheckState.REGRESSED,
                 id="median-of-noisy-reference"),
    pytest.param(P99, [10, 10, 40], 11.5, (11.3, 11.7), CheckState.REGRESSED,
                 id="median-ignores-one-odd-night"),
    pytest.param(THROUGHPUT, [1000, 1000, 1000], 850.0, (850.0, 850.0), CheckState.REGRESSED,
                 id="throughput-15%-lower-regressed"),
    pytest.param(THROUGHPUT, [1000, 1000, 1000], 930.0, (930.0, 930.0), CheckState.OK,
                 id="throughput-7%-lower-within"),
    pytest.param(THROUGHPUT, [1000, 1000, 1000], 1300.0, (1300.0, 1300.0), CheckState.OK,
                 id="throughput-higher-is-better"),
    pytest.param(ERRORS, [0.0, 0.0, 0.0], 0.02, (0.015, 0.026), CheckState.REGRESSED,
                 id="error-rate-from-0-to-2%"),
    pytest.param(ERRORS, [0.0, 0.0, 0.0], 0.0005, (0.0002, 0.0009), CheckState.OK,
                 id="error-rate-from-0-under-the-slack"),
    pytest.param(P99, [10, None, None], 20.0, (19.0, 21.0), CheckState.NO_REFERENCE,
                 id="too-few-reference-values"),
    pytest.param(P99, [10, 10, 10], None, None, CheckState.NO_DATA, id="newest-has-no-data"),
    pytest.param(COUNT, [100, 100, 100], 10.0, (10.0, 10.0), CheckState.OK,
                 id="counts-have-no-bad-direction"),
])
def test_check_metric(track: Track, past: list[float | None], newest: float | None,
                      interval: tuple[float, float] | None, state: CheckState) -> None:
    """A metric regresses only when its whole interval is past reference × (1 ± 10 %) in its
    bad direction; noise, improvements and missing data never do."""
    check = check_metric(track, newest, interval, past, DriftPolicy())
    assert check.state is state, check.why
    assert check.regressed is (state is CheckState.REGRESSED)


def test_check_reports_reference_bound_and_change() -> None:
    """The check carries the median reference, the bound 10 % above it and the change in %."""
    check = check_metric(P99, 12.0, (11.5, 12.5), [9.0, 10.0, 30.0], DriftPolicy())
    assert check.reference == 10.0
    assert check.bound == pytest.approx(11.0) and check.change_pct == pytest.approx(20.0)
    assert check.why \
        == "12 ms (interval 11.5 ms..12.5 ms) is wholly above the bound 11 ms (median 10 ms + 10%)"


def test_mean_aggregate_follows_an_odd_night_the_median_ignores() -> None:
    """With the mean, one slow earlier night (40 ms) lifts the reference to 20 ms: no regression."""
    check = check_metric(P99, 11.5, (11.3, 11.7), [10, 10, 40], DriftPolicy(aggregate="mean"))
    assert (check.reference, check.state) == (20.0, CheckState.OK)


def _point(day: int, p99: float | None, verdict: str = "PASS") -> RunPoint:
    return RunPoint(name="nightly", start_time=DAY0 + timedelta(days=day), verdict=verdict,
                    source=f"run-{day}", values={"latency-p99": p99})


def _drift(values: Sequence[tuple[float | None, str]], interval: tuple[float, float] | None,
           **policy: Any) -> Drift:
    runs = [_point(day, value, verdict) for day, (value, verdict) in enumerate(values)]
    return detect_drift(runs, [P99], {"latency-p99": interval},
                        DriftPolicy(**policy))


def test_fail_runs_are_left_out_of_the_reference() -> None:
    """Two slow FAIL nights do not count: the reference is the PASS nights' 10 ms."""
    drift = _drift([(10, "PASS"), (20, "FAIL"), (20, "FAIL"), (10, "PASS"), (10, "PASS"),
                    (11.5, "PASS")], (11.3, 11.7))
    assert [r.verdict for r in drift.reference_runs] == ["PASS"] * 3
    assert drift.checks[0].reference == 10 and drift.regressed


def test_reference_verdicts_can_include_fail_runs() -> None:
    """Counting FAIL runs too, the median of 10, 20, 20, 10, 10 is 10; of the last 4 it is 15."""
    drift = _drift([(10, "PASS"), (20, "FAIL"), (20, "FAIL"), (10, "PASS"), (11.5, "PASS")],
                   (11.3, 11.7), reference_verdicts=("PASS", "FAIL"))
    assert drift.checks[0].reference == 15 and not drift.regressed


def test_only_the_last_k_runs_make_the_reference() -> None:
    """With --against 3 the slow old nights (100 ms) are past the window: the reference is 10 ms."""
    drift = _drift([(100, "PASS")] * 3 + [(10, "PASS")] * 3 + [(11.5, "PASS")], (11.3, 11.7),
                   against=3)
    assert [r.source for r in drift.reference_runs] == ["run-3", "run-4", "run-5"]
    assert drift.checks[0].reference == 10 and drift.regressed


@pytest.mark.parametrize("values, line", [
    pytest.param([(11.5, "PASS")], "no reference: 0 earlier PASS runs, need 3+", id="first-run"),
    pytest.param([(10, "PASS"), (10, "FAIL"), (11.5, "PASS")],
                 "no reference: 1 earlier PASS run, need 3+", id="one-pass-one-fail"),
])
def test_too_few_earlier_runs_is_said_never_a_silent_pass(values: list[tuple[float, str]],
                                                          line: str) -> None:
    """Fewer earlier PASS runs than the minimum (3) leaves every metric without a reference, and
    the drift says so."""
    drift = _drift(values, (11.3, 11.7))
    assert drift.no_reference == line and line in drift.summary()
    assert [c.state for c in drift.checks] == [CheckState.NO_REFERENCE]
    assert not drift.regressed


def test_against_below_the_minimum_lowers_the_minimum() -> None:
    """--against 1 compares with the one run before: one reference run is then enough."""
    drift = _drift([(10, "PASS"), (11.5, "PASS")], (11.3, 11.7), against=1)
    assert drift.no_reference is None and drift.regressed


@pytest.mark.parametrize("previous, newest, regressed", [
    pytest.param("PASS", "FAIL", True, id="pass-to-fail"),
    pytest.param("PASS", "INCONCLUSIVE", True, id="pass-to-inconclusive"),
    pytest.param("FAIL", "PASS", False, id="fail-to-pass"),
    pytest.param("FAIL", "FAIL", False, id="still-failing"),
])
def test_verdict_changes_are_flagged(previous: str, newest: str, regressed: bool) -> None:
    """A newest run that no longer passes is a regression even when no metric drifted."""
    drift = _drift([(10, "PASS")] * 3 + [(10, previous), (10, newest)], (9.9, 10.1))
    assert present(drift.verdict_change).regressed is regressed
    assert drift.regressed is regressed
    assert (f"verdict {previous} → {newest}" in drift.summary()) is regressed


def test_drift_policy_refuses_nonsense() -> None:
    """A tolerance of 100 % or more, K < 1 or an unknown aggregate are refused."""
    for bad in ({"tolerance": 1.0}, {"against": 0}, {"aggregate": "max"}):
        with pytest.raises(ValueError):
            DriftPolicy(**bad)


def test_real_documents_tight_drift_regresses_and_few_samples_do_not() -> None:
    """From real results: a 25 % slower median over 2,000 requests regresses (its histogram
    interval is narrow); the same slowdown over 60 requests is uncertain (wide interval)."""
    earlier = [(document(day=day), f"d{day}") for day in range(5)]
    slow = history_of([*earlier, (document(day=5, median_ms=10.0), "slow")])
    few = history_of([*earlier, (document(day=5, median_ms=10.0, n=60), "few")])
    p50 = {c.label: c for c in slow.drift.checks}["latency-p50"]
    assert p50.regressed and p50.reference == pytest.approx(8.0, rel=0.02)
    assert present(p50.interval)[0] > present(p50.bound)
    assert {c.label: c for c in few.drift.checks}["latency-p50"].state is CheckState.UNCERTAIN
    same = history_of([*earlier, (document(day=5), "same")])
    assert not same.drift.regressed and same.drift.no_reference is None


def test_trend_tracks_objectives_then_defaults_and_orders_runs_by_time() -> None:
    """The trend has one row per run, oldest first whatever order they came in, with the
    objectives' metrics first, then the default ones."""
    docs = [(document(day=day, errors=day * 10), f"d{day}") for day in (3, 1, 2)]
    history = history_of(docs)
    frame = trend_frame(history)
    assert list(frame.columns) == ["verdict", "latency-p99", "error-rate", "latency-p50",
                                   "latency-p95", "latency-mean", "throughput"]
    assert [p.source for p in history.runs] == ["d1", "d2", "d3"]
    assert list(frame["error-rate"]) == pytest.approx([0.005, 0.01, 0.015])


def test_the_newest_runs_name_is_chosen_and_others_are_listed() -> None:
    """Without --name the newest run's experiment is shown, and the other names are kept."""
    docs = [(document(day=1, name="old"), "a"), (document(day=2, name="new"), "b"),
            (document(day=0, name="new"), "c")]
    history = history_of(docs)
    assert (history.name, history.other_names, len(history.runs)) == ("new", ("old",), 2)
    assert history_of(docs, name="old").name == "old"


@pytest.mark.parametrize("values, bars", [
    pytest.param([float(v) for v in range(8)], "▁▂▃▄▅▆▇█", id="rising-one-bar-per-step"),
    pytest.param([3.0, 2.0, 1.0, 0.0], "█▆▃▁", id="falling"),
    pytest.param([5.0, 5.0], "▄▄", id="flat"),
    pytest.param([1.0, None, 8.0], "▁ █", id="gap"),
    pytest.param([None], " ", id="nothing"),
])
def test_sparkline(values: list[float | None], bars: str) -> None:
    """Bars scale from the lowest to the highest value; a missing value is a blank."""
    assert sparkline(values) == bars


def _regressed_history() -> History:
    earlier = [(document(day=day), f"d{day}") for day in range(5)]
    return history_of([*earlier, (document(day=5, median_ms=10.0), "slow")])


def test_text_and_markdown_reports_say_what_regressed() -> None:
    """Both reports show the trend, each metric's check with its sparkline, and the outcome."""
    history = _regressed_history()
    text = render_history(history, "text", location="results", last=3)
    assert "History of nightly: 6 runs in results" in text and "the last 3 shown" in text
    assert "Drift: REGRESSED" in text and "latency-p50: 10." in text
    assert text.count("2026-11-0") >= 3 + 2
    markdown = render_history(history, "markdown")
    assert "**Drift: REGRESSED**" in markdown
    assert any(line.startswith("| latency-p50 | ") and "| regressed |" in line
               for line in markdown.splitlines())


def test_json_report_carries_every_check() -> None:
    """The JSON report has the runs shown, the policy and every check's numbers and state."""
    data = json.loads(render_history(_regressed_history(), "json", last=2))
    assert [r["source"] for r in data["runs"]] == ["d4", "slow"]
    assert data["drift"]["regressed"] is True and data["drift"]["noReference"] is None
    assert data["drift"]["policy"] == {"against": 5, "tolerance": 0.1, "aggregate": "median",
                                       "referenceVerdicts": ["PASS"], "minReference": 3,
                                       "ratioSlack": 0.001}
    p50 = next(c for c in data["drift"]["checks"] if c["metric"] == "latency-p50")
    assert p50["state"] == "regressed" and p50["low"] > p50["bound"]
    assert data["drift"]["referenceRuns"] == ["d0", "d1", "d2", "d3", "d4"]
