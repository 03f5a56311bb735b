"""pandas views of a saved run, for notebooks and custom analyses.

All three are built from the results document alone (its exact histograms), so a past run can be
sliced any way without rerunning it::

    from analysis.results import load_results
    from analysis.tables import totals_frame, windows_frame, distribution_frame
    results = load_results("results/hello/results.json")
    windows_frame(results)[["throughput_rps", "p99_ms", "lag_p99_ms"]].plot()

Latencies are milliseconds; ``corrected`` selects latency from the intended send time (default)
or the service time from the actual send.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.metrics import Measured
from analysis.metrics import responded as has_response
from analysis.outcomes import judge_of
from analysis.results import Results, Series
from workers.histogram import Histogram


def _ms(value_ns: float | None) -> float:
    return float("nan") if value_ns is None else value_ns / 1e6


def _measured(results: Results) -> Measured:
    return judge_of(results)


def totals_frame(results: Results, *, corrected: bool = True) -> pd.DataFrame:
    """Return one row per (endpoint, outcome): count, whether it is an error, p50/p99/max ms."""
    measured = _measured(results)
    series = results.histograms.latency if corrected else results.histograms.service
    rows = []
    for item in series:
        hist = Histogram.decode(item.hdr)
        rows.append({"endpoint": item.endpoint, "outcome": item.outcome, "count": item.count,
                     "error": measured.is_error(item.outcome),
                     "p50_ms": _ms(hist.percentile_ns(50)), "p99_ms": _ms(hist.percentile_ns(99)),
                     "max_ms": _ms(hist.max_ns)})
    return pd.DataFrame(rows, columns=["endpoint", "outcome", "count", "error", "p50_ms",
                                       "p99_ms", "max_ms"])


def _responded(items: list[Series]) -> Histogram:
    return Histogram.sum(Histogram.decode(s.hdr) for s in items if has_response(s.outcome))


def windows_frame(results: Results, *, corrected: bool = True) -> pd.DataFrame:
    """Return one row per window: requests, errors, throughput (successful requests/s), p50/p99
    ms, schedule lag p99, the busiest worker's CPU seconds, requests due and sent."""
    measured = _measured(results)
    window_s = results.saved.window_s or 1.0
    rows = []
    for w in results.windows:
        items = w.latency if corrected else w.service
        responded = _responded(items)
        requests = sum(s.count for s in items)
        errors = sum(s.count for s in items if measured.is_error(s.outcome))
        rows.append({"window": w.index, "start_s": w.start_s, "requests": requests,
                     "errors": errors, "throughput_rps": (requests - errors) / window_s,
                     "p50_ms": _ms(responded.percentile_ns(50)),
                     "p99_ms": _ms(responded.percentile_ns(99)),
                     "lag_p99_ms": _ms(Histogram.decode(w.lag).percentile_ns(99)),
                     "cpu_s": w.cpu_s, "scheduled": w.scheduled, "sent": w.sent})
    frame = pd.DataFrame(rows, columns=["window", "start_s", "requests", "errors",
                                        "throughput_rps", "p50_ms", "p99_ms", "lag_p99_ms",
                                        "cpu_s", "scheduled", "sent"])
    return frame.set_index("window")


def distribution_frame(results: Results, endpoint: str | None = None, *,
                       corrected: bool = True) -> pd.DataFrame:
    """Return the latency distribution of responses: one row per non-empty bucket with its
    lowest and highest value (ms), count and cumulative fraction."""
    series = results.histograms.latency if corrected else results.histograms.service
    hist = _responded([s for s in series if endpoint is None or s.endpoint == endpoint])
    lows, highs, counts = hist.nonzero()
    total = counts.sum()
    return pd.DataFrame({
        "low_ms": lows / 1e6, "high_ms": highs / 1e6, "count": counts,
        "cdf": np.cumsum(counts) / total if total else np.zeros(len(counts)),
    })
