"""The HTML report of a run: one self-contained file, rendered from its Results document only.

``render_html(results)`` returns a single HTML page: verdict and reasons, objectives, metrics,
corrected vs service latency, five kinds of chart and the run's configuration.

Invariants:
- nothing is fetched when the page is viewed: CSS is inline, charts are inline SVG drawn here,
  there is no script, and a Content-Security-Policy of ``default-src 'none'`` makes the browser
  refuse any request the page might still try;
- every piece of text from the document goes through :func:`html.escape` (see :class:`_Html`);
- latencies are milliseconds on every axis and in every table (histograms hold nanoseconds);
- the latency charts use the same requests as the latency metrics: those that got an HTTP
  response (``status:*`` outcomes), whatever the status;
- a chart is a list of :class:`Line` values on shared axes, so another dimension (a baseline and a
  candidate version) is more lines on the same chart, not another renderer.

Pure module: no I/O, no clock.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import numpy as np

from analysis.catalog import ALL_ENDPOINTS
from analysis.catalog import format_value as fmt
from analysis.custom_report import ALIGN as CUSTOM_ALIGN
from analysis.custom_report import HEADER as CUSTOM_HEADER
from analysis.custom_report import NOTE as CUSTOM_NOTE
from analysis.custom_report import custom_curves, custom_problems, custom_rows
from analysis.formatting import comparison_value_text, limits_text, objective_value_text
from analysis.metrics import responded as has_response
from analysis.outcomes import OUTCOME_COLUMNS, judge_of, outcome_cells, outcome_rows
from analysis.results import ObjectiveResult, Results, Series, WindowResult
from analysis.stages import stage_columns, stage_rows
from workers.histogram import Histogram

BLUE, ORANGE, GREEN, RED, PURPLE, GREY = (
    "#0969da", "#e16f24", "#1a7f37", "#cf222e", "#8250df", "#57606a")
VERDICT_COLOURS = {"PASS": GREEN, "FAIL": RED, "INCONCLUSIVE": "#b76e00", "INVALID": PURPLE}
PALETTE = (BLUE, ORANGE, GREEN, PURPLE, RED, GREY)  # lines of a chart, in order
WIDTH, HEIGHT = 720, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 18, 34, 46
_BINS_PER_DECADE = (10, 100)  # histogram bins per decade: at least, at most
_CDF_STEP_DECADES = 0.002  # CDF points closer than this on the log axis are thinned out


class _Html(str):
    """Text that is already HTML (built here from escaped parts); everything else is escaped."""


def _e(text: object) -> str:
    """Return text escaped for HTML content and attribute values, unless it is already _Html."""
    return text if isinstance(text, _Html) else html.escape(str(text), quote=True)


# ---------------------------------------------------------------------------------------------
# Chart values


@dataclass(frozen=True, slots=True, kw_only=True)
class Line:
    """One series on a chart: (x, y) points, y None for a gap; drawn as a polyline."""

    label: str
    points: tuple[tuple[float, float | None], ...]
    colour: str
    dashed: bool = False
    fill: bool = False  # shade the area under the line (histograms)
    dots: bool = False  # mark each point, with its value as a tooltip (time series)


@dataclass(frozen=True, slots=True, kw_only=True)
class Guide:
    """A horizontal reference line (a limit) at ``y``."""

    label: str
    y: float
    colour: str = RED


@dataclass(frozen=True, slots=True, kw_only=True)
class Chart:
    """What one SVG chart shows: lines on shared axes, optionally a log x axis."""

    title: str
    x_label: str
    y_label: str
    lines: tuple[Line, ...]
    log_x: bool = False
    x_from_zero: bool = False
    y_top: float | None = None  # a fixed top of the y axis (100 for a CDF in %)
    guides: tuple[Guide, ...] = field(default_factory=tuple)


# ---------------------------------------------------------------------------------------------
# Histograms to chart points


def merged(items: Iterable[Series], endpoint: str | None = None) -> Histogram:
    """Return the responded requests' histogram (``status:*`` outcomes) of one endpoint or all."""
    return Histogram.sum(Histogram.decode(s.hdr) for s in items
                         if has_response(s.outcome)
                         and (endpoint is None or s.endpoint == endpoint))


def cdf_points(hist: Histogram) -> tuple[tuple[float, float], ...]:
    """Return the CDF staircase, (latency ms, % of requests at or below), thinned on a log x.

    Each non-empty bucket rises from the share below it at its lowest value to the share up to
    it at its highest; between buckets the line stays flat. Thinning keeps the first and the
    last point of each cell of ``_CDF_STEP_DECADES`` on the log axis: flat stretches between
    cells stay flat and the line strays from the staircase by less than a cell.
    """
    low_ns, high_ns, counts = hist.nonzero()
    if not counts.size:
        return ()
    share = np.cumsum(counts) * 100.0 / counts.sum()
    x_ms = np.column_stack([low_ns, high_ns]).ravel().clip(min=1) / 1e6
    y = np.column_stack([np.append(0.0, share[:-1]), share]).ravel()
    cell = np.floor(np.log10(x_ms) / _CDF_STEP_DECADES)
    change = cell[1:] != cell[:-1]
    keep = np.append(True, change) | np.append(change, True)  # first and last of each cell
    return tuple(zip(x_ms[keep].tolist(), y[keep].tolist(), strict=True))


