"""The latency buckets load workers export to Ray's metrics: counters that add up to the run."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from coordinator.run_metrics import (
    LATENCY_BUCKETS_MS,
    bucket_increments,
    cumulative_buckets,
)
from workers.histogram import Histogram


def test_cumulative_buckets_count_values_at_or_below_each_bound() -> None:
    """Known latencies land at or below the right bounds; +Inf is the total."""
    hist = Histogram.from_values(np.array([500_000, 1_000_000, 3_000_000, 40_000_000,
                                           20_000_000_000]))
    counts = dict(cumulative_buckets(hist))
    assert (counts["1"], counts["2"], counts["5"], counts["50"], counts["10000"],
            counts["+Inf"]) == (2, 2, 3, 4, 4, 5)
    assert list(counts) == [*(f"{b:g}" for b in LATENCY_BUCKETS_MS), "+Inf"]


@given(st.lists(st.lists(st.integers(min_value=1, max_value=30_000_000_000), max_size=50),
                min_size=1, max_size=5))
def test_increments_exported_poll_by_poll_sum_to_the_final_buckets(
        polls: list[list[int]]) -> None:
    """A worker's running histogram only grows; the increments it exports at each poll add up
    to its final cumulative buckets, so Prometheus's counters agree with the merged run."""
    last: list[tuple[str, int]] = []
    running, exported = Histogram(), dict.fromkeys(
        [*(f"{b:g}" for b in LATENCY_BUCKETS_MS), "+Inf"], 0)
    for values in polls:
        running.record(np.array(values, dtype=np.int64))
        now = cumulative_buckets(running)
        for le, increase in bucket_increments(last, now):
            assert increase > 0
            exported[le] += increase
        last = now
    assert list(exported.items()) == cumulative_buckets(running)
    assert exported["+Inf"] == sum(len(v) for v in polls)
