"""What users write reaches every report as written: no markup, no lost brackets, no crash.

Runs are built by the real ``build_results`` from one worker's window with known outcomes per
endpoint (500 responses of 5 ms, ten 500s, three connection failures), so the outcome counts
and error causes the reports show are numbers chosen here.
"""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from html.parser import HTMLParser

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.history import DriftPolicy, history_of
from analysis.history_report import render_history
from analysis.junit import render_junit
from analysis.outcomes import outcome_rows
from analysis.report import FORMATS, md_text, render, render_markdown, render_text
from analysis.results import Results
from analysis.verdict import counts_text
from coordinator.run import build_results
from coordinator.spec import parse_spec
from tests.support.runs import document
from workers.histogram import Histogram
from workers.load_worker import WorkerReport
from workers.recorder import Window

START = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
OK, FIVE_HUNDREDS, CONNECTS = 500, 10, 3


def _hist(n: int, value_ns: int) -> Histogram:
    return Histogram.from_values(np.full(n, value_ns, dtype=np.int64))


def run_with(labels: list[str], *, name: str = "shop", error_limit: str = "1%") -> Results:
    """Return a judged one-window run of the endpoints ``labels`` (each with a p95 objective):
    per endpoint 500 responses of 5 ms, ten 500s and three connection failures."""
    spec = parse_spec({
        "name": name, "target": "http://127.0.0.1:9", "load": {"rate": 100, "duration": "1s"},
        "endpoints": [{"path": f"/e{i}", "name": label} for i, label in enumerate(labels)],
        "objectives": [*({"metric": "latency-p95", "endpoint": label, "upperLimit": "100ms"}
                         for label in labels),
                       {"metric": "error-rate", "upperLimit": error_limit}]})
    latency = {}
    for label in labels:
        latency[(label, "status:200")] = _hist(OK, 5_000_000)
        latency[(label, "status:500")] = _hist(FIVE_HUNDREDS, 5_000_000)
        latency[(label, "connect")] = _hist(CONNECTS, 0)
    total = (OK + FIVE_HUNDREDS + CONNECTS) * len(labels)
    window = Window(index=0, start_s=0.0, latency=latency, service=latency,
                    lag=_hist(total, 10_000), scheduled=total, sent=total)
    report = WorkerReport(worker_index=0, host="h", pid=1, started_at=0.0, measured_s=1.0,
                          windows=(window,), warmup_requests=0, unsent=0, node_id="n")
    return build_results(spec, [report], started=START, ended=START)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _html_text(page: str) -> str:
    parser = _Text()
    parser.feed(page)
    parser.close()
    return "".join(parser.parts)


