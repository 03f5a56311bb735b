"""Run history: the trend of one experiment over archived runs, and drift of its newest run (pure).

Values in, values out: :class:`~analysis.results.Results` documents go in; a trend (one
:class:`RunPoint` per run, newest last) and a :class:`Drift` (the newest run against a reference
made of earlier runs) come out. Reading archives is :mod:`coordinator.archive`'s job.

Drift, Keptn-style (Keptn's quality gates compare with ``number_of_comparison_results`` earlier
results, ``include_result_with_score: pass``):

- the reference of a metric is the median (or mean) of its values in the last ``against`` runs
  before the newest whose verdict is in ``reference_verdicts`` (PASS only by default), and needs
  values from at least ``min_reference`` of them (3 by default, or ``against`` when smaller): a
  median of three ignores one odd night, a median of one is just another noisy run;
- the bound is the reference moved by the relative ``tolerance`` in the metric's bad direction
  (:func:`analysis.catalog.higher_is_worse`): ``reference × (1 + tolerance)`` for latency and
  error-rate, ``reference × (1 - tolerance)`` for throughput. For error-rate, whose reference is
  often 0 (where any relative tolerance is 0), the bound is at least ``reference + ratio_slack``;
- the statistical guard: a metric regressed only when the newest run's confidence interval for
  it lies wholly beyond the bound. The interval says where the true value lies given the newest
  run's sample (at the run's confidence ``c``, 95 % by default); when all of it is beyond the bound
  the chance that sampling noise alone put the point estimate there, while the true value is at or
  within the bound, is at most ``(1 - c) / 2`` (2.5 %) per metric. A point estimate past the bound
  with an interval that straddles it is UNCERTAIN: more requests would decide it, and it does not
  fail the gate. The guard covers the newest run's sampling noise only; night-to-night variation
  (another node, a noisy neighbour) is what the tolerance is for, and the median keeps one odd
  earlier night from moving the reference. Metrics with no statistical interval (throughput,
  counts, min, max, stddev) describe the run itself: their interval is the value, so the guard
  reduces to a plain comparison. An inferential metric whose interval cannot be computed (too
  few samples for p99.9) is UNCERTAIN, never REGRESSED on its point estimate alone;
- the verdict: the newest run's verdict is compared with the run before it; PASS → anything
  else is a regression too.

Invariants: the newest run is never part of its own reference; too few reference runs is said
(:attr:`Drift.no_reference`), never a silent pass; nothing here reads a file or the clock.
"""

from __future__ import annotations

import enum
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from analysis.catalog import ALL_ENDPOINTS, MetricKind, format_value, higher_is_worse, kind_of
from analysis.compare import split_versions
from analysis.errors import ResultsError
from analysis.evidence import evidence_for, scopes
from analysis.metrics import Measured
from analysis.results import Results, unseries

DEFAULT_TRACKED = ("latency-p50", "latency-p95", "latency-p99", "latency-mean", "error-rate",
                   "throughput")
AGGREGATES = ("median", "mean")
MIN_REFERENCE_RUNS = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftPolicy:
    """How the newest run is compared with earlier ones (see the module docstring).

    Example: ``DriftPolicy(against=5, tolerance=0.10, aggregate="median")``.
    """

    against: int = 5
    tolerance: float = 0.10
    aggregate: str = "median"
    reference_verdicts: tuple[str, ...] = ("PASS",)
    min_reference: int = MIN_REFERENCE_RUNS
    ratio_slack: float = 0.001  # error-rate: a rise under 0.1 percentage points never regresses

    def __post_init__(self) -> None:
        if self.against < 1 or self.min_reference < 1:
            raise ValueError("against and min_reference must be at least 1")
        if not 0.0 <= self.tolerance < 1.0:
            raise ValueError(f"tolerance {self.tolerance!r} must be in [0, 1)")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate {self.aggregate!r}: use one of {', '.join(AGGREGATES)}")

    @property
    def needed(self) -> int:
        """Return how many reference runs a metric needs: ``min_reference``, at most ``against``."""
        return min(self.min_reference, self.against)


@dataclass(frozen=True, slots=True, kw_only=True)
class Track:
    """A tracked metric of the candidate, over all endpoints (``*``) or one."""

    metric: str
    endpoint: str = ALL_ENDPOINTS

    @property
    def label(self) -> str:
        """Return ``latency-p99``, or ``latency-p99 [GET /x]`` for one endpoint."""
        return self.metric if self.endpoint == ALL_ENDPOINTS else f"{self.metric} [{self.endpoint}]"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunPoint:
    """One archived run in the trend: when, its verdict, and the candidate's tracked values."""

    name: str
    start_time: datetime
    verdict: str
    source: str
    values: Mapping[str, float | None]  # by Track.label


