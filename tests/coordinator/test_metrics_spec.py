"""The spec's metrics block and objectives naming custom metrics: parsed, or one clear line."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from coordinator.errors import SpecError
from coordinator.spec import json_schema, load_objectives, parse_spec

BASE: dict[str, Any] = {
    "name": "t", "target": "http://127.0.0.1:8080", "baseline": "http://127.0.0.1:8081",
    "load": {"rate": 10, "duration": "5s"},
    "metrics": {"providers": [{"url": "http://127.0.0.1:9090", "bearerToken": {"env": "TOK"}}],
                "custom": [{"name": "server-p99", "unit": "ms",
                            "query": "histogram_quantile(0.99, x{{{ labels }}}[{{ interval }}])"},
                           {"name": "cpu", "unit": "cores", "mode": "range", "reduce": "max",
                            "query": "sum(rate(cpu{ {{ labels }} }[30s]))"}]},
    "objectives": [{"metric": "server-p99", "upperLimit": "0.05s"},
                   {"metric": "cpu", "upperLimit": "110%", "vs": "baseline"},
                   "p(99)<100ms"],
}


def _with(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    change(data)
    return data


def test_objectives_name_custom_metrics_with_limits_in_their_unit() -> None:
    """Limits of a custom metric are read in its unit (0.05s -> 50 for ms); vs baseline: a
    ratio; built-in objectives unchanged beside them."""
    spec = parse_spec(BASE)
    assert [(o.metric, o.upper_limit, o.vs) for o in spec.objectives] == [
        ("server-p99", 50.0, None), ("cpu", 1.1, "baseline"), ("latency-p99", 100.0, None)]
    assert spec.metrics is not None and spec.metrics.custom[1].reduce == "max"
    moved = spec.with_target("http://127.0.0.1:9999")
    assert moved.objectives == spec.objectives and moved.metrics == spec.metrics


@pytest.mark.parametrize(("change", "message"), [
    pytest.param(lambda d: d["objectives"].append({"metric": "server-p98", "upperLimit": 1}),
                 "spec: objectives[3].metric: unknown metric 'server-p98' (did you mean "
                 "server-p99?)", id="unknown-custom-name"),
    pytest.param(lambda d: d["objectives"].append({"metric": "cpu", "upperLimit": 1,
                                                   "endpoint": "GET /"}),
                 "spec: objectives[3].endpoint: cpu is a custom metric, read for the whole "
                 "version; remove endpoint", id="endpoint-not-allowed"),
    pytest.param(lambda d: d["metrics"]["custom"][0].update(query="x{{ pod }}"),
                 "spec: metrics.custom[0].query: unknown template variable {{ pod }}; known: "
                 "namespace, app, version, labels, interval, start, end", id="unknown-variable"),
    pytest.param(lambda d: d["metrics"]["custom"][1].update(mode="instant"),
                 "spec: metrics.custom[1].reduce: only for mode: range (an instant query gives "
                 "one value)", id="reduce-without-range"),
    pytest.param(lambda d: d["metrics"]["providers"][0].update(url="http://u:pw@prom:9090"),
                 "spec: metrics.providers[0].url: credentials in the URL (user:password@) are "
                 "refused: they would be shown and saved with the results; use basicAuth or "
                 "bearerToken", id="credentials-in-url"),
    pytest.param(lambda d: d["metrics"]["providers"][0].update(bearerToken={"env": "A",
                                                                            "file": "b"}),
                 "spec: metrics.providers[0].bearerToken: give exactly one of env, file, secret "
                 "(got env, file)", id="two-token-sources"),
    pytest.param(lambda d: d["metrics"]["providers"].append({"name": "thanos",
                                                             "url": "http://t:1"}),
                 "spec: metrics: custom[0].provider: several providers; name one of "
                 "prometheus, thanos", id="provider-ambiguous"),
    pytest.param(lambda d: d["metrics"]["custom"][0].update(name="latency-p99"),
                 "'latency-p99' is a built-in metric; give the custom one another name",
                 id="built-in-name"),
    pytest.param(lambda d: d["objectives"].append({"metric": "cpu", "upperLimit": "lots"}),
                 "spec: objectives[3].upperLimit: 'lots' is not a number in the metric's unit "
                 "for cpu (custom)", id="limit-not-a-number"),
])
def test_bad_metrics_blocks_are_one_line(change: Callable[[dict[str, Any]], None],
                                         message: str) -> None:
    """Each mistake in the metrics block or a custom objective is one line naming the field."""
    with pytest.raises(SpecError) as caught:
        parse_spec(_with(change))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_spec_without_metrics_is_echoed_as_before() -> None:
    """No ``metrics: null`` in a saved spec without custom metrics (results stay as they were)."""
    data = _with(lambda d: d.update(objectives=[]))
    del data["metrics"]
    dumped = parse_spec(data).model_dump(mode="json", by_alias=True)
    assert "metrics" not in dumped
    assert "metrics" in json_schema()["properties"]


def test_objectives_file_names_a_saved_runs_custom_metrics(tmp_path: Any) -> None:
    """Re-judging objectives may name the custom metrics a saved run read, in their units."""
    path = tmp_path / "objectives.yaml"
    path.write_text("- {metric: server-p99, upperLimit: 30ms}\n")
    assert load_objectives(path, {"server-p99": "s"}).objectives[0].upper_limit == 0.03
    with pytest.raises(SpecError, match="unknown metric 'server-p99'"):
        load_objectives(path)


def test_a_credential_gone_at_the_end_is_a_reading_error_not_a_crash(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A token variable unset by the end of the run gives each reading the error (the run is
    then INVALID and its results are written), instead of an exception after the load."""
    from coordinator.custom_metrics import read_metrics

    monkeypatch.delenv("TOK", raising=False)
    readings = read_metrics(parse_spec(BASE), 0.0, 10.0, sleep=lambda _s: None)
    assert [(r.name, r.version) for r in readings] == [
        ("server-p99", "baseline"), ("server-p99", "candidate"), ("cpu", "baseline"),
        ("cpu", "candidate")]
    assert {r.error for r in readings} == {
        "metrics provider prometheus: bearerToken: the environment variable TOK is not set"}
