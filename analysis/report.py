"""Reports of a run, rendered from its :class:`~analysis.results.Results` document only.

The same document drives every format, so ``slogate report results.json`` re-renders exactly what
``slogate run`` printed. Formats: ``text`` (rich tables, verdict colours), ``markdown`` (for pull
request bodies), ``json`` (the document itself), ``junit`` and ``html``.

Invariants:
- text a user wrote (experiment and endpoint names, paths, reasons that quote them, URLs) is
  never read as markup: the text console has Rich markup and emoji codes off, and markdown
  escapes it with backslashes (:func:`md_text`), so ``[create-order]`` or ``/items]`` shows as
  written;
- text for a pipe or a file (``width=None``) is never wrapped: each table is as wide as its
  longest cell and each line as long as its sentence; on a terminal, tables fit its width.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from analysis.catalog import ALL_ENDPOINTS
from analysis.catalog import format_value as fmt
from analysis.custom_report import ALIGN as CUSTOM_ALIGN
from analysis.custom_report import HEADER as CUSTOM_HEADER
from analysis.custom_report import NOTE as CUSTOM_NOTE
from analysis.custom_report import TITLE as CUSTOM_TITLE
from analysis.custom_report import custom_problems, custom_rows
from analysis.formatting import comparison_value_text, limits_text, objective_value_text
from analysis.outcomes import OUTCOME_COLUMNS, outcome_cells, outcome_rows
from analysis.results import ObjectiveResult, Results
from analysis.stages import stage_columns, stage_rows

FORMATS = ("text", "markdown", "json", "junit", "html")
_COLOURS = {"PASS": "bold green", "FAIL": "bold red", "INCONCLUSIVE": "bold yellow",
            "INVALID": "bold magenta"}
_SHOWN = ("request-count", "error-count", "error-rate", "throughput", "latency-mean",
          "latency-stddev", "latency-min", "latency-p50", "latency-p75", "latency-p90",
          "latency-p95", "latency-p99", "latency-p99.9", "latency-max")
_UNWRAPPED_WIDTH = 100_000  # "no width": tables and lines are only as wide as their text
# Markdown punctuation that can change what a user's text renders as (emphasis, code, links,
# table cells, HTML tags, entities); each is escaped with a backslash, which GFM removes. An
# underscore inside a word (on_fail) never starts emphasis in GFM, so it stays as it is.
_MD_SPECIAL = re.compile(r"([\\`*|\[\]~]|<(?=[A-Za-z/!?])|&(?=#|\w+;)"
                         r"|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")  # on_fail: no emphasis


def text_console(buffer: io.StringIO, *, width: int | None, color: bool) -> Console:
    """Return a rich console writing to ``buffer`` that reads no markup or emoji codes in
    strings (they are data here); ``width`` None: lines are never wrapped."""
    return Console(file=buffer, width=width or _UNWRAPPED_WIDTH, force_terminal=color,
                   color_system="standard" if color else None, highlight=False, markup=False,
                   emoji=False)


def console_text(buffer: io.StringIO, *, width: int | None) -> str:
    """Return what a :func:`text_console` wrote; unwrapped text loses the trailing blanks that
    pad lines to the widest table."""
    text = buffer.getvalue()
    return text if width else "\n".join(line.rstrip(" ") for line in text.split("\n"))


def titled_table(title: str) -> Table:
    """Return a table with its title on the left, at least as wide as the title, so the title
    is never broken over lines while the console is wider than it."""
    return Table(title=title, title_justify="left", min_width=cell_len(title))


def md_text(text: object) -> str:
    """Return text escaped for markdown: it renders as written, also inside a table cell."""
    return _MD_SPECIAL.sub(r"\\\1", re.sub(r"[\r\n]+", " ", str(text)))


def _metric_columns(results: Results) -> list[str]:
    names: list[str] = []
    for row in results.metrics.values():
        names.extend(n for n in row if n not in names)
    shown = [n for n in _SHOWN if n in names]
    return shown + [n for n in names if n not in shown]


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
    units = custom_units(results)
    for o in results.objectives:
        name = o.metric + (f" [{o.endpoint}]" if o.endpoint else "") + \
            (f" vs {o.vs}" if o.vs else "")
        verdict = o.verdict + (" (dry run)" if o.dry_run else "")
        unit = units.get(o.metric)
        yield (name, objective_value_text(o, o.value, unit), _interval(o),
               limits_text(o, unit=unit), verdict, o.reason)


def custom_units(results: Results) -> dict[str, str]:
    """Return ``{name: unit}`` of the custom metrics a run read."""
    return {c.name: c.unit for c in results.custom_metrics}


def render_text(results: Results, *, width: int | None = None, color: bool = False) -> str:
    """Return the terminal report (rich tables); ANSI colours only when ``color``; wrapped to
    ``width`` columns, or not wrapped at all when it is None (a pipe or a file)."""
    buffer = io.StringIO()
    console = text_console(buffer, width=width, color=color)
    console.print(Text(f"Experiment {results.name}", style="bold"))
    console.print(f"{results.start_time} .. {results.end_time}, measured {results.duration_s:.3g} s, "
                  f"{len(results.workers)} worker(s)")
    objectives = titled_table("Objectives")
    for column in ("objective", "value", "interval", "limit", "verdict", "reason"):
        objectives.add_column(column, no_wrap=column != "reason")
    for name, value, interval, limit, verdict, reason in _objective_rows(results):
        style = _COLOURS.get(verdict.split()[0], "")
        # The interval column already says why a PASS passed; explain only the others.
        objectives.add_row(name, value, interval, limit, Text(verdict, style=style),
                           "" if verdict == "PASS" else reason)
    console.print(objectives)
    if results.stages:
        console.print(_stages_table(results))
    metrics = titled_table("Metrics")
    metrics.add_column("metric", no_wrap=True)
    endpoints = list(results.metrics)
    for endpoint in endpoints:
        metrics.add_column("all endpoints" if endpoint == ALL_ENDPOINTS else endpoint,
                           justify="right")
    for name in _metric_columns(results):
        metrics.add_row(name, *(fmt(name, results.metrics[e].get(name)) for e in endpoints))
    console.print(metrics)
    if results.custom_metrics:
        console.print(_custom_table(results))
        for line in custom_problems(results):
            console.print(f"  - {line}")
    console.print(_outcomes_table(results))
    if results.service_metrics:
        console.print(_latency_table(results))
    if results.comparison:
        console.print(_comparison_table(results))
    _workers_line(console, results)
    console.print(Text(f"Verdict: {results.verdict}", style=_COLOURS[results.verdict]))
    for reason in results.reasons:
        console.print(f"  - {reason}")
    return console_text(buffer, width=width)


def _outcomes_table(results: Results) -> Table:
    table = titled_table("Outcomes by endpoint")
    for column in OUTCOME_COLUMNS:
        table.add_column(column, justify="right" if column in ("requests", "errors") else "left")
    for row in outcome_rows(results):
        table.add_row(*outcome_cells(row))
    return table


_CO_ROWS = ("latency-mean", "latency-p50", "latency-p90", "latency-p99", "latency-p99.9",
            "latency-max")


def _co_rows(results: Results) -> list[tuple[str, str, str]]:
    corrected = results.metrics.get(ALL_ENDPOINTS, {})
    uncorrected = results.service_metrics.get(ALL_ENDPOINTS, {})
    return [(name, fmt(name, corrected.get(name)), fmt(name, uncorrected.get(name)))
            for name in _CO_ROWS if name in corrected]


def _latency_table(results: Results) -> Table:
    table = titled_table("Latency: from intended send (corrected) vs from actual send (service)")
    for column in ("metric", "corrected", "service"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for row in _co_rows(results):
        table.add_row(*row)
    return table


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
    table = titled_table(_comparison_title(results))
    for column in ("metric", "baseline", "candidate", "candidate vs baseline", "interval"):
        table.add_column(column, justify="left" if column in ("metric", "interval") else "right")
    for row in _comparison_rows(results):
        table.add_row(*row)
    return table


def _workers_line(console: Console, results: Results) -> None:
    lost = [w for w in results.workers if w.status != "ok"]
    counts = ", ".join(f"#{w.index} {w.requests:,}" for w in results.workers)
    console.print(f"Requests per worker: {counts}" + (f" ({len(lost)} lost)" if lost else ""))


def md_table(header: Sequence[str], align: str, rows: Iterable[Sequence[object]]) -> list[str]:
    """Return a markdown table's lines; ``align`` has one letter per column (l or r); every
    cell is escaped (:func:`md_text`)."""
    rule = "".join("---:|" if a == "r" else "---|" for a in align)
    return ["| " + " | ".join(md_text(h) for h in header) + " |", "|" + rule,
            *("| " + " | ".join(md_text(c) for c in row) + " |" for row in rows)]


def _md_code(text: str) -> str:
    """Return text as an inline code span (a longer fence when the text holds backticks)."""
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


def _md_metrics(results: Results) -> list[str]:
    endpoints = list(results.metrics)
    header = ["metric", *("all endpoints" if e == ALL_ENDPOINTS else e for e in endpoints)]
    rows = [[name, *(fmt(name, results.metrics[e].get(name)) for e in endpoints)]
            for name in _metric_columns(results)]
    lines = ["### Metrics", "", *md_table(header, "l" + "r" * len(endpoints), rows)]
    if results.service_metrics:
        lines += ["", "Latency from the intended send time (coordinated-omission corrected) and "
                  "from the actual send (service time):", "",
                  *md_table(["metric", "corrected", "service"], "lrr", _co_rows(results))]
    if results.comparison:
        lines += ["", f"### {_comparison_title(results)}", "",
                  *md_table(["metric", "baseline", "candidate", "candidate vs baseline",
                             "interval"], "lrrrl", _comparison_rows(results))]
    return lines


def _md_run(results: Results) -> list[str]:
    saved = results.saved
    model = f"rate {saved.rate_rps:g} req/s" if saved.rate_rps else \
        f"concurrency {saved.concurrency}"
    stop = ", ".join(
        ([f"duration {saved.duration_s:g} s"] if saved.duration_s is not None else [])
        + ([f"requests {saved.requests:,}"] if saved.requests is not None else []))
    return [
        "### Run",
        "",
        f"- target: {_md_code(str(results.target_url))}",
        *([f"- dark launch: {md_text(results.dark_launch)}"] if results.dark_launch else []),
        f"- load: {model}, {stop}, {len(results.workers)} worker(s)",
        f"- window: {md_text(results.start_time)} .. {md_text(results.end_time)} "
        f"(measured {results.duration_s:.3g} s)",
    ]


def _custom_table(results: Results) -> Table:
    """Return the text report's table of custom metrics."""
    table = titled_table(CUSTOM_TITLE)
    for column in CUSTOM_HEADER:
        table.add_column(column, justify="right" if column == "value" else "left",
                         no_wrap=column != "query")
    for row in custom_rows(results):
        table.add_row(*row)
    return table


