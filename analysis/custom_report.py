"""What every report shows of a run's custom metrics (pure data, no rendering library).

Rows for the tables (text, markdown, HTML), the lines of readings without a value, JUnit's
system-out text and the series of the HTML charts, all from ``results.customMetrics`` only (what
the run read, never queried again). A custom value is a point value from the metrics store:
every format says it has no confidence interval. The renderers (:mod:`analysis.report`,
:mod:`analysis.html`) import this module; it imports none of them.
"""

from __future__ import annotations

from analysis.custom import NO_INTERVAL, format_custom
from analysis.results import CustomMetricResult, Results

HEADER = ("custom metric", "version", "value", "read", "query")
ALIGN = "llrll"
TITLE = "Custom metrics (point values, no confidence interval)"
NOTE = f"Custom metrics: {NO_INTERVAL}; read over the measured phase (warm-up excluded)."
Curve = tuple[str, tuple[tuple[float, float | None], ...]]  # version, (s into the phase, value)


def _read(c: CustomMetricResult) -> str:
    how = "instant" if c.mode == "instant" else f"range, {c.reduce} of {len(c.points)} points"
    return f"{c.provider}, {how}" if c.provider else how


def _value(c: CustomMetricResult) -> str:
    return "error" if c.error else format_custom(c.value, c.unit)


def custom_rows(results: Results) -> list[tuple[str, str, str, str, str]]:
    """Return one row per custom metric and version: name, version, value, how it was read,
    and the query as sent; an error or "no data" in the value column."""
    return [(c.name, c.version, _value(c), _read(c), c.query) for c in results.custom_metrics]


def custom_problems(results: Results) -> list[str]:
    """Return one line per reading without a value: its error, or why there is no data."""
    return [f"{c.name} ({c.version}): {c.error or c.note or 'no data'}"
            for c in results.custom_metrics if c.value is None]


def custom_text(results: Results) -> str:
    """Return the custom metrics as plain lines (JUnit's system-out), or "" without any."""
    if not results.custom_metrics:
        return ""
    lines = [f"{name} [{version}]: {value} ({read}): {query}"
             for name, version, value, read, query in custom_rows(results)]
    return "\n\nCustom metrics (" + NO_INTERVAL + ")\n" + "\n".join(
        lines + custom_problems(results))


def custom_curves(results: Results) -> list[tuple[str, str, list[Curve]]]:
    """Return, per custom metric with points, (name, unit, [(version, points)]) with time in
    seconds from the metric's first point, for one chart per metric."""
    out = []
    for name in dict.fromkeys(c.name for c in results.custom_metrics):
        readings = [c for c in results.custom_metrics if c.name == name and c.points]
        if not readings:
            continue
        start = min(t for c in readings for t, _ in c.points)
        curves: list[Curve] = [(c.version, tuple((t - start, v) for t, v in c.points))
                               for c in readings]
        out.append((name, readings[0].unit, curves))
    return out