def _md_plain(markdown: str) -> str:
    """Return markdown with its backslash escapes undone (what GitHub shows)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def _readable(fmt_name: str, output: str) -> str:
    """Return the text a reader of ``output`` sees, per format."""
    if fmt_name == "markdown":
        return _md_plain(output)
    if fmt_name == "html":
        return _html_text(output)
    if fmt_name == "junit":
        suite = ET.fromstring(output.split("\n", 1)[1])
        return "\n".join([suite.get("name", ""), *(c.get("name", "") for c in suite.iter("testcase")),
                          suite.findtext("system-out") or ""])
    if fmt_name == "json":
        doc = json.loads(output)
        return "\n".join([doc["name"], *(o["endpoint"] or "" for o in doc["objectives"])])
    return output


PRINTABLE = st.text(st.characters(categories=["L", "M", "N", "P", "S"], include_characters=" "),
                    min_size=1, max_size=24).filter(lambda s: s.strip() and s != "*")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labels=st.lists(PRINTABLE, min_size=1, max_size=3, unique=True), name=PRINTABLE)
def test_every_format_renders_any_printable_label_as_written(labels: list[str], name: str) -> None:
    """Every report format renders a run whose endpoint names and experiment name are any
    printable text, and each name reads in the output as it was written."""
    results = run_with(labels, name=name)
    for fmt_name in FORMATS:
        seen = _readable(fmt_name, render(results, fmt_name))
        assert name.rstrip(" ") in seen, fmt_name
        for label in labels:
            assert label in seen, (fmt_name, label)


@pytest.mark.parametrize("label", [
    pytest.param("create-order", id="plain-word"),
    pytest.param("/items", id="closing-tag-lookalike"),
    pytest.param("[bold]x[/bold]", id="markup"),
    pytest.param(":thumbs_up: ok", id="emoji-code"),
    pytest.param("a|b *c* _d_ <e> `f` &amp;", id="markdown-specials"),
])
def test_text_and_markdown_show_the_objectives_endpoint_as_written(label: str) -> None:
    """A per-endpoint objective's row names its endpoint in brackets as written, in the text
    report and, once GitHub has removed the escapes, in markdown."""
    results = run_with([label])
    text = render_text(results)
    assert f"latency-p95 [{label}]" in text
    assert "👍" not in text
    markdown = render_markdown(results)
    assert f"| latency-p95 [{label}] |" in _md_plain(markdown)
    row = next(line for line in markdown.splitlines() if line.startswith("| latency-p95"))
    assert len(re.findall(r"(?<!\\)\|", row)) == 7  # six cells: a | in the label is escaped


def test_markdown_escape_leaves_plain_text_alone() -> None:
    """Ordinary text (paths, <=, percentages, on_fail) is not escaped; tags and emphasis are."""
    assert md_text("GET /hello is <= 1% at 5 ms, on_fail") == "GET /hello is <= 1% at 5 ms, on_fail"
    assert md_text("<b>x</b> *y* _z_") == r"\<b>x\</b> \*y\* \_z\_"
    assert md_text("line\nbreak") == "line break"


def test_outcomes_by_endpoint_count_what_was_recorded() -> None:
    """Each endpoint's row holds its 513 requests, 13 errors (ten 500s, three connects) and
    500 successes; the all-endpoints row sums both endpoints."""
    rows = {row.endpoint: row for row in outcome_rows(run_with(["/a", "/b"]))}
    assert list(rows) == ["/a", "/b", "all endpoints"]
    assert (rows["/a"].requests, rows["/a"].errors) == (513, 13)
    assert rows["/a"].error_outcomes == (("status:500", 10), ("connect", 3))
    assert rows["/a"].other_outcomes == (("status:200", 500),)
    assert rows["all endpoints"].error_outcomes == (("status:500", 20), ("connect", 6))
    assert rows["all endpoints"].requests == 1026


@pytest.mark.parametrize("fmt_name, expected", [
    pytest.param("text", "status:500 ×10, connect ×3", id="text"),
    pytest.param("markdown", "| /a | 513 | 13 | status:500 ×10, connect ×3 | status:200 ×500 |",
                 id="markdown"),
    pytest.param("html", "<td>status:500 ×10, connect ×3</td>", id="html"),
    pytest.param("junit", "/a: 513 requests, 13 errors (status:500 ×10, connect ×3), other "
                 "outcomes: status:200 ×500", id="junit"),
])
def test_every_format_has_the_outcomes_table(fmt_name: str, expected: str) -> None:
    """Text, markdown, HTML and JUnit show the outcomes of each endpoint with their counts (the
    JSON format is the results document, whose histograms carry the same counts)."""
    assert expected in render(run_with(["/a", "/b"]), fmt_name)


def test_error_objective_reason_names_the_top_causes() -> None:
    """An error-rate of 13/513 = 2.53 % over a 1 % limit fails, and its reason (and the run's)
    names the errors by outcome, most frequent first."""
    results = run_with(["/a"])
    error_rate = next(o for o in results.objectives if o.metric == "error-rate")
    assert error_rate.verdict == "FAIL"
    assert error_rate.value == pytest.approx(13 / 513)
    assert error_rate.reason.endswith("is not <= 1%; errors: status:500 ×10, connect ×3")
    assert results.reasons == [f"error-rate: {error_rate.reason}"]
    latency = next(o for o in results.objectives if o.metric == "latency-p95")
    assert "errors:" not in latency.reason


def test_counts_text_names_the_top_three_and_sums_the_rest() -> None:
    """Past three outcomes the rest is one sum with its number of kinds."""
    counts = [("status:500", 1200), ("connect", 400), ("timeout", 3), ("reset", 2), ("tls", 1)]
    assert counts_text(counts) == ("status:500 ×1,200, connect ×400, timeout ×3 and 3 more of "
                                   "2 other kinds")
    assert counts_text(counts[:1]) == "status:500 ×1,200"
    assert counts_text(counts, top=None).endswith("reset ×2, tls ×1")


def test_junit_replaces_characters_xml_cannot_hold() -> None:
    """A name with control characters still gives a JUnit file that parses."""
    results = run_with(["bell\x07 and \x1b[31m"], name="nightly\x00")
    suite = ET.fromstring(render_junit(results).split("\n", 1)[1])
    assert suite.get("name") == "slogate nightly\ufffd"
    assert "latency-p95 [bell\ufffd and \ufffd[31m]" in [c.get("name") for c in suite.iter("testcase")]


LONG = "a-very-long-endpoint-name-for-the-checkout-service-that-creates-orders-in-batches"


def test_unwrapped_text_keeps_every_sentence_on_one_line() -> None:
    """With no width (a pipe), the failing reason and the run's reasons each sit whole on one
    line, however long; with a terminal width, tables fit it."""
    results = run_with([LONG])
    text = render_text(results)
    for reason in results.reasons:
        assert f"  - {reason}" in text.splitlines()
    failing = next(o for o in results.objectives if o.verdict == "FAIL")
    assert any(failing.reason in line for line in text.splitlines())
    assert not any(line != line.rstrip(" ") for line in text.splitlines())
    narrow = render_text(results, width=100)
    assert max(len(line) for line in narrow.splitlines()) <= 100


def test_history_text_header_is_not_wrapped_when_piped() -> None:
    """The history headline (name, run count, archive path, first and last start times) is one
    line when there is no width, even past 120 columns."""
    runs = [(document(day=d, name=LONG), f"/archive/{LONG}/{d}/results.json") for d in range(3)]
    past = history_of(runs, name=LONG, policy=DriftPolicy(against=2))
    location = "/var/lib/ci/artifacts/slogate/archive/of/the/checkout/service"
    text = render_history(past, "text", location=location)
    headline = text.splitlines()[0]
    assert headline == (f"History of {LONG}: 3 runs in {location}, 2026-11-01 02:00:00 .. "
                        "2026-11-03 02:00:00 UTC")
    assert len(headline) > 120
    markdown = render_history(past, "markdown", location=location)
    assert _md_plain(markdown).splitlines()[0] == f"## slogate history: {LONG}"


def test_html_escapes_the_label_in_the_outcomes_and_footer() -> None:
    """The outcomes table and the footer carry document text escaped."""
    results = run_with(["<b>x</b>"]).model_copy(update={"slogate_version": "9.9",
                                                         "spec_file": "specs/<shop>.yaml"})
    page = render(results, "html")
    assert "<td>&lt;b&gt;x&lt;/b&gt;</td>" in page
    assert "slogate 9.9 · spec <code>specs/&lt;shop&gt;.yaml</code>" in page
    assert html.escape("<b>") in page and "<b>" not in page