def _log_edges(hists: Sequence[Histogram]) -> np.ndarray:
    """Return shared log-spaced bin edges (ms) covering every histogram, ~60 bins in all."""
    lows = [low for h in hists if not h.is_empty and (low := h.min_ns) is not None]
    highs = [high for h in hists if not h.is_empty and (high := h.max_ns) is not None]
    lo, hi = math.log10(max(min(lows), 1) / 1e6), math.log10(max(max(highs), 1) / 1e6)
    per_decade = int(min(max(60 / max(hi - lo, 1e-9), _BINS_PER_DECADE[0]), _BINS_PER_DECADE[1]))
    first, last = math.floor(lo * per_decade), math.floor(hi * per_decade) + 1
    return 10.0 ** (np.arange(first, last + 1) / per_decade)


def histogram_points(hist: Histogram, edges: np.ndarray) -> tuple[tuple[float, float], ...]:
    """Return the staircase of % of requests per log bin (bins share ``edges``, in ms)."""
    low_ns, high_ns, counts = hist.nonzero()
    if not counts.size:
        return ()
    middle_ms = (low_ns + high_ns) / 2e6
    index = np.clip(np.searchsorted(edges, middle_ms, side="right") - 1, 0, len(edges) - 2)
    share = np.bincount(index, weights=counts, minlength=len(edges) - 1) * 100.0 / counts.sum()
    points: list[tuple[float, float]] = [(float(edges[0]), 0.0)]
    for i, value in enumerate(share.tolist()):
        points += [(float(edges[i]), value), (float(edges[i + 1]), value)]
    return (*points, (float(edges[-1]), 0.0))


# ---------------------------------------------------------------------------------------------
# Latency charts (each takes several named histograms: corrected/service today, versions later)


def cdf_chart(title: str, named: Sequence[tuple[str, Histogram]]) -> Chart:
    """Return a CDF chart with one line per named histogram, on a log latency axis."""
    lines = tuple(Line(label=label, points=cdf_points(h), colour=PALETTE[i % len(PALETTE)],
                       dashed=i % 2 == 1) for i, (label, h) in enumerate(named))
    return Chart(title=title, x_label="latency (ms, log scale)", y_label="% of requests ≤ x",
                 lines=lines, log_x=True, y_top=100.0)


def histogram_chart(title: str, named: Sequence[tuple[str, Histogram]]) -> Chart:
    """Return a latency histogram (% of requests per log bin), one outlined area per histogram."""
    present = [h for _, h in named if not h.is_empty]
    edges = _log_edges(present) if present else np.array([1.0, 10.0])
    lines = tuple(Line(label=label, points=histogram_points(h, edges),
                       colour=PALETTE[i % len(PALETTE)], fill=True)
                  for i, (label, h) in enumerate(named))
    return Chart(title=title, x_label="latency (ms, log scale)", y_label="% of requests per bin",
                 lines=lines, log_x=True)


# ---------------------------------------------------------------------------------------------
# Window charts


def window_s(results: Results) -> float:
    """Return the window length in seconds: the spec's, else the gap between window starts."""
    if results.saved.window_s is not None:
        return results.saved.window_s
    starts = [w.start_s for w in results.windows]
    gaps = [b - a for a, b in pairwise(starts) if b > a]
    return min(gaps) if gaps else 1.0


def _spans(results: Results) -> list[tuple[float, float]]:
    """Return (middle s, length s) of each window; the last one may be cut by the run's end."""
    length = window_s(results)
    spans = []
    for w in results.windows:
        end = w.start_s + length
        if results.duration_s > w.start_s:
            end = min(end, results.duration_s)
        spans.append(((w.start_s + end) / 2, end - w.start_s))
    return spans


def _pct_ms(hist: Histogram, q: float) -> float | None:
    value = hist.percentile_ns(q)
    return None if value is None else value / 1e6


def percentile_lines(windows: Sequence[WindowResult], mids: Sequence[float],
                     prefix: str = "") -> tuple[Line, ...]:
    """Return p50 and p99 per window (responded requests, corrected latency) as two lines."""
    hists = [merged(w.latency) for w in windows]
    return (
        Line(label=f"{prefix}p50", colour=BLUE, dots=True,
             points=tuple((t, _pct_ms(h, 50)) for t, h in zip(mids, hists, strict=True))),
        Line(label=f"{prefix}p99", colour=RED, dots=True,
             points=tuple((t, _pct_ms(h, 99)) for t, h in zip(mids, hists, strict=True))),
    )


def throughput_lines(results: Results, prefix: str = "") -> tuple[Line, ...]:
    """Return throughput (successful requests per second, as the metric counts them) and
    scheduled requests per second of each window; errors have a chart of their own."""
    judge = judge_of(results)
    done, due = [], []
    for w, (mid, length) in zip(results.windows, _spans(results), strict=True):
        per_s = 1.0 / length if length > 0 else 0.0
        done.append((mid, sum(s.count for s in w.latency if not judge.is_error(s.outcome))
                     * per_s))
        due.append((mid, w.scheduled * per_s))
    return (Line(label=f"{prefix}throughput", colour=BLUE, dots=True, points=tuple(done)),
            Line(label=f"{prefix}scheduled", colour=GREY, dashed=True, points=tuple(due)))


