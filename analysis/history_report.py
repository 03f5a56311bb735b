"""Reports of a run :class:`~analysis.history.History`: text (rich tables), markdown and JSON.

Each shows the same three things: the trend (one row per run, newest last, the last ``last``
runs), the drift check of every tracked metric with a sparkline of its trend over those rows,
and the outcome line. Values are formatted by :func:`analysis.catalog.format_value`, so a
history reads like the run reports. The JSON form carries every field of the checks, for tools.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.text import Text

from analysis.catalog import format_value as fmt
from analysis.history import CheckState, Drift, History, MetricCheck, RunPoint
from analysis.report import console_text, md_table, md_text, text_console, titled_table

FORMATS = ("text", "markdown", "json")
BARS = "▁▂▃▄▅▆▇█"
_STYLES = {CheckState.REGRESSED: "bold red", CheckState.UNCERTAIN: "yellow",
           CheckState.NO_REFERENCE: "yellow", CheckState.NO_DATA: "yellow",
           CheckState.OK: "green"}
_VERDICTS = {"PASS": "green", "FAIL": "red", "INCONCLUSIVE": "yellow", "INVALID": "magenta"}


def sparkline(values: Sequence[float | None]) -> str:
    """Return one bar per value scaled from the lowest to the highest (a blank for no value;
    all bars in the middle when every value is the same)."""
    known = [v for v in values if v is not None]
    if not known:
        return " " * len(values)
    low, high = min(known), max(known)
    top = len(BARS) - 1
    if high == low:
        return "".join(" " if v is None else BARS[top // 2] for v in values)
    return "".join(" " if v is None else BARS[round((v - low) / (high - low) * top)]
                   for v in values)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _interval_text(check: MetricCheck) -> str:
    if check.interval is None:
        return "—"
    low, high = check.interval
    return "exact" if low == high else f"{fmt(check.metric, low)}..{fmt(check.metric, high)}"


def _check_cells(check: MetricCheck, shown: Sequence[RunPoint]) -> list[str]:
    """Return a check's cells: metric, trend, reference, newest, change, interval, bound, state."""
    change = "—" if check.change_pct is None else f"{check.change_pct:+.1f}%"
    return [check.label, sparkline([p.values.get(check.label) for p in shown]),
            "—" if check.reference is None else fmt(check.metric, check.reference),
            fmt(check.metric, check.newest), change, _interval_text(check),
            "—" if check.bound is None else fmt(check.metric, check.bound), check.state.value]


_CHECK_COLUMNS = ("metric", "trend", "reference", "newest", "change", "interval", "bound", "state")


def headline(history: History, location: str, last: int) -> list[str]:
    """Return the lines above the tables: which runs, from where, and other experiments."""
    runs = history.runs
    lines = [f"History of {history.name}: {len(runs)} run{'' if len(runs) == 1 else 's'}"
             + (f" in {location}" if location else "")
             + f", {_when(runs[0].start_time)} .. {_when(runs[-1].start_time)} UTC"
             + (f"; the last {last} shown" if len(runs) > last else "")]
    if history.other_names:
        lines.append(f"also in the archive: {', '.join(history.other_names)} (choose with --name)")
    return lines


def reference_line(drift: Drift) -> str:
    """Return what the newest run was compared with, in words."""
    p = drift.policy
    refs = drift.reference_runs
    span = (f" ({refs[0].start_time:%Y-%m-%d %H:%M} .. {refs[-1].start_time:%Y-%m-%d %H:%M})"
            if refs else "")
    return (f"Newest run vs the {p.aggregate} of {len(refs)} earlier "
            f"{'/'.join(p.reference_verdicts)} run{'' if len(refs) == 1 else 's'}{span}, "
            f"tolerance {p.tolerance:.0%}")


def outcome_lines(drift: Drift) -> list[str]:
    """Return the outcome: REGRESSED / NO REFERENCE / no regression, then one line per finding."""
    change = drift.verdict_change
    verdict = f"Verdict: {drift.newest.verdict}" + (
        f" (previous run: {change.previous})" if change else " (no previous run)")
    if drift.regressed:
        head = "Drift: REGRESSED"
    elif drift.no_reference:
        head = "Drift: NO REFERENCE (not judged)"
    else:
        head = "Drift: no regression"
    return [verdict, head, *(f"  - {line}" for line in drift.summary())]


