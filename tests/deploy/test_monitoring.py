"""The monitoring files under deploy/monitoring, against a real Prometheus (Debian's package):
the scrape config is valid, every dashboard query parses, and a Prometheus scraping Ray's metrics
export port sees a run's ray_slogate_* series agree with its results.json."""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.support.helpers import REPO_ROOT, free_port, start_hello
from tests.support.prometheus import needs_prometheus, query, start_prometheus

pytestmark = needs_prometheus
MONITORING = REPO_ROOT / "deploy" / "monitoring"


def _exprs() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-slogate.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def test_the_scrape_config_is_valid() -> None:
    """promtool accepts deploy/monitoring/prometheus-ray.yml."""
    done = subprocess.run(["promtool", "check", "config", str(MONITORING / "prometheus-ray.yml")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_dashboard_query_parses() -> None:
    """Each panel's PromQL (Grafana's $run and $__rate_interval filled in) is accepted by
    Prometheus, so no panel of the dashboard shows a parse error."""
    exprs = _exprs()
    assert len(exprs) == 10
    with start_prometheus({}) as url:
        for expr in exprs:
            assert query(url, expr.replace("$run", "r").replace("$__rate_interval", "30s")) == []


@pytest.fixture(scope="module")
def ray_exporting() -> Iterator[int]:
    """A local Ray that exports metrics on a free port every second; yields the port."""
    ray = pytest.importorskip("ray")
    port = free_port()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR, _metrics_export_port=port,
             _system_config={"metrics_report_interval_ms": 1000})
    try:
        yield port
    finally:
        ray.shutdown()


@pytest.mark.ray
def test_prometheus_sees_a_runs_ray_series_agree_with_results(ray_exporting: int) -> None:
    """A Prometheus scraping Ray's export port sees ray_slogate_* of the run: its +Inf latency
    bucket summed over the workers reaches the measured request count of results.json
    (warm-up excluded), and the run-wide p50 from the counters lies in the run's p50 bucket."""
    from coordinator.ray_pool import RayPool
    from coordinator.run import run_experiment
    from coordinator.spec import parse_spec

    with start_hello("--latency", "20ms") as app, \
            start_prometheus({f"127.0.0.1:{ray_exporting}": "ray"}) as url:
        spec = parse_spec({"name": "ray-metrics", "target": app, "endpoints": [{"path": "/hello"}],
                           "load": {"rate": 40, "duration": "4s", "warmup": "1s",
                                    "workers": 2}})
        with RayPool(run_name="ray-metrics") as pool:
            results = run_experiment(spec, pool)
        measured = results.metrics["*"]["request-count"]
        total = 'sum(ray_slogate_latency_ms_bucket_total{run="ray-metrics",le="+Inf"})'
        seen, deadline = None, time.monotonic() + 30
        while time.monotonic() < deadline:
            answer = query(url, total)
            seen = float(answer[0]["value"][1]) if answer else None
            if seen == measured:
                break
            time.sleep(1)
        p50 = query(url, 'histogram_quantile(0.5, sum by (le) '
                    '(ray_slogate_latency_ms_bucket_total{run="ray-metrics"}))')
    assert measured == 160  # 40 req/s for 4 s, the 1 s warm-up excluded
    assert seen == measured
    # 20 ms added: the run's p50 and the one from the counters fall in the same bucket (20, 50]
    assert 20.0 < (results.metrics["*"]["latency-p50"] or 0.0) <= 50.0
    assert 20.0 < float(p50[0]["value"][1]) <= 50.0
