"""Baseline against candidate: interleaved loading, relative objectives and the A/A noise floor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from analysis.compare import relative_evidence, split_versions
from analysis.evidence import scopes
from analysis.metrics import Measured, metrics_table
from coordinator.cli import main
from coordinator.errors import SpecError
from coordinator.spec import parse_spec
from coordinator.split import worker_plans
from tests.support.helpers import present, start_hello
from workers.histogram import Histogram


def _measured(candidate_ms: float, baseline_ms: float, n: int = 4000) -> Measured:
    rng = np.random.default_rng(3)
    def hist(ms: float) -> Histogram:
        return Histogram.from_values(rng.lognormal(np.log(ms * 1e6), 0.25, n).astype(np.int64))
    return Measured(latency={("candidate: GET /a", "status:200"): hist(candidate_ms),
                             ("baseline: GET /a", "status:200"): hist(baseline_ms)},
                    duration_s=10.0)


def _relative(measured: Measured, metric: str) -> tuple[float, tuple[float, float]]:
    parts = split_versions(measured)
    c, b = parts["candidate"], parts["baseline"]
    rows_c = metrics_table(c).to_dict(orient="index")["*"]
    rows_b = metrics_table(b).to_dict(orient="index")["*"]
    evidence = relative_evidence(metric, scopes(c)["*"], scopes(b)["*"], rows_c, rows_b, 0.95)
    assert evidence.interval is not None
    return evidence.value, evidence.interval


@pytest.mark.parametrize("metric", ["latency-p50", "latency-p99", "latency-mean"])
def test_a_twice_slower_candidate_has_a_ratio_interval_around_two(metric: str) -> None:
    """Lognormal latencies with medians 20 ms vs 10 ms: the ratio interval holds 2 and excludes 1.1."""
    value, (low, high) = _relative(_measured(20.0, 10.0), metric)
    assert low <= 2.0 <= high and low > 1.1
    assert value == pytest.approx(2.0, rel=0.1)


def test_identical_versions_have_a_ratio_interval_around_one() -> None:
    """Two samples of one distribution (the A/A case): the p99 ratio interval contains 1."""
    _, (low, high) = _relative(_measured(10.0, 10.0), "latency-p99")
    assert low <= 1.0 <= high


def test_relative_objective_without_baseline_is_a_spec_error() -> None:
    """An objective 'vs: baseline' in a spec without a baseline URL names the field."""
    with pytest.raises(SpecError, match=r"objectives\[0\]\.vs: compares with the baseline"):
        parse_spec({"name": "t", "target": "http://h", "load": {"rate": 1, "duration": 1},
                    "objectives": [{"metric": "latency-p99", "vs": "baseline",
                                    "upperLimit": 1.1}]})


def test_two_versions_are_interleaved_at_the_rate_of_each() -> None:
    """With a baseline, each version gets the spec's rate: the global schedule is twice as dense
    and the endpoints alternate baseline, candidate request by request."""
    spec = parse_spec({"name": "t", "target": "http://c:1", "baseline": "http://b:2",
                       "load": {"rate": 100, "requests": 50, "workers": 2},
                       "endpoints": [{"path": "/x"}]})
    plans = worker_plans(spec)
    assert [t.label for t in plans[0].requests] == ["baseline: GET /x", "candidate: GET /x"]
    assert plans[0].schedule_rate_rps == 200 and sum(present(p.request_limit) for p in plans) == 100
    assert plans[0].transport == "aiohttp"  # two origins


@pytest.mark.ray
@pytest.mark.usefixtures("ray_local")
def test_aa_run_reports_the_noise_floor(tmp_path: Path) -> None:
    """`slogate run --aa` loads one app as both versions: equal counts, and every ratio interval
    of the comparison contains 1 (the error difference contains 0).

    The comparison has about 7 rows; at 95 % each, one of them misses 1 in roughly a quarter of
    honest A/A runs. At confidence 0.999 (Bonferroni: a family-wise error under 1 %) a miss is a
    real asymmetry between the two interleaved versions, not chance."""
    with start_hello("--latency", "5ms") as url:
        spec = tmp_path / "spec.yaml"
        spec.write_text(json.dumps({
            "name": "aa", "target": url, "load": {"rate": 250, "duration": "4s", "workers": 2},
            "endpoints": [{"path": "/hello"}],
            "analysis": {"maxScheduleLag": "1s", "confidence": 0.999},
            "objectives": [{"metric": "latency-p50", "vs": "baseline", "upperLimit": 1.5}]}))
        result = CliRunner().invoke(main, ["run", str(spec), "--aa", "--out", str(tmp_path / "o"),
                                           "--format", "markdown"])
    saved = json.loads((tmp_path / "o" / "results.json").read_text())
    assert saved["aa"] is True and "noise floor" in result.stdout
    counts = {s["endpoint"]: s["count"] for s in saved["histograms"]["latency"]}
    assert counts == {"baseline: GET /hello": 1000, "candidate: GET /hello": 1000}
    for row in saved["comparison"]:
        if row["low"] is not None:
            neutral = 0.0 if row["kind"] == "difference" else 1.0
            assert row["low"] <= neutral <= row["high"], row
    assert saved["objectives"][0]["verdict"] == "PASS"
    html = (tmp_path / "o" / "report.html").read_text()
    assert "A/A run: the noise floor" in html and "latency-p50 [all endpoints] vs baseline" in html