_ERROR_COLOURS = (RED, ORANGE, PURPLE, "#9a6700", GREY)  # one per error outcome shown


def error_lines(results: Results) -> tuple[Line, ...]:
    """Return errors per second of each window, one line per error outcome (the most frequent
    four, the rest as ``other errors``); one ``errors`` line of zeros when there were none."""
    judge = judge_of(results)
    per_window: list[dict[str, float]] = []
    totals: dict[str, int] = {}
    for w, (_, length) in zip(results.windows, _spans(results), strict=True):
        per_s = 1.0 / length if length > 0 else 0.0
        counts: dict[str, float] = {}
        for item in w.latency:
            if judge.is_error(item.outcome):
                counts[item.outcome] = counts.get(item.outcome, 0.0) + item.count * per_s
                totals[item.outcome] = totals.get(item.outcome, 0) + item.count
        per_window.append(counts)
    mids = [mid for mid, _ in _spans(results)]
    ranked = sorted(totals, key=lambda o: (-totals[o], o))
    shown = ranked if len(ranked) <= len(_ERROR_COLOURS) else ranked[:len(_ERROR_COLOURS) - 1]
    if not shown:
        return (Line(label="errors", colour=RED, dots=True,
                     points=tuple((t, 0.0) for t in mids)),)
    lines = [Line(label=outcome, colour=_ERROR_COLOURS[i], dots=True,
                  points=tuple((t, c.get(outcome, 0.0)) for t, c in zip(mids, per_window, strict=True)))
             for i, outcome in enumerate(shown)]
    if len(shown) < len(ranked):
        lines.append(Line(label="other errors", colour=_ERROR_COLOURS[-1], dots=True, points=tuple(
            (t, sum(v for o, v in c.items() if o not in shown))
            for t, c in zip(mids, per_window, strict=True))))
    return tuple(lines)


def window_charts(results: Results) -> list[Chart]:
    """Return the over-time charts: latency percentiles, throughput, errors (on their own axis,
    so a few errors are not a flat line under the throughput), schedule lag."""
    mids = [mid for mid, _ in _spans(results)]
    lag = Line(label="schedule lag p99", colour=PURPLE, dots=True, points=tuple(
        (t, _pct_ms(Histogram.decode(w.lag), 99)) for t, w in zip(mids, results.windows, strict=True)))
    max_lag = results.saved.max_schedule_lag_ms
    guides = (Guide(label=f"limit {max_lag:g} ms", y=max_lag),) if max_lag is not None else ()
    time_axis = f"time since start (s), windows of {window_s(results):g} s"
    return [
        Chart(title="Latency percentiles per window (corrected)", x_label=time_axis,
              y_label="latency (ms)", lines=percentile_lines(results.windows, mids),
              x_from_zero=True),
        Chart(title="Throughput per window", x_label=time_axis,
              y_label="requests per second", lines=throughput_lines(results), x_from_zero=True),
        Chart(title="Errors per window, by outcome", x_label=time_axis,
              y_label="errors per second", lines=error_lines(results), x_from_zero=True),
        Chart(title="Schedule lag p99 per window (send time − intended time)", x_label=time_axis,
              y_label="lag (ms)", lines=(lag,), x_from_zero=True, guides=guides),
    ]


def latency_charts(results: Results) -> list[Chart]:
    """Return a CDF per endpoint (all endpoints first when there are several), then a histogram."""
    latency, service = results.histograms.latency, results.histograms.service
    endpoints = sorted({s.endpoint for s in latency})
    scopes: list[tuple[str, str | None]] = [("all endpoints", None)] if len(endpoints) != 1 else []
    scopes += [(e, e) for e in endpoints]
    charts = [cdf_chart(f"Latency CDF — {label}", [("corrected", merged(latency, e)),
                                                   ("service", merged(service, e))])
              for label, e in scopes]
    charts.append(histogram_chart("Latency histogram — all endpoints",
                                  [("corrected", merged(latency)), ("service", merged(service))]))
    return charts


def charts(results: Results) -> list[Chart]:
    """Return every chart of the report, in page order."""
    return [*latency_charts(results), *window_charts(results)]


# ---------------------------------------------------------------------------------------------
# SVG


@dataclass(frozen=True, slots=True)
class _Axis:
    """Maps data values on [lo, hi] (linear or log) to pixels on [px0, px1]."""

    lo: float
    hi: float
    px0: float
    px1: float
    log: bool = False

    def __call__(self, value: float) -> float:
        if self.log:
            lo, hi, value = math.log10(self.lo), math.log10(self.hi), math.log10(max(value, 1e-12))
        else:
            lo, hi = self.lo, self.hi
        return self.px0 + (value - lo) / (hi - lo) * (self.px1 - self.px0)


def _clean(value: float) -> float:
    """Return value without float noise in its last digits (0.30000000000000004 -> 0.3)."""
    return float(f"{value:.12g}")


