"""One experiment from spec to results: plan, load on a worker pool, merge, judge, document.

``run_experiment`` does the I/O (the pool, the clock); ``build_results`` is pure: given the spec
and the run the pool merged as windows arrived (:class:`~coordinator.supervisor.MergedRun`), it
computes the metrics table, judges the objectives and returns the
:class:`~analysis.results.Results` document.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from analysis.catalog import DEFAULT_OK_OUTCOMES, percentile_of
from analysis.compare import split_versions
from analysis.custom import Reading
from analysis.judging import WindowHealth, objective_results, run_health
from analysis.merge import FinalWindow
from analysis.metrics import Measured, metrics_table
from analysis.results import (
    CustomMetricResult,
    GapResult,
    Histograms,
    Results,
    Series,
    WindowResult,
    WorkerResult,
    clean_metrics,
    series,
)
from analysis.stages import judge_all
from coordinator.grpc_spec import ResolvedGrpc
from coordinator.spec import ExperimentSpec
from coordinator.split import worker_plans
from coordinator.supervisor import MergedRun, WorkerSummary, merge_outcomes
from workers.load_worker import WorkerReport
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
    """Runs worker plans somewhere (Ray in production) and returns the run, merged."""

    def run(self, plans: Sequence[WorkerPlan]) -> MergedRun: ...


def run_experiment(
    spec: ExperimentSpec, pool: WorkerPool, *, base_dir: Path = Path("."),
    log: Callable[[str], None] = lambda _m: None, one_version_as_both: bool = False,
) -> Results:
    """Run the spec's load on ``pool`` and return the judged results document."""
    plans = worker_plans(spec, base_dir, grpc_schema_of(spec, base_dir))
    load = spec.load
    shape = f"{load.rate:g} req/s" if load.rate else f"{load.concurrency} users"
    stop = " or ".join(x for x in (
        f"{load.duration:g} s" if load.duration else "",
        f"{load.requests} requests" if load.requests else "") if x)
    log(f"loading {spec.target_url} with {shape} for {stop} on {len(plans)} worker(s)")
    started = datetime.now(UTC)
    merged = pool.run(plans)
    ended = datetime.now(UTC)
    for reason in stopped_early(merged):
        log(f"stopped early: {reason}")
    log("load finished; judging")
    custom: list[Reading] = []
    if spec.metrics is not None:
        from coordinator.custom_metrics import read_metrics

        start_s, end_s = measured_phase(merged, ended.timestamp())
        log(f"reading {len(spec.metrics.custom)} custom metric(s) over the measured phase "
            f"({end_s - start_s:.1f} s)")
        custom = read_metrics(spec, start_s, end_s, base_dir=base_dir)
    return build_results(spec, merged, started=started, ended=ended,
                         one_version_as_both=one_version_as_both, custom=custom)


def measured_phase(run: MergedRun, ended_s: float) -> tuple[float, float]:
    """Return the measured phase as unix seconds [start, end]: from the common start plus
    warm-up and ramp, for the measured duration (without the pool's start time: the
    ``measured_s`` that ended at ``ended_s``)."""
    start = run.measured_from if run.measured_from is not None else ended_s - run.measured_s
    return start, start + run.measured_s


def grpc_schema_of(spec: ExperimentSpec, base_dir: Path) -> ResolvedGrpc | None:
    """Return the gRPC endpoints' schema, checked (protobuf is imported only for them)."""
    if spec.grpc is None:
        return None
    from coordinator.grpc_schema import resolve_grpc

    return resolve_grpc(spec, base_dir)


