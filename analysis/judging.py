"""Judging a measured run: the one path shared by a fresh run and a re-judged saved run.

``judge_measured`` takes merged histograms (a :class:`~analysis.metrics.Measured`), the
generator's health and the objectives, and returns the metrics table and the run's verdict. A
saved ``results.json`` holds everything it needs, so ``slogate report --objectives`` re-judges a
past run against other SLOs without sending a request, and a re-judged run with its own
objectives gives the verdict it had.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import pandas as pd

from analysis.catalog import ALL_ENDPOINTS, percentile_of
from analysis.compare import COMPARED, relative_evidence, split_versions
from analysis.custom import Reading, reading_errors
from analysis.evidence import scopes
from analysis.metrics import Measured, metrics_table
from analysis.results import ComparisonResult, ObjectiveResult
from analysis.verdict import (
    Limits,
    ObjectiveVerdict,
    RunHealth,
    RunVerdict,
    Side,
    Slo,
    judge_run,
)
from workers.histogram import Histogram


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowHealth:
    """One merged window's generator health."""

    scheduled: int
    sent: int
    lag: Histogram
    cpu_s: float


def run_health(*, lost: Iterable[tuple[int, str]], aborted: bool,
               gaps: Iterable[tuple[int, float, float | None]], windows: Iterable[WindowHealth],
               window_s: float) -> RunHealth:
    """Return the run's health from its lost workers ``(index, reason)``, gaps ``(worker,
    lost_at_s, resumed_at_s)`` and windows; one wording, so a re-judged run reads as it did."""
    return RunHealth(
        lost_workers=tuple(f"#{index}: {reason}" for index, reason in lost), aborted=aborted,
        gaps=tuple(f"worker #{worker} lost at {lost_at:.1f} s, replaced from {resumed:.1f} s"
                   for worker, lost_at, resumed in gaps if resumed is not None),
        **generator_health(windows, window_s))  # type: ignore[arg-type]


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


@dataclass(frozen=True, slots=True, kw_only=True)
class Judgement:
    """A judged run: the candidate's metrics table, the verdict, and for a two-version run the
    baseline's table and the candidate-vs-baseline comparison of the main metrics."""

    table: pd.DataFrame
    verdict: RunVerdict
    baseline_table: pd.DataFrame | None = None
    comparison: list[ComparisonResult] = field(default_factory=list)


def _rows(table: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    return {str(name): {str(k): (None if pd.isna(v) else v) for k, v in row.items()}
            for name, row in table.to_dict(orient="index").items()}


def judge_measured(
    objectives: Sequence[Slo], measured: Measured, health: RunHealth, limits: Limits,
    custom: Sequence[Reading] = (),
    prejudged: Mapping[int, ObjectiveVerdict] | None = None,
) -> Judgement:
    """Return the judged run. In a two-version run, absolute objectives and the metrics table
    are the candidate's; objectives with ``vs`` compare it with the baseline. ``custom``: the
    custom metrics read for this run (a reading's error makes the run INVALID)."""
    versions = split_versions(measured)
    candidate = versions.get("candidate") or versions.get(None) or measured
    extra = [q for q in (percentile_of(o.metric) for o in objectives) if q is not None]
    table = metrics_table(candidate, extra)
    successes = sum(h.total for (_, o), h in measured.latency.items() if not measured.is_error(o))
    health = replace(health, successful_requests=successes,
                     metric_errors=health.metric_errors + reading_errors(custom))
    side = (scopes(candidate), _rows(table))
    baseline_table, comparison, base_side = None, [], None
    if "baseline" in versions:
        baseline_table = metrics_table(versions["baseline"], extra)
        base_side = (scopes(versions["baseline"]), _rows(baseline_table))
        comparison = _comparison(side, base_side, limits.confidence)
    verdict = judge_run(objectives, side[0], side[1], health, limits, baseline=base_side,
                        custom={(r.name, r.version): r for r in custom},
                        prejudged=prejudged)
    return Judgement(table=table, verdict=verdict, baseline_table=baseline_table,
                     comparison=comparison)


def _comparison(candidate: Side, baseline: Side, confidence: float) -> list[ComparisonResult]:
    out = []
    for metric in COMPARED:
        evidence = relative_evidence(metric, candidate[0].get(ALL_ENDPOINTS),
                                     baseline[0].get(ALL_ENDPOINTS),
                                     candidate[1].get(ALL_ENDPOINTS, {}),
                                     baseline[1].get(ALL_ENDPOINTS, {}), confidence)
        out.append(ComparisonResult(
            metric=metric, kind="difference" if metric == "error-rate" else "ratio",
            candidate=candidate[1].get(ALL_ENDPOINTS, {}).get(metric),
            baseline=baseline[1].get(ALL_ENDPOINTS, {}).get(metric), value=evidence.value,
            low=evidence.interval[0] if evidence.interval else None,
            high=evidence.interval[1] if evidence.interval else None,
            confidence=confidence, note=evidence.note))
    return out


def objective_results(verdict: RunVerdict) -> list[ObjectiveResult]:
    """Return the objectives' verdicts as results-document entries."""
    return [ObjectiveResult(
        metric=j.objective.metric, endpoint=j.objective.endpoint,
        upper_limit=j.objective.upper_limit, lower_limit=j.objective.lower_limit,
        dry_run=j.objective.dry_run, vs=j.objective.vs, value=j.value, verdict=j.verdict.value,
        reason=j.reason,
        low=j.interval[0] if j.interval else None, high=j.interval[1] if j.interval else None,
        n=j.n, confidence=j.confidence, needed_n=j.needed_n,
    ) for j in verdict.objectives]
