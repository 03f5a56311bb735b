"""Verdicts: clear cases decided by simulation, small samples left undecided, run precedence.

Simulated runs draw latencies from a lognormal whose p99 is known in closed form. Before
asserting that every trial gets the same verdict, each test computes from the binomial law of
order statistics how likely a correct implementation is to give another verdict, and checks
that this is negligible, so "every trial" is a sound expectation and not a lucky seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from analysis import stats
from analysis.catalog import percentile_of
from analysis.compare import relative_evidence
from analysis.evidence import Evidence, Scope, evidence_for, scopes
from analysis.metrics import Measured, metrics_table
from analysis.verdict import Limits, RunHealth, RunVerdict, Slo, Verdict, judge_objective, judge_run
from tests.support.helpers import present
from workers.histogram import Histogram, highest_equivalent, index_of, lowest_equivalent

MS = 1_000_000
LATENCY = sps.lognorm(s=1.0, scale=5 * MS)  # ns; p99 = 5 ms * e^2.326 ~ 51 ms
HEALTHY = RunHealth(successful_requests=1)
DEFAULT_LIMITS = Limits()
PROPS = settings(max_examples=300, deadline=None)


def measured_run(latencies_ns: np.ndarray, errors: int = 0) -> Measured:
    """Return a one-endpoint run: every latency a 200 response, plus ``errors`` 500s at 1 ms."""
    latency = {("api", "status:200"): Histogram.from_values(latencies_ns)}
    if errors:
        latency[("api", "status:500")] = Histogram.from_values(np.full(errors, MS))
    return Measured(latency=latency, duration_s=10.0)


def judge(objectives: Sequence[Slo], measured: Measured,
          health: RunHealth = HEALTHY, limits: Limits = DEFAULT_LIMITS) -> RunVerdict:
    """Return judge_run's verdict on a measured run, its metrics table read as plain rows."""
    extra = [q for q in (percentile_of(o.metric) for o in objectives) if q is not None]
    table = metrics_table(measured, extra)
    rows = {name: {k: (None if pd.isna(v) else float(v)) for k, v in row.items()}
            for name, row in table.to_dict(orient="index").items()}
    return judge_run(objectives, scopes(measured), rows, health, limits)


def bucket_top(value_ns: int) -> int:
    """Return the highest value recorded into value_ns's bucket."""
    return int(highest_equivalent(index_of([value_ns]))[0])


def last_value_ending_by(value_ns: int) -> int:
    """Return the largest integer whose bucket ends at or below value_ns."""
    return value_ns if bucket_top(value_ns) == value_ns \
        else int(lowest_equivalent(index_of([value_ns]))[0]) - 1


# --- clear cases are decided, by simulation ----------------------------------------------------


@pytest.mark.parametrize(("limit_factor", "expected"), [
    pytest.param(0.5, Verdict.FAIL, id="true-p99-twice-the-limit"),
    pytest.param(2.0, Verdict.PASS, id="true-p99-half-the-limit"),
])
def test_clear_p99_objective_is_decided_in_every_trial(limit_factor: float,
                                                       expected: Verdict) -> None:
    """With n=5000, a true p99 at twice the limit is FAIL and at half the limit PASS in every
    one of 60 seeded runs (a wrong verdict has probability < 1e-8 per run)."""
    n, trials = 5000, 60
    limit_ns = round(LATENCY.ppf(0.99) * limit_factor)
    ranks = stats.percentile_ranks(n, 99.0)
    assert ranks is not None
    low_rank, high_rank = ranks
    if expected is Verdict.FAIL:  # not FAIL iff the low bound's bucket reaches down to the limit
        wrong = sps.binom.sf(low_rank - 1, n, LATENCY.cdf(bucket_top(limit_ns) + 1))
    else:  # not PASS iff the high bound's bucket ends above the limit
        wrong = sps.binom.cdf(high_rank - 1, n, LATENCY.cdf(last_value_ending_by(limit_ns) + 1))
    assert wrong < 1e-8
    objective = Slo(metric="latency-p99", upper_limit=limit_ns / 1e6)
    rng = np.random.default_rng(4242)
    for _ in range(trials):
        result = judge([objective], measured_run(LATENCY.rvs(size=n, random_state=rng)))
        assert result.objectives[0].verdict is expected, result.objectives[0].reason
        assert result.verdict is expected


