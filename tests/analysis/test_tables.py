"""pandas views of a saved run add up to the run's own metrics."""

from __future__ import annotations

import pytest

from analysis.tables import distribution_frame, totals_frame, windows_frame
from tests.analysis.test_reports import OBJECTIVES, synthetic_results
from tests.support.helpers import present


def test_totals_frame_counts_match_the_metrics() -> None:
    """Per-outcome counts sum to request-count, and the error rows to error-count."""
    results = synthetic_results(OBJECTIVES)
    frame = totals_frame(results)
    assert frame["count"].sum() == results.metrics["*"]["request-count"] == 5000
    assert frame.loc[frame["error"], "count"].sum() == results.metrics["*"]["error-count"] == 50
    assert set(frame["outcome"]) == {"status:200", "status:503"}


def test_windows_frame_adds_up_to_the_totals() -> None:
    """Five 1 s windows of 1000 requests: the series sums to the run's request and error counts,
    and each window's throughput counts its successful requests (4,950 over the 5 s)."""
    results = synthetic_results(OBJECTIVES)
    frame = windows_frame(results)
    assert list(frame.index) == [0, 1, 2, 3, 4]
    assert frame["requests"].sum() == 5000 and frame["errors"].sum() == 50
    assert (frame["throughput_rps"] == frame["requests"] - frame["errors"]).all()
    assert frame["throughput_rps"].sum() == 4950 == 5 * present(results.metrics["*"]["throughput"])
    assert frame["lag_p99_ms"].iloc[0] == pytest.approx(0.05, rel=1e-3)


def test_distribution_frame_is_a_cdf_consistent_with_the_percentiles() -> None:
    """The cumulative fraction ends at 1 and crosses 0.5 at the bucket holding the median."""
    results = synthetic_results(OBJECTIVES)
    frame = distribution_frame(results)
    assert frame["cdf"].iloc[-1] == pytest.approx(1.0)
    assert frame["count"].sum() == 5000
    median_bucket = frame[frame["cdf"] >= 0.5].iloc[0]
    assert median_bucket["low_ms"] <= results.metrics["*"]["latency-p50"] <= median_bucket["high_ms"]
