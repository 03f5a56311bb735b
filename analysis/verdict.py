"""Verdicts: each objective, then the run, judged from the metrics table and the run's health.

Outcomes and their precedence for the run (the first that applies wins):

1. INVALID      the run is broken: a worker was lost, or no request got a non-error response;
2. FAIL         some judged objective is violated;
3. INCONCLUSIVE some objective has no data, or there are no objectives at all;
4. PASS         every objective is met.

Invariant: the run is never PASS when any objective is FAIL or INCONCLUSIVE, or when the run is
INVALID; objectives marked ``dry_run`` are reported but do not count.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from analysis.catalog import ALL_ENDPOINTS, format_value
from analysis.metrics import metric_value


class Verdict(str, enum.Enum):
    """An objective's or a run's outcome."""

    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    INVALID = "INVALID"

    @property
    def exit_code(self) -> int:
        """Return the CLI exit code: 0 pass, 1 fail, 3 inconclusive or invalid."""
        return {"PASS": 0, "FAIL": 1}.get(self.value, 3)


@dataclass(frozen=True, slots=True, kw_only=True)
class Objective:
    """An SLO in canonical units (ms, fraction, req/s, count). Built from the spec."""

    metric: str
    upper_limit: float | None = None
    lower_limit: float | None = None
    endpoint: str | None = None
    dry_run: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectiveVerdict:
    """The judgement of one objective: its value, verdict and the reason in words."""

    objective: Objective
    value: float | None
    verdict: Verdict
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunHealth:
    """What the analysis must know about how the run went, beyond its histograms."""

    lost_workers: tuple[str, ...] = ()
    successful_requests: int = 0
    aborted: bool = False
    gaps: tuple[str, ...] = ()  # replaced workers: reported, the run stays judgeable


@dataclass(frozen=True, slots=True, kw_only=True)
class RunVerdict:
    """The run's verdict, every objective's verdict, and the reasons for the run's verdict."""

    verdict: Verdict
    objectives: tuple[ObjectiveVerdict, ...]
    reasons: tuple[str, ...]


def _limits_text(objective: Objective) -> str:
    parts = []
    if objective.lower_limit is not None:
        parts.append(f">= {format_value(objective.metric, objective.lower_limit)}")
    if objective.upper_limit is not None:
        parts.append(f"<= {format_value(objective.metric, objective.upper_limit)}")
    return " and ".join(parts)


def judge_objective(objective: Objective, table: pd.DataFrame) -> ObjectiveVerdict:
    """Return PASS when the value is within the limits, FAIL outside, INCONCLUSIVE with no data."""
    value = metric_value(table, objective.metric, objective.endpoint or ALL_ENDPOINTS)
    if value is None:
        return ObjectiveVerdict(objective=objective, value=None, verdict=Verdict.INCONCLUSIVE,
                                reason=f"no data for {objective.metric}")
    wanted = _limits_text(objective)
    too_high = objective.upper_limit is not None and value > objective.upper_limit
    too_low = objective.lower_limit is not None and value < objective.lower_limit
    if too_high or too_low:
        return ObjectiveVerdict(objective=objective, value=value, verdict=Verdict.FAIL,
                                reason=f"{format_value(objective.metric, value)} is not {wanted}")
    return ObjectiveVerdict(objective=objective, value=value, verdict=Verdict.PASS,
                            reason=f"{format_value(objective.metric, value)} is {wanted}")


def judge_run(
    objectives: Sequence[Objective], table: pd.DataFrame, health: RunHealth
) -> RunVerdict:
    """Return the run's verdict from its objectives' verdicts and its health (see module doc)."""
    judged = tuple(judge_objective(o, table) for o in objectives)
    counted = [j for j in judged if not j.objective.dry_run]
    reasons: list[str] = []
    if health.aborted:
        reasons.append("the run was aborted before it finished")
    reasons.extend(f"worker lost: {w}" for w in health.lost_workers)
    if health.successful_requests == 0:
        reasons.append("no request got a successful (non-error) response")
    if reasons:
        return RunVerdict(verdict=Verdict.INVALID, objectives=judged, reasons=tuple(reasons))
    failed = [j for j in counted if j.verdict is Verdict.FAIL]
    unknown = [j for j in counted if j.verdict is Verdict.INCONCLUSIVE]
    if failed:
        verdict = Verdict.FAIL
        reasons = [f"{_name(j)}: {j.reason}" for j in failed]
    elif unknown or not counted:
        verdict = Verdict.INCONCLUSIVE
        reasons = [f"{_name(j)}: {j.reason}" for j in unknown] or ["no objectives to judge"]
    else:
        verdict = Verdict.PASS
        reasons = [f"all {len(counted)} objectives met"]
    reasons += [f"gap: {gap}" for gap in health.gaps]
    return RunVerdict(verdict=verdict, objectives=judged, reasons=tuple(reasons))


def _name(judged: ObjectiveVerdict) -> str:
    endpoint = judged.objective.endpoint
    return judged.objective.metric + (f" [{endpoint}]" if endpoint else "")
