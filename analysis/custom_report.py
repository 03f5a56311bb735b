"""The custom metrics of a run in every report format: rows, a text table, markdown, JUnit's
system-out, and an HTML section with one small chart of each metric's series per version.

Rendered from ``results.customMetrics`` only (what the run read, never queried again). A custom
value is a point value from the metrics store: every format says it has no confidence interval.
"""

from __future__ import annotations

from rich.table import Table

from analysis.custom import NO_INTERVAL, format_custom
from analysis.report import md_table, titled_table
from analysis.results import CustomMetricResult, Results

HEADER = ("custom metric", "version", "value", "read", "query")
NOTE = f"Custom metrics: {NO_INTERVAL}; read over the measured phase (warm-up excluded)."


def _read(c: CustomMetricResult) -> str:
    how = "instant" if c.mode == "instant" else f"range, {c.reduce} of {len(c.points)} points"
    return f"{c.provider}, {how}" if c.provider else how


def _value(c: CustomMetricResult) -> str:
    if c.error:
        return "error"
    return format_custom(c.value, c.unit)


def custom_rows(results: Results) -> list[tuple[str, str, str, str, str]]:
    """Return one row per custom metric and version: name, version, value, how it was read,
    and the query as sent; an error or "no data" in the value column."""
    return [(c.name, c.version, _value(c), _read(c), c.query) for c in results.custom_metrics]


def custom_problems(results: Results) -> list[str]:
    """Return one line per reading without a value: its error, or why there is no data."""
    return [f"{c.name} ({c.version}): {c.error or c.note or 'no data'}"
            for c in results.custom_metrics if c.value is None]


def custom_table(results: Results) -> Table:
    """Return the text report's table of custom metrics."""
    table = titled_table("Custom metrics (point values, no confidence interval)")
    for column in HEADER:
        table.add_column(column, justify="right" if column == "value" else "left",
                         no_wrap=column != "query")
    for row in custom_rows(results):
        table.add_row(*row)
    return table


def custom_markdown(results: Results) -> list[str]:
    """Return the markdown section of custom metrics (empty when the run read none)."""
    if not results.custom_metrics:
        return []
    problems = [f"- {line}" for line in custom_problems(results)]
    return ["### Custom metrics", "", NOTE, "",
            *md_table(HEADER, "llrll", custom_rows(results)),
            *([""] + problems if problems else []), ""]


def custom_text(results: Results) -> str:
    """Return the custom metrics as plain lines (JUnit's system-out), or "" without any."""
    if not results.custom_metrics:
        return ""
    lines = [f"{name} [{version}]: {value} ({read}): {query}"
             for name, version, value, read, query in custom_rows(results)]
    return "\n\nCustom metrics (" + NO_INTERVAL + ")\n" + "\n".join(
        lines + custom_problems(results))


def custom_section(results: Results) -> str:
    """Return the HTML section: the table and one chart per metric (its series per version)."""
    from analysis.html import PALETTE, Chart, Line, _e, _Html, _table, render_svg

    if not results.custom_metrics:
        return ""
    table = _table(list(HEADER), custom_rows(results), align="llrll")
    figures = []
    for index, name in enumerate(dict.fromkeys(c.name for c in results.custom_metrics)):
        readings = [c for c in results.custom_metrics if c.name == name and c.points]
        if not readings:
            continue
        start = min(t for c in readings for t, _ in c.points)
        lines = tuple(Line(label=c.version, colour=PALETTE[i % len(PALETTE)], dots=True,
                           points=tuple((t - start, v) for t, v in c.points))
                      for i, c in enumerate(readings))
        unit = readings[0].unit
        chart = Chart(title=name, x_label="s into the measured phase",
                      y_label=f"{name} ({unit})" if unit else name, lines=lines,
                      x_from_zero=True)
        figures.append(f"<figure>{render_svg(chart, f'custom-{index}')}</figure>")
    charts = f'<div class="charts">{"".join(figures)}</div>' if figures else ""
    problems = "".join(f"<li>{_e(line)}</li>" for line in custom_problems(results))
    listed = f'<ul class="reasons">{problems}</ul>' if problems else ""
    return _Html(f"<h2>Custom metrics</h2><p class=note>{_e(NOTE)}</p>{table}{listed}{charts}")
