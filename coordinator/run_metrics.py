"""The latency buckets each load worker exports as Ray metrics while a run goes on (pure).

Ray's Prometheus endpoint shows them as ``ray_slogate_latency_ms_bucket_total{run, worker,
le}``: cumulative counts of measured requests (warm-up excluded) at or below each bound, in
milliseconds, as a Prometheus histogram has them. Unlike the per-worker p50/p99 gauges, counters
add up across workers, so ``histogram_quantile(0.99, sum by (le) (rate(...[1m])))`` is a
percentile of the whole run (at these buckets' resolution), and the ``+Inf`` bucket summed over
workers is the run's measured request count, as results.json has it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workers.histogram import Histogram, index_of

LATENCY_BUCKETS_MS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0,
                      5000.0, 10000.0)


def bound_label(bound_ms: float) -> str:
    """Return a bucket's ``le`` label: ``5``, ``0.5``, ``+Inf``."""
    return "+Inf" if bound_ms == float("inf") else f"{bound_ms:g}"


def cumulative_buckets(latency: Histogram,
                       bounds_ms: Sequence[float] = LATENCY_BUCKETS_MS) -> list[tuple[str, int]]:
    """Return ``[(le, count at or below it)]`` for each bound and ``+Inf`` (the total).

    A count is exact to the histogram's bucket (0.1 %): a bucket straddling a bound counts
    wholly below it. One cumulative sum for all bounds (it runs at every poll of a worker)."""
    cumulative = np.cumsum(latency.counts)
    at = cumulative[index_of([int(b * 1e6) for b in bounds_ms])]
    counts = [(bound_label(b), int(n)) for b, n in zip(bounds_ms, at, strict=True)]
    return [*counts, ("+Inf", latency.total)]


def bucket_increments(before: Sequence[tuple[str, int]],
                      now: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """Return ``[(le, increase)]`` of the buckets that grew between two exports."""
    old = dict(before)
    return [(le, count - old.get(le, 0)) for le, count in now if count > old.get(le, 0)]
