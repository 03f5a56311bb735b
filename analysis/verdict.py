"""Verdicts: each objective from its evidence (value, interval, n), then the run.

An objective is PASS only when its whole confidence interval lies within the limits, FAIL only
when the whole interval lies outside them, and INCONCLUSIVE otherwise (with about how many
requests would settle it), or when there is no data or too little for an interval.

Outcomes and their precedence for the run (the first that applies wins):

1. INVALID      the run is broken: a worker was lost, the run was aborted, no request got a
                non-error response, or a custom metric could not be read at the end;
2. INCONCLUSIVE the generator was the bottleneck: requests due were never sent, or the
                schedule lagged beyond its bound, so latencies describe the generator too;
3. FAIL         some judged objective is violated;
4. INCONCLUSIVE some objective is undecided or has no data, or there are no objectives at all;
5. PASS         every objective is met.

Invariant: the run is never PASS when any objective is FAIL or INCONCLUSIVE, or when the run is
INVALID; objectives marked ``dry_run`` are reported but do not count.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from analysis import stats
from analysis.catalog import ALL_ENDPOINTS
from analysis.compare import relative_evidence
from analysis.custom import Reading, judge_custom
from analysis.evidence import Evidence, Scope, evidence_for
from analysis.formatting import limits_text, objective_value_text


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
class Slo:
    """An SLO in canonical units (ms, fraction, req/s, count). Built from the spec."""

    metric: str
    upper_limit: float | None = None
    lower_limit: float | None = None
    endpoint: str | None = None
    dry_run: bool = False
    vs: str | None = None  # "baseline": limits are candidate/baseline ratios (rate: differences)
    window: str | None = None  # "worst": judged in every window, the worst counts (stages.py)


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectiveVerdict:
    """The judgement of one objective: its evidence, verdict and the reason in words."""

    objective: Slo
    value: float | None
    verdict: Verdict
    reason: str
    interval: tuple[float, float] | None = None
    n: int = 0
    confidence: float = 0.95
    needed_n: int | None = None  # about how many requests would decide an undecided objective


@dataclass(frozen=True, slots=True, kw_only=True)
class RunHealth:
    """What the analysis must know about how the run went, beyond its histograms."""

    lost_workers: tuple[str, ...] = ()
    successful_requests: int = 0
    aborted: bool = False
    gaps: tuple[str, ...] = ()  # replaced workers: reported, the run stays judgeable
    scheduled: int = 0  # open model: requests due in measured windows
    unsent: int = 0  # of those, never sent
    lag_p99_ms: float | None = None  # schedule lag (actual minus intended send), p99
    busiest_cpu: float | None = None  # the busiest worker's CPU share in its busiest window
    metric_errors: tuple[str, ...] = ()  # custom metrics that could not be read: INVALID


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """How the analysis judges: confidence level and the generator's health bounds.

    Example: ``Limits(confidence=0.99, max_lag_ms=5.0, max_unsent=0.001)``
    """

    confidence: float = 0.95
    max_lag_ms: float = 10.0
    max_unsent: float = 0.001


@dataclass(frozen=True, slots=True, kw_only=True)
class RunVerdict:
    """The run's verdict, every objective's verdict, and the reasons for the run's verdict."""

    verdict: Verdict
    objectives: tuple[ObjectiveVerdict, ...]
    reasons: tuple[str, ...]


def counts_text(counts: Sequence[tuple[str, int]], *, top: int | None = 3) -> str:
    """Return outcomes with their counts, in the order given: ``status:500 ×10, connect ×3``;
    past ``top`` of them, one ``and N more of K other kinds`` instead of the rest."""
    shown = list(counts if top is None else counts[:top])
    text = ", ".join(f"{outcome} ×{count:,}" for outcome, count in shown)
    rest = counts[len(shown):]
    if rest:
        kinds = f"{len(rest)} other kind{'' if len(rest) == 1 else 's'}"
        text += f" and {sum(n for _, n in rest):,} more of {kinds}"
    return text


_ERROR_METRICS = ("error-rate", "error-count")


