"""Judging by load stage and by window: objectives over a slice of a run's windows (pure).

A run with ``load.stages`` (steps of rates, or of users in the closed model) is judged as a whole
and stage by stage: each stage's windows (a stage is a whole number of windows, from the end of
the warm-up) are merged and every objective judged on them, with its interval, so a stage that
overloads the target fails alone. The run's verdict is then the worst: FAIL when any stage
fails, INCONCLUSIVE when a stage is undecided.

An objective with ``window: worst`` is judged in every window (of ``load.window``) instead of
over the whole run or stage: FAIL when any window fails, INCONCLUSIVE when none fails but one
is undecided, PASS when every window passes ("p99 of every 10 s window <= 200 ms": set
``load.window: 10s``). Its value is the worst window's. Both read only the windows of the
results document, so a saved run is re-judged the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from analysis.catalog import ALL_ENDPOINTS, DEFAULT_OK_OUTCOMES, format_value, higher_is_worse
from analysis.custom import Reading
from analysis.judging import (
    Judgement,
    WindowHealth,
    generator_health,
    judge_measured,
    objective_results,
)
from analysis.metrics import Measured
from analysis.results import StageResult, WindowResult, clean_metrics, unseries
from analysis.verdict import (
    Limits,
    ObjectiveVerdict,
    RunHealth,
    RunVerdict,
    Slo,
    Verdict,
)
from workers.histogram import Histogram
from workers.recorder import Key

_ORDER = {Verdict.PASS: 0, Verdict.INCONCLUSIVE: 1, Verdict.FAIL: 2, Verdict.INVALID: 3}


@dataclass(frozen=True, slots=True, kw_only=True)
class Stage:
    """One load stage: its label, global rate (open model) or users (closed model), length (s)."""

    name: str
    rate: float | None = None
    users: int | None = None
    duration_s: float


def _measured(windows: Sequence[WindowResult], duration_s: float,
              error_ranges: tuple[tuple[int, int], ...],
              ok_outcomes: tuple[str, ...] = DEFAULT_OK_OUTCOMES) -> Measured:
    latency: dict[Key, Histogram] = {}
    for window in windows:
        for key, hist in unseries(window.latency).items():
            if key in latency:
                latency[key].add(hist)
            else:
                latency[key] = hist
    return Measured(latency=latency, duration_s=duration_s, error_ranges=error_ranges,
                    ok_outcomes=ok_outcomes)


def _health(windows: Sequence[WindowResult], window_s: float) -> RunHealth:
    return RunHealth(**generator_health(  # type: ignore[arg-type]
        (WindowHealth(scheduled=w.scheduled, sent=w.sent, lag=Histogram.decode(w.lag),
                      cpu_s=w.cpu_s) for w in windows), window_s))


def worst_window(objective: Slo, windows: Sequence[WindowResult], *,
                 error_ranges: tuple[tuple[int, int], ...], window_s: float,
                 limits: Limits, ok_outcomes: tuple[str, ...] = DEFAULT_OK_OUTCOMES,
                 ) -> ObjectiveVerdict:
    """Return ``objective`` judged in every window: the worst window's verdict and value."""
    plain = replace(objective, window=None)
    judged: list[tuple[WindowResult, ObjectiveVerdict]] = []
    for window in windows:
        measured = _measured([window], window_s, error_ranges, ok_outcomes)
        verdict = judge_measured([plain], measured, RunHealth(successful_requests=1), limits)
        judged.append((window, verdict.verdict.objectives[0]))
    if not judged:
        return ObjectiveVerdict(objective=objective, value=None, verdict=Verdict.INCONCLUSIVE,
                                reason="no windows to judge")
    worse = higher_is_worse(objective.metric) is not False
    values = [j.value for _, j in judged if j.value is not None]
    by_verdict = max(_ORDER[j.verdict] for _, j in judged)
    window, worst = max(
        (pair for pair in judged if _ORDER[pair[1].verdict] == by_verdict),
        key=lambda pair: (pair[1].value if worse else -(pair[1].value or 0.0))
        if pair[1].value is not None else float("-inf"))
    failing = sum(1 for _, j in judged if j.verdict is Verdict.FAIL)
    value = (max(values) if worse else min(values)) if values else None
    reason = (f"window {window.index} ({window.start_s:g}-{window.start_s + window_s:g} s) of "
              f"{len(judged)}: {worst.reason}"
              + (f"; {failing} windows fail" if failing > 1 else ""))
    return replace(worst, objective=objective, value=value, reason=reason)


def prejudge(objectives: Sequence[Slo], windows: Sequence[WindowResult], *,
             error_ranges: tuple[tuple[int, int], ...], window_s: float,
             limits: Limits, ok_outcomes: tuple[str, ...] = DEFAULT_OK_OUTCOMES,
             ) -> dict[int, ObjectiveVerdict]:
    """Return the verdicts of the ``window: worst`` objectives, by their index."""
    return {i: worst_window(o, windows, error_ranges=error_ranges, window_s=window_s,
                            limits=limits, ok_outcomes=ok_outcomes)
            for i, o in enumerate(objectives) if o.window == "worst"}


