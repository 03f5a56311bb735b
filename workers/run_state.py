"""What both load engines share: :func:`pacer_for` (an open-model plan's pacer) and
:class:`RunState` (stop times, the endpoint picker, counters, recording one result).

The engines are :class:`workers.load_worker.AiohttpLoop` (a coroutine per request) and the two in
:mod:`workers.raw_engine`; each subclasses :class:`RunState`. This module imports neither, so the
engines and the worker that chooses between them import it without a loop.
"""

from __future__ import annotations

import time

from workers.pacer import Pacer, make_pacer, make_picker
from workers.plan import WorkerPlan
from workers.recorder import Recorder
from workers.user_stages import UserStages


def pacer_for(plan: WorkerPlan) -> Pacer:
    """Return the pacer of an open-model plan (its share of the global schedule)."""
    rate = plan.schedule_rate_rps or (plan.rate_rps or 0.0) * plan.worker_count
    return make_pacer(rate_rps=rate, worker_index=plan.worker_index,
                      worker_count=plan.worker_count, arrival=plan.arrival, seed=plan.seed,
                      ramp_s=plan.ramp_s, ramp_from_rps=plan.ramp_from_rps,
                      ramp_to_rps=plan.ramp_to_rps, stages=plan.stages)


class RunState:
    """What both engines track: stop times, the endpoint picker, counters, recording one result."""

    def __init__(self, plan: WorkerPlan, recorder: Recorder, start_ns: int) -> None:
        self.plan = plan
        self.recorder = recorder
        self.start_ns = start_ns
        self.picker = make_picker([t.weight for t in plan.requests], plan.versions)
        self.hard_stop_ns = start_ns + int(plan.max_duration_s * 1e9)
        self.schedule_end_ns = (
            start_ns + int((plan.excluded_s + plan.duration_s) * 1e9)
            if plan.duration_s is not None else self.hard_stop_ns
        )
        warmup = plan.warmup_requests
        self.limit = None if plan.request_limit is None else plan.request_limit + warmup
        self.unsent = 0
        self.in_flight = 0
        self.measured_end_ns = start_ns
        self.user_stages = UserStages.of(plan.user_stages)  # closed model: users per stage

    def stop(self) -> None:
        """End the schedule now: nothing new is sent; requests in flight finish or time out."""
        self.schedule_end_ns = min(self.schedule_end_ns, time.monotonic_ns())

    def finish(self, seq: int, code: int, intended_ns: int, sent_ns: int, done_ns: int) -> None:
        """Record request ``seq`` (absolute monotonic ns), or count it as warm-up."""
        if seq < self.plan.warmup_requests:
            self.recorder.warmup_count += 1
            return
        base = self.start_ns
        self.recorder.record(code, intended_ns - base, sent_ns - base, done_ns - base)
        if done_ns > self.measured_end_ns:
            self.measured_end_ns = done_ns

    def count_unsent(self, pacer: Pacer, launched: int) -> None:
        """Count (and record) requests due before the stop that were never sent."""
        stop_ns = min(self.hard_stop_ns, self.schedule_end_ns)
        due = pacer.due((stop_ns - self.start_ns) / 1e9 - 1e-9)
        if self.limit is not None:
            due = min(due, self.limit)
        for k in range(launched, due):
            self.recorder.unsent(int(pacer.intended_s(k) * 1e9))
        self.unsent = max(0, due - launched)
