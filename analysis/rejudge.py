"""Re-judging a saved run against other objectives, without sending a request.

Everything the verdict needs is in ``results.json``: the merged histograms (exact, encoded), the
measured duration, the error ranges (in the echoed spec), the windows' generator health and the
custom metrics' values as read at the end of the run (never queried again).
"""

from __future__ import annotations

from collections.abc import Sequence

from analysis.judging import WindowHealth, objective_results, run_health
from analysis.metrics import Measured
from analysis.results import Results, clean_metrics, unseries
from analysis.stages import judge_all
from analysis.verdict import Limits, Slo
from workers.histogram import Histogram


def rejudge(results: Results, objectives: Sequence[Slo], limits: Limits) -> Results:
    """Return a copy of ``results`` judged against ``objectives`` with ``limits``.

    The run's own broken-ness (lost workers, aborted) carries over: a broken run stays INVALID.
    """
    saved = results.saved
    measured = Measured(latency=unseries(results.histograms.latency),
                        duration_s=results.duration_s, error_ranges=saved.error_ranges,
                        ok_outcomes=saved.ok_outcomes)
    window_s = saved.window_s or 1.0
    health = run_health(
        lost=((w.index, w.reason or "") for w in results.workers if w.status == "lost"),
        aborted=results.aborted,
        gaps=((g.worker, g.lost_at_s, g.resumed_at_s) for g in results.gaps),
        windows=(WindowHealth(scheduled=w.scheduled, sent=w.sent, lag=Histogram.decode(w.lag),
                              cpu_s=w.cpu_s) for w in results.windows),
        window_s=window_s)
    judged, stages = judge_all(objectives, measured, health, limits, results.windows,
                               results.spec, custom=[c.reading() for c in results.custom_metrics])
    return results.model_copy(update={
        "metrics": clean_metrics(judged.table.to_dict(orient="index")),
        "comparison": judged.comparison,
        "objectives": objective_results(judged.verdict),
        "verdict": judged.verdict.verdict.value,
        "reasons": list(judged.verdict.reasons),
        "stages": stages,
    })
