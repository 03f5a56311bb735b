"""Custom metrics' pure core: templates, Prometheus answers decoded, readings and verdicts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analysis.custom import (
    QueryError,
    Reading,
    decode,
    judge_custom,
    label_matchers,
    promql_duration,
    reading_from,
    reduce_points,
    render,
    template_variables,
    variables_for,
)
from analysis.verdict import RunHealth, Slo, Verdict, judge_run


@pytest.mark.parametrize(("seconds", "text"), [
    pytest.param(30.0, "30s", id="whole-seconds"),
    pytest.param(1.5, "1500ms", id="fraction"),
    pytest.param(29.9996, "30s", id="rounded-to-ms"),
    pytest.param(0.0001, "1ms", id="at-least-1ms"),
])
def test_promql_duration(seconds: float, text: str) -> None:
    """The measured phase becomes a PromQL duration PromQL accepts, to the millisecond."""
    assert promql_duration(seconds) == text


def test_template_renders_variables_and_leaves_promql_alone() -> None:
    """{{ labels }} inside a selector's own braces renders to matchers; other braces stay."""
    variables = variables_for(namespace="shop", app="hello", version="2.0",
                              labels={"version": "2.0", "app": 'he"llo'}, start_s=100.0,
                              end_s=130.5)
    query = 'sum(rate(x{{{ labels }},ns="{{ namespace }}"}[{{ interval }}] @ {{ end }}))'
    assert template_variables(query) == ["labels", "namespace", "interval", "end"]
    assert render(query, variables) == \
        'sum(rate(x{version="2.0",app="he\\"llo",ns="shop"}[30500ms] @ 130.500))'


def test_label_values_are_escaped_as_promql_strings() -> None:
    """A quote, a backslash or a newline in a label value cannot end the string early."""
    assert label_matchers({"a": 'x"\\\ny'}) == 'a="x\\"\\\\\\ny"'


@pytest.mark.parametrize(("answer", "series"), [
    pytest.param({"resultType": "vector", "result": []}, [], id="empty-vector"),
    pytest.param({"resultType": "vector", "result": [{"metric": {"job": "a"},
                                                      "value": [10.5, "2.5"]}]},
                 [({"job": "a"}, [(10.5, 2.5)])], id="vector"),
    pytest.param({"resultType": "scalar", "result": [10, "7"]}, [({}, [(10.0, 7.0)])],
                 id="scalar"),
    pytest.param({"resultType": "matrix", "result": [{"metric": {}, "values": [
        [1, "1"], [2, "NaN"], [3, "+Inf"]]}]},
        [({}, [(1.0, 1.0), (2.0, math.nan), (3.0, math.inf)])], id="matrix"),
])
def test_decode_prometheus_answers(answer: dict[str, object], series: list[object]) -> None:
    """Vector, matrix and scalar answers decode to (labels, points) series."""
    decoded = decode(answer)
    assert [labels for labels, _ in decoded] == [item[0] for item in series]  # type: ignore[index]
    assert str(decoded) == str(series)  # NaN == NaN as text


@pytest.mark.parametrize("answer", [
    pytest.param(None, id="null"),
    pytest.param({"resultType": "string", "result": [1, "x"]}, id="string"),
    pytest.param({"resultType": "vector", "result": [{"value": [1, "abc"]}]}, id="not-a-number"),
])
def test_decode_refuses_what_is_not_a_number_or_series(answer: object) -> None:
    """An answer that holds no number is a QueryError, not a crash or a 0."""
    with pytest.raises(QueryError):
        decode(answer)


@pytest.mark.parametrize(("how", "value"), [
    pytest.param("last", 3.0, id="last"), pytest.param("max", 7.0, id="max"),
    pytest.param("mean", 4.0, id="mean"),
])
def test_reduce_skips_nan(how: str, value: float) -> None:
    """Reduction uses the finite values only: NaN (0/0 in PromQL) is no value, not 0."""
    points = [(1.0, 2.0), (2.0, 7.0), (3.0, math.nan), (4.0, 3.0)]
    assert reduce_points(points, how) == value  # type: ignore[arg-type]


def _read(series: list[tuple[dict[str, str], list[tuple[float, float]]]]) -> Reading:
    return reading_from(series, name="cpu", version="candidate", query="q", unit="cores",
                        how="last")


def test_no_series_is_no_data_never_zero() -> None:
    """A query that returns no series reads as no value with the reason, not 0."""
    reading = _read([])
    assert (reading.value, reading.error, reading.note) == \
        (None, None, "the query returned no series")