@pytest.mark.parametrize(("true_rate", "n", "expected"), [
    pytest.param(0.03, 4000, Verdict.FAIL, id="3%-errors-vs-1%"),
    pytest.param(0.001, 5000, Verdict.PASS, id="0.1%-errors-vs-1%"),
])
def test_clear_error_rate_objective_is_decided(true_rate: float, n: int,
                                               expected: Verdict) -> None:
    """Summed over every possible error count, a clear error-rate objective gets the expected
    verdict with probability > 1 - 1e-6; 40 seeded runs all get it."""
    objective = Slo(metric="error-rate", upper_limit=0.01)
    ks = np.arange(n + 1)
    pmf = sps.binom.pmf(ks, n, true_rate)
    likely = ks[pmf > 1e-18]
    verdicts = {}
    for k in likely:
        scope = Scope(responded=Histogram(), requests=n, errors=int(k), duration_s=1.0)
        evidence = evidence_for("error-rate", scope, {"error-rate": k / n})
        verdicts[int(k)] = judge_objective(objective, evidence).verdict
    right = sum(pmf[k] for k, v in verdicts.items() if v is expected)
    assert right > 1 - 1e-6
    rng = np.random.default_rng(99)
    for errors in rng.binomial(n, true_rate, size=40):
        latencies = LATENCY.rvs(size=n - errors, random_state=rng)
        assert judge([objective], measured_run(latencies, int(errors))).verdict is expected


# --- too little data is INCONCLUSIVE, with the sample size that would do ----------------------


def test_p999_of_100_samples_is_inconclusive_with_needed_n() -> None:
    """p99.9 from 100 responses has no interval: INCONCLUSIVE, needing 2995 responses."""
    values = LATENCY.rvs(size=100, random_state=np.random.default_rng(1))
    objective = Slo(metric="latency-p99.9", upper_limit=10_000.0)  # far above any value
    result = judge([objective], measured_run(values))
    judged = result.objectives[0]
    assert judged.verdict is Verdict.INCONCLUSIVE and result.verdict is Verdict.INCONCLUSIVE
    assert judged.interval is None and judged.value is not None and judged.n == 100
    assert judged.needed_n == stats.min_samples_for_percentile(99.9) == 2995
    assert "2995" in judged.reason


def test_p999_is_decided_from_the_least_sample_size_that_allows_an_interval() -> None:
    """At exactly min_samples_for_percentile(99.9) responses, a p99.9 limit far above every
    value is PASS and one far below every value is FAIL."""
    n = stats.min_samples_for_percentile(99.9)
    assert n is not None
    values = LATENCY.rvs(size=n, random_state=np.random.default_rng(2))
    generous = Slo(metric="latency-p99.9", upper_limit=values.max() / 1e6 * 2)
    strict = Slo(metric="latency-p99.9", upper_limit=values.min() / 1e6 / 2)
    result = judge([generous, strict], measured_run(values))
    assert [j.verdict for j in result.objectives] == [Verdict.PASS, Verdict.FAIL]


def test_p100_objective_is_inconclusive_without_a_sample_size() -> None:
    """The maximum (p100) never has a distribution-free interval: INCONCLUSIVE with a note and
    no needed_n, however many responses there are."""
    values = LATENCY.rvs(size=20_000, random_state=np.random.default_rng(3))
    result = judge([Slo(metric="latency-p100", upper_limit=1e6)], measured_run(values))
    judged = result.objectives[0]
    assert judged.verdict is Verdict.INCONCLUSIVE and judged.needed_n is None
    assert "p100" in judged.reason