def nice_linear(lo: float, hi: float, target: int = 5) -> tuple[float, float, list[float]]:
    """Return (lo', hi', ticks): bounds widened to a 1-2-2.5-5 step that gives ~target ticks."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / target
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    ticks = [_clean(k * step) for k in range(first, last + 1)]
    if ticks[-1] < hi:  # cleaning rounded a bound inside the data
        ticks.append(_clean((last + 1) * step))
    if ticks[0] > lo:
        ticks.insert(0, _clean((first - 1) * step))
    return ticks[0], ticks[-1], ticks


def _log_grid(lo: float, hi: float, mantissas: Iterable[float]) -> list[float]:
    """Return every m * 10**k (m in mantissas) from a decade below lo to a decade above hi."""
    mantissas = list(mantissas)
    return [_clean(m * 10.0 ** k) for k in range(math.floor(math.log10(lo)) - 1,
                                                math.ceil(math.log10(hi)) + 2)
            for m in mantissas]


def nice_log(lo: float, hi: float) -> tuple[float, float, list[float], list[float]]:
    """Return (lo', hi', labelled ticks, minor ticks) of a log axis covering [lo, hi].

    The bounds snap outwards to 1..9 x 10**k; labels go on 1-2-5 values (and on a bound that is
    not crowded by one), or on every 1..9 value when that would give fewer than four labels.
    """
    lo = max(lo, 1e-9)
    hi = max(hi, lo)
    grid = _log_grid(lo, hi, range(1, 10))
    bottom = max(g for g in grid if g <= lo * (1 + 1e-9))
    top = min(g for g in grid if g >= hi * (1 - 1e-9) and g > bottom)
    minor = [g for g in grid if bottom <= g <= top]
    span = math.log10(top / bottom)
    labels = [g for g in _log_grid(lo, hi, (1, 2, 5)) if bottom <= g <= top]
    for bound in (bottom, top):
        if all(abs(math.log10(bound / g)) > 0.08 * span for g in labels):
            labels.append(bound)
    if len(labels) < 4:
        labels = minor
    return bottom, top, sorted(labels), minor


def _num(value: float) -> str:
    """Return a tick label: ``0.05``, ``2.5``, ``1,000``."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


@dataclass(frozen=True, slots=True)
class _Frame:
    """A chart's two axes and their ticks (minor x ticks: unlabelled grid lines of a log axis)."""

    x: _Axis
    y: _Axis
    x_ticks: list[float]
    y_ticks: list[float]
    x_minor: list[float]


def _frame(chart: Chart) -> _Frame | None:
    """Return the chart's axes and ticks, or None when the chart has no points."""
    xs = [x for line in chart.lines for x, y in line.points if y is not None]
    ys = [y for line in chart.lines for _, y in line.points if y is not None]
    if not xs:
        return None
    minor: list[float] = []
    if chart.log_x:
        x_lo, x_hi, x_ticks, minor = nice_log(min(xs), max(xs))
    else:
        x_lo, x_hi, x_ticks = nice_linear(0.0 if chart.x_from_zero else min(xs), max(xs))
    y_lo, y_hi, y_ticks = nice_linear(0.0, chart.y_top if chart.y_top is not None else max(ys))
    return _Frame(x=_Axis(x_lo, x_hi, _LEFT, WIDTH - _RIGHT, log=chart.log_x),
                  y=_Axis(y_lo, y_hi, HEIGHT - _BOTTOM, _TOP),
                  x_ticks=x_ticks, y_ticks=y_ticks, x_minor=minor)


def _svg_grid(frame: _Frame) -> list[str]:
    """Return grid lines, tick marks and tick labels of both axes."""
    top, bottom, left, right = _TOP, HEIGHT - _BOTTOM, _LEFT, WIDTH - _RIGHT
    out = [f'<line class="minor" x1="{frame.x(t):.1f}" y1="{top}" x2="{frame.x(t):.1f}" '
           f'y2="{bottom}"/>' for t in frame.x_minor if t not in frame.x_ticks]
    for tick in frame.x_ticks:
        x = frame.x(tick)
        out.append(f'<line class="grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom + 4}"/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + 17}" text-anchor="middle">{_num(tick)}</text>')
    for tick in frame.y_ticks:
        y = frame.y(tick)
        out.append(f'<line class="grid" x1="{left - 4}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}"/>')
        out.append(f'<text x="{left - 7}" y="{y + 4:.1f}" text-anchor="end">{_num(tick)}</text>')
    out.append(f'<rect class="frame" x="{left}" y="{top}" width="{right - left}" '
               f'height="{bottom - top}"/>')
    return out


def _svg_titles(chart: Chart) -> list[str]:
    """Return the axis titles: x centred below, y rotated at the left."""
    mid_x, mid_y = (_LEFT + WIDTH - _RIGHT) / 2, (_TOP + HEIGHT - _BOTTOM) / 2
    return [f'<text class="axis" x="{mid_x:.0f}" y="{HEIGHT - 8}" text-anchor="middle">'
            f'{_e(chart.x_label)}</text>',
            f'<text class="axis" transform="translate(16 {mid_y:.0f}) rotate(-90)" '
            f'text-anchor="middle">{_e(chart.y_label)}</text>']