def test_several_series_are_an_error_naming_their_labels() -> None:
    """Two series where one was expected: an error naming both label sets."""
    reading = _read([({"pod": "a"}, [(1.0, 1.0)]), ({"pod": "b"}, [(1.0, 2.0)])])
    assert reading.value is None
    assert reading.error == ('custom metric cpu: the query returned 2 series where one was '
                             'expected: {pod="a"}, {pod="b"} (aggregate them, e.g. with sum or '
                             'max)')


def _readings(candidate: float | None, baseline: float | None = None
              ) -> dict[tuple[str, str], Reading]:
    out = {("cpu", "candidate"): Reading(name="cpu", version="candidate", query="q",
                                         unit="cores", value=candidate,
                                         note=None if candidate is not None else "none")}
    if baseline is not None:
        out[("cpu", "baseline")] = Reading(name="cpu", version="baseline", query="q",
                                           unit="cores", value=baseline)
    return out


@pytest.mark.parametrize(("candidate", "baseline", "vs", "outcome", "value"), [
    pytest.param(0.5, None, None, "PASS", 0.5, id="below-limit"),
    pytest.param(1.5, None, None, "FAIL", 1.5, id="above-limit"),
    pytest.param(1.0, None, None, "PASS", 1.0, id="at-limit"),
    pytest.param(None, None, None, "INCONCLUSIVE", None, id="no-data"),
    pytest.param(1.1, 1.0, "baseline", "PASS", 1.1, id="ratio-within"),
    pytest.param(2.2, 1.0, "baseline", "FAIL", 2.2, id="twice-the-cpu"),
    pytest.param(1.0, 0.0, "baseline", "INCONCLUSIVE", None, id="baseline-zero"),
])
def test_custom_objectives_are_point_comparisons(candidate: float | None,
                                                 baseline: float | None, vs: str | None,
                                                 outcome: str, value: float | None) -> None:
    """A custom value is compared as a point (no interval); vs baseline as a ratio."""
    upper = 1.2 if vs else 1.0
    judged = judge_custom(name="cpu", upper=upper, lower=None, vs=vs,
                          readings=_readings(candidate, baseline))
    assert (judged.outcome, judged.value) == (outcome, pytest.approx(value) if value else None)


def test_a_custom_reading_error_makes_the_run_invalid() -> None:
    """A custom metric that failed to read at the end is the run's INVALID reason."""
    error = "custom metric cpu: http://p/api/v1/query: HTTP 503: not a Prometheus API answer"
    verdict = judge_run([Slo(metric="cpu", upper_limit=1.0)], {}, {},
                        RunHealth(successful_requests=10, metric_errors=(error,)),
                        custom={("cpu", "candidate"): Reading(name="cpu", version="candidate",
                                                              query="q", error=error)})
    assert verdict.verdict is Verdict.INVALID and verdict.reasons == (error,)


@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False,
                                                min_value=-1e9, max_value=1e9)),
                min_size=1, max_size=4))
def test_a_run_with_a_custom_objective_without_data_is_never_pass(
        values: list[float | None]) -> None:
    """Whatever the other custom values, one objective with no data keeps the run from PASS."""
    readings = {(f"m{i}", "candidate"): Reading(name=f"m{i}", version="candidate", query="q",
                                                value=v) for i, v in enumerate(values)}
    readings[("empty", "candidate")] = Reading(name="empty", version="candidate", query="q",
                                               note="the query returned no series")
    objectives = [Slo(metric=name, upper_limit=1e12, lower_limit=-1e12)
                  for name, _ in readings]
    verdict = judge_run(objectives, {}, {}, RunHealth(successful_requests=1), custom=readings)
    assert verdict.verdict is not Verdict.PASS
    assert verdict.objectives[-1].reason == "no data for empty: the query returned no series"


def test_a_saved_spec_may_name_the_custom_metrics_it_declares() -> None:
    """A saved run's objectives on its own custom metrics load (promotion re-judges them); a
    name the spec does not declare is still refused."""
    from analysis.saved_spec import SavedSpecError, saved_spec

    spec = {"objectives": [{"metric": "cpu", "upperLimit": 1.1, "vs": "baseline"}],
            "metrics": {"custom": [{"name": "cpu", "query": "x"}]}}
    assert saved_spec(spec).objectives == (Slo(metric="cpu", upper_limit=1.1,
                                                     vs="baseline"),)
    with pytest.raises(SavedSpecError, match=r"objectives\[0\]\.metric: unknown metric 'cpu'"):
        saved_spec({"objectives": spec["objectives"]})