@pytest.mark.parametrize(("n", "expected"), [
    pytest.param(50, Verdict.INCONCLUSIVE, id="0-of-50"),
    pytest.param(1000, Verdict.PASS, id="0-of-1000"),
])
def test_zero_errors_against_one_percent(n: int, expected: Verdict) -> None:
    """0 errors in 50 requests cannot show a rate <= 1 % (upper bound 1-0.025^(1/50) = 7.1 %),
    and 368 requests would (the least n with 1-0.025^(1/n) < 1 %); 0 in 1000 can (upper
    bound 0.37 %)."""
    values = LATENCY.rvs(size=n, random_state=np.random.default_rng(n))
    result = judge([Slo(metric="error-rate", upper_limit=0.01)], measured_run(values))
    judged = result.objectives[0]
    assert judged.verdict is expected and result.verdict is expected
    assert judged.value == 0.0 and judged.interval is not None
    assert judged.interval[1] == pytest.approx(1 - 0.025 ** (1 / n), rel=1e-9)
    if expected is Verdict.INCONCLUSIVE:
        assert judged.needed_n == 368 == math.ceil(math.log(0.025) / math.log(0.99))
        assert judged.interval[1] > 0.01


# --- judge_objective on hand-made evidence -----------------------------------------------------


def evidence(interval: tuple[float, float] | None, value: float | None = None, n: int = 1000,
             note: str | None = None, needed_n: int | None = None) -> Evidence:
    """Return inferential evidence; the value defaults to the interval's midpoint."""
    if value is None and interval is not None:
        value = (interval[0] + interval[1]) / 2
    return Evidence(value=value, interval=interval, n=n, confidence=0.95, inferential=True,
                    note=note, needed_n=needed_n)


UPPER = {"upper_limit": 10.0}
LOWER = {"lower_limit": 100.0}
BOTH: dict[str, Any] = {"lower_limit": 5.0, "upper_limit": 10.0}


@pytest.mark.parametrize(("limits", "interval", "expected"), [
    pytest.param(UPPER, (5.0, 8.0), Verdict.PASS, id="upper-wholly-below"),
    pytest.param(UPPER, (8.0, 10.0), Verdict.PASS, id="upper-high-on-limit"),
    pytest.param(UPPER, (12.0, 15.0), Verdict.FAIL, id="upper-wholly-above"),
    pytest.param(UPPER, (10.0, 12.0), Verdict.INCONCLUSIVE, id="upper-low-on-limit"),
    pytest.param(UPPER, (8.0, 12.0), Verdict.INCONCLUSIVE, id="upper-straddled"),
    pytest.param(LOWER, (120.0, 150.0), Verdict.PASS, id="lower-wholly-above"),
    pytest.param(LOWER, (100.0, 150.0), Verdict.PASS, id="lower-low-on-limit"),
    pytest.param(LOWER, (50.0, 80.0), Verdict.FAIL, id="lower-wholly-below"),
    pytest.param(LOWER, (90.0, 110.0), Verdict.INCONCLUSIVE, id="lower-straddled"),
    pytest.param(BOTH, (6.0, 9.0), Verdict.PASS, id="both-inside"),
    pytest.param(BOTH, (5.0, 10.0), Verdict.PASS, id="both-exactly-the-range"),
    pytest.param(BOTH, (11.0, 12.0), Verdict.FAIL, id="both-above"),
    pytest.param(BOTH, (2.0, 3.0), Verdict.FAIL, id="both-below"),
    pytest.param(BOTH, (4.0, 6.0), Verdict.INCONCLUSIVE, id="both-straddles-lower"),
    pytest.param(BOTH, (9.0, 11.0), Verdict.INCONCLUSIVE, id="both-straddles-upper"),
    pytest.param(BOTH, (4.0, 11.0), Verdict.INCONCLUSIVE, id="both-straddles-both"),
])
def test_judge_objective_compares_the_whole_interval(limits: dict[str, Any],
                                                     interval: tuple[float, float],
                                                     expected: Verdict) -> None:
    """PASS when the interval lies within the (inclusive) limits, FAIL when wholly outside one,
    INCONCLUSIVE when it crosses a limit; the judged interval and n are passed through."""
    judged = judge_objective(Slo(metric="latency-p99", **limits), evidence(interval))
    assert judged.verdict is expected, judged.reason
    assert judged.interval == interval and judged.n == 1000
    if expected is Verdict.INCONCLUSIVE:
        assert "straddles" in judged.reason


