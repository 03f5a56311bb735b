"""Reports of a deterministic, synthetic run: golden markdown/JSON/JUnit, and re-judging.

The run is built from known latencies (no network, no clock), so every figure in the reports is
reproducible; `pytest --update-golden` rewrites the golden files after a deliberate change.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from analysis.rejudge import rejudge
from analysis.report import render
from analysis.results import Results
from analysis.verdict import Limits, Slo
from coordinator.run import build_results
from coordinator.spec import parse_spec
from tests.support.helpers import present
from workers.histogram import Histogram
from workers.load_worker import WorkerReport
from workers.recorder import Window

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
STARTED = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
ENDED = datetime(2026, 11, 29, 12, 0, 5, tzinfo=UTC)


def _window(index: int, rng: np.random.Generator) -> Window:
    ok = rng.lognormal(np.log(8e6), 0.3, 990).astype(np.int64)  # ~8 ms median
    errors = rng.lognormal(np.log(2e6), 0.2, 10).astype(np.int64)  # fast 503s
    key_ok, key_err = ("GET /hello", "status:200"), ("GET /hello", "status:503")
    return Window(index=index, start_s=float(index),
                  latency={key_ok: Histogram.from_values(ok), key_err: Histogram.from_values(errors)},
                  service={key_ok: Histogram.from_values(ok - 50_000),
                           key_err: Histogram.from_values(errors)},
                  lag=Histogram.from_values(np.full(1000, 50_000)), scheduled=1000, sent=1000,
                  cpu_s=0.25, in_flight_max=9)


def synthetic_results(objectives: Sequence[object]) -> Results:
    """Return the results of a 5 s, 1000 req/s run with 1% of 503s and ~8 ms latency."""
    spec = parse_spec({"name": "golden", "target": "http://127.0.0.1:8080",
                       "load": {"rate": 1000, "duration": "5s", "workers": 1},
                       "endpoints": [{"path": "/hello"}], "objectives": objectives})
    rng = np.random.default_rng(7)
    report = WorkerReport(worker_index=0, host="host-a", pid=1, started_at=0.0, measured_s=5.0,
                          windows=tuple(_window(i, rng) for i in range(5)), warmup_requests=0,
                          unsent=0, node_id="node-a")
    return build_results(spec, [report], started=STARTED, ended=ENDED)


OBJECTIVES = ["p(99)<20ms", "rate<5%", {"metric": "latency-mean", "upperLimit": "9ms"},
              {"metric": "latency-p50", "upperLimit": "5ms", "dryRun": True},
              {"metric": "throughput", "lowerLimit": "900/s"}]


@pytest.mark.parametrize("fmt, suffix", [
    pytest.param("markdown", "md", id="markdown"),
    pytest.param("json", "json", id="json"),
    pytest.param("junit", "xml", id="junit"),
])
def test_report_matches_golden_file(fmt: str, suffix: str, update_golden: bool) -> None:
    """Each report format of the synthetic run equals its golden file byte for byte."""
    text = render(synthetic_results(OBJECTIVES), fmt)
    golden = GOLDEN / f"synthetic.{suffix}"
    if update_golden:
        golden.write_text(text)
    assert text == golden.read_text()


def test_synthetic_run_verdicts_are_what_the_data_says() -> None:
    """p99 ~ 15 ms < 20 ms, 1% errors < 5%, mean ~8.3 ms < 9 ms, 1000/s > 900/s: PASS; the
    dry-run p50 <= 5 ms fails but does not count."""
    results = synthetic_results(OBJECTIVES)
    verdicts = {o.metric: o.verdict for o in results.objectives}
    assert verdicts == {"latency-p99": "PASS", "error-rate": "PASS", "latency-mean": "PASS",
                        "latency-p50": "FAIL", "throughput": "PASS"}
    assert results.verdict == "PASS"
    error_rate = next(o for o in results.objectives if o.metric == "error-rate")
    assert error_rate.value == pytest.approx(0.01)
    assert present(error_rate.low) < 0.01 < present(error_rate.high) and error_rate.n == 5000


def test_rejudging_with_the_runs_own_objectives_gives_the_same_results() -> None:
    """Re-judging a saved run with its own objectives reproduces its objectives and verdict."""
    results = synthetic_results(OBJECTIVES)
    saved = Results.model_validate(json.loads(results.to_json()))
    spec = parse_spec({"name": "g", "target": "http://h", "load": {"rate": 1, "duration": 1},
                       "objectives": OBJECTIVES})
    again = rejudge(saved, [o.to_core() for o in spec.objectives], Limits())
    assert again.objectives == results.objectives
    assert (again.verdict, again.reasons) == (results.verdict, results.reasons)


def test_rejudging_against_stricter_objectives_fails_without_new_load() -> None:
    """A p99 limit of 10 ms, below the run's ~15 ms p99, turns the saved run into a FAIL."""
    saved = synthetic_results(OBJECTIVES)
    again = rejudge(saved, [Slo(metric="latency-p99", upper_limit=10.0)], Limits())
    assert again.verdict == "FAIL"
    assert present(again.objectives[0].low) > 10.0
    assert again.histograms == saved.histograms


def test_reports_name_the_dark_launch_of_a_kubernetes_target() -> None:
    """A run whose target was dark-launched says so in the markdown and HTML reports (manifests,
    namespace, cleanup) beside the URL it loaded; a URL-only run has no such line."""
    from analysis.html import render_html
    from analysis.report import render_markdown
    from tests.support.runs import document

    plain = document(day=0)
    launched = plain.model_copy(update={"spec": {**plain.spec, "target": {
        "url": "http://hello-candidate.shop.svc:8080", "kubernetes": {
            "namespace": "shop", "manifests": ["candidate.yaml"], "cleanup": "on_fail"}}}})
    line = "dark launch: candidate.yaml in namespace shop, cleanup on_fail"
    assert f"- target: `http://hello-candidate.shop.svc:8080`\n- {line}\n" in \
        render_markdown(launched)
    assert line in render_html(launched)
    assert "dark launch" not in render_markdown(plain) + render_html(plain)
