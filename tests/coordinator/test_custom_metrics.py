"""Custom metrics against a real Prometheus (Debian's package) scraping the real sample app.

One Prometheus for the module scrapes two hello apps every second, version 1.0 (5 ms added) and
2.0 (20 ms added), whose /metrics label every series with their version. No mock of
Prometheus's HTTP API: queries, errors (its own 400), auth (a 127.0.0.1 proxy that demands the
credential, since Prometheus checks none) and "no data" are the server's real answers.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from analysis.custom import promql_duration
from analysis.rejudge import rejudge
from analysis.results import parse_results
from analysis.verdict import Limits, Slo
from coordinator.custom_metrics import check_metrics, read_metrics
from coordinator.prometheus import MetricsError
from coordinator.run import build_results
from coordinator.spec import ExperimentSpec, parse_spec
from tests.support.helpers import REPO_ROOT, free_port, start_hello
from tests.support.prometheus import auth_proxy, needs_prometheus, start_prometheus
from tests.support.servers import recording_server, self_signed_cert
from workers.histogram import Histogram
from workers.load_worker import WorkerReport
from workers.recorder import Window

pytestmark = needs_prometheus

SERVER_MEAN = ("1000 * sum(rate(hello_request_duration_seconds_sum{ {{ labels }} }[{{ interval }}]))"
               " / sum(rate(hello_request_duration_seconds_count{ {{ labels }} }[{{ interval }}]))")
CUSTOM = [
    {"name": "server-mean", "unit": "ms", "query": SERVER_MEAN},
    {"name": "served", "unit": "requests",
     "query": "sum(increase(hello_requests_total{ {{ labels }} }[{{ interval }}]))"},
    {"name": "served-so-far", "mode": "range", "reduce": "max",
     "query": "sum(hello_requests_total{ {{ labels }} })"},
    {"name": "ghost", "query": "sum(slogate_no_such_metric{ {{ labels }} })"},
    {"name": "cpu-per-1k-requests", "unit": "CPU-s", "query": (
        '1000 * sum(increase(process_cpu_seconds_total{track="{{ version }}"}[{{ interval }}]))'
        " / sum(increase(hello_requests_total{ {{ labels }} }[{{ interval }}]))")},
]


@dataclass(frozen=True)
class Stack:
    baseline: str
    candidate: str
    prometheus: str


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """Two hello versions and a Prometheus scraping both every second; 2.0 is slower and
    burns 5 ms of CPU per request."""
    with start_hello("--version", "1.0", "--latency", "5ms") as baseline, \
            start_hello("--version", "2.0", "--latency", "20ms",
                        "--cpu-per-request", "5ms") as candidate:
        targets = {baseline.removeprefix("http://"): "1.0",
                   candidate.removeprefix("http://"): "2.0"}
        with start_prometheus(targets) as url:
            yield Stack(baseline=baseline, candidate=candidate, prometheus=url)


def _spec(stack: Stack, *, provider: dict[str, Any] | None = None,
          custom: list[dict[str, Any]] | None = None, objectives: list[Any] | None = None,
          target: str | None = None, **load: Any) -> dict[str, Any]:
    return {
        "name": "custom", "target": target or stack.candidate, "baseline": stack.baseline,
        "load": {"rate": 20, "duration": "4s", "warmup": "3s", "workers": 1, **load},
        "endpoints": [{"path": "/hello"}],
        # Generator health is not what these tests are about; on a shared 2-core machine the
        # schedule lag of 20 req/s can pass the 10 ms default while others' tests run.
        "analysis": {"maxScheduleLag": "250ms"},
        "metrics": {"providers": [provider or {"url": stack.prometheus}], "queryDelay": "1.5s",
                    "candidate": {"version": "2.0", "labels": {"version": "2.0"}},
                    "baseline": {"version": "1.0", "labels": {"version": "1.0"}},
                    "custom": custom or CUSTOM},
        "objectives": objectives or [{"metric": "server-mean", "upperLimit": 40}],
    }


@pytest.mark.ray
@pytest.mark.usefixtures("ray_local")
def test_custom_objectives_are_judged_from_what_prometheus_scraped(stack: Stack) -> None:
    """A real run: the candidate's server-side mean from its own histogram passes 40 ms, its
    ratio to the baseline's (25 ms vs 5 ms added) fails 1.5x, so does its CPU per 1,000
    requests, the count Prometheus saw matches the measured phase (warm-up excluded), and a
    query with no series is "no data"."""
    from coordinator.ray_pool import RayPool
    from coordinator.run import run_experiment

    spec = parse_spec(_spec(stack, objectives=[
        {"metric": "server-mean", "upperLimit": "40ms"},
        {"metric": "server-mean", "upperLimit": 1.5, "vs": "baseline"},
        {"metric": "cpu-per-1k-requests", "upperLimit": 1.5, "vs": "baseline"},
        {"metric": "error-rate", "upperLimit": "10%"}]))
    assert check_metrics(spec) == 10  # five metrics, two versions
    with RayPool() as pool:
        results = run_experiment(spec, pool)
    by = {(c.name, c.version): c for c in results.custom_metrics}
    value = {key: c.value or 0.0 for key, c in by.items()}
    verdicts = [(o.metric, o.vs, o.verdict) for o in results.objectives]
    assert verdicts == [("server-mean", None, "PASS"), ("server-mean", "baseline", "FAIL"),
                        ("cpu-per-1k-requests", "baseline", "FAIL"),
                        ("error-rate", None, "PASS")], [o.reason for o in results.objectives]
    assert results.verdict == "FAIL", results.reasons
    # 5 ms of CPU and 20 ms of sleep added, never less (both wait on clocks that do not run
    # early); loopback and aiohttp add ~1-2 ms, 6 ms leaves room for a busy 2-core machine.
    assert 25.0 <= value[("server-mean", "candidate")] <= 31.0
    # (25 + o) / (5 + o) for an overhead o in [0, 3] ms lies in [3.7, 5]
    assert 3.2 <= (results.objectives[1].value or 0.0) <= 5.2
    assert "no confidence interval" in results.objectives[0].reason
    # Load-normalised CPU: 2.0 burns 5 ms per request, so at least 5 CPU-s per 1,000 requests
    # (process CPU counts in 10 ms ticks: ~0.4 s burnt in the window is within a few %, and
    # increase() extrapolates numerator and denominator alike); 1.0 measured ~0.5 here. The
    # ratio must show the candidate burning well over twice the CPU per request.
    assert 4.5 <= value[("cpu-per-1k-requests", "candidate")] <= 8.0
    assert (results.objectives[2].value or 0.0) >= 2.0
    # The window is the measured phase: 20 req/s per version for 4 s after a 3 s warm-up.
    # increase() extrapolates scrapes 1 s apart to the window's edges: within one scrape's
    # requests (20) of the 80 measured; warm-up included would give about 140.
    measured = results.metrics["*"]["request-count"]
    assert measured == 80
    assert abs(value[("served", "candidate")] - measured) <= 20
    assert f"[{promql_duration(results.duration_s)}]" in by[("served", "candidate")].query
    assert 'version="2.0"' in by[("served", "candidate")].query
    assert 'version="1.0"' in by[("served", "baseline")].query
    points = by[("served-so-far", "candidate")].points
    start = datetime.fromisoformat(results.start_time).timestamp()
    assert len(points) >= 3 and points[0][0] >= start + 3.0  # warm-up (3 s) not in the range
    assert by[("served-so-far", "candidate")].value == max(v for _, v in points)
    ghost = by[("ghost", "candidate")]
    assert (ghost.value, ghost.error, ghost.note) == (None, None, "the query returned no series")
    # Re-judged from the stored values, never queried again: no data is INCONCLUSIVE.
    saved = parse_results(results.to_json(), source="results.json")
    again = rejudge(saved, [Slo(metric="ghost", upper_limit=1.0),
                            Slo(metric="server-mean", upper_limit=40.0)], Limits())
    assert [o.verdict for o in again.objectives] == ["INCONCLUSIVE", "PASS"]
    assert again.objectives[0].reason == "no data for ghost: the query returned no series"
    assert again.verdict == "INCONCLUSIVE"


def test_a_query_prometheus_rejects_fails_the_check_with_its_own_400(stack: Stack) -> None:
    """A query Prometheus cannot parse is refused before the load with its HTTP 400 and its
    own error text, naming the custom metric."""
    spec = parse_spec(_spec(stack, custom=[{"name": "broken", "query": "sum(rate(x[5"}],
                            objectives=[{"metric": "broken", "upperLimit": 1}]))
    with pytest.raises(MetricsError) as caught:
        check_metrics(spec)
    message = str(caught.value)
    assert message.startswith(f"custom metric broken: {stack.prometheus}/api/v1/query: HTTP 400: "
                              "bad_data: ")
    assert "parse error" in message and "no load was sent" in message
    assert "\n" not in message


def test_an_unreachable_prometheus_exits_2_before_any_load(stack: Stack, tmp_path: Path) -> None:
    """slogate run with a provider nobody listens on exits 2 with one line naming the metric,
    and the target never sees a request."""
    import json

    with recording_server() as target:
        spec = _spec(stack, target=target.url,
                     provider={"url": f"http://127.0.0.1:{free_port()}", "timeout": "2s"})
        spec["baseline"] = None
        (tmp_path / "spec.yaml").write_text(json.dumps(spec))
        done = subprocess.run(
            [sys.executable, "-m", "coordinator.cli", "run", str(tmp_path / "spec.yaml"),
             "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
            check=False,
            cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
        assert target.requests == []
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("slogate: error: custom metric server-mean: http://127.0.0.1:")
    assert "cannot reach the metrics store (Connect call failed" in line or \
        "cannot reach the metrics store" in line
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


def _report(spec: ExperimentSpec) -> WorkerReport:
    """Return one worker's report of 100 fast successful requests (no network)."""
    hist = Histogram.from_values([2_000_000] * 100)
    window = Window(index=0, start_s=0.0, latency={("candidate: GET /hello", "status:200"): hist,
                                                   ("baseline: GET /hello", "status:200"): hist},
                    service={}, lag=Histogram.from_values([10_000] * 200), scheduled=200, sent=200)
    return WorkerReport(worker_index=0, host="h", pid=1, started_at=0.0, measured_s=1.0,
                        windows=(window,), warmup_requests=0, unsent=0, node_id="n")