def _segments(points: Sequence[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    """Return the runs of points between gaps (y None)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None:
            runs.append([])
        else:
            runs[-1].append((x, y))
    return [run for run in runs if run]


def _svg_line(line: Line, x_axis: _Axis, y_axis: _Axis) -> list[str]:
    """Return one line's polylines (and its shaded area, and hover dots when there are few)."""
    dash = ' stroke-dasharray="6 4"' if line.dashed else ""
    out = []
    for run in _segments(line.points):
        coords = " ".join(f"{x_axis(x):.1f},{y_axis(y):.1f}" for x, y in run)
        if line.fill:
            zero = y_axis(0)
            base = f"{x_axis(run[-1][0]):.1f},{zero:.1f} {x_axis(run[0][0]):.1f},{zero:.1f}"
            out.append(f'<polygon points="{coords} {base}" fill="{_e(line.colour)}" '
                       f'fill-opacity="0.12" stroke="none"/>')
        out.append(f'<polyline points="{coords}" fill="none" stroke="{_e(line.colour)}" '
                   f'stroke-width="2"{dash}/>')
        if line.dots and len(line.points) <= 120:
            out += [f'<circle cx="{x_axis(x):.1f}" cy="{y_axis(y):.1f}" r="2.5" '
                    f'fill="{_e(line.colour)}"><title>{_e(line.label)}: {_num(y)} at {_num(x)}'
                    f'</title></circle>' for x, y in run]
    return out


def _svg_guides(guides: Sequence[Guide], y_axis: _Axis) -> list[str]:
    """Return the reference lines that fall inside the y range."""
    return [f'<line x1="{_LEFT}" y1="{y_axis(g.y):.1f}" x2="{WIDTH - _RIGHT}" '
            f'y2="{y_axis(g.y):.1f}" stroke="{_e(g.colour)}" stroke-width="1.5" '
            f'stroke-dasharray="3 3"/>' for g in guides if y_axis.lo <= g.y <= y_axis.hi]


def _svg_legend(chart: Chart, y_top: float | None) -> list[str]:
    """Return the legend along the top: a swatch and a label per line and guide."""
    items = [(line.label, line.colour, line.dashed) for line in chart.lines]
    items += [(g.label + ("" if y_top is None or g.y <= y_top else " (above the chart)"),
               g.colour, True) for g in chart.guides]
    out, x = [], float(_LEFT)
    for label, colour, dashed in items:
        dash = ' stroke-dasharray="4 3"' if dashed else ""
        out.append(f'<line x1="{x:.0f}" y1="14" x2="{x + 20:.0f}" y2="14" stroke="{_e(colour)}" '
                   f'stroke-width="2.5"{dash}/>')
        out.append(f'<text x="{x + 26:.0f}" y="18">{_e(label)}</text>')
        x += 40 + 6.8 * len(label)
    return out


def _plot_rect(attrs: str, pad: int = 0) -> str:
    """Return a rect over the plot area, ``pad`` pixels larger on every side."""
    width, height = WIDTH - _LEFT - _RIGHT + 2 * pad, HEIGHT - _TOP - _BOTTOM + 2 * pad
    return f'<rect {attrs} x="{_LEFT - pad}" y="{_TOP - pad}" width="{width}" height="{height}"/>'


def render_svg(chart: Chart, ident: str) -> str:
    """Return the chart as an inline ``<svg>`` element; ``ident`` makes its clip path unique."""
    head = (f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
            f'role="img" aria-label="{_e(chart.title)}"><title>{_e(chart.title)}</title>')
    frame = _frame(chart)
    if frame is None:
        return (head + _plot_rect('class="frame"') + f'<text class="empty" x="{WIDTH / 2:.0f}" '
                f'y="{HEIGHT / 2:.0f}" text-anchor="middle">no data</text></svg>')
    clip = f'<clipPath id="{_e(ident)}">{_plot_rect("", pad=3)}</clipPath>'
    body = [line for item in chart.lines for line in _svg_line(item, frame.x, frame.y)]
    parts = [head, clip, *_svg_grid(frame), *_svg_titles(chart),
             *_svg_legend(chart, frame.y.hi), f'<g clip-path="url(#{_e(ident)})">',
             *_svg_guides(chart.guides, frame.y), *body, "</g></svg>"]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# HTML sections


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], align: str = "",
           row_classes: Sequence[str] = (), cls: str = "") -> str:
    """Return a table; ``align`` has one letter per column (l or r, default l); cells escaped."""
    def cell(i: int) -> str:
        return ' class="num"' if i < len(align) and align[i] == "r" else ""

    head = "".join(f"<th{cell(i)}>{_e(h)}</th>" for i, h in enumerate(headers))
    body = []
    for n, row in enumerate(rows):
        extra = f' class="{_e(row_classes[n])}"' if n < len(row_classes) and row_classes[n] else ""
        body.append(f"<tr{extra}>" + "".join(f"<td{cell(i)}>{_e(c)}</td>"
                                             for i, c in enumerate(row)) + "</tr>")
    table = f'<table class="{_e(cls)}">' if cls else "<table>"
    return _Html(f'<div class="scroll">{table}<thead><tr>{head}</tr></thead>'
                 f"<tbody>{''.join(body)}</tbody></table></div>")


def _chip(verdict: str, *, big: bool = False) -> _Html:
    colour = VERDICT_COLOURS.get(verdict, GREY)
    return _Html(f'<span class="{"badge" if big else "chip"}" style="background:{colour}">'
                 f'{_e(verdict)}</span>')


def _scope(endpoint: str | None) -> str:
    return "all endpoints" if endpoint in (None, ALL_ENDPOINTS) else endpoint