class CheckState(str, enum.Enum):
    """What the drift check of one metric found."""

    OK = "ok"
    REGRESSED = "regressed"
    UNCERTAIN = "uncertain"  # the point estimate is past the bound, its interval is not
    NO_REFERENCE = "no reference"
    NO_DATA = "no data"


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricCheck:
    """One metric of the newest run against its reference; ``why`` says it in one line."""

    metric: str
    endpoint: str
    reference: float | None
    newest: float | None
    change_pct: float | None  # (newest - reference) / reference × 100
    interval: tuple[float, float] | None
    bound: float | None
    state: CheckState
    why: str

    @property
    def regressed(self) -> bool:
        """Return True when the metric regressed beyond the tolerance and the noise."""
        return self.state is CheckState.REGRESSED

    @property
    def label(self) -> str:
        """Return the metric's label (with its endpoint when it is not all endpoints)."""
        return Track(metric=self.metric, endpoint=self.endpoint).label


@dataclass(frozen=True, slots=True, kw_only=True)
class VerdictChange:
    """The newest run's verdict against the run before it; PASS → not PASS is a regression."""

    previous: str
    newest: str

    @property
    def regressed(self) -> bool:
        """Return True when the previous run passed and the newest does not."""
        return self.previous == "PASS" and self.newest != "PASS"


@dataclass(frozen=True, slots=True, kw_only=True)
class Drift:
    """The newest run against its reference runs: per-metric checks and the verdict change."""

    newest: RunPoint
    reference_runs: tuple[RunPoint, ...]
    policy: DriftPolicy
    checks: tuple[MetricCheck, ...]
    verdict_change: VerdictChange | None
    no_reference: str | None = None  # "no reference: 1 earlier PASS run, need 3+"

    @property
    def regressed(self) -> bool:
        """Return True when a metric regressed or the verdict went from PASS to another."""
        return any(c.regressed for c in self.checks) or bool(
            self.verdict_change and self.verdict_change.regressed)

    def summary(self) -> list[str]:
        """Return one line per finding: regressions first, then what could not be decided."""
        lines = []
        if self.verdict_change and self.verdict_change.regressed:
            lines.append(f"verdict {self.verdict_change.previous} → {self.verdict_change.newest}")
        lines += [f"{c.label}: {c.why}" for c in self.checks if c.regressed]
        if self.no_reference:
            lines.append(self.no_reference)
        lines += [f"{c.label}: {c.why}" for c in self.checks if c.state is CheckState.UNCERTAIN]
        return lines


@dataclass(frozen=True, slots=True, kw_only=True)
class History:
    """All runs of one experiment (oldest first), what is tracked, and the newest run's drift."""

    name: str
    runs: tuple[RunPoint, ...]
    tracks: tuple[Track, ...]
    drift: Drift
    other_names: tuple[str, ...] = field(default=())  # experiments in the archive not shown