def _md_custom(results: Results) -> list[str]:
    """Return the markdown section of custom metrics (nothing when the run read none)."""
    if not results.custom_metrics:
        return []
    problems = [f"- {md_text(line)}" for line in custom_problems(results)]
    return ["### Custom metrics", "", md_text(CUSTOM_NOTE), "",
            *md_table(CUSTOM_HEADER, CUSTOM_ALIGN, custom_rows(results)),
            *(["", *problems] if problems else []), ""]


def _stages_table(results: Results) -> Table:
    table = titled_table("Stages")
    for column in stage_columns(results.stages or []):
        table.add_column(column, no_wrap=column != "reason")
    for row in stage_rows(results.stages or []):
        table.add_row(*row[:-2], Text(row[-2], style=_COLOURS.get(row[-2], "")), row[-1])
    return table


def _md_stages(results: Results) -> list[str]:
    if not results.stages:
        return []
    rows = stage_rows(results.stages)
    return ["### Stages", "", *md_table(stage_columns(results.stages), "lrrrrrll", rows), ""]


def render_markdown(results: Results) -> str:
    """Return the report as GitHub-flavoured markdown (verdict, objectives, metrics, outcomes,
    config); text from the document is escaped so it renders as written."""
    lines = [
        f"## slogate: {md_text(results.name)} — **{results.verdict}**",
        "",
        *(f"- {md_text(reason)}" for reason in results.reasons),
        "",
        "### Objectives",
        "",
        *objectives_markdown(results),
        "",
        *_md_stages(results),
        *_md_metrics(results),
        "",
        *_md_custom(results),
        "### Outcomes by endpoint",
        "",
        *md_table(OUTCOME_COLUMNS, "lrrll", map(outcome_cells, outcome_rows(results))),
        "",
        *_md_run(results),
        "",
    ]
    return "\n".join(lines)


def objectives_markdown(results: Results) -> list[str]:
    """Return the objectives table's markdown lines, as in the report."""
    return md_table(["objective", "value", f"{_confidence(results)} interval", "limit", "verdict",
                     "reason"], "lrllll", _objective_rows(results))


def comparison_markdown(results: Results) -> list[str]:
    """Return the candidate-vs-baseline table's markdown lines (its title first); none for a
    run without a baseline."""
    if not results.comparison:
        return []
    return [f"**{_comparison_title(results)}**", "",
            *md_table(["metric", "baseline", "candidate", "candidate vs baseline", "interval"],
                      "lrrrl", _comparison_rows(results))]


def render(results: Results, fmt_name: str, *, color: bool = False,
           width: int | None = None) -> str:
    """Return the report in one of :data:`FORMATS`; text is wrapped to ``width`` columns (a
    terminal's), or not at all when it is None."""
    if fmt_name == "text":
        return render_text(results, color=color, width=width)
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
