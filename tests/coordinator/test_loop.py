"""The whole measuring loop on a real local Ray against the real sample app on 127.0.0.1."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from scipy.stats import binom

from analysis.results import unseries
from coordinator.ray_pool import RayPool
from coordinator.run import build_results, run_experiment
from coordinator.spec import ExperimentSpec, parse_spec
from coordinator.split import worker_plans
from tests.support.helpers import present, start_hello
from workers.histogram import Histogram

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]


def _spec(url: str, **load: object) -> ExperimentSpec:
    return parse_spec({"name": "t", "target": url, "load": load, "endpoints": [{"path": "/hello"}]})


def test_latency_metrics_match_injected_latency() -> None:
    """With 20 ms injected, p50 and mean lie in [20 ms, 20 ms + overhead] and corrected >= service.

    The app's delay never returns early (it waits on a monotonic clock), so 20 ms is a hard
    lower bound. Loopback HTTP through aiohttp on both sides measured ~1.5 ms here; 5 ms above
    20 for the median leaves room for a busy 2-core CI machine while still catching a unit or
    clock error (those are off by a factor, not by milliseconds). The mean gets 6 ms since rare
    scheduler stalls of tens of ms move it but not the median.
    """
    with start_hello("--latency", "20ms") as url:
        spec = _spec(url, rate=100, duration="3s", warmup="0.5s", workers=2)
        with RayPool() as pool:
            results = run_experiment(spec, pool)
    metrics = results.metrics["*"]
    shown = {k: metrics[k] for k in ("latency-p50", "latency-mean", "latency-p99", "latency-max")}
    assert metrics["request-count"] == 300
    assert 20.0 <= present(metrics["latency-p50"]) <= 25.0, (shown, results.reasons)
    assert 20.0 <= present(metrics["latency-mean"]) <= 26.0, (shown, results.reasons)
    assert present(metrics["latency-min"]) >= 20.0
    corrected = Histogram.sum(unseries(results.histograms.latency).values())
    service = Histogram.sum(unseries(results.histograms.service).values())
    assert corrected.total == service.total == 300
    assert present(corrected.percentile_ns(50)) >= present(service.percentile_ns(50))


def test_error_rate_falls_in_binomial_interval() -> None:
    """With a 5% injected error rate over 2000 requests, error-rate lies in the 99.9% binomial range."""
    n = 2000
    with start_hello("--error-rate", "0.05", "--seed", "11") as url:
        spec = _spec(url, rate=1000, requests=n, workers=2)
        with RayPool() as pool:
            results = run_experiment(spec, pool)
    metrics = results.metrics["*"]
    assert metrics["request-count"] == n
    low, high = binom.interval(0.999, n, 0.05)
    assert low / n <= metrics["error-rate"] <= high / n
    assert present(metrics["error-count"]) == round(present(metrics["error-rate"]) * n)
    outcomes = {s.outcome for s in results.histograms.latency}
    assert outcomes == {"status:200", "status:500"}


@pytest.mark.parametrize("workers", [pytest.param(w, id=f"{w}-workers") for w in (1, 2, 3)])
def test_split_over_workers_keeps_count_and_merges_exactly(workers: int) -> None:
    """The same 600 requests over 1, 2 or 3 workers: same count per worker as planned, and the
    run-level windows merged as they arrived add up exactly to the run's totals."""
    with start_hello() as url:
        spec = _spec(url, rate=600, requests=600, workers=workers)
        started = datetime.now(UTC)
        with RayPool() as pool:
            merged = pool.run(worker_plans(spec))
        results = build_results(spec, merged, started=started, ended=datetime.now(UTC))
    assert [w.status for w in merged.workers] == ["ok"] * workers
    expected_split = [600 // workers + (1 if i < 600 % workers else 0) for i in range(workers)]
    assert [w.requests for w in merged.workers] == expected_split
    total = Histogram.sum(unseries(results.histograms.latency).values())
    windows = Histogram.sum(h for w in results.windows for h in unseries(w.latency).values())
    assert windows == total
    assert total.total == results.metrics["*"]["request-count"] == 600
    assert [w.requests for w in results.workers] == expected_split
