"""The typed view of a saved run's spec (analysis/saved_spec.py, ``Results.saved``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from analysis.catalog import DEFAULT_ERROR_RANGES
from analysis.errors import ResultsError
from analysis.results import load_results, parse_results
from analysis.saved_spec import SavedSpecError, saved_spec
from analysis.verdict import Limits, Slo
from coordinator.spec import parse_spec

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "synthetic.json"


def test_the_view_of_a_saved_run_is_what_the_spec_parser_gives() -> None:
    """Objectives, limits and error ranges read from the golden run equal the coordinator's
    parse of the same echoed spec, so re-judging without parse_spec judges alike."""
    results = load_results(GOLDEN)
    spec = parse_spec(results.spec, source="golden")
    assert results.saved.objectives == tuple(o.to_core() for o in spec.objectives)
    assert results.saved.limits == spec.analysis.to_core() == Limits()
    assert results.saved.error_ranges == spec.error_ranges == ((400, 599),)
    assert (results.saved.window_s, results.saved.target_url) == (1.0, "http://127.0.0.1:8080")
    saved = results.saved
    assert (saved.rate_rps, saved.concurrency, saved.duration_s, saved.requests) == (
        1000.0, None, 5.0, None)


def test_absent_keys_take_the_spec_defaults() -> None:
    """An echoed spec without analysis, errorRanges or load gives the defaults (the one
    DEFAULT_ERROR_RANGES constant) and no window."""
    view = saved_spec({"objectives": [{"metric": "error-rate", "upperLimit": 0.01}]})
    assert view.objectives == (Slo(metric="error-rate", upper_limit=0.01),)
    assert view.limits == Limits() and view.max_schedule_lag_ms is None
    assert view.error_ranges is DEFAULT_ERROR_RANGES and view.window_s is None
    assert (view.target_url, view.dark_launch, view.promotion) == (None, None, None)


def test_a_dark_launch_target_is_described() -> None:
    """A Kubernetes target gives its URL and one line on the dark launch."""
    view = saved_spec({"target": {"url": "http://10.0.0.1", "kubernetes": {
        "manifests": ["candidate.yaml"], "namespace": "shop", "cleanup": "on_fail"}}})
    assert view.target_url == "http://10.0.0.1"
    assert view.dark_launch == "candidate.yaml in namespace shop, cleanup on_fail"


@pytest.mark.parametrize(("spec", "message"), [
    pytest.param({"objectives": [{"metric": "latency-p99.9x", "upperLimit": 1.0}]},
                 "objectives[0].metric: unknown metric 'latency-p99.9x'", id="unknown-metric"),
    pytest.param({"objectives": ["p(99)<10s"]}, "objectives[0]: expected a mapping",
                 id="objective-not-as-saved"),
    pytest.param({"objectives": [{"metric": "error-rate"}]},
                 "objectives[0]: no upperLimit or lowerLimit", id="no-limit"),
    pytest.param({"objectives": [{"metric": "error-rate", "upperLimit": "1%"}]},
                 "objectives[0].upperLimit: expected a number, got '1%'", id="limit-not-canonical"),
    pytest.param({"errorRanges": [[599, 400]]},
                 "errorRanges[0]: [599, 400] is not a range of HTTP statuses within 100-599",
                 id="error-range-reversed"),
    pytest.param({"analysis": {"confidence": "high"}},
                 "analysis.confidence: expected a number, got 'high'", id="confidence-text"),
    pytest.param({"load": [1]}, "load: expected a mapping", id="load-not-a-mapping"),
    pytest.param({"load": {"requests": 1.5}}, "load.requests: expected a whole number, got 1.5",
                 id="requests-not-whole"),
])
def test_a_bad_saved_spec_is_named(spec: dict[str, Any], message: str) -> None:
    """A value re-judging cannot use raises one line naming the key, from the view and from
    parse_results (as ``spec.KEY``)."""
    with pytest.raises(SavedSpecError) as caught:
        saved_spec(spec)
    assert str(caught.value) == message
    data = json.loads(GOLDEN.read_text())
    data["spec"] = {**data["spec"], **spec}
    with pytest.raises(ResultsError) as loaded:
        parse_results(json.dumps(data), source="r.json")
    assert str(loaded.value) == f"r.json: spec.{message}"


def test_a_copy_with_another_spec_gets_its_own_view() -> None:
    """model_copy with an updated spec is read afresh; the original keeps its view."""
    results = load_results(GOLDEN)
    copy = results.model_copy(update={"spec": {**results.spec, "errorRanges": [[500, 599]]}})
    assert (copy.saved.error_ranges, results.saved.error_ranges) == (((500, 599),), ((400, 599),))