def stopped_early(run: MergedRun) -> list[str]:
    """Return the distinct reasons workers gave for ending their load by themselves (a target
    that refused every connection in the first second), in worker order."""
    return list(dict.fromkeys(w.stopped_early for w in run.workers if w.stopped_early))


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_results(
    spec: ExperimentSpec, run: MergedRun | Sequence[WorkerReport | WorkerLostLike], *,
    started: datetime, ended: datetime, aborted: bool = False, gaps: Sequence[GapLike] = (),
    one_version_as_both: bool = False, custom: Sequence[Reading] = (),
) -> Results:
    """Return the results document: merged histograms, metrics, verdicts (pure).

    ``run`` is what the pool merged as the windows arrived (:class:`MergedRun`: its gaps and
    abort are the run's own), or whole worker reports, merged here the same way, with
    ``aborted`` and ``gaps`` given. A lost worker's windows (those it handed over before it was
    lost) are kept and merged: nothing measured is thrown away, and the run's verdict says it
    is INVALID anyway. The duration is the measured one: an aborted run's is cut at the abort.
    """
    if not isinstance(run, MergedRun):
        run = merge_outcomes(run, aborted=aborted, gaps=gaps)
    early = stopped_early(run)
    aborted = run.aborted or bool(early)  # a run its workers ended early is judged as one stopped
    ok = spec.grpc.ok_outcomes() if spec.grpc else DEFAULT_OK_OUTCOMES
    measured = Measured(latency=run.latency, duration_s=run.measured_s,
                        error_ranges=spec.error_ranges, ok_outcomes=ok)
    health = run_health(
        lost=((w.index, w.reason or "lost") for w in run.workers if w.status == "lost"),
        aborted=aborted,
        gaps=((g.worker_index, g.lost_at_s, g.resumed_at_s) for g in run.gaps),
        windows=(WindowHealth(scheduled=w.scheduled, sent=w.sent, lag=w.lag, cpu_s=w.cpu_s)
                 for w in run.windows), window_s=spec.load.window)
    objectives = [o.to_core() for o in spec.objectives]
    windows = [_window_result(w) for w in run.windows]
    spec_doc = spec.model_dump(mode="json", by_alias=True)
    judged, stages = judge_all(objectives, measured, health, spec.analysis.to_core(), windows,
                               spec_doc, custom=custom)
    table, verdict = judged.table, judged.verdict
    service_versions = split_versions(Measured(latency=run.service, duration_s=run.measured_s,
                                               error_ranges=spec.error_ranges, ok_outcomes=ok))
    service_candidate = (service_versions.get("candidate") or service_versions.get(None)
                         or Measured(latency={}, duration_s=run.measured_s))
    service_table = metrics_table(
        service_candidate,
        [q for q in (percentile_of(o.metric) for o in objectives) if q is not None])
    return Results(
        name=spec.name,
        spec=spec_doc,
        start_time=_iso(started),
        end_time=_iso(ended),
        duration_s=run.measured_s,
        aborted=aborted,
        gaps=[GapResult(worker=g.worker_index, lost_at_s=g.lost_at_s, resumed_at_s=g.resumed_at_s)
              for g in run.gaps],
        workers=[_worker_result(w, measured) for w in run.workers],
        histograms=Histograms(latency=series(dict(run.latency)),
                              service=series(dict(run.service))),
        windows=windows,
        metrics=clean_metrics(table.to_dict(orient="index")),
        service_metrics=clean_metrics(
            service_table[[c for c in service_table.columns if c.startswith("latency-")]]
            .to_dict(orient="index")),
        baseline_metrics=(clean_metrics(judged.baseline_table.to_dict(orient="index"))
                          if judged.baseline_table is not None else {}),
        comparison=judged.comparison,
        aa=one_version_as_both,
        objectives=objective_results(verdict),
        custom_metrics=_custom_results(spec, custom),
        verdict=verdict.verdict.value,
        reasons=[f"stopped early: {reason}" for reason in early] + list(verdict.reasons),
        stages=stages,
    )


def _custom_results(spec: ExperimentSpec,
                    readings: Sequence[Reading]) -> list[CustomMetricResult]:
    """Return the readings as results entries, with how each metric was declared."""
    if spec.metrics is None:
        return []
    declared = {m.name: m for m in spec.metrics.custom}
    out = []
    for reading in readings:
        metric = declared[reading.name]
        out.append(CustomMetricResult(
            name=reading.name, version=reading.version,
            provider=spec.metrics.provider_of(metric).name, query=reading.query,
            unit=reading.unit, mode=metric.mode, reduce=metric.reduce or "last",
            value=reading.value, points=list(reading.points), labels=dict(reading.labels),
            error=reading.error, note=reading.note))
    return out


def _worker_result(worker: WorkerSummary, measured: Measured) -> WorkerResult:
    errors = sum(n for (_, outcome), n in worker.counts.items() if measured.is_error(outcome))
    if worker.status == "lost":
        return WorkerResult(index=worker.index, status="lost", reason=worker.reason,
                            host=worker.host, node=worker.node_id, requests=worker.requests,
                            errors=errors)
    return WorkerResult(index=worker.index, host=worker.host, pid=worker.pid, node=worker.node_id,
                        requests=worker.requests, errors=errors,
                        warmup_requests=worker.warmup_requests, unsent=worker.unsent,
                        reason=worker.stopped_early)


def _window_result(window: FinalWindow) -> WindowResult:
    def encoded(items: Sequence[tuple[tuple[str, str], int, str]]) -> list[Series]:
        return [Series(endpoint=e, outcome=o, count=n, hdr=hdr) for (e, o), n, hdr in items]

    return WindowResult(
        index=window.index, start_s=window.start_s, scheduled=window.scheduled, sent=window.sent,
        cpu_s=window.cpu_s, in_flight_max=window.in_flight_max, lag=window.lag_hdr,
        latency=encoded(window.latency), service=encoded(window.service),
    )
