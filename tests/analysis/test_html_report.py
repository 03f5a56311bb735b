"""The self-contained HTML report: well-formed, offline, escaped, with charts of the run's values.

The Results documents are built by the real ``build_results`` from synthetic worker reports whose
histograms hold known values (a fixed latency per window and endpoint, known error counts), so the
chart data can be checked against numbers chosen here rather than numbers the report computed.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analysis.html import (
    cdf_points,
    charts,
    error_lines,
    histogram_points,
    merged,
    nice_linear,
    nice_log,
    render_html,
    service_section,
    throughput_lines,
    when_text,
    window_charts,
)
from analysis.results import Results
from coordinator.run import build_results
from coordinator.spec import parse_spec
from tests.support.helpers import present
from workers.histogram import Histogram
from workers.load_worker import WorkerReport
from workers.recorder import Key, Window

TARGET = "http://127.0.0.1:9/app"
NASTY = '<script>alert("x&y")</script> \'quoted\''
WINDOWS = 4
PER_WINDOW = 100  # requests per endpoint per worker per window
START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass(frozen=True)
class _Lost:
    """A lost worker as the pool reports it (the WorkerLostLike protocol)."""

    worker_index: int
    reason: str
    windows: tuple[Window, ...]
    host: str | None = "node-b"


@dataclass(frozen=True)
class _Gap:
    worker_index: int
    lost_at_s: float
    resumed_at_s: float | None


def _fixed(value_ms: float, n: int) -> Histogram:
    return Histogram.from_values(np.full(n, int(value_ms * 1e6)))


def _window(index: int, labels: list[str]) -> Window:
    """Return one worker's window: per endpoint 100 responses at (10 + 10 * index) ms of which
    5 are 500s, 2 timeouts; service time 1 ms less; lag 0.2 ms."""
    latency: dict[Key, Histogram] = {}
    service: dict[Key, Histogram] = {}
    ms = 10.0 + 10.0 * index
    for label in labels:
        for outcome, n in (("status:200", PER_WINDOW - 7), ("status:500", 5), ("timeout", 2)):
            latency[(label, outcome)] = _fixed(ms, n)
            service[(label, outcome)] = _fixed(ms - 1.0, n)
    return Window(index=index, start_s=float(index), latency=latency, service=service,
                  lag=_fixed(0.2, PER_WINDOW * len(labels)), scheduled=PER_WINDOW * len(labels),
                  sent=PER_WINDOW * len(labels), cpu_s=0.1, in_flight_max=3)


def _spec(name: str, endpoints: list[dict[str, str]]) -> object:
    return parse_spec({
        "name": name, "target": TARGET,
        "load": {"rate": 100 * len(endpoints), "duration": f"{WINDOWS}s", "workers": 2,
                 "window": "1s"},
        "endpoints": endpoints,
        "objectives": [{"metric": "error-rate", "upperLimit": "10%"},
                       {"metric": "latency-p99", "upperLimit": "100ms"},
                       {"metric": "latency-mean", "upperLimit": "1ms", "dryRun": True},
                       {"metric": "throughput", "lowerLimit": "50/s"}],
    })


def _results(*, name: str = "demo", endpoints: list[dict[str, str]] | None = None,
             lose_worker: bool = False, aborted: bool = False, no_data: bool = False) -> Results:
    """Return the real build_results document of two synthetic workers (one maybe lost)."""
    endpoints = endpoints or [{"path": "/a"}]
    spec = _spec(name, endpoints)
    labels = [e.get("name") or f"{e.get('method', 'GET')} {e['path']}" for e in endpoints]
    windows = () if no_data else tuple(_window(i, labels) for i in range(WINDOWS))
    outcomes: list[object] = [
        WorkerReport(worker_index=i, host="node-a", pid=100 + i, started_at=0.0,
                     measured_s=float(WINDOWS), windows=windows, warmup_requests=0, unsent=0,
                     node_id="f" * 56) for i in range(2)]
    gaps: list[_Gap] = []
    if lose_worker or no_data:
        outcomes[1] = _Lost(worker_index=1, reason="actor died: <OOM & co>", windows=windows[:2])
        gaps.append(_Gap(worker_index=1, lost_at_s=2.0, resumed_at_s=None))
    return build_results(spec, outcomes, started=START, ended=START, aborted=aborted, gaps=gaps)


class _Balance(HTMLParser):
    """Records tags that close without being open, or stay open, ignoring HTML's void elements."""

    VOID = frozenset({"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "source", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.attrs: list[tuple[str, str]] = []
        self.text: list[str] = []
        self.count: dict[str, int] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.count[tag] = self.count.get(tag, 0) + 1
        self.attrs += [(k, v or "") for k, v in attrs]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.count[tag] = self.count.get(tag, 0) + 1
        self.attrs += [(k, v or "") for k, v in attrs]

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else ''}>")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> _Balance:
    parser = _Balance()
    parser.feed(page)
    parser.close()
    return parser


CASES = [
    pytest.param({}, 6, id="one-endpoint"),
    pytest.param({"endpoints": [{"path": "/a"}, {"path": "/b", "method": "POST"}]}, 8,
                 id="two-endpoints"),
    pytest.param({"lose_worker": True, "aborted": True}, 6, id="lost-worker-aborted"),
    pytest.param({"no_data": True}, 6, id="no-data"),
]


@pytest.mark.parametrize(("kwargs", "n_charts"), CASES)
def test_page_is_well_formed_with_one_svg_per_chart(kwargs: dict, n_charts: int) -> None:
    """Every element that opens closes in order, and there is one <svg> per chart."""
    results = _results(**kwargs)
    page = render_html(results)
    parsed = _parse(page)
    assert parsed.problems == []
    assert parsed.stack == []
    for tag in ("html", "head", "body", "main", "header", "table", "figure"):
        assert parsed.count.get(tag, 0) >= 1, tag
    assert parsed.count["svg"] == page.count("<svg") == len(charts(results)) == n_charts


@pytest.mark.parametrize(("kwargs", "n_charts"), CASES)
def test_page_needs_no_network(kwargs: dict, n_charts: int) -> None:
    """No script, stylesheet link, image or URL attribute; the only URL is the target, as text."""
    page = render_html(_results(**kwargs))
    parsed = _parse(page)
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(parsed.count)
    assert [(k, v) for k, v in parsed.attrs if k in ("src", "href", "xlink:href", "action")] == []
    assert all(ref.startswith("#") for ref in re.findall(r"url\(([^)]*)\)", page))
    assert "@import" not in page
    assert "default-src 'none'" in page  # the browser refuses anything the page might still fetch
    remaining = page.replace(html.escape(TARGET), "")
    assert "http://" not in remaining and "https://" not in remaining
    assert TARGET in "".join(parsed.text)


@pytest.mark.parametrize(("kwargs", "n_charts"), CASES)
def test_page_shows_verdict_objectives_and_flags(kwargs: dict, n_charts: int) -> None:
    """The verdict badge, every objective's metric, the dry-run mark and the run's flags show."""
    results = _results(**kwargs)
    page = render_html(results)
    text = " ".join(_parse(page).text)
    assert 'class="badge" style="background:' in page
    assert results.verdict in text
    for reason in results.reasons:
        assert reason in text
    for objective in results.objectives:
        assert objective.metric in text
    assert "dry run" in text
    assert ("aborted before it finished" in text) == results.aborted
    assert ("1 worker(s) lost" in text) == any(w.status == "lost" for w in results.workers)
    assert ("1 gap(s) in the load" in text) == bool(results.gaps)
    assert ("Gaps (load nobody sent)" in text) == bool(results.gaps)


def test_verdict_badge_colour_follows_verdict() -> None:
    """A PASS run's badge is green and an INVALID (lost worker) run's is purple."""
    passing, invalid = _results(), _results(lose_worker=True)
    assert (passing.verdict, invalid.verdict) == ("PASS", "INVALID")
    assert 'class="badge" style="background:#1a7f37">PASS' in render_html(passing)
    assert 'class="badge" style="background:#8250df">INVALID' in render_html(invalid)


def test_text_from_the_document_is_escaped() -> None:
    """Markup in the experiment name, an endpoint name and a loss reason arrives as text."""
    page = render_html(_results(name=NASTY, endpoints=[{"path": "/a", "name": "<b>a&b</b>"}],
                                lose_worker=True))
    assert "<script>" not in page and "<b>" not in page
    assert html.escape(NASTY, quote=True) in page
    assert "&lt;b&gt;a&amp;b&lt;/b&gt;" in page
    assert "actor died: &lt;OOM &amp; co&gt;" in page
    text = "".join(_parse(page).text)
    assert NASTY in text and "<b>a&b</b>" in text


def test_cdf_reaches_100_percent_and_crosses_half_at_the_median() -> None:
    """Uniform 10..20 ms: the CDF ends at 100 % and first reaches 50 % within 0.6 % of 15 ms.

    The bucket top overestimates by < 0.1 % and thinning keeps the last point of each
    0.002-decade cell (10**0.002 - 1 = 0.46 %), so 0.6 % bounds both.
    """
    hist = Histogram.from_values(np.linspace(10e6, 20e6, 10_001).astype(np.int64))
    points = cdf_points(hist)
    assert points[-1][1] == pytest.approx(100.0)
    assert [y for _, y in points] == sorted(y for _, y in points)
    x50 = next(x for x, y in points if y >= 50.0)
    assert x50 == pytest.approx(15.0, rel=0.006)
    assert points[0][0] == pytest.approx(10.0, rel=0.001) and points[-1][0] <= 20.02


def test_histogram_shares_sum_to_100_and_stay_in_the_data_range() -> None:
    """Per-bin shares add up to 100 % and every non-empty bin overlaps the recorded 10..20 ms.

    A bucket is binned by its middle, which is within half a bucket (< 0.05 %) of any value in
    it, so a bin may start up to 0.1 % beyond the data's ends, never more.
    """
    hist = Histogram.from_values(np.linspace(10e6, 20e6, 10_001).astype(np.int64))
    edges = np.array([10.0 ** (k / 20) for k in range(0, 41)])  # 1 ms .. 100 ms, 20 per decade
    points = histogram_points(hist, edges)
    bins = [(points[i][0], points[i + 1][0], points[i][1]) for i in range(1, len(points) - 1, 2)]
    assert len(bins) == len(edges) - 1
    assert sum(share for _, _, share in bins) == pytest.approx(100.0)
    assert all(right >= 10.0 * 0.999 and left <= 20.0 * 1.001
               for left, right, share in bins if share > 0)


def test_window_charts_draw_the_known_values() -> None:
    """Per window: p50 is the window's fixed latency, 200 req/s due of which 186 succeeded
    (throughput counts successful requests), and on the errors' own chart 10 status:500/s and
    4 timeouts/s (two workers, 5 and 2 each)."""
    results = _results()
    percentiles, throughput, errors, lag = window_charts(results)
    p50 = [y for _, y in percentiles.lines[0].points]
    assert p50 == pytest.approx([10.0 + 10.0 * i for i in range(WINDOWS)], rel=0.001)
    done, due = throughput_lines(results)
    assert throughput.lines == (done, due)
    assert [x for x, _ in done.points] == [0.5, 1.5, 2.5, 3.5]
    assert [y for _, y in done.points] == [2 * PER_WINDOW - 14] * WINDOWS
    assert [y for _, y in due.points] == [2 * PER_WINDOW] * WINDOWS
    assert [(line.label, [y for _, y in line.points]) for line in errors.lines] == [
        ("status:500", [10.0] * WINDOWS), ("timeout", [4.0] * WINDOWS)]
    assert errors.y_label == "errors per second"
    assert [y for _, y in lag.lines[0].points] == pytest.approx([0.2] * WINDOWS, rel=0.001)
    assert lag.guides[0].y == 10.0  # the spec's default maxScheduleLag, in ms


def test_error_chart_of_a_run_without_errors_is_a_zero_line() -> None:
    """No error outcome: one ``errors`` line at 0 per window, not an empty chart."""
    results = _results()
    clean = results.model_copy(update={"windows": [
        w.model_copy(update={"latency": [s for s in w.latency if s.outcome == "status:200"]})
        for w in results.windows]})
    assert [(line.label, [y for _, y in line.points]) for line in error_lines(clean)] == [
        ("errors", [0.0] * WINDOWS)]


def test_error_chart_shows_four_outcomes_and_sums_the_rest() -> None:
    """Six error outcomes: the four most frequent get a line each, the other two one line."""
    results = _results()
    kinds = ["status:500", "status:502", "status:503", "connect", "reset", "tls"]
    template = results.windows[0].latency[0]
    windows = [w.model_copy(update={"latency": [
        template.model_copy(update={"outcome": kind, "count": 60 - 10 * i})
        for i, kind in enumerate(kinds)]}) for w in results.windows]
    lines = error_lines(results.model_copy(update={"windows": windows}))
    assert [line.label for line in lines] == [*kinds[:4], "other errors"]
    assert [y for _, y in lines[-1].points] == [20.0 + 10.0] * WINDOWS


@pytest.mark.parametrize("n_endpoints", [1, 2, 5, 10])
def test_corrected_vs_service_table_width_does_not_grow_with_endpoints(n_endpoints: int) -> None:
    """The table has one column per latency metric (12 in all, ~900 px at 13 px), whatever the
    number of endpoints; endpoints add rows, two each, so it fits a 1,280 px window."""
    endpoints = [{"path": f"/e{i}"} for i in range(n_endpoints)]
    section = service_section(_results(endpoints=endpoints))
    head = section[section.index("<thead>"):section.index("</thead>")]
    assert head.count("</th>") == 12
    rows = section.count("<tr") - 1
    assert rows == 2 * (n_endpoints + (1 if n_endpoints > 1 else 0))


@pytest.mark.parametrize("start, end, expected", [
    pytest.param("2026-01-02T03:04:05.000Z", "2026-01-02T03:04:17.500Z",
                 "2 Jan 2026, 03:04:05 – 03:04:17 UTC", id="same-day"),
    pytest.param("2026-12-31T23:59:50.000Z", "2027-01-01T00:00:10.000Z",
                 "31 Dec 2026, 23:59:50 – 1 Jan 2027, 00:00:10 UTC", id="over-midnight"),
    pytest.param("yesterday", "today", "yesterday .. today", id="not-iso"),
])
def test_times_read_as_dates_and_clock_times(start: str, end: str, expected: str) -> None:
    """The header and Run section show the run's start and end for people, not as ISO 8601."""
    assert when_text(start, end) == expected


def test_footer_names_the_slogate_version_and_spec_file() -> None:
    """The footer names the slogate that ran the run and the spec file, or says they were not
    recorded (a document from before they were)."""
    results = _results()
    assert "<footer>slogate (version not recorded) · spec file not recorded · slogate/results/v1" \
        in render_html(results)
    known = results.model_copy(update={"slogate_version": "0.1.0", "spec_file": "slo/shop.yaml"})
    assert "<footer>slogate 0.1.0 · spec <code>slo/shop.yaml</code> · slogate/results/v1" \
        "</footer>" in render_html(known)


def test_latency_charts_leave_out_transport_failures() -> None:
    """The latency histograms hold responses only (status:*), as the latency metrics do."""
    results = _results()
    responded = merged(results.histograms.latency)
    assert responded.total == 2 * WINDOWS * (PER_WINDOW - 2)
    assert present(responded.mean_ns) / 1e6 == pytest.approx(present(results.metrics["*"]["latency-mean"]))


@given(lo=st.floats(1e-6, 1e5), ratio=st.floats(1.0, 1e5))
def test_log_axis_covers_the_data_with_ordered_labels(lo: float, ratio: float) -> None:
    """A log axis's bounds contain the data; labels and minor ticks are ascending and inside."""
    hi = lo * ratio
    bottom, top, labels, minor = nice_log(lo, hi)
    assert bottom <= lo * (1 + 1e-9) and top >= hi * (1 - 1e-9) and top > bottom
    assert labels == sorted(set(labels)) and len(labels) >= 2
    assert minor == sorted(minor) and all(bottom <= t <= top for t in labels + minor)


@given(hi=st.one_of(st.just(0.0), st.floats(1e-6, 1e9)))
def test_linear_axis_from_zero_covers_the_data(hi: float) -> None:
    """A linear axis from 0 reaches past the largest value in 3 to 11 evenly spaced ticks.

    Values are ms (1 ns = 1e-6 ms at the finest), % or requests per second.
    """
    bottom, top, ticks = nice_linear(0.0, hi)
    assert bottom == 0.0 and top >= hi and 3 <= len(ticks) <= 11
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0])
