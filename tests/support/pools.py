"""A worker pool in this process: the real ``LoadWorker`` of every plan, each on its own thread
(its own uvloop), from one common start, merged as the coordinator merges Ray's. For tests that
run whole experiments (several in a row, as ``--find-max-rate`` does) without Ray's start-up."""

from __future__ import annotations

import time
from collections.abc import Sequence

from coordinator.supervisor import MergedRun, merge_outcomes
from workers.load_worker import LoadWorker, WorkerReport
from workers.plan import WorkerPlan
from workers.recorder import Window


class InProcessPool:
    """Runs plans on LoadWorkers in threads; ``run`` returns the merged run."""

    def run(self, plans: Sequence[WorkerPlan]) -> MergedRun:
        """Start every plan 0.2 s from now and return the merged run once all are done."""
        workers = [LoadWorker(plan) for plan in plans]
        start = time.time() + 0.2
        for worker in workers:
            worker.start(start)
        return merge_outcomes([_report(worker) for worker in workers])


def _report(worker: LoadWorker) -> WorkerReport:
    windows: list[Window] = []
    while True:
        snapshot = worker.poll(timeout_s=60.0)
        windows.extend(snapshot.windows)
        if snapshot.final is not None:
            return WorkerReport(**{**{f: getattr(snapshot.final, f) for f in (
                "worker_index", "host", "pid", "started_at", "measured_s", "warmup_requests",
                "unsent", "node_id", "stopped_early")}, "windows": tuple(windows)})
