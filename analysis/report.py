"""Reports of a run, rendered from its :class:`~analysis.results.Results` document only.

The same document drives every format, so ``slogate report results.json`` re-renders exactly what
``slogate run`` printed. Formats: ``text`` (rich tables, verdict colours), ``markdown`` (for pull
request bodies) and ``json`` (the document itself).
"""

from __future__ import annotations

import io
from collections.abc import Iterable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from analysis.catalog import ALL_ENDPOINTS, format_value as fmt
from analysis.results import ObjectiveResult, Results
from analysis.verdict import Objective, format_objective_value

FORMATS = ("text", "markdown", "json", "junit", "html")
_COLOURS = {"PASS": "bold green", "FAIL": "bold red", "INCONCLUSIVE": "bold yellow",
            "INVALID": "bold magenta"}
_SHOWN = ("request-count", "error-count", "error-rate", "throughput", "latency-mean",
          "latency-stddev", "latency-min", "latency-p50", "latency-p75", "latency-p90",
          "latency-p95", "latency-p99", "latency-p99.9", "latency-max")


def limit_text(o: ObjectiveResult) -> str:
    """Return an objective's limits in its terms: ``≤ 200 ms``, ``≥ 900.0 req/s, ≤ x1.1``."""
    parts = []
    if o.lower_limit is not None:
        parts.append(f"≥ {objective_value_text(o, o.lower_limit)}")
    if o.upper_limit is not None:
        parts.append(f"≤ {objective_value_text(o, o.upper_limit)}")
    return ", ".join(parts)


def _metric_columns(results: Results) -> list[str]:
    names: list[str] = []
    for row in results.metrics.values():
        names.extend(n for n in row if n not in names)
    shown = [n for n in _SHOWN if n in names]
    return shown + [n for n in names if n not in shown]


def objective_value_text(o: ObjectiveResult, value: float | None) -> str:
    """Return a value in the objective's terms (a ratio or difference when it is relative)."""
    return format_objective_value(Objective(metric=o.metric, vs=o.vs), value)


def _interval(o: ObjectiveResult) -> str:
    if o.low is None or o.high is None:
        return "—"
    if o.low == o.high:
        return "exact"
    return f"{objective_value_text(o, o.low)} .. {objective_value_text(o, o.high)}"


def _confidence(results: Results) -> str:
    levels = {o.confidence for o in results.objectives}
    return f"{levels.pop():.0%}" if len(levels) == 1 else "confidence"


def _objective_rows(results: Results) -> Iterable[tuple[str, str, str, str, str, str]]:
    for o in results.objectives:
        name = o.metric + (f" [{o.endpoint}]" if o.endpoint else "") + \
            (f" vs {o.vs}" if o.vs else "")
        verdict = o.verdict + (" (dry run)" if o.dry_run else "")
        yield name, objective_value_text(o, o.value), _interval(o), limit_text(o), verdict, o.reason