@pytest.mark.parametrize(("auth", "header"), [
    pytest.param({"bearerToken": {"env": "SLOGATE_TEST_PROM_TOKEN"}}, "Bearer s3cret-token",
                 id="bearer-token-from-env"),
    pytest.param({"basicAuth": {"username": "slogate", "password": {"file": "pw.txt"}}},
                 "Basic " + base64.b64encode(b"slogate:s3cret-token").decode(),
                 id="basic-auth-password-from-file"),
])
def test_credentials_reach_the_store_and_a_failure_at_the_end_is_invalid(
        stack: Stack, auth: dict[str, Any], header: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a proxy demanding the credential the check passes and the values are read; a
    wrong one is its 401 before the load; the store failing at the end (503) makes the run
    INVALID naming the metric and the status; the secret is in no message or result."""
    monkeypatch.setenv("SLOGATE_TEST_PROM_TOKEN", "s3cret-token")
    (tmp_path / "pw.txt").write_text("s3cret-token\n")
    monkeypatch.chdir(tmp_path)
    with auth_proxy(stack.prometheus, header) as (proxy, switch):
        spec = parse_spec(_spec(stack, provider={"url": proxy.url, **auth},
                                custom=CUSTOM[:1]))
        assert check_metrics(spec) == 2
        assert {r["authorization"] for r in proxy.requests} == {header}
        now = datetime.now(UTC).timestamp()
        readings = read_metrics(spec, now - 5, now, sleep=lambda _s: None)
        assert [r.error for r in readings] == [None, None]
        switch["fail"] = True
        failed = read_metrics(spec, now - 5, now, sleep=lambda _s: None)
        monkeypatch.setenv("SLOGATE_TEST_PROM_TOKEN", "wrong")
        (tmp_path / "pw.txt").write_text("wrong\n")
        with pytest.raises(MetricsError, match=r"HTTP 401: not a Prometheus API answer"):
            check_metrics(spec)
    results = build_results(spec, [_report(spec)], started=datetime.now(UTC),
                            ended=datetime.now(UTC), custom=failed)
    assert results.verdict == "INVALID"
    assert results.reasons == [(f"custom metric server-mean: {proxy.url}/api/v1/query: "
                                "HTTP 503: not a Prometheus API answer: Service Unavailable")]
    assert "s3cret" not in results.to_json() and "s3cret" not in " ".join(results.reasons)


@pytest.mark.parametrize("example", [
    pytest.param("examples/hello/experiment-prometheus.yaml", id="hello-local"),
    pytest.param("examples/custom-metrics/kubernetes.yaml", id="kubernetes-cadvisor-ksm"),
])
def test_the_examples_queries_are_valid_promql(stack: Stack, example: str) -> None:
    """Every query of the examples, rendered for both versions, is accepted by Prometheus
    (pointed at the test server: their data need not exist here, their syntax must)."""
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load((REPO_ROOT / example).read_text())
    data["metrics"]["providers"] = [{"url": stack.prometheus}]
    spec = parse_spec(data, source=example)
    assert check_metrics(spec) == 2 * len(data["metrics"]["custom"])


@pytest.mark.parametrize(("tls", "error"), [
    pytest.param({"caFile": "cert.pem"}, None, id="ca-file-trusted"),
    pytest.param({"insecure": True}, None, id="insecure-skips-verification"),
    pytest.param({}, "certificate verify failed", id="untrusted-refused"),
])
def test_https_store_with_its_ca_or_insecure(stack: Stack, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             tls: dict[str, Any], error: str | None) -> None:
    """Behind HTTPS with a self-signed certificate, the store is trusted with its CA file or
    with insecure: true; without either the check refuses it, naming the metric."""
    cert, key = self_signed_cert(tmp_path)
    monkeypatch.chdir(tmp_path)
    with auth_proxy(stack.prometheus, None, tls=(cert, key)) as (proxy, _switch):
        spec = parse_spec(_spec(stack, provider={"url": proxy.url, **tls}, custom=CUSTOM[:1]))
        if error is None:
            assert check_metrics(spec) == 2
            assert len(proxy.requests) == 2
        else:
            with pytest.raises(MetricsError, match=error) as caught:
                check_metrics(spec)
            assert str(caught.value).startswith("custom metric server-mean: https://127.0.0.1:")
            assert proxy.requests == []


def test_several_series_fail_the_check_naming_their_labels(stack: Stack) -> None:
    """A query that returns one series per version (not aggregated) is refused before the
    load, naming the label sets Prometheus returned."""
    spec = parse_spec(_spec(stack, custom=[{"name": "per-version",
                                            "query": "sum by (version) (hello_requests_total)"}],
                            objectives=[{"metric": "per-version", "upperLimit": 1}]))
    with pytest.raises(MetricsError) as caught:
        check_metrics(spec)
    assert str(caught.value) == (
        'custom metric per-version: the query returned 2 series where one was expected: '
        '{version="1.0"}, {version="2.0"} (aggregate them, e.g. with sum or max) (checked '
        'before the load, for the baseline; no load was sent)')