def test_judge_objective_without_value_is_inconclusive() -> None:
    """No value (no data) is INCONCLUSIVE, naming the metric."""
    judged = judge_objective(Slo(metric="latency-p99", upper_limit=10.0),
                             Evidence(value=None, interval=None, n=0, confidence=0.95,
                                      inferential=False))
    assert judged.verdict is Verdict.INCONCLUSIVE and "no data for latency-p99" in judged.reason


def test_judge_objective_without_interval_reports_note_and_needed_n() -> None:
    """A value without an interval is INCONCLUSIVE, with the evidence's note and needed_n."""
    note = "100 responses are too few for a 95% interval on p99.9 (needs at least 2995)"
    judged = judge_objective(Slo(metric="latency-p99.9", upper_limit=1e9),
                             evidence(None, value=3.0, n=100, note=note, needed_n=2995))
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert judged.reason == note and judged.needed_n == 2995 and judged.interval is None


def test_plain_comparison_for_non_inferential_metrics() -> None:
    """A descriptive metric (interval = its value) is PASS or FAIL by plain comparison."""
    plain = Evidence(value=900.0, interval=(900.0, 900.0), n=900, confidence=0.95,
                     inferential=False)
    assert judge_objective(Slo(metric="request-count", lower_limit=900), plain).verdict \
        is Verdict.PASS
    assert judge_objective(Slo(metric="request-count", lower_limit=901), plain).verdict \
        is Verdict.FAIL


def test_straddling_latency_reports_needed_n_from_half_width() -> None:
    """Value 9 with interval 8..12 (half-width 3) against 10 (distance 1) from n=1000 needs about
    1000 * (3/1)^2 = 9000 requests, and says so."""
    judged = judge_objective(Slo(metric="latency-p99", upper_limit=10.0),
                             evidence((8.0, 12.0), value=9.0))
    assert judged.verdict is Verdict.INCONCLUSIVE and judged.needed_n == 9000
    assert "9,000 requests" in judged.reason


def test_straddling_error_rate_reports_needed_n_from_clopper_pearson() -> None:
    """0.5 % errors straddling a 1 % limit asks for the n that samples_to_separate_proportion
    finds."""
    interval = stats.proportion_interval(1, 200)
    assert interval is not None
    judged = judge_objective(Slo(metric="error-rate", upper_limit=0.01),
                             evidence((interval.low, interval.high), value=0.005, n=200))
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert judged.needed_n == stats.samples_to_separate_proportion(0.005, 0.01) is not None
    assert present(judged.needed_n) > 200


def test_error_rate_vs_baseline_asks_for_the_two_sample_size_per_version() -> None:
    """12 errors in 1,200 against the baseline's 3 in 1,200 straddle a +0.5 pp limit; the
    reason asks for about 18,864 requests per version (two-sample), not the one-sample 3,668
    that would read as fewer than the 1,200 already measured."""
    empty = Histogram()
    candidate = Scope(responded=empty, requests=1200, errors=12, duration_s=10.0)
    baseline = Scope(responded=empty, requests=1200, errors=3, duration_s=10.0)
    objective = Slo(metric="error-rate", upper_limit=0.005, vs="baseline")
    judged = judge_objective(objective, relative_evidence(
        "error-rate", candidate, baseline, {"error-rate": 0.01}, {"error-rate": 0.0025}, 0.95))
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert judged.needed_n == stats.samples_to_separate_difference(0.01, 0.0025, 0.005) == 18864
    assert "about 18,864 requests per version would decide it" in judged.reason


@pytest.mark.parametrize(("interval", "value"), [
    pytest.param((4.0, 7.0), 5.5, id="straddles-lower"),
    pytest.param((8.0, 11.0), 9.5, id="straddles-upper"),
    pytest.param((4.0, 11.0), 7.0, id="straddles-both"),
])
def test_straddling_a_range_asks_for_more_requests_than_it_has(
        interval: tuple[float, float], value: float) -> None:
    """With both limits, the advice is about the limit the interval crosses: more requests than
    the 1000 it has (the interval must shrink to decide)."""
    judged = judge_objective(Slo(metric="latency-p99", **BOTH),
                             evidence(interval, value=value))
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert judged.needed_n is not None and judged.needed_n > 1000