def _with_causes(judged: ObjectiveVerdict, scopes: Mapping[str, Scope]) -> ObjectiveVerdict:
    """Return an error objective's verdict with its most frequent error outcomes named in the
    reason (``…; errors: status:500 ×10, connect ×3``); other verdicts unchanged."""
    scope = scopes.get(judged.objective.endpoint or ALL_ENDPOINTS)
    if judged.objective.metric not in _ERROR_METRICS or scope is None or not scope.error_outcomes:
        return judged
    who = "candidate errors" if judged.objective.vs else "errors"
    return replace(judged, reason=f"{judged.reason}; {who}: {counts_text(scope.error_outcomes)}")


def _interval_text(objective: Slo, evidence: Evidence) -> str:
    value = objective_value_text(objective, evidence.value)
    if not evidence.inferential or evidence.interval is None:
        return value
    low, high = (objective_value_text(objective, x) for x in evidence.interval)
    return f"{value} ({evidence.confidence:.0%} CI {low}..{high}, n={evidence.n:,})"


def judge_objective(objective: Slo, evidence: Evidence) -> ObjectiveVerdict:
    """Return PASS when the interval is within the limits, FAIL when it is wholly outside them,
    INCONCLUSIVE otherwise (no data, too few samples, or an interval across a limit)."""
    def verdict(outcome: Verdict, reason: str, needed: int | None = None) -> ObjectiveVerdict:
        return ObjectiveVerdict(objective=objective, value=evidence.value, verdict=outcome,
                                reason=reason, interval=evidence.interval, n=evidence.n,
                                confidence=evidence.confidence, needed_n=needed)

    if evidence.value is None:
        return verdict(Verdict.INCONCLUSIVE, f"no data for {objective.metric}")
    if evidence.interval is None:
        return verdict(Verdict.INCONCLUSIVE, evidence.note or "no interval", evidence.needed_n)
    low, high = evidence.interval
    upper, lower = objective.upper_limit, objective.lower_limit
    against = f" of the {objective.vs}" if objective.vs else ""
    wanted = limits_text(objective, plain=True) + against
    shown = _interval_text(objective, evidence)
    if (upper is not None and low > upper) or (lower is not None and high < lower):
        return verdict(Verdict.FAIL, f"{shown} is not {wanted}")
    if (upper is None or high <= upper) and (lower is None or low >= lower):
        return verdict(Verdict.PASS, f"{shown} is {wanted}")
    needed = _needed(objective, evidence)
    each = " per version" if objective.vs else ""
    more = f"; about {needed:,} requests{each} would decide it" if needed else ""
    return verdict(Verdict.INCONCLUSIVE, f"{shown} straddles {wanted}{more}", needed)


def _needed(objective: Slo, evidence: Evidence) -> int | None:
    """Return about how many requests would put the interval on one side of the limit."""
    value, (low, high) = evidence.value, evidence.interval  # type: ignore[misc]
    # Of the limits the interval crosses, the one nearest the value takes the most requests.
    crossed = [x for x in (objective.upper_limit, objective.lower_limit)
               if x is not None and low <= x <= high]
    limit = min(crossed, key=lambda x: abs(x - (value or 0.0)), default=None)
    if limit is None or value is None or value == limit:
        return None
    if objective.metric == "error-rate" and len(evidence.counts) == 2:
        # A difference of two rates: both samples' widths count (two-sample size, per version).
        (c_errors, c_n), (b_errors, b_n) = evidence.counts
        return stats.samples_to_separate_difference(c_errors / c_n, b_errors / b_n, limit,
                                                    evidence.confidence)
    if objective.metric in ("error-rate", "check-rate"):
        return stats.samples_to_separate_proportion(value, limit, evidence.confidence)
    # An interval's half-width shrinks like 1/sqrt(n): scale n until it fits in |value - limit|.
    half = max(high - value, value - low)
    return math.ceil(evidence.n * (half / abs(value - limit)) ** 2) if half > 0 else None


def _generator_problems(health: RunHealth, limits: Limits) -> list[str]:
    problems = []
    if health.scheduled and health.unsent / health.scheduled > limits.max_unsent:
        problems.append(f"generator: {health.unsent:,} of {health.scheduled:,} requests due were "
                        f"never sent (more than {limits.max_unsent:.1%})")
    if health.lag_p99_ms is not None and health.lag_p99_ms > limits.max_lag_ms:
        cpu = (f"; the busiest worker used {health.busiest_cpu:.0%} of a CPU"
               if health.busiest_cpu is not None else "")
        problems.append(f"generator: schedule lag p99 {health.lag_p99_ms:.3g} ms exceeds "
                        f"{limits.max_lag_ms:g} ms, so latencies include the generator's own "
                        f"delay{cpu}")
    return problems


