"""Judging a measured run: the one path shared by a fresh run and a re-judged saved run.

``judge_measured`` takes merged histograms (a :class:`~analysis.metrics.Measured`), the
generator's health and the objectives, and returns the metrics table and the run's verdict. A
saved ``results.json`` holds everything it needs, so ``slogate report --objectives`` re-judges a
past run against other SLOs without sending a request, and a re-judged run with its own
objectives gives the verdict it had.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import pandas as pd

from analysis.catalog import percentile_of
from analysis.evidence import scopes
from analysis.metrics import Measured, metrics_table
from analysis.results import ObjectiveResult
from analysis.verdict import Limits, Objective, RunHealth, RunVerdict, judge_run
from workers.histogram import Histogram


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowHealth:
    """One merged window's generator health."""

    scheduled: int
    sent: int
    lag: Histogram
    cpu_s: float


def generator_health(windows: Iterable[WindowHealth], window_s: float) -> dict[str, object]:
    """Return the RunHealth fields about the generator: due, unsent, lag p99, busiest CPU."""
    windows = list(windows)
    lag = Histogram.sum(w.lag for w in windows)
    p99 = lag.percentile_ns(99)
    return {
        "scheduled": sum(w.scheduled for w in windows),
        "unsent": sum(w.scheduled - w.sent for w in windows),
        "lag_p99_ms": None if p99 is None else p99 / 1e6,
        "busiest_cpu": max((w.cpu_s / window_s for w in windows), default=None),
    }


def judge_measured(
    objectives: Sequence[Objective], measured: Measured, health: RunHealth, limits: Limits,
) -> tuple[pd.DataFrame, RunVerdict]:
    """Return the metrics table and the verdict of a measured run."""
    extra = [q for q in (percentile_of(o.metric) for o in objectives) if q is not None]
    table = metrics_table(measured, extra)
    rows = {name: {k: (None if pd.isna(v) else v) for k, v in row.items()}
            for name, row in table.to_dict(orient="index").items()}
    successes = sum(h.total for (_, o), h in measured.latency.items() if not measured.is_error(o))
    health = replace(health, successful_requests=successes)
    return table, judge_run(objectives, scopes(measured), rows, health, limits)


def objective_results(verdict: RunVerdict) -> list[ObjectiveResult]:
    """Return the objectives' verdicts as results-document entries."""
    return [ObjectiveResult(
        metric=j.objective.metric, endpoint=j.objective.endpoint,
        upper_limit=j.objective.upper_limit, lower_limit=j.objective.lower_limit,
        dry_run=j.objective.dry_run, value=j.value, verdict=j.verdict.value, reason=j.reason,
        low=j.interval[0] if j.interval else None, high=j.interval[1] if j.interval else None,
        n=j.n, confidence=j.confidence, needed_n=j.needed_n,
    ) for j in verdict.objectives]
