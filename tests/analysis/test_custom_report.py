"""Custom metrics shown beside the built-in ones in every report format, from results.json."""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET

import pytest

from analysis.html import render_html
from analysis.report import md_text, render
from analysis.results import parse_results
from tests.support.runs import CUSTOM_QUERY as QUERY
from tests.support.runs import custom_document as _results
from tests.support.runs import document


@pytest.mark.parametrize("fmt", ["text", "markdown", "junit", "html"])
def test_every_format_shows_custom_metrics_with_query_and_no_interval(fmt: str) -> None:
    """Text, markdown, JUnit and HTML show each custom value with its unit, the query as sent,
    "no data" for an empty answer, and say that these values have no confidence interval."""
    out = render(_results(), fmt)
    for expected in ("21.25 ms", "0.5 cores", "range, max of 3 points",
                     "no confidence interval", "ghost (candidate): the query returned no series"):
        assert expected in out, expected
    shown = {"markdown": md_text(QUERY), "html": html.escape(QUERY)}.get(fmt, QUERY)
    assert shown in out


def test_html_draws_a_chart_of_each_series() -> None:
    """The HTML report draws one chart per custom metric that has points (none for no data)."""
    page = render_html(_results())
    assert page.count('aria-label="server-mean"') == 1 and page.count('aria-label="cpu"') == 1
    assert 'aria-label="ghost"' not in page


def test_junit_stays_valid_xml_and_json_round_trips() -> None:
    """JUnit carries the custom metrics in system-out; results.json keeps them exactly."""
    results = _results()
    suite = ET.fromstring(render(results, "junit").split("\n", 1)[1])
    assert "server-mean [candidate]: 21.25 ms" in (suite.findtext("system-out") or "")
    again = parse_results(results.to_json(), source="results.json")
    assert again.custom_metrics == results.custom_metrics


def test_a_run_without_custom_metrics_has_no_section() -> None:
    """Without custom metrics, neither the document nor the reports mention them."""
    plain = document(day=0)
    assert "customMetrics" not in plain.to_json()
    assert all("Custom metrics" not in render(plain, fmt) for fmt in ("text", "markdown", "html"))



def test_history_tracks_a_custom_objectives_metric() -> None:
    """slogate history shows a custom metric an objective named, run by run, from the stored
    value; it is tracked but not judged for drift (its bad direction is not known)."""
    from analysis.history import DriftPolicy, history_of
    from analysis.results import CustomMetricResult, ObjectiveResult

    runs = []
    for day, value in enumerate((20.0, 21.0, 22.0, 40.0)):
        base = document(day=day)
        custom = [CustomMetricResult(name="server-mean", query="q", unit="ms", value=value)]
        objective = ObjectiveResult(metric="server-mean", upper_limit=50.0, value=value,
                                    verdict="PASS", reason="ok")
        runs.append((base.model_copy(update={"custom_metrics": custom,
                                             "objectives": [*base.objectives, objective]}),
                     f"run{day}"))
    past = history_of(runs, policy=DriftPolicy(against=3))
    assert [p.values["server-mean"] for p in past.runs] == [20.0, 21.0, 22.0, 40.0]
    check = next(c for c in past.drift.checks if c.metric == "server-mean")
    assert (check.reference, check.newest, check.state.value) == (21.0, 40.0, "ok")
    assert check.why == "40; a custom metric: tracked, not judged for drift"


def test_objectives_on_custom_metrics_show_their_unit() -> None:
    """A custom objective's value and limit are shown in the metric's unit in text and HTML."""
    from analysis.results import ObjectiveResult

    base = _results()
    objective = ObjectiveResult(metric="server-mean", upper_limit=50.0, value=21.25,
                                verdict="PASS", reason="ok")
    results = base.model_copy(update={"objectives": [objective]})
    for fmt in ("text", "html"):
        out = render(results, fmt)
        assert "≤ 50 ms" in out and "21.25 ms" in out, fmt
