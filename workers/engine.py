"""``LoadWorker``: runs one plan against a ``Sender`` and returns windows of histograms.

A plain class (the coordinator wraps it with ``ray.remote``). ``run`` blocks: it runs its own event
loop (uvloop when available), waits for the common start time, sends the load, and returns a
:class:`WorkerReport`. Every loop is bounded twice: by the plan's stop condition and by
``max_duration_s``; after the schedule ends, outstanding requests get at most ``timeout_s``.

Open model: at each wake-up the engine launches every request that is due by now (the pacer says
how many), so a late wake-up sends a burst rather than silently shifting the schedule, and each
request's latency counts from its intended time. At ``max_in_flight`` outstanding requests it
waits for one to finish; the schedule keeps running and the delay shows up as schedule lag.
Closed model: ``concurrency`` users send back to back.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from workers.pacer import Pacer, WeightedPicker, make_pacer
from workers.plan import WorkerPlan
from workers.recorder import Recorder, Window
from workers.transport import Sender

SenderFactory = Callable[[WorkerPlan], Sender]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerReport:
    """What one worker measured: its windows, plus counts that are not in any window."""

    worker_index: int
    host: str
    pid: int
    started_at: float  # unix time of the common start
    measured_s: float  # length of the measured phase (warm-up excluded)
    windows: tuple[Window, ...]
    warmup_requests: int
    unsent: int  # due but never sent because the hard stop came first


def _new_runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def default_sender(plan: WorkerPlan) -> Sender:
    """Return the default transport for a plan (aiohttp for now)."""
    from workers.transport_aiohttp import AiohttpSender

    connections = plan.max_in_flight if plan.model == "open" else plan.concurrency
    return AiohttpSender(plan.requests, timeout_s=plan.timeout_s, connections=min(connections, 1024))


class LoadWorker:
    """Sends one worker's share of the load. Plain class; ``ray.remote`` is applied elsewhere.

    Example::

        report = LoadWorker(plan).run(start_at=time.time() + 0.5)
    """

    def __init__(self, plan: WorkerPlan, sender_factory: SenderFactory | None = None) -> None:
        self.plan = plan
        self._sender_factory = sender_factory or default_sender

    def ready(self) -> dict[str, object]:
        """Return where this worker runs (host and pid); the coordinator waits on it."""
        return {"host": socket.gethostname(), "pid": os.getpid()}

    def run(self, start_at: float) -> WorkerReport:
        """Run the plan from unix time ``start_at``; return the report when it is done.

        The load runs on a fresh event loop (uvloop when available) in a thread of its own, so
        the caller may itself be inside an event loop (as Ray's actor threads are).
        """
        box: dict[str, object] = {}

        def target() -> None:
            try:
                with _new_runner() as runner:
                    box["report"] = runner.run(self._run(start_at))
            except BaseException as exc:  # re-raised in the caller's thread
                box["error"] = exc

        thread = threading.Thread(target=target, name=f"load-worker-{self.plan.worker_index}")
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box["report"]  # type: ignore[return-value]

    async def _run(self, start_at: float) -> WorkerReport:
        plan = self.plan
        delay = max(0.0, start_at - time.time())
        start_ns = time.monotonic_ns() + int(delay * 1e9)
        recorder = Recorder(window_s=plan.window_s, warmup_ns=int(plan.excluded_s * 1e9))
        sender = self._sender_factory(plan)
        try:
            await asyncio.sleep(delay)
            if plan.model == "open":
                run = _OpenLoop(plan, sender, recorder, start_ns)
            else:
                run = _ClosedLoop(plan, sender, recorder, start_ns)
            await run.go()
        finally:
            await sender.aclose()
        return WorkerReport(
            worker_index=plan.worker_index,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=start_at,
            measured_s=_measured_s(plan, run.measured_end_ns - start_ns),
            windows=tuple(recorder.close()),
            warmup_requests=recorder.warmup_count,
            unsent=run.unsent,
        )


def _measured_s(plan: WorkerPlan, last_done_s_ns: int) -> float:
    """Return the measured phase length: the planned duration, or until the last request ended."""
    ran_s = max(0.0, last_done_s_ns / 1e9 - plan.excluded_s)
    if plan.duration_s is not None and (plan.request_limit is None or ran_s >= plan.duration_s):
        return plan.duration_s
    return ran_s


class _Loop:
    """State shared by both load models: counters, picker, deadline, recording of one request."""

    def __init__(self, plan: WorkerPlan, sender: Sender, recorder: Recorder, start_ns: int) -> None:
        self.plan = plan
        self.sender = sender
        self.recorder = recorder
        self.start_ns = start_ns
        self.picker = WeightedPicker([t.weight for t in plan.requests])
        self.labels = [t.label for t in plan.requests]
        self.hard_stop_ns = start_ns + int(plan.max_duration_s * 1e9)
        self.schedule_end_ns = (
            start_ns + int((plan.excluded_s + plan.duration_s) * 1e9)
            if plan.duration_s is not None else self.hard_stop_ns
        )
        warmup = plan.warmup_requests
        self.limit = None if plan.request_limit is None else plan.request_limit + warmup
        self.unsent = 0
        self.measured_end_ns = start_ns

    async def one(self, seq: int, intended_ns: int) -> None:
        """Send request ``seq`` intended at ``intended_ns`` and record what happened."""
        endpoint = self.picker.pick()
        outcome, sent_ns = await self.sender.send(endpoint)
        done_ns = time.monotonic_ns()
        warmup = seq < self.plan.warmup_requests
        base = self.start_ns
        self.recorder.scheduled(intended_ns - base, sent_ns - base, warmup=warmup)
        self.recorder.record(
            self.labels[endpoint], outcome, intended_ns=intended_ns - base,
            sent_ns=sent_ns - base, done_ns=done_ns - base, warmup=warmup,
        )
        if not warmup and done_ns > self.measured_end_ns:
            self.measured_end_ns = done_ns


class _OpenLoop(_Loop):
    async def go(self) -> None:
        plan = self.plan
        pacer = pacer_for(plan)
        in_flight: set[asyncio.Task[None]] = set()
        launched = 0
        while True:
            now_ns = time.monotonic_ns()
            if now_ns >= self.hard_stop_ns:
                break
            due = pacer.due((now_ns - self.start_ns) / 1e9)
            if self.limit is not None:
                due = min(due, self.limit)
            while launched < due:
                intended_ns = self.start_ns + int(pacer.intended_s(launched) * 1e9)
                if intended_ns >= self.schedule_end_ns:
                    break
                if len(in_flight) >= plan.max_in_flight:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                task = asyncio.ensure_future(self.one(launched, intended_ns))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                launched += 1
            next_ns = self.start_ns + int(pacer.intended_s(launched) * 1e9)
            if (self.limit is not None and launched >= self.limit) or next_ns >= self.schedule_end_ns:
                break
            await asyncio.sleep(max(0.0, (next_ns - time.monotonic_ns()) / 1e9))
        await _finish(in_flight, self.plan.timeout_s)
        self.unsent = _count_unsent(self, pacer, launched)


def pacer_for(plan: WorkerPlan) -> Pacer:
    """Return the pacer of an open-model plan (its share of the global schedule)."""
    rate = plan.schedule_rate_rps or (plan.rate_rps or 0.0) * plan.worker_count
    return make_pacer(rate_rps=rate, worker_index=plan.worker_index,
                      worker_count=plan.worker_count, arrival=plan.arrival, seed=plan.seed,
                      ramp_s=plan.ramp_s, ramp_from_rps=plan.ramp_from_rps,
                      ramp_to_rps=plan.ramp_to_rps)


def _count_unsent(loop: _Loop, pacer: Pacer, launched: int) -> int:
    """Return (and record) the requests that were due before the hard stop but never sent."""
    stop_ns = min(loop.hard_stop_ns, loop.schedule_end_ns)
    due = pacer.due((stop_ns - loop.start_ns) / 1e9 - 1e-9)
    if loop.limit is not None:
        due = min(due, loop.limit)
    for k in range(launched, due):
        loop.recorder.unsent(int(pacer.intended_s(k) * 1e9))
    return max(0, due - launched)


async def _finish(in_flight: set[asyncio.Task[None]], timeout_s: float) -> None:
    """Wait for outstanding requests, at most one request timeout (plus slack), then cancel."""
    if not in_flight:
        return
    _, pending = await asyncio.wait(set(in_flight), timeout=timeout_s + 1.0)
    for task in pending:
        task.cancel()


class _ClosedLoop(_Loop):
    async def go(self) -> None:
        self.seq = 0
        users = [asyncio.ensure_future(self._user()) for _ in range(self.plan.concurrency)]
        await asyncio.gather(*users)

    async def _user(self) -> None:
        while True:
            now_ns = time.monotonic_ns()
            if now_ns >= self.schedule_end_ns or now_ns >= self.hard_stop_ns:
                return
            if self.limit is not None and self.seq >= self.limit:
                return
            seq = self.seq
            self.seq += 1
            await self.one(seq, now_ns)
            if self.plan.think_s:
                await asyncio.sleep(self.plan.think_s)