def _objective_row(o: ObjectiveResult, unit: str | None = None) -> list[object]:
    """Return one objectives-table row: name, value, interval, n, limit, verdict, reason
    (``unit``: a custom metric's)."""
    interval = "—" if o.low is None or o.high is None else \
        f"{objective_value_text(o, o.low)} .. {objective_value_text(o, o.high)}"
    n = f"{o.n:,}" + (f" (needs ≈ {o.needed_n:,})" if o.needed_n else "")
    verdict = _Html(_chip(o.verdict) + (' <span class="tag">dry run</span>' if o.dry_run else ""))
    vs = f" vs {o.vs}" if o.vs else ""
    return [f"{o.metric} [{_scope(o.endpoint)}]{vs}", objective_value_text(o, o.value, unit),
            interval, n, limits_text(o, unit=unit), verdict, o.reason]


def comparison_section(results: Results) -> str:
    """Return the candidate-vs-baseline table (the noise floor for an A/A run), or nothing."""
    if not results.comparison:
        return ""
    rel = comparison_value_text
    rows = [[c.metric, fmt(c.metric, c.baseline), fmt(c.metric, c.candidate),
             rel(c.kind, c.value),
             c.note or f"{rel(c.kind, c.low)} .. {rel(c.kind, c.high)}"]
            for c in results.comparison]
    title = ("A/A run: the noise floor (one version against itself)" if results.aa
             else "Candidate vs baseline (interleaved)")
    level = f"{results.comparison[0].confidence:.0%} interval"
    table = _table(["metric", "baseline", "candidate", "candidate vs baseline", level], rows,
                   align="lrrrl")
    return _Html(f"<h2>{_e(title)}</h2>{table}")


def objectives_section(results: Results) -> str:
    """Return the objectives table; dry-run objectives are marked and greyed."""
    if not results.objectives:
        return _Html("<h2>Objectives</h2><p>No objectives were set.</p>")
    levels = sorted({o.confidence for o in results.objectives})
    ci = f"{levels[0]:.0%} CI" if len(levels) == 1 else "CI"
    units = {c.name: c.unit for c in results.custom_metrics}
    table = _table(["objective", "value", ci, "n", "limit", "verdict", "reason"],
                   [_objective_row(o, units.get(o.metric)) for o in results.objectives],
                   align="lrrrlll",
                   row_classes=["dry" if o.dry_run else "" for o in results.objectives])
    return _Html(f"<h2>Objectives</h2>{table}")


_SHOWN = ("request-count", "error-count", "error-rate", "throughput", "latency-mean",
          "latency-stddev", "latency-min", "latency-p50", "latency-p75", "latency-p90",
          "latency-p95", "latency-p99", "latency-p99.9", "latency-max")


def _metric_names(rows: dict[str, dict[str, float | int | None]]) -> list[str]:
    """Return every metric name in the rows, the usual ones first in the usual order."""
    names: list[str] = []
    for row in rows.values():
        names.extend(n for n in row if n not in names)
    return [n for n in _SHOWN if n in names] + [n for n in names if n not in _SHOWN]


def stages_section(results: Results) -> str:
    """Return the stages table of a run with ``load.stages`` (each stage judged on its own),
    else nothing."""
    if not results.stages:
        return ""
    table = _table(stage_columns(results.stages), stage_rows(results.stages), align="lrrrrrll")
    return _Html(f"<h2>Stages</h2>{table}")


def metrics_section(results: Results) -> str:
    """Return the metrics table: one row per metric, one column per endpoint (all first)."""
    endpoints = list(results.metrics)
    rows = [[name, *(fmt(name, results.metrics[e].get(name)) for e in endpoints)]
            for name in _metric_names(results.metrics)]
    table = _table(["metric", *map(_scope, endpoints)], rows, align="l" + "r" * len(endpoints),
                   cls="narrow" if len(endpoints) <= 3 else "")
    return _Html("<h2>Metrics</h2><p class=note>Latency from the intended send time "
                 f"(coordinated-omission corrected).</p>{table}")


def custom_section(results: Results) -> str:
    """Return the custom metrics: their table, the readings without a value, and one chart of
    each metric's series per version (nothing when the run read none)."""
    if not results.custom_metrics:
        return ""
    table = _table(list(CUSTOM_HEADER), custom_rows(results), align=CUSTOM_ALIGN)
    figures = []
    for index, (name, unit, curves) in enumerate(custom_curves(results)):
        lines = tuple(Line(label=version, colour=PALETTE[i % len(PALETTE)], dots=True,
                           points=points) for i, (version, points) in enumerate(curves))
        chart = Chart(title=name, x_label="s into the measured phase",
                      y_label=f"{name} ({unit})" if unit else name, lines=lines,
                      x_from_zero=True)
        figures.append(f"<figure>{render_svg(chart, f'custom-{index}')}</figure>")
    charts = f'<div class="charts">{"".join(figures)}</div>' if figures else ""
    problems = "".join(f"<li>{_e(line)}</li>" for line in custom_problems(results))
    listed = f'<ul class="reasons">{problems}</ul>' if problems else ""
    return _Html(f"<h2>Custom metrics</h2><p class=note>{_e(CUSTOM_NOTE)}</p>{table}{listed}"
                 f"{charts}")


