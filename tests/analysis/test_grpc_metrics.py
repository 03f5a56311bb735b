"""gRPC outcomes in the metrics: which codes are errors (default and configured), which calls
have a latency, Iter8's grpc/... names, and the live counts of a worker's recorder."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analysis.catalog import GRPC_STATUS_CODES, canonical_metric, ok_outcomes
from analysis.metrics import Measured, metric_value, metrics_table
from analysis.saved_spec import SavedSpecError, saved_spec
from workers.histogram import Histogram
from workers.recorder import Recorder

MS = 1_000_000


def _hist(n: int, ms: float) -> Histogram:
    return Histogram.from_values(np.full(n, int(ms * MS), dtype=np.int64))


LATENCY = {
    ("hello.Greeter/SayHello", "grpc:OK"): _hist(80, 10),
    ("hello.Greeter/SayHello", "grpc:NOT_FOUND"): _hist(10, 2),
    ("hello.Greeter/SayHello", "grpc:UNAVAILABLE"): _hist(6, 1),
    ("hello.Greeter/SayHello", "grpc:DEADLINE_EXCEEDED"): _hist(4, 500),
}


@pytest.mark.parametrize(("error_codes", "errors"), [
    pytest.param(None, 20, id="default-every-code-but-ok"),
    pytest.param(["UNAVAILABLE", "DEADLINE_EXCEEDED"], 10, id="not-found-is-no-error"),
    pytest.param(["NOT_FOUND"], 10, id="only-not-found"),
])
def test_error_codes_decide_the_error_count(error_codes: list[str] | None, errors: int) -> None:
    """errorCodes (default: every code but OK, as ghz and k6 count) decides error-count and
    error-rate; the latency metrics hold every answered call (OK and NOT_FOUND here), never
    UNAVAILABLE or DEADLINE_EXCEEDED, whatever counts as an error."""
    measured = Measured(latency=LATENCY, duration_s=1.0, ok_outcomes=ok_outcomes(error_codes))
    table = metrics_table(measured)
    assert metric_value(table, "request-count") == 100
    assert metric_value(table, "error-count") == errors
    assert metric_value(table, "error-rate") == pytest.approx(errors / 100)
    assert metric_value(table, "throughput") == pytest.approx(100 - errors)
    assert metric_value(table, "latency-max") == pytest.approx(10, rel=0.01)
    assert metric_value(table, "latency-min") == pytest.approx(2, rel=0.01)
    assert metric_value(table, "latency-mean") == pytest.approx((80 * 10 + 10 * 2) / 90, rel=0.01)


def test_http_outcomes_are_judged_as_before_beside_grpc() -> None:
    """In a mixed run, HTTP statuses still follow errorRanges and gRPC codes their own rule."""
    measured = Measured(latency={}, duration_s=1.0, error_ranges=((500, 599),))
    assert [measured.is_error(o) for o in ("status:404", "status:503", "connect", "grpc:OK",
                                           "grpc:INTERNAL")] == [False, True, True, False, True]


@pytest.mark.parametrize(("name", "canonical"), [
    pytest.param("grpc/request-count", "request-count", id="request-count"),
    pytest.param("grpc/error-count", "error-count", id="error-count"),
    pytest.param("grpc/error-rate", "error-rate", id="error-rate"),
    pytest.param("grpc/latency/mean", "latency-mean", id="mean"),
    pytest.param("grpc/latency/stddev", "latency-stddev", id="stddev"),
    pytest.param("grpc/latency/min", "latency-min", id="min"),
    pytest.param("grpc/latency/max", "latency-max", id="max"),
    pytest.param("grpc/latency/p99.9", "latency-p99.9", id="percentile"),
    pytest.param("grpc/latency/p0", "grpc/latency/p0", id="no-such-percentile"),
    pytest.param("grpc/throughput", "grpc/throughput", id="not-an-iter8-name"),
    pytest.param("latency-p95", "latency-p95", id="built-in-unchanged"),
])
def test_iter8_grpc_names(name: str, canonical: str) -> None:
    """Each Iter8 grpc/... metric name maps to its built-in name; anything else is unchanged
    (so an unknown name is still refused by the spec, by its own spelling)."""
    assert canonical_metric(name) == canonical


def test_a_saved_runs_error_codes_are_read_back() -> None:
    """A saved spec's grpc.errorCodes gives the same outcomes-that-are-no-error as the run;
    absent, OK alone; a code that is not one is refused naming the key."""
    assert saved_spec({"grpc": {"errorCodes": ["UNAVAILABLE"]}}).ok_outcomes == ok_outcomes(
        ["UNAVAILABLE"])
    assert saved_spec({"grpc": None}).ok_outcomes == saved_spec({}).ok_outcomes == ("grpc:OK",)
    assert "grpc:UNAVAILABLE" not in ok_outcomes(["UNAVAILABLE"])
    assert len(ok_outcomes(["UNAVAILABLE"])) == 16
    with pytest.raises(SavedSpecError, match=r"grpc\.errorCodes"):
        saved_spec({"grpc": {"errorCodes": ["OOPS"]}})


def test_the_recorders_live_counts_take_grpc_ok_as_success() -> None:
    """A worker's running totals count grpc:OK as a success with a latency, other codes as
    errors, as the analysis will."""
    rec = Recorder(labels=["call"], window_s=1.0)
    for outcome, n in (("grpc:OK", 7), ("grpc:UNAVAILABLE", 2), ("grpc:INTERNAL", 1)):
        for _ in range(n):
            rec.record(rec.code_of(0, outcome), 0, 1_000, 5 * MS)
    rec.flush()
    progress = rec.progress(elapsed_s=1.0, in_flight=0)
    assert (progress.requests, progress.errors, progress.latency.total) == (10, 3, 7)


@given(st.lists(st.sampled_from(GRPC_STATUS_CODES), unique=True))
def test_error_codes_split_every_code_in_two(error_codes: list[str]) -> None:
    """For any errorCodes, a gRPC outcome is an error exactly when its code is listed: the
    codes that are errors and those that are not cover all 17, with none in both."""
    measured = Measured(latency={}, duration_s=1.0, ok_outcomes=ok_outcomes(error_codes))
    for code in GRPC_STATUS_CODES:
        assert measured.is_error(f"grpc:{code}") == (code in error_codes)


@given(st.sampled_from(["request-count", "error-count", "error-rate", "latency-mean",
                        "latency-stddev", "latency-min", "latency-max"])
       | st.floats(0.1, 100).map(lambda q: f"latency-p{q:g}"))
def test_iter8_names_round_trip(name: str) -> None:
    """Every built-in name but throughput has an Iter8 grpc/... spelling that maps back to it,
    and a built-in name maps to itself."""
    iter8 = "grpc/" + name.replace("latency-", "latency/")
    assert canonical_metric(iter8) == name
    assert canonical_metric(name) == name