def judge_stages(stages: Sequence[Stage], objectives: Sequence[Slo],
                 windows: Sequence[WindowResult], *, error_ranges: tuple[tuple[int, int], ...],
                 window_s: float, limits: Limits,
                 ok_outcomes: tuple[str, ...] = DEFAULT_OK_OUTCOMES) -> list[StageResult]:
    """Return every stage judged on its own windows (stages follow one another from 0 s)."""
    out, start_s = [], 0.0
    for index, stage in enumerate(stages):
        end_s = start_s + stage.duration_s
        mine = [w for w in windows if start_s - 1e-9 <= w.start_s < end_s - 1e-9]
        measured = _measured(mine, stage.duration_s, error_ranges, ok_outcomes)
        health = _health(mine, window_s)
        judged = judge_measured(objectives, measured, health, limits, prejudged=prejudge(
            objectives, mine, error_ranges=error_ranges, window_s=window_s, limits=limits,
            ok_outcomes=ok_outcomes))
        table = clean_metrics(judged.table.to_dict(orient="index"))
        out.append(StageResult(
            index=index, name=stage.name, rate=stage.rate, users=stage.users, start_s=start_s,
            duration_s=stage.duration_s, requests=sum(h.total for h in measured.latency.values()),
            metrics=table.get(ALL_ENDPOINTS, {}), objectives=objective_results(judged.verdict),
            verdict=judged.verdict.verdict.value, reasons=list(judged.verdict.reasons)))
        start_s = end_s
    return out


def with_stages(run: RunVerdict, stages: Sequence[StageResult]) -> RunVerdict:
    """Return the run's verdict made the worst of its own and its stages' (a stage's FAIL fails
    the run, an undecided stage leaves a passing run INCONCLUSIVE), the stages that did not
    pass named first in the reasons."""
    if run.verdict is Verdict.INVALID or not stages:
        return run
    worst = Verdict(max(stages, key=lambda s: _ORDER[Verdict(s.verdict)]).verdict)
    if worst in (Verdict.PASS, Verdict.INVALID):
        return run
    verdict = run.verdict if _ORDER[run.verdict] >= _ORDER[worst] else worst
    lines = [f"stage {s.index + 1} ({s.name}, {stage_load(s)}): {reason}"
             for s in stages if s.verdict == worst.value for reason in s.reasons]
    own = list(run.reasons) if run.verdict is verdict else []
    return RunVerdict(verdict=verdict, objectives=run.objectives, reasons=tuple(lines + own))


def stages_of(spec: Mapping[str, object]) -> list[Stage]:
    """Return the stages of a spec document (``load.stages``), named ``stage N`` by default."""
    load = spec.get("load")
    raw = load.get("stages") if isinstance(load, dict) else None
    return [Stage(name=s.get("name") or f"stage {i + 1}",
                  rate=None if s.get("rate") is None else float(s["rate"]),
                  users=None if s.get("users") is None else int(s["users"]),
                  duration_s=float(s["duration"])) for i, s in enumerate(raw or [])]


def judge_all(objectives: Sequence[Slo], measured: Measured, health: RunHealth,
              limits: Limits, windows: Sequence[WindowResult], spec: Mapping[str, object],
              custom: Sequence[Reading] = ()) -> tuple[Judgement, list[StageResult] | None]:
    """Return the run judged as a whole (``window: worst`` objectives in every window; custom
    metrics from their readings) and, with ``load.stages`` in ``spec``, stage by stage (on the
    load's own metrics), the run's verdict then the worst."""
    load = spec.get("load")
    window_s = float(load.get("window", 1.0)) if isinstance(load, dict) else 1.0
    ranges, ok = measured.error_ranges, measured.ok_outcomes
    judged = judge_measured(objectives, measured, health, limits, custom=custom, prejudged=prejudge(
        objectives, windows, error_ranges=ranges, window_s=window_s, limits=limits,
        ok_outcomes=ok))
    stages = stages_of(spec)
    if not stages:
        return judged, None
    results = judge_stages(stages, objectives, windows, error_ranges=ranges, window_s=window_s,
                           limits=limits, ok_outcomes=ok)
    return replace(judged, verdict=with_stages(judged.verdict, results)), results


STAGE_COLUMNS = ("stage", "rate", "requests", "throughput", "latency-p99", "error-rate",
                 "verdict", "reason")


def stage_columns(stages: Sequence[StageResult]) -> tuple[str, ...]:
    """Return the stages table's columns: :data:`STAGE_COLUMNS`, with ``users`` in place of
    ``rate`` for stages of users."""
    if stages and stages[0].users is not None:
        return tuple("users" if c == "rate" else c for c in STAGE_COLUMNS)
    return STAGE_COLUMNS


def stage_load(stage: Stage | StageResult) -> str:
    """Return a stage's load as shown: ``200 req/s`` or ``6 users``."""
    if stage.users is not None:
        return f"{stage.users:,} users"
    return f"{stage.rate or 0.0:g} req/s"


def stage_rows(stages: Sequence[StageResult]) -> list[tuple[str, ...]]:
    """Return one report row per stage (see :data:`STAGE_COLUMNS`); the reason of a stage that
    did not pass is its first."""
    rows: list[tuple[str, ...]] = []
    for s in stages:
        m = s.metrics
        rows.append((f"{s.index + 1}. {s.name} ({s.start_s:g}-{s.start_s + s.duration_s:g} s)",
                     stage_load(s), f"{s.requests:,}",
                     format_value("throughput", m.get("throughput")),
                     format_value("latency-p99", m.get("latency-p99")),
                     format_value("error-rate", m.get("error-rate")), s.verdict,
                     "" if s.verdict == "PASS" or not s.reasons else s.reasons[0]))
    return rows