def service_section(results: Results) -> str:
    """Return corrected vs service latency: a pair of rows per endpoint (all first), one column
    per latency metric, so the table is as wide for ten endpoints as for one (it fits 1,280 px)."""
    if not results.service_metrics:
        return _Html("")
    endpoints = [e for e in results.metrics if e in results.service_metrics]
    if len(endpoints) == 2:  # one endpoint: its rows would repeat the all-endpoints ones
        endpoints = endpoints[:1]
    names = [n for n in _metric_names(results.metrics) if n.startswith("latency-")]
    rows, classes = [], []
    for endpoint in endpoints:
        for kind, table in (("corrected", results.metrics), ("service", results.service_metrics)):
            values = table.get(endpoint, {})
            rows.append([_scope(endpoint) if kind == "corrected" else "", kind,
                         *(fmt(name, values.get(name)) for name in names)])
            classes.append("first" if kind == "corrected" else "")
    headers = ["endpoint", "latency from", *(n.removeprefix("latency-") for n in names)]
    return _Html("<h2>Corrected vs service latency</h2><p class=note>Corrected: from when each "
                 "request should have been sent. Service: from when it was sent. A gap between "
                 "them is time spent waiting behind the load generator.</p>"
                 + _table(headers, rows, align="ll" + "r" * len(names), row_classes=classes,
                          cls="co"))


def outcomes_section(results: Results) -> str:
    """Return how each endpoint's requests ended: counts per outcome, errors first."""
    rows = [outcome_cells(row) for row in outcome_rows(results)]
    if not rows:
        return _Html("<h2>Outcomes by endpoint</h2><p>No requests were measured.</p>")
    return _Html("<h2>Outcomes by endpoint</h2>"
                 + _table(OUTCOME_COLUMNS, rows, align="lrrll", cls="narrow"))


def charts_section(results: Results) -> str:
    """Return every chart as a figure with a heading."""
    figures = [f'<figure><figcaption>{_e(chart.title)}</figcaption>'
               f'{render_svg(chart, f"clip{i}")}</figure>'
               for i, chart in enumerate(charts(results))]
    return _Html('<h2>Charts</h2><div class="charts">' + "".join(figures) + "</div>")


_LOAD_UNITS = {"rate": "req/s", "duration": "s", "warmup": "s", "timeout": "s", "window": "s",
               "maxDuration": "s", "cpusPerWorker": "CPU"}


def _plain(value: Any, unit: str = "") -> str:
    """Return a spec value as short text: numbers with ``g``, nested values as compact JSON."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return f"{value:g} {unit}".strip()
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(", ", ": "), ensure_ascii=False)
    return str(value)


def _load_list(load: Mapping[str, Any]) -> str:
    items = "".join(f"<dt>{_e(key)}</dt><dd>{_e(_plain(value, _LOAD_UNITS.get(key, '')))}</dd>"
                    for key, value in load.items() if value is not None)
    return f'<dl class="load">{items}</dl>'


def _endpoint_table(endpoints: tuple[Mapping[str, Any], ...]) -> str:
    rows = [[e.get("method", ""), e.get("path", ""), e.get("name") or "", _plain(e.get("weight"))]
            for e in endpoints]
    return _table(["method", "path", "name", "weight"], rows, align="lllr",
                  cls="narrow") if rows else ""


def _short(node: str | None) -> _Html:
    """Return a node id cut to 12 characters, the whole id in its tooltip."""
    if not node:
        return _Html("—")
    return _Html(f'<span title="{_e(node)}">{_e(node[:12])}</span>')


def _workers_table(results: Results) -> str:
    rows = [[w.index, w.host or "—", w.pid or "—", _short(w.node), w.status,
             f"{w.requests:,}", f"{w.errors:,}", f"{w.warmup_requests:,}", f"{w.unsent:,}",
             w.reason or ""] for w in results.workers]
    return _table(["#", "host", "pid", "node", "status", "requests", "errors", "warm-up",
                   "unsent", "reason"], rows, align="rllllrrrrl",
                  row_classes=["lost" if w.status != "ok" else "" for w in results.workers])


def _gaps_table(results: Results) -> str:
    if not results.gaps:
        return ""
    rows = [[f"#{g.worker}", f"{g.lost_at_s:.1f} s",
             "never" if g.resumed_at_s is None else f"{g.resumed_at_s:.1f} s"]
            for g in results.gaps]
    return "<h3>Gaps (load nobody sent)</h3>" + _table(["worker", "lost at", "resumed at"], rows,
                                                       align="lrr", cls="narrow")


def run_section(results: Results) -> str:
    """Return the run's configuration: target, load, endpoints, workers and gaps."""
    saved = results.saved
    return _Html(
        "<h2>Run</h2>"
        f'<p>target <code>{_e(results.target_url or "—")}</code>'
        f'{"; dark launch: " + _e(results.dark_launch) if results.dark_launch else ""}; '
        f'{_e(when_text(results.start_time, results.end_time))}, '
        f"measured {results.duration_s:.3g} s (warm-up excluded)"
        f"{'; <strong>aborted</strong>' if results.aborted else ''}</p>"
        f"<h3>Load</h3>{_load_list(saved.load)}"
        f"<h3>Endpoints</h3>{_endpoint_table(saved.endpoints)}"
        f"<h3>Workers</h3>{_workers_table(results)}{_gaps_table(results)}")