def render_text(history: History, *, location: str = "", last: int = 10,
                width: int | None = None, color: bool = False) -> str:
    """Return the terminal report; ANSI colours only when ``color``; wrapped to ``width``
    columns, or not at all when it is None (a pipe or a file). Names are never markup."""
    buffer = io.StringIO()
    console = text_console(buffer, width=width, color=color)
    shown = history.runs[-last:]
    for line in headline(history, location, last):
        console.print(line)
    trend = titled_table("Trend (newest last)")
    trend.add_column("run (UTC)")
    trend.add_column("verdict")
    for track in history.tracks:
        trend.add_column(track.label, justify="right")
    for point in shown:
        trend.add_row(_when(point.start_time),
                      Text(point.verdict, style=_VERDICTS.get(point.verdict, "")),
                      *(fmt(t.metric, point.values.get(t.label)) for t in history.tracks))
    console.print(trend)
    checks = titled_table(reference_line(history.drift))
    for column in _CHECK_COLUMNS:
        checks.add_column(column, justify="right" if column in ("reference", "newest", "change",
                                                                 "bound") else "left")
    for check in history.drift.checks:
        cells = _check_cells(check, shown)
        checks.add_row(*cells[:-1], Text(cells[-1], style=_STYLES[check.state]))
    console.print(checks)
    for line in outcome_lines(history.drift):
        console.print(line)
    return console_text(buffer, width=width)


def render_markdown(history: History, *, location: str = "", last: int = 10) -> str:
    """Return the report as GitHub-flavoured markdown (for a CI job summary or an issue); text
    from the runs (names, labels, paths) is escaped so it renders as written."""
    shown = history.runs[-last:]
    labels = [t.label for t in history.tracks]
    lines = [f"## slogate history: {md_text(history.name)}", "",
             *(f"{md_text(line)}  " for line in headline(history, location, last)), "",
             "### Trend (newest last)", "",
             *md_table(["run (UTC)", "verdict", *labels], "ll" + "r" * len(labels),
                       ([_when(p.start_time), p.verdict,
                         *(fmt(t.metric, p.values.get(t.label)) for t in history.tracks)]
                        for p in shown))]
    lines += ["", "### Drift", "", md_text(reference_line(history.drift)), "",
              *md_table(_CHECK_COLUMNS, "llrrrlrl",
                        (_check_cells(c, shown) for c in history.drift.checks))]
    verdict, head, *findings = outcome_lines(history.drift)
    lines += ["", f"{verdict}  ", f"**{head}**", "",
              *(f"  - {md_text(line.removeprefix('  - '))}" for line in findings), ""]
    return "\n".join(lines)


def _check_json(check: MetricCheck) -> dict[str, Any]:
    return {"metric": check.metric, "endpoint": check.endpoint, "reference": check.reference,
            "newest": check.newest, "changePct": check.change_pct,
            "low": check.interval[0] if check.interval else None,
            "high": check.interval[1] if check.interval else None, "bound": check.bound,
            "state": check.state.value, "regressed": check.regressed, "why": check.why}


def history_json(history: History, *, location: str = "", last: int = 10) -> dict[str, Any]:
    """Return the report as a JSON-ready dict (camelCase keys, like results.json)."""
    drift, policy = history.drift, history.drift.policy
    change = drift.verdict_change
    return {
        "name": history.name, "source": location, "runCount": len(history.runs),
        "otherNames": list(history.other_names),
        "runs": [{"startTime": p.start_time.isoformat().replace("+00:00", "Z"),
                  "verdict": p.verdict, "source": p.source, "metrics": dict(p.values)}
                 for p in history.runs[-last:]],
        "drift": {
            "regressed": drift.regressed, "noReference": drift.no_reference,
            "policy": {"against": policy.against, "tolerance": policy.tolerance,
                       "aggregate": policy.aggregate,
                       "referenceVerdicts": list(policy.reference_verdicts),
                       "minReference": policy.needed, "ratioSlack": policy.ratio_slack},
            "referenceRuns": [p.source for p in drift.reference_runs],
            "verdictChange": {"previous": change.previous, "newest": change.newest,
                              "regressed": change.regressed} if change else None,
            "checks": [_check_json(c) for c in drift.checks],
            "summary": drift.summary(),
        },
    }


def render_history(history: History, fmt_name: str, *, location: str = "", last: int = 10,
                   color: bool = False, width: int | None = None) -> str:
    """Return the history report in one of :data:`FORMATS`; text is wrapped to ``width``
    columns (a terminal's), or not at all when it is None."""
    if fmt_name == "text":
        return render_text(history, location=location, last=last, color=color, width=width)
    if fmt_name == "markdown":
        return render_markdown(history, location=location, last=last)
    if fmt_name == "json":
        return json.dumps(history_json(history, location=location, last=last), indent=2) + "\n"
    raise ValueError(f"unknown history format {fmt_name!r}; use one of {', '.join(FORMATS)}")