Side = tuple[Mapping[str, Scope], Mapping[str, Mapping[str, float | None]]]


def _evidence(objective: Slo, candidate: Side, baseline: Side | None,
              confidence: float) -> Evidence:
    scope = objective.endpoint or ALL_ENDPOINTS
    scopes, table = candidate
    if objective.vs is None:
        return evidence_for(objective.metric, scopes.get(scope), table.get(scope, {}), confidence)
    if baseline is None:
        return Evidence(value=None, interval=None, n=0, confidence=confidence, inferential=True)
    base_scopes, base_table = baseline
    return relative_evidence(objective.metric, scopes.get(scope), base_scopes.get(scope),
                             table.get(scope, {}), base_table.get(scope, {}), confidence)


def _judge_custom(objective: Slo, readings: Mapping[tuple[str, str], Reading],
                  confidence: float) -> ObjectiveVerdict:
    """Return the verdict of an objective on a custom metric (a point value, no interval)."""
    judged = judge_custom(name=objective.metric, upper=objective.upper_limit,
                          lower=objective.lower_limit, vs=objective.vs, readings=readings)
    return ObjectiveVerdict(objective=objective, value=judged.value,
                            verdict=Verdict(judged.outcome), reason=judged.reason,
                            confidence=confidence)


def judge_run(
    objectives: Sequence[Slo], scopes: Mapping[str, Scope],
    table: Mapping[str, Mapping[str, float | None]], health: RunHealth,
    limits: Limits = Limits(), baseline: Side | None = None,
    custom: Mapping[tuple[str, str], Reading] | None = None,
    prejudged: Mapping[int, ObjectiveVerdict] | None = None,
) -> RunVerdict:
    """Return the run's verdict from its objectives' evidence and its health (see module doc).

    ``scopes`` and ``table`` are the candidate's; ``baseline`` the baseline's, for objectives
    judged relative to it; ``custom`` the custom metrics' readings by (name, version);
    ``prejudged``: verdicts of objectives judged elsewhere (``window: worst``, by
    :mod:`analysis.stages`), by index.
    """
    custom = custom or {}
    names = {name for name, _ in custom}
    prejudged = prejudged or {}
    judged = tuple(
        prejudged[i] if i in prejudged else
        _judge_custom(o, custom, limits.confidence) if o.metric in names else
        _with_causes(judge_objective(o, _evidence(o, (scopes, table), baseline,
                                                  limits.confidence)), scopes)
        for i, o in enumerate(objectives))
    counted = [j for j in judged if not j.objective.dry_run]
    reasons: list[str] = []
    if health.aborted:
        reasons.append("the run was aborted before it finished")
    reasons.extend(f"worker lost: {w}" for w in health.lost_workers)
    reasons.extend(health.metric_errors)
    if health.successful_requests == 0:
        reasons.append("no request got a successful (non-error) response")
    if reasons:
        return RunVerdict(verdict=Verdict.INVALID, objectives=judged, reasons=tuple(reasons))
    failed = [j for j in counted if j.verdict is Verdict.FAIL]
    unknown = [j for j in counted if j.verdict is Verdict.INCONCLUSIVE]
    problems = _generator_problems(health, limits)
    if problems:
        verdict, reasons = Verdict.INCONCLUSIVE, problems
    elif failed:
        verdict = Verdict.FAIL
        reasons = [f"{_name(j)}: {j.reason}" for j in failed]
    elif unknown or not counted:
        verdict = Verdict.INCONCLUSIVE
        reasons = [f"{_name(j)}: {j.reason}" for j in unknown] or ["no objectives to judge"]
    else:
        verdict = Verdict.PASS
        reasons = [f"all {len(counted)} objectives met at {limits.confidence:.0%} confidence"]
    reasons += [f"gap: {gap}" for gap in health.gaps]
    return RunVerdict(verdict=verdict, objectives=judged, reasons=tuple(reasons))


def _name(judged: ObjectiveVerdict) -> str:
    endpoint = judged.objective.endpoint
    return judged.objective.metric + (f" [{endpoint}]" if endpoint else "")