ms_values = st.integers(0, 100_000).map(lambda us: us / 1000)  # 0..100 ms in whole µs


@PROPS
@given(ms_values, ms_values, ms_values, ms_values, st.integers(1, 10**6))
def test_straddling_always_needs_more_than_n(value: float, below: float, above: float,
                                             limit: float, n: int) -> None:
    """Whenever an upper-limit objective is INCONCLUSIVE for a straddled interval, the advised
    sample size (when given) exceeds the n it already has."""
    judged = judge_objective(Slo(metric="latency-p99", upper_limit=limit),
                             evidence((value - below, value + above), value=value, n=n))
    if judged.verdict is Verdict.INCONCLUSIVE and judged.needed_n is not None:
        assert judged.needed_n >= n


# --- judge_run: precedence and invariants (Hypothesis) -----------------------------------------

EMPTY = Histogram()


@st.composite
def objective_cases(draw: st.DrawFn, endpoint: str
                    ) -> tuple[Slo, Scope | None, dict[str, float | None]]:
    """Return an objective on its own endpoint with that endpoint's scope and metrics row:
    a request count against a limit (PASS/FAIL), a metric with no data (INCONCLUSIVE), or an
    error rate whose interval may fall on either side of the limit or across it."""
    kind = draw(st.sampled_from(["count", "no-data", "error-rate"]))
    dry_run = draw(st.booleans())
    if kind == "count":
        value, limit = draw(st.integers(0, 1000)), draw(st.integers(0, 1000))
        upper = draw(st.booleans())
        objective = Slo(metric="request-count", endpoint=endpoint, dry_run=dry_run,
                              upper_limit=limit if upper else None,
                              lower_limit=None if upper else limit)
        return objective, Scope(responded=EMPTY, requests=value, errors=0, duration_s=1.0), \
            {"request-count": float(value)}
    if kind == "no-data":
        return Slo(metric="latency-p99", endpoint=endpoint, dry_run=dry_run,
                         upper_limit=100.0), None, {}
    requests = draw(st.integers(1, 5000))
    errors = draw(st.integers(0, requests))
    objective = Slo(metric="error-rate", endpoint=endpoint, dry_run=dry_run,
                          upper_limit=draw(st.sampled_from([0.0, 0.001, 0.01, 0.05, 0.5])))
    return objective, Scope(responded=EMPTY, requests=requests, errors=errors, duration_s=1.0), \
        {"error-rate": errors / requests}


@st.composite
def run_cases(draw: st.DrawFn) -> tuple[list[Slo], dict[str, Scope],
                                        dict[str, dict[str, float | None]]]:
    """Return 0-5 objectives with their scopes and metrics rows."""
    objectives, scope_map, rows = [], {}, {}
    for i in range(draw(st.integers(0, 5))):
        objective, scope, row = draw(objective_cases(f"e{i}"))
        objectives.append(objective)
        if scope is not None:
            scope_map[f"e{i}"], rows[f"e{i}"] = scope, row
    return objectives, scope_map, rows


@st.composite
def healths(draw: st.DrawFn) -> RunHealth:
    """Return a run health, healthy half of the time, otherwise with any defect."""
    if draw(st.booleans()):
        return RunHealth(successful_requests=draw(st.integers(1, 10)))
    scheduled = draw(st.integers(0, 10_000))
    return RunHealth(
        lost_workers=tuple(draw(st.lists(st.sampled_from(["w1", "w2"]), max_size=2))),
        successful_requests=draw(st.integers(0, 3)), aborted=draw(st.booleans()),
        gaps=tuple(draw(st.lists(st.just("w3 replaced"), max_size=1))),
        scheduled=scheduled, unsent=draw(st.integers(0, scheduled)),
        lag_p99_ms=draw(st.none() | st.floats(0.0, 30.0)))


limits_cases = st.builds(Limits, confidence=st.sampled_from([0.9, 0.95, 0.99]),
                         max_lag_ms=st.floats(1.0, 20.0),
                         max_unsent=st.sampled_from([0.0, 0.001, 0.01]))