def _moment(iso: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment


def when_text(start: str, end: str) -> str:
    """Return a run's start and end for people: ``2 Jan 2026, 03:04:05 – 03:04:17 UTC`` (the
    end's date too when it differs); the text as saved when it is not ISO 8601."""
    first, last = _moment(start), _moment(end)
    if first is None or last is None:
        return f"{start} .. {end}"
    day = f"{first.day} {first:%b %Y}"
    if first.date() == last.date():
        return f"{day}, {first:%H:%M:%S} – {last:%H:%M:%S} UTC"
    return f"{day}, {first:%H:%M:%S} – {last.day} {last:%b %Y}, {last:%H:%M:%S} UTC"


def footer_section(results: Results) -> str:
    """Return the footer: the slogate that ran the run, the spec file, the document schema."""
    version = (f"slogate {results.slogate_version}" if results.slogate_version
               else "slogate (version not recorded)")
    spec = (_Html(f"spec <code>{_e(results.spec_file)}</code>") if results.spec_file
            else "spec file not recorded")
    return _Html(f"<footer>{_e(version)} · {_e(spec)} · {_e(results.schema_)}</footer>")


def header_section(results: Results) -> str:
    """Return the title, the verdict badge, its reasons and the aborted/gaps warnings."""
    reasons = "".join(f"<li>{_e(r)}</li>" for r in results.reasons)
    flags = []
    if results.aborted:
        flags.append("aborted before it finished: the data is partial")
    lost = sum(w.status != "ok" for w in results.workers)
    if lost:
        flags.append(f"{lost} worker(s) lost")
    if results.gaps:
        flags.append(f"{len(results.gaps)} gap(s) in the load: a lost worker's share not sent "
                     "for a while")
    notes = (f'<p class="warn"><strong>Flags:</strong> {_e(" · ".join(flags))} (see Run)</p>'
             if flags else "")
    return _Html(
        f"<header><h1>{_e(results.name)} {_chip(results.verdict, big=True)}</h1>"
        f'<p class="sub">{_e(when_text(results.start_time, results.end_time))} · measured '
        f"{results.duration_s:.3g} s · {len(results.workers)} worker(s)</p>"
        f'<ul class="reasons">{reasons}</ul>{notes}</header>')


_CSS = """
:root { color-scheme: light; }
body { margin: 0; background: #f6f8fa; color: #1f2328;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
main { max-width: 1480px; margin: 0 auto; padding: 24px 28px 48px; background: #fff;
  min-height: 100vh; box-shadow: 0 0 0 1px #d0d7de; }
h1 { font-size: 26px; margin: 0 0 4px; display: flex; align-items: center; gap: 14px;
  flex-wrap: wrap; word-break: break-word; }
h2 { font-size: 19px; margin: 30px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.sub, .note { color: #59636e; margin: 4px 0 8px; }
.badge, .chip { color: #fff; border-radius: 999px; font-weight: 600; white-space: nowrap; }
.badge { font-size: 15px; padding: 3px 14px; letter-spacing: .04em; }
.chip { font-size: 12px; padding: 1px 9px; }
.tag { font-size: 11px; padding: 0 6px; border: 1px dashed #59636e; border-radius: 4px;
  color: #59636e; white-space: nowrap; }
.reasons { margin: 8px 0; padding-left: 20px; }
.warn { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 6px 10px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; font-size: 13px; }
th:first-child, td:first-child { white-space: nowrap; }
th, td { padding: 5px 8px; border-bottom: 1px solid #e4e8ec; text-align: left;
  vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fbfcfd; }
tr.dry td { color: #59636e; font-style: italic; }
tr.lost td { background: #ffebe9; }
code { background: #f0f2f4; padding: 1px 5px; border-radius: 4px; word-break: break-all; }
figure { margin: 14px 0 22px; }
figcaption { font-weight: 600; margin-bottom: 4px; }
svg.chart { display: block; max-width: 100%; height: auto; background: #fff;
  font-size: 13px; fill: #1f2328; }
svg .grid { stroke: #dfe3e8; stroke-width: 1; }
svg .minor { stroke: #f0f2f4; stroke-width: 1; }
svg .frame { fill: none; stroke: #8c959f; stroke-width: 1; }
svg .axis { fill: #59636e; }
svg .empty { fill: #8c959f; font-size: 16px; }
svg text { stroke: none; }
dl.load { display: grid; grid-template-columns: repeat(4, max-content minmax(90px, 1fr));
  gap: 2px 14px; margin: 4px 0; }
table.co td:first-child { white-space: normal; overflow-wrap: anywhere; max-width: 280px; }
table.co tr.first td { border-top: 1px solid #c8d0d8; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr));
  gap: 0 32px; }
.scroll { overflow-x: auto; }
table.narrow { width: auto; min-width: 50%; }
dl.load dt { color: #59636e; } dl.load dd { margin: 0; font-variant-numeric: tabular-nums; }
footer { margin-top: 32px; color: #59636e; font-size: 12px; }
"""

# No script, and nothing fetched: the browser enforces it.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def render_html(results: Results) -> str:
    """Return the run's report as one self-contained HTML page (no network at view time)."""
    title = f"slogate: {results.name} — {results.verdict}"
    tables = _Html(f"{metrics_section(results)}{custom_section(results)}"
                   f"{service_section(results)}")
    sections = [header_section(results), objectives_section(results),
                comparison_section(results), outcomes_section(results), tables,
                charts_section(results), run_section(results), footer_section(results)]
    if results.stages:
        sections.insert(2, stages_section(results))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body><main>\n"
        + "\n".join(sections) + "\n</main></body></html>\n")
