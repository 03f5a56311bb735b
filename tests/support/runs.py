"""Synthetic Results documents for history and archive tests: known latencies, no network.

``document`` builds a real results document with :func:`coordinator.run.build_results` from one
worker's windows of log-normal latencies around ``median_ms`` (σ = 0.3) plus ``errors`` fast 503s,
so its metrics and the intervals computed from its histograms are the real ones.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from analysis.results import CustomMetricResult, Results, write_atomic
from coordinator.run import build_results
from coordinator.spec import parse_spec
from workers.histogram import Histogram
from workers.load_worker import WorkerReport
from workers.recorder import Window

DAY0 = datetime(2026, 11, 1, 2, 0, 0, tzinfo=UTC)
OBJECTIVES = [{"metric": "latency-p99", "upperLimit": "500ms"},
              {"metric": "error-rate", "upperLimit": "5%"}]


def _window(index: int, rng: np.random.Generator, median_ms: float, n: int, errors: int) -> Window:
    ok = rng.lognormal(np.log(median_ms * 1e6), 0.3, n - errors).astype(np.int64)
    latency = {("GET /hello", "status:200"): Histogram.from_values(ok)}
    if errors:
        latency[("GET /hello", "status:503")] = Histogram.from_values(np.full(errors, 1_000_000))
    return Window(index=index, start_s=float(index), latency=latency, service=latency,
                  lag=Histogram.from_values(np.full(n, 50_000)), scheduled=n, sent=n)


def document(*, day: int, median_ms: float = 8.0, n: int = 2000, errors: int = 0,
             name: str = "nightly", seed: int | None = None,
             objectives: list[object] | None = None, verdict: str | None = None) -> Results:
    """Return a one-window run started ``day`` days after DAY0 with ``n`` requests, ``errors``
    of them 503s; ``verdict`` overrides the judged one (to make FAIL runs cheaply)."""
    spec = parse_spec({"name": name, "target": "http://127.0.0.1:8080",
                       "load": {"rate": n, "duration": "1s", "workers": 1},
                       "endpoints": [{"path": "/hello"}],
                       "objectives": OBJECTIVES if objectives is None else objectives})
    rng = np.random.default_rng(day if seed is None else seed)
    report = WorkerReport(worker_index=0, host="host-a", pid=1, started_at=0.0, measured_s=1.0,
                          windows=(_window(0, rng, median_ms, n, errors),), warmup_requests=0,
                          unsent=0, node_id="node-a")
    start = DAY0 + timedelta(days=day)
    results = build_results(spec, [report], started=start, ended=start + timedelta(seconds=1))
    return results if verdict is None else results.model_copy(update={"verdict": verdict})


def write_run(root: Path, results: Results) -> Path:
    """Write ``results`` as ``slogate run`` does by default: ``ROOT/NAME-STAMP/results.json``."""
    stamp = datetime.fromisoformat(results.start_time).strftime("%Y%m%dT%H%M%SZ")
    return write_atomic(root / f"{results.name}-{stamp}" / "results.json", results.to_json())


CUSTOM_QUERY = 'sum(rate(hello_request_duration_seconds_sum{version="2.0"}[4s]))'


def custom_document() -> Results:
    """Return :func:`document` (day 0) with three custom metrics read: a value in ms, a range
    reduced by max, and one that had no data."""
    custom = [
        CustomMetricResult(name="server-mean", version="candidate", provider="prometheus",
                           query=CUSTOM_QUERY, unit="ms", value=21.25,
                           points=[(1000.0, 21.25)]),
        CustomMetricResult(name="cpu", version="candidate", provider="prometheus",
                           query="sum(rate(process_cpu_seconds_total[5s]))", unit="cores",
                           mode="range", reduce="max", value=0.5,
                           points=[(1000.0, 0.25), (1001.0, 0.5), (1002.0, 0.375)]),
        CustomMetricResult(name="ghost", version="candidate", query="sum(nothing)",
                           note="the query returned no series"),
    ]
    return document(day=0).model_copy(update={"custom_metrics": custom})
