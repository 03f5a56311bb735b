"""One experiment from spec to results: plan, load on a worker pool, merge, judge, document.

``run_experiment`` does the I/O (the pool, the clock); ``build_results`` is pure: given the spec
and what the workers returned, it merges, computes the metrics table, judges the objectives and
returns the :class:`~analysis.results.Results` document.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from analysis.merge import merge_windows, totals
from analysis.metrics import Measured, metrics_table
from analysis.catalog import percentile_of
from analysis.results import (
    GapResult,
    Histograms, Results, WindowResult, WorkerResult, clean_metrics, series,
)
from analysis.compare import split_versions
from analysis.judging import WindowHealth, judge_measured, objective_results, run_health
from coordinator.plan import worker_plans
from coordinator.spec import ExperimentSpec
from workers.engine import WorkerReport
from workers.plan import WorkerPlan
from workers.recorder import Window


class WorkerLostLike(Protocol):
    worker_index: int
    reason: str
    windows: tuple[Window, ...]
    host: str | None


class GapLike(Protocol):
    worker_index: int
    lost_at_s: float
    resumed_at_s: float | None


class WorkerPool(Protocol):
    """Runs worker plans somewhere (Ray in production) and returns reports or losses."""

    def run(self, plans: Sequence[WorkerPlan]) -> list[WorkerReport | WorkerLostLike]: ...


def run_experiment(
    spec: ExperimentSpec, pool: WorkerPool, *, base_dir: Path = Path("."),
    log: Callable[[str], None] = lambda _m: None, aa: bool = False,
) -> Results:
    """Run the spec's load on ``pool`` and return the judged results document."""
    plans = worker_plans(spec, base_dir)
    load = spec.load
    shape = f"{load.rate:g} req/s" if load.rate else f"{load.concurrency} users"
    stop = " or ".join(x for x in (
        f"{load.duration:g} s" if load.duration else "",
        f"{load.requests} requests" if load.requests else "") if x)
    log(f"loading {spec.target_url} with {shape} for {stop} on {len(plans)} worker(s)")
    started = datetime.now(timezone.utc)
    outcomes = pool.run(plans)
    ended = datetime.now(timezone.utc)
    for reason in stopped_early(outcomes):
        log(f"stopped early: {reason}")
    log("load finished; merging and judging")
    return build_results(spec, outcomes, started=started, ended=ended,
                         aborted=getattr(pool, "aborted", False), gaps=getattr(pool, "gaps", ()),
                         aa=aa)


def stopped_early(outcomes: Sequence[WorkerReport | WorkerLostLike]) -> list[str]:
    """Return the distinct reasons workers gave for ending their load by themselves (a target
    that refused every connection in the first second), in worker order."""
    reasons = (o.stopped_early for o in outcomes if isinstance(o, WorkerReport))
    return list(dict.fromkeys(r for r in reasons if r))


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_results(
    spec: ExperimentSpec, outcomes: Sequence[WorkerReport | WorkerLostLike], *,
    started: datetime, ended: datetime, aborted: bool = False, gaps: Sequence[GapLike] = (),
    aa: bool = False,
) -> Results:
    """Return the results document: merged histograms, metrics, verdicts (pure).

    A lost worker's windows (those it handed over before it was lost) are kept and merged:
    nothing measured is thrown away, and the run's verdict says it is INVALID anyway.
    """
    reports = [o for o in outcomes if isinstance(o, WorkerReport)]
    lost = [o for o in outcomes if not isinstance(o, WorkerReport)]
    early = stopped_early(outcomes)
    aborted = aborted or bool(early)  # a run its workers ended early is judged as one stopped
    windows = merge_windows([*(r.windows for r in reports),
                             *(getattr(w, "windows", ()) for w in lost)])
    latency, service = totals(windows), totals(windows, corrected=False)
    measured = Measured(latency=latency, duration_s=max((r.measured_s for r in reports), default=0.0),
                        error_ranges=spec.error_ranges)
    health = run_health(
        lost=((w.worker_index, w.reason) for w in lost), aborted=aborted,
        gaps=((g.worker_index, g.lost_at_s, g.resumed_at_s) for g in gaps),
        windows=(WindowHealth(scheduled=w.scheduled, sent=w.sent, lag=w.lag, cpu_s=w.cpu_s)
                 for w in windows), window_s=spec.load.window)
    objectives = [o.to_core() for o in spec.objectives]
    judged = judge_measured(objectives, measured, health, spec.analysis.to_core())
    table, verdict = judged.table, judged.verdict
    service_versions = split_versions(Measured(latency=service, duration_s=measured.duration_s,
                                               error_ranges=spec.error_ranges))
    service_candidate = (service_versions.get("candidate") or service_versions.get(None)
                         or Measured(latency={}, duration_s=measured.duration_s))
    service_table = metrics_table(
        service_candidate,
        [q for q in (percentile_of(o.metric) for o in objectives) if q is not None])
    return Results(
        name=spec.name,
        spec=spec.model_dump(mode="json", by_alias=True),
        start_time=_iso(started),
        end_time=_iso(ended),
        duration_s=measured.duration_s,
        aborted=aborted,
        gaps=[GapResult(worker=g.worker_index, lost_at_s=g.lost_at_s, resumed_at_s=g.resumed_at_s)
              for g in gaps],
        workers=_worker_results(reports, lost, measured),
        histograms=Histograms(latency=series(latency), service=series(service)),
        windows=[_window_result(w) for w in windows],
        metrics=clean_metrics(table.to_dict(orient="index")),
        service_metrics=clean_metrics(
            service_table[[c for c in service_table.columns if c.startswith("latency-")]]
            .to_dict(orient="index")),
        baseline_metrics=(clean_metrics(judged.baseline_table.to_dict(orient="index"))
                          if judged.baseline_table is not None else {}),
        comparison=judged.comparison,
        aa=aa,
        objectives=objective_results(verdict),
        verdict=verdict.verdict.value,
        reasons=[f"stopped early: {reason}" for reason in early] + list(verdict.reasons),
    )


def _worker_results(reports: Sequence[WorkerReport], lost: Sequence[WorkerLostLike],
                    measured: Measured) -> list[WorkerResult]:
    rows = []
    for report in reports:
        hists = totals(report.windows)
        rows.append(WorkerResult(
            index=report.worker_index, host=report.host, pid=report.pid, node=report.node_id,
            requests=sum(h.total for h in hists.values()),
            errors=sum(h.total for (_, o), h in hists.items() if measured.is_error(o)),
            warmup_requests=report.warmup_requests, unsent=report.unsent,
            reason=report.stopped_early,
        ))
    for worker in lost:
        hists = totals(getattr(worker, "windows", ()))
        rows.append(WorkerResult(
            index=worker.worker_index, status="lost", reason=worker.reason,
            host=getattr(worker, "host", None), node=getattr(worker, "node_id", None),
            requests=sum(h.total for h in hists.values()),
            errors=sum(h.total for (_, o), h in hists.items() if measured.is_error(o)),
        ))
    return sorted(rows, key=lambda row: row.index)


def _window_result(window) -> WindowResult:  # type: ignore[no-untyped-def]
    return WindowResult(
        index=window.index, start_s=window.start_s, scheduled=window.scheduled, sent=window.sent,
        cpu_s=window.cpu_s, in_flight_max=window.in_flight_max, lag=window.lag.encode(), latency=series(dict(window.latency)),
        service=series(dict(window.service)),
    )