def expected_run_verdict(result: RunVerdict, health: RunHealth, limits: Limits) -> Verdict:
    """Return the run verdict the module's precedence rules give, computed independently."""
    counted = [j.verdict for j in result.objectives if not j.objective.dry_run]
    if health.aborted or health.lost_workers or health.successful_requests == 0:
        return Verdict.INVALID
    lagging = health.lag_p99_ms is not None and health.lag_p99_ms > limits.max_lag_ms
    unsent = health.scheduled > 0 and health.unsent > limits.max_unsent * health.scheduled
    if lagging or unsent:
        return Verdict.INCONCLUSIVE
    if Verdict.FAIL in counted:
        return Verdict.FAIL
    if Verdict.INCONCLUSIVE in counted or not counted:
        return Verdict.INCONCLUSIVE
    return Verdict.PASS


@PROPS
@given(run_cases(), healths(), limits_cases)
def test_run_verdict_follows_precedence_and_is_never_pass_with_a_doubt(
        case: tuple[list[Slo], dict[str, Scope], dict[str, dict[str, float | None]]],
        health: RunHealth, limits: Limits) -> None:
    """The run is never PASS when a counted objective is FAIL or INCONCLUSIVE, the run is broken
    or the generator gate trips; otherwise it follows INVALID > gate > FAIL > INCONCLUSIVE."""
    objectives, scope_map, rows = case
    result = judge_run(objectives, scope_map, rows, health, limits)
    assert len(result.objectives) == len(objectives) and result.reasons
    for objective, judged in zip(objectives, result.objectives, strict=True):
        scope = objective.endpoint or "*"
        alone = judge_objective(objective, evidence_for(
            objective.metric, scope_map.get(scope), rows.get(scope, {}), limits.confidence))
        assert judged == alone
    counted = [j for j in result.objectives if not j.objective.dry_run]
    doubt = any(j.verdict is not Verdict.PASS for j in counted) or not counted
    broken = health.aborted or bool(health.lost_workers) or health.successful_requests == 0
    gate = (health.lag_p99_ms is not None and health.lag_p99_ms > limits.max_lag_ms) or \
        (health.scheduled > 0 and health.unsent / health.scheduled > limits.max_unsent)
    if doubt or broken or gate:
        assert result.verdict is not Verdict.PASS
    assert result.verdict is expected_run_verdict(result, health, limits)


@PROPS
@given(run_cases(), healths(), limits_cases)
def test_dry_run_objectives_never_change_the_run_verdict(
        case: tuple[list[Slo], dict[str, Scope], dict[str, dict[str, float | None]]],
        health: RunHealth, limits: Limits) -> None:
    """Dropping the dry-run objectives, or making each of them fail, leaves the run verdict as
    it was; they are still reported."""
    objectives, scope_map, rows = case
    result = judge_run(objectives, scope_map, rows, health, limits)
    counted = [o for o in objectives if not o.dry_run]
    assert judge_run(counted, scope_map, rows, health, limits).verdict is result.verdict
    failing = [o if not o.dry_run else Slo(metric="request-count", endpoint=o.endpoint,
                                                 upper_limit=-1.0, dry_run=True)
               for o in objectives]
    failing_rows = {**rows, **{o.endpoint: {"request-count": 1.0} for o in objectives
                               if o.dry_run and o.endpoint is not None}}
    failing_scopes: Mapping[str, Scope] = {
        **scope_map, **{o.endpoint: Scope(responded=EMPTY, requests=1, errors=0, duration_s=1.0)
                        for o in objectives if o.dry_run and o.endpoint is not None}}
    varied = judge_run(failing, failing_scopes, failing_rows, health, limits)
    assert varied.verdict is result.verdict
    assert len(result.objectives) == len(objectives)


