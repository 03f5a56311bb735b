"""How a run's requests ended, per endpoint: the outcomes table of every report format.

:func:`outcome_rows` counts each recorded endpoint's outcomes (and all endpoints', when there are
several), errors apart from the rest by the run's own error ranges (:func:`error_ranges`);
:func:`outcome_cells` writes one row as the text, markdown and HTML tables show it, and the JUnit
report puts the same rows in its ``<system-out>``.

Pure: a :class:`~analysis.results.Results` document in, values out.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.catalog import ALL_ENDPOINTS
from analysis.metrics import Measured
from analysis.results import Results
from analysis.verdict import counts_text


@dataclass(frozen=True, slots=True, kw_only=True)
class OutcomeRow:
    """How one endpoint's requests ended: counts per outcome, errors first, most frequent first."""

    endpoint: str
    requests: int
    errors: int
    error_outcomes: tuple[tuple[str, int], ...]
    other_outcomes: tuple[tuple[str, int], ...]


def error_ranges(results: Results) -> tuple[tuple[int, int], ...]:
    """Return the HTTP status ranges the run counts as errors (its spec's, else 400-599)."""
    return results.saved.error_ranges


def judge_of(results: Results) -> Measured:
    """Return a Measured with no histograms that judges outcomes as the run does: its HTTP
    error ranges and its gRPC codes that are no error."""
    return Measured(latency={}, duration_s=results.duration_s, error_ranges=error_ranges(results),
                    ok_outcomes=results.saved.ok_outcomes)


def _by_count(counts: dict[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def outcome_rows(results: Results) -> list[OutcomeRow]:
    """Return the outcomes of each recorded endpoint (labels as recorded, so a two-version
    run has a row per version), then of all endpoints when there are several."""
    judge = judge_of(results)
    counts: dict[str, dict[str, int]] = {}
    for item in results.histograms.latency:
        for scope in (item.endpoint, ALL_ENDPOINTS):
            row = counts.setdefault(scope, {})
            row[item.outcome] = row.get(item.outcome, 0) + item.count
    if len(counts) == 2:  # one endpoint: the all-endpoints row would repeat it
        del counts[ALL_ENDPOINTS]
    rows = []
    for scope in sorted(counts, key=lambda e: (e == ALL_ENDPOINTS, e)):
        outcomes = counts[scope]
        errors = {o: n for o, n in outcomes.items() if judge.is_error(o)}
        rows.append(OutcomeRow(
            endpoint="all endpoints" if scope == ALL_ENDPOINTS else scope,
            requests=sum(outcomes.values()), errors=sum(errors.values()),
            error_outcomes=_by_count(errors),
            other_outcomes=_by_count({o: n for o, n in outcomes.items() if o not in errors})))
    return rows


def outcome_cells(row: OutcomeRow) -> tuple[str, str, str, str, str]:
    """Return an outcomes-table row: endpoint, requests, errors, error and other outcomes."""
    return (row.endpoint, f"{row.requests:,}", f"{row.errors:,}",
            counts_text(row.error_outcomes, top=None) or "—",
            counts_text(row.other_outcomes, top=None) or "—")


OUTCOME_COLUMNS = ("endpoint", "requests", "errors", "error outcomes", "other outcomes")