def render_text(results: Results, *, width: int = 110, color: bool = False) -> str:
    """Return the terminal report (rich tables); ANSI colours only when ``color``."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=color, color_system="standard"
                      if color else None, highlight=False)
    console.print(Text(f"Experiment {results.name}", style="bold"))
    console.print(f"{results.start_time} .. {results.end_time}, measured {results.duration_s:.3g} s, "
                  f"{len(results.workers)} worker(s)")
    objectives = Table(title="Objectives", title_justify="left")
    for column in ("objective", "value", "interval", "limit", "verdict", "reason"):
        objectives.add_column(column)
    for name, value, interval, limit, verdict, reason in _objective_rows(results):
        style = _COLOURS.get(verdict.split()[0], "")
        # The interval column already says why a PASS passed; explain only the others.
        objectives.add_row(name, value, interval, limit, Text(verdict, style=style),
                           "" if verdict == "PASS" else reason)
    console.print(objectives)
    metrics = Table(title="Metrics", title_justify="left")
    metrics.add_column("metric")
    endpoints = list(results.metrics)
    for endpoint in endpoints:
        metrics.add_column("all endpoints" if endpoint == ALL_ENDPOINTS else endpoint,
                           justify="right")
    for name in _metric_columns(results):
        metrics.add_row(name, *(fmt(name, results.metrics[e].get(name)) for e in endpoints))
    console.print(metrics)
    if results.service_metrics:
        console.print(_latency_table(results))
    if results.comparison:
        console.print(_comparison_table(results))
    _workers_line(console, results)
    console.print(Text(f"Verdict: {results.verdict}", style=_COLOURS[results.verdict]))
    for reason in results.reasons:
        console.print(f"  - {reason}")
    return buffer.getvalue()


_CO_ROWS = ("latency-mean", "latency-p50", "latency-p90", "latency-p99", "latency-p99.9",
            "latency-max")


def _co_rows(results: Results) -> list[tuple[str, str, str]]:
    corrected = results.metrics.get(ALL_ENDPOINTS, {})
    uncorrected = results.service_metrics.get(ALL_ENDPOINTS, {})
    return [(name, fmt(name, corrected.get(name)), fmt(name, uncorrected.get(name)))
            for name in _CO_ROWS if name in corrected]


def _latency_table(results: Results) -> Table:
    table = Table(title="Latency: from intended send (corrected) vs from actual send (service)",
                  title_justify="left")
    for column in ("metric", "corrected", "service"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for row in _co_rows(results):
        table.add_row(*row)
    return table


def comparison_value_text(kind: str, value: float | None) -> str:
    """Return a comparison value: a ratio ``x1.05`` or a difference ``+0.1 pp``."""
    if value is None:
        return "—"
    return f"{value * 100:+.3g} pp" if kind == "difference" else f"x{value:.3g}"


def _comparison_rows(results: Results) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for c in results.comparison:
        interval = (f"{comparison_value_text(c.kind, c.low)} .. {comparison_value_text(c.kind, c.high)}"
                    if c.low is not None and c.high is not None else (c.note or "—"))
        rows.append((c.metric, fmt(c.metric, c.baseline), fmt(c.metric, c.candidate),
                     comparison_value_text(c.kind, c.value), interval))
    return rows


def _comparison_title(results: Results) -> str:
    level = f"{results.comparison[0].confidence:.0%}" if results.comparison else ""
    if results.aa:
        return f"A/A run, the noise floor: one version against itself ({level} intervals)"
    return f"Candidate vs baseline, interleaved ({level} intervals)"


def _comparison_table(results: Results) -> Table:
    table = Table(title=_comparison_title(results), title_justify="left")
    for column in ("metric", "baseline", "candidate", "candidate vs baseline", "interval"):
        table.add_column(column, justify="left" if column in ("metric", "interval") else "right")
    for row in _comparison_rows(results):
        table.add_row(*row)
    return table


def _workers_line(console: Console, results: Results) -> None:
    lost = [w for w in results.workers if w.status != "ok"]
    counts = ", ".join(f"#{w.index} {w.requests:,}" for w in results.workers)
    console.print(f"Requests per worker: {counts}" + (f" ({len(lost)} lost)" if lost else ""))


def render_markdown(results: Results) -> str:
    """Return the report as GitHub-flavoured markdown (verdict, objectives, metrics, config)."""
    lines = [
        f"## slogate: {results.name} — **{results.verdict}**",
        "",
        *(f"- {reason}" for reason in results.reasons),
        "",
        "### Objectives",
        "",
        f"| objective | value | {_confidence(results)} interval | limit | verdict | reason |",
        "|---|---:|---|---|---|---|",
        *(f"| {n} | {v} | {ci} | {lim} | {verdict} | {r} |"
          for n, v, ci, lim, verdict, r in _objective_rows(results)),
        "",
        "### Metrics",
        "",
    ]
    endpoints = list(results.metrics)
    header = ["metric", *("all endpoints" if e == ALL_ENDPOINTS else e for e in endpoints)]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|---|" + "---:|" * len(endpoints))
    for name in _metric_columns(results):
        cells = [fmt(name, results.metrics[e].get(name)) for e in endpoints]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if results.service_metrics:
        lines += ["", "Latency from the intended send time (coordinated-omission corrected) and "
                  "from the actual send (service time):", "",
                  "| metric | corrected | service |", "|---|---:|---:|",
                  *(f"| {n} | {c} | {u} |" for n, c, u in _co_rows(results))]
    if results.comparison:
        lines += ["", f"### {_comparison_title(results)}", "",
                  "| metric | baseline | candidate | candidate vs baseline | interval |",
                  "|---|---:|---:|---:|---|",
                  *(f"| {m} | {b} | {c} | {v} | {i} |" for m, b, c, v, i in _comparison_rows(results))]
    load = results.spec.get("load", {})
    model = f"rate {load['rate']:g} req/s" if load.get("rate") else \
        f"concurrency {load.get('concurrency')}"
    stop = ", ".join(
        ([f"duration {load['duration']:g} s"] if load.get("duration") is not None else [])
        + ([f"requests {load['requests']:,}"] if load.get("requests") is not None else []))
    lines += [
        "",
        "### Run",
        "",
        f"- target: `{results.target_url}`",
        *([f"- dark launch: {results.dark_launch}"] if results.dark_launch else []),
        f"- load: {model}, {stop}, {len(results.workers)} worker(s)",
        f"- window: {results.start_time} .. {results.end_time} (measured {results.duration_s:.3g} s)",
        "",
    ]
    return "\n".join(lines)


def render(results: Results, fmt_name: str, *, color: bool = False) -> str:
    """Return the report in one of :data:`FORMATS`."""
    if fmt_name == "text":
        return render_text(results, color=color)
    if fmt_name == "markdown":
        return render_markdown(results)
    if fmt_name == "json":
        return results.to_json()
    if fmt_name == "junit":
        from analysis.junit import render_junit

        return render_junit(results)
    if fmt_name == "html":
        from analysis.html import render_html

        return render_html(results)
    raise ValueError(f"unknown report format {fmt_name!r}; use one of {', '.join(FORMATS)}")