@pytest.mark.parametrize(("health", "limits", "expected"), [
    pytest.param(RunHealth(successful_requests=5, aborted=True), Limits(), Verdict.INVALID,
                 id="aborted"),
    pytest.param(RunHealth(successful_requests=5, lost_workers=("w1",)), Limits(),
                 Verdict.INVALID, id="lost-worker"),
    pytest.param(RunHealth(successful_requests=0), Limits(), Verdict.INVALID, id="no-success"),
    pytest.param(RunHealth(successful_requests=5, lag_p99_ms=10.5), Limits(max_lag_ms=10.0),
                 Verdict.INCONCLUSIVE, id="lagging-generator"),
    pytest.param(RunHealth(successful_requests=5, scheduled=1000, unsent=2),
                 Limits(max_unsent=0.001), Verdict.INCONCLUSIVE, id="unsent-0.2%"),
    pytest.param(RunHealth(successful_requests=5, scheduled=1000, unsent=1),
                 Limits(max_unsent=0.001), Verdict.PASS, id="unsent-0.1%-allowed"),
    pytest.param(RunHealth(successful_requests=5, lag_p99_ms=10.0), Limits(max_lag_ms=10.0),
                 Verdict.PASS, id="lag-on-the-bound"),
    pytest.param(RunHealth(successful_requests=5, gaps=("w2 replaced",)), Limits(),
                 Verdict.PASS, id="gap-reported-only"),
])
def test_run_health_decides_before_objectives(health: RunHealth, limits: Limits,
                                              expected: Verdict) -> None:
    """A broken run is INVALID and a lagging or dropping generator INCONCLUSIVE even when every
    objective passes; a gap or a value on the bound does not stop a PASS."""
    objective = Slo(metric="request-count", lower_limit=1)
    scope_map = {"*": Scope(responded=EMPTY, requests=5, errors=0, duration_s=1.0)}
    result = judge_run([objective], scope_map, {"*": {"request-count": 5.0}}, health, limits)
    assert result.objectives[0].verdict is Verdict.PASS
    assert result.verdict is expected, result.reasons
    if health.gaps:
        assert any("w2 replaced" in reason for reason in result.reasons)


def test_no_objectives_is_inconclusive() -> None:
    """A healthy run with nothing (or only dry-run objectives) to judge is INCONCLUSIVE."""
    scope_map = {"*": Scope(responded=EMPTY, requests=5, errors=0, duration_s=1.0)}
    rows = {"*": {"request-count": 5.0}}
    assert judge_run([], scope_map, rows, HEALTHY).verdict is Verdict.INCONCLUSIVE
    dry = Slo(metric="request-count", lower_limit=1, dry_run=True)
    result = judge_run([dry], scope_map, rows, HEALTHY)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.objectives[0].verdict is Verdict.PASS


def test_exit_codes() -> None:
    """PASS exits 0, FAIL 1, INCONCLUSIVE and INVALID 3."""
    assert [v.exit_code for v in Verdict] == [0, 1, 3, 3]



# --- throughput counts successful requests ------------------------------------------------------


@pytest.mark.parametrize(("ok", "failed", "outcome", "throughput", "verdict"), [
    pytest.param(0, 2000, "status:500", 0.0, Verdict.FAIL, id="all-500"),
    pytest.param(0, 2000, "connect", 0.0, Verdict.FAIL, id="all-refused"),
    pytest.param(1800, 200, "status:503", 180.0, Verdict.FAIL, id="tenth-failed"),
    pytest.param(2000, 0, "status:500", 200.0, Verdict.PASS, id="none-failed"),
])
def test_a_throughput_objective_counts_successful_requests_per_second(
        ok: int, failed: int, outcome: str, throughput: float, verdict: Verdict) -> None:
    """2,000 requests in 10 s of which ``failed`` are errors have a throughput of the successes
    per second, so 100 % errors never passes `throughput >= 190/s` (an INVALID run, whose
    throughput row said PASS at 200 req/s before)."""
    from analysis.judging import judge_measured

    latency = {}
    if ok:
        latency[("api", "status:200")] = Histogram.from_values(np.full(ok, MS))
    latency[("api", outcome)] = Histogram.from_values(np.full(failed, MS)) if failed else \
        Histogram()
    measured = Measured(latency=latency, duration_s=10.0)
    judged = judge_measured([Slo(metric="throughput", lower_limit=190.0)], measured,
                            HEALTHY, Limits())
    [row] = judged.verdict.objectives
    assert row.value == throughput and row.verdict is verdict
    assert judged.table.at["*", "throughput"] == throughput
    assert judged.verdict.verdict is (Verdict.INVALID if ok == 0 else verdict)