def start_of(results: Results, source: str = "") -> datetime:
    """Return the run's start as an aware UTC datetime; ResultsError if it is not ISO 8601."""
    try:
        moment = datetime.fromisoformat(results.start_time)
    except ValueError:
        raise ResultsError(f"{source or results.name}: startTime {results.start_time!r} is not "
                           "an ISO 8601 time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else \
        moment.astimezone(UTC)


def choose_name(runs: Sequence[Results], name: str | None) -> tuple[str | None, tuple[str, ...]]:
    """Return the experiment to show (``name``, else the newest run's) and the other names."""
    names = sorted({r.name for r in runs})
    if name is None and runs:
        name = max(runs, key=start_of).name
    return name, tuple(n for n in names if n != name)


def tracks_of(newest: Results) -> tuple[Track, ...]:
    """Return what to track: the newest run's objectives' metrics, then the default ones, each
    once and only when the run has a value column for it."""
    wanted = [Track(metric=o.metric, endpoint=o.endpoint or ALL_ENDPOINTS)
              for o in newest.objectives]
    wanted += [Track(metric=m) for m in DEFAULT_TRACKED]
    custom = custom_values(newest)
    out: list[Track] = []
    for track in wanted:
        if track not in out and (track.metric in newest.metrics.get(track.endpoint, {})
                                 or track.metric in custom):
            out.append(track)
    return tuple(out)


def custom_values(results: Results) -> dict[str, float | None]:
    """Return the candidate's custom metric values of a run by name (None: no data)."""
    return {c.name: c.value for c in results.custom_metrics if c.version == "candidate"}


def run_point(results: Results, tracks: Sequence[Track], source: str = "") -> RunPoint:
    """Return the run's row of the trend: its start, verdict and the tracked values."""
    custom = custom_values(results)
    values = {t.label: custom[t.metric] if t.metric in custom
              else results.metrics.get(t.endpoint, {}).get(t.metric) for t in tracks}
    return RunPoint(name=results.name, start_time=start_of(results, source),
                    verdict=results.verdict, source=source, values=values)


def intervals_of(results: Results, tracks: Sequence[Track]) -> dict[str, tuple[float, float] | None]:
    """Return each tracked metric's confidence interval in the run, by label.

    An absolute objective's saved interval when there is one; else the interval computed from
    the candidate's saved histograms, as the verdict would (``None`` when too few samples give
    none). Metrics that describe the run itself get their value as a zero-width interval.
    """
    saved = {(o.metric, o.endpoint or ALL_ENDPOINTS): (o.low, o.high) for o in results.objectives
             if o.vs is None and o.low is not None and o.high is not None}
    confidence = results.saved.limits.confidence
    measured = Measured(latency=unseries(results.histograms.latency),
                        duration_s=results.duration_s, error_ranges=results.saved.error_ranges,
                        ok_outcomes=results.saved.ok_outcomes)
    versions = split_versions(measured)
    candidate = scopes(versions.get("candidate") or versions.get(None) or measured)
    out: dict[str, tuple[float, float] | None] = {}
    custom = custom_values(results)
    for t in tracks:
        if t.metric in custom:  # a point value from the metrics store
            value = custom[t.metric]
            out[t.label] = None if value is None else (value, value)
            continue
        if (t.metric, t.endpoint) in saved:
            out[t.label] = saved[(t.metric, t.endpoint)]
            continue
        evidence = evidence_for(t.metric, candidate.get(t.endpoint),
                                results.metrics.get(t.endpoint, {}), confidence)
        out[t.label] = evidence.interval
    return out


def reference_runs(earlier: Sequence[RunPoint], policy: DriftPolicy) -> tuple[RunPoint, ...]:
    """Return the last ``policy.against`` earlier runs whose verdict counts for the reference."""
    eligible = [r for r in earlier if r.verdict in policy.reference_verdicts]
    return tuple(eligible[-policy.against:])


def _aggregate(values: Sequence[float], how: str) -> float:
    return statistics.median(values) if how == "median" else statistics.fmean(values)


def bound_of(metric: str, reference: float, policy: DriftPolicy) -> float | None:
    """Return the value past which ``metric`` is worse than ``reference`` by the tolerance;
    None for metrics with no bad direction (counts)."""
    worse_up = higher_is_worse(metric)
    if worse_up is None:
        return None
    if not worse_up:
        return reference * (1.0 - policy.tolerance)
    bound = reference * (1.0 + policy.tolerance)
    ratio = kind_of(metric) is MetricKind.RATIO
    return max(bound, reference + policy.ratio_slack) if ratio else bound


def check_metric(track: Track, newest: float | None, interval: tuple[float, float] | None,
                 past: Sequence[float | None], policy: DriftPolicy) -> MetricCheck:
    """Return the drift check of one metric: ``newest`` and its interval against the aggregate
    of ``past`` (the reference runs' values, None where a run has none)."""
    values = [v for v in past if v is not None]
    base: dict[str, Any] = {"metric": track.metric, "endpoint": track.endpoint, "newest": newest,
            "interval": interval}
    if len(values) < policy.needed:
        return MetricCheck(**base, reference=None, change_pct=None, bound=None,
                           state=CheckState.NO_REFERENCE,
                           why=f"{len(values)} reference value(s), need {policy.needed}+")
    reference = _aggregate(values, policy.aggregate)
    if newest is None:
        return MetricCheck(**base, reference=reference, change_pct=None, bound=None,
                           state=CheckState.NO_DATA, why="no data in the newest run")
    change = (newest - reference) / reference * 100 if reference else None
    bound = bound_of(track.metric, reference, policy)
    state, why = _judge(track.metric, newest, interval, reference, bound, policy)
    return MetricCheck(**base, reference=reference, change_pct=change, bound=bound, state=state,
                       why=why)


def _judge(metric: str, newest: float, interval: tuple[float, float] | None, reference: float,
           bound: float | None, policy: DriftPolicy) -> tuple[CheckState, str]:
    """Return the state and its one-line reason (see the module docstring for the guard)."""
    value = format_value(metric, newest)
    if bound is None and kind_of(metric) is None:
        return CheckState.OK, f"{value}; a custom metric: tracked, not judged for drift"
    if bound is None:
        return CheckState.OK, f"{value}; counts have no bad direction"
    worse_up = bool(higher_is_worse(metric))
    slack = kind_of(metric) is MetricKind.RATIO and bound > reference * (1.0 + policy.tolerance)
    margin = f"{policy.ratio_slack * 100:g} pp" if slack else f"{policy.tolerance:.0%}"
    limit = (f"the bound {format_value(metric, bound)} ({policy.aggregate} "
             f"{format_value(metric, reference)} {'+' if worse_up else '-'} {margin})")
    if not (newest > bound if worse_up else newest < bound):
        return CheckState.OK, f"{value} is within {limit}"
    word = "above" if worse_up else "below"
    if interval is None:
        return CheckState.UNCERTAIN, (f"{value} is {word} {limit}, but the run has too few "
                                      "samples for an interval")
    low, high = interval
    span = "exact" if low == high else \
        f"interval {format_value(metric, low)}..{format_value(metric, high)}"
    if (low > bound) if worse_up else (high < bound):
        return CheckState.REGRESSED, f"{value} ({span}) is wholly {word} {limit}"
    return CheckState.UNCERTAIN, (f"{value} is {word} {limit}, but its {span} is not wholly "
                                  f"{word} it: could be noise")


def _no_reference_line(count: int, policy: DriftPolicy) -> str:
    kinds = "/".join(policy.reference_verdicts)
    return (f"no reference: {count} earlier {kinds} run{'' if count == 1 else 's'}, "
            f"need {policy.needed}+")


def detect_drift(runs: Sequence[RunPoint], tracks: Sequence[Track],
                 intervals: Mapping[str, tuple[float, float] | None],
                 policy: DriftPolicy = DriftPolicy()) -> Drift:
    """Return the drift of the last of ``runs`` (oldest first) against the runs before it;
    ``intervals`` are the newest run's, by label (see :func:`intervals_of`)."""
    if not runs:
        raise ValueError("detect_drift needs at least one run")
    newest, earlier = runs[-1], runs[:-1]
    refs = reference_runs(earlier, policy)
    checks = tuple(check_metric(t, newest.values.get(t.label), intervals.get(t.label),
                                [r.values.get(t.label) for r in refs], policy) for t in tracks)
    change = VerdictChange(previous=earlier[-1].verdict, newest=newest.verdict) if earlier else None
    return Drift(newest=newest, reference_runs=refs, policy=policy, checks=checks,
                 verdict_change=change,
                 no_reference=_no_reference_line(len(refs), policy) if len(refs) < policy.needed
                 else None)


def history_of(runs: Sequence[tuple[Results, str]], *, name: str | None = None,
               policy: DriftPolicy = DriftPolicy()) -> History:
    """Return the history of experiment ``name`` (default: the newest run's) among ``runs``
    (documents with where each came from); ValueError when there is no run of that name."""
    chosen, others = choose_name([r for r, _ in runs], name)
    mine = sorted(((r, s) for r, s in runs if r.name == chosen),
                  key=lambda item: (start_of(item[0], item[1]), item[1]))
    if not mine:
        raise ValueError(f"no run named {chosen!r}" if chosen else "no runs")
    newest = mine[-1][0]
    tracks = tracks_of(newest)
    points = tuple(run_point(r, tracks, s) for r, s in mine)
    drift = detect_drift(points, tracks, intervals_of(newest, tracks), policy)
    return History(name=newest.name, runs=points, tracks=tracks, drift=drift, other_names=others)


def trend_frame(history: History) -> pd.DataFrame:
    """Return one row per run (newest last): start time, verdict and each tracked metric."""
    rows = [{"start_time": p.start_time, "verdict": p.verdict,
             **{t.label: p.values.get(t.label) for t in history.tracks}} for p in history.runs]
    frame = pd.DataFrame(rows, columns=["start_time", "verdict", *(t.label for t in history.tracks)])
    return frame.set_index("start_time")
