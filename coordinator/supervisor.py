"""Supervision of one distributed run, without Ray: loss, silence, replacement, gaps, the live
view and the streaming merge, as a plain object fed events and the time.

The Ray adapter (:class:`coordinator.ray_pool.RayPool`) carries messages: it tells the
:class:`Supervisor` what happened (a snapshot came, a poll failed, time passed, the user
aborted) and carries out the commands it gets back (:class:`Poll`, :class:`Stop`,
:class:`Replace`). Tests step the same object one call at a time with a fake pool and
injected times.

Merging happens as snapshots arrive: each worker's windows are added into run-level windows
(:class:`analysis.merge.WindowMerge`), and run-level window ``k`` is finished (encoded once, its
dense sums dropped) when every live worker has reported a window at or past ``k``: a worker
hands its windows over in order, each once it can no longer change. Per worker only what the
workers table and the live view need is kept: request counts by (endpoint, outcome), CPU, the
final report's counters, where it ran, and its running progress (one compact histogram).
Memory is thus the open run-level windows plus the finished ones (encoded), whatever the
worker count.

Invariants: every window a worker handed over is in the result exactly once (a late one is
added into its finished window); a worker is lost at most once per actor; the run's measured
duration never exceeds the time the load really ran (an abort or a stop after a loss cuts it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from analysis.catalog import split_version
from analysis.merge import FinalWindow, WindowMerge
from workers.histogram import Histogram
from workers.load_worker import Snapshot, WorkerReport
from workers.plan import WorkerPlan
from workers.recorder import Key, Progress, Window

POLL_S = 1.0  # a worker answers a poll within this
SILENCE_S = POLL_S + 2.0  # no answer to a poll for this long: the worker is lost
SILENT_REASON = (f"no answer to polls for {SILENCE_S:g} s (its node lost, or a CPU too busy to "
                 "answer: give each worker more of one with load.cpusPerWorker)")
START_SLACK_S = 1.0  # between "all actors ready" and the common start time
# Up to this many workers each is polled again as soon as it answers (an answer a window); more
# share the coordinator's fixed cost per Ray call (about 0.5 ms of CPU, measured) by being polled
# less often, each answer then carrying several windows: 1,024 workers answer every 4 windows.
WORKERS_PER_POLL = 256
_FOREVER = 2**62

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerLost:
    """A worker that did not return a final report, why, and the windows it sent before
    (as a list of outcomes gives it to :func:`merge_outcomes`)."""

    worker_index: int
    reason: str
    windows: tuple[Window, ...] = ()
    host: str | None = None
    node_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Gap:
    """A worker's share that nobody sent: from its loss until its replacement began."""

    worker_index: int
    lost_at_s: float  # seconds from the common start
    resumed_at_s: float | None  # None: never replaced


@dataclass(slots=True)
class LiveView:
    """What the progress display shows: running totals over every worker."""

    elapsed_s: float
    requests: int
    errors: int
    in_flight: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    workers: int
    lost: int
    by_version: dict[str, int] = field(default_factory=dict)  # requests per version, if two


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSummary:
    """One worker's share as the workers table needs it: no windows, only their counts."""

    index: int
    status: Literal["ok", "lost"]
    counts: Mapping[Key, int]  # requests by (endpoint, outcome), every actor of the share
    cpu_s: float = 0.0  # load-thread CPU over its windows
    reason: str | None = None
    host: str | None = None
    pid: int | None = None
    node_id: str | None = None
    warmup_requests: int = 0
    unsent: int = 0
    measured_s: float | None = None  # from its final report; None when lost
    started_at: float | None = None
    stopped_early: str | None = None  # why the worker ended its load by itself (one line)

    @property
    def requests(self) -> int:
        """Return how many measured requests the share finished (any outcome)."""
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class MergedRun:
    """What a run left once merged: run-level windows (encoded), totals by key, workers, gaps."""

    windows: tuple[FinalWindow, ...]
    latency: Mapping[Key, Histogram]  # coordinated-omission corrected, over the whole run
    service: Mapping[Key, Histogram]
    workers: tuple[WorkerSummary, ...]
    gaps: tuple[Gap, ...] = ()
    aborted: bool = False
    measured_s: float = 0.0
    measured_from: float | None = None  # unix time the measured phase began (warm-up excluded)


# --- commands the adapter carries out -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Poll:
    """Ask worker ``worker`` for its next snapshot (answer within :data:`POLL_S`), not before
    unix time ``at`` (None: now)."""

    worker: int
    at: float | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    """Ask these workers to stop sending; they still hand over what they measured."""

    workers: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Replace:
    """Kill worker ``worker``'s actor and start ``plan`` on a new one from the common start;
    then call :meth:`Supervisor.replaced` (or :meth:`Supervisor.replace_failed`)."""

    worker: int
    plan: WorkerPlan


Command = Poll | Stop | Replace


class _Share:
    """One worker's share during the run (see the module docstring for what is kept)."""

    __slots__ = ("plan", "info", "state", "polled_at", "lost_at", "reported", "counts", "cpu_s",
                 "final", "reason", "progress")

    def __init__(self, plan: WorkerPlan | None, info: Mapping[str, Any]) -> None:
        self.plan = plan
        self.info = dict(info)
        self.state: Literal["running", "replacing", "done", "lost"] = "running"
        self.polled_at = 0.0
        self.lost_at = 0.0  # unix time of the last loss
        self.reported = -1  # highest window index handed over by the current actor's share
        self.counts: dict[Key, int] = {}
        self.cpu_s = 0.0
        self.final: WorkerReport | None = None
        self.reason: str | None = None
        self.progress: Progress | None = None

    @property
    def live(self) -> bool:
        """Return True while the share may still hand over windows."""
        return self.state in ("running", "replacing")

    def take(self, windows: Iterable[Window]) -> None:
        counts = self.counts
        for window in windows:
            for key, hist in window.latency.items():
                counts[key] = counts.get(key, 0) + hist.total
            self.cpu_s += window.cpu_s
            self.reported = max(self.reported, window.index)


class Supervisor:
    """Supervises one run's workers from their common start (see the module docstring).

    Example::

        sup = Supervisor(plans, infos, on_worker_loss="fail", start_at=t0, deadline_at=t1)
        commands = sup.begin(now)
        ...  # carry out commands; feed received/failed/tick with the time
        merged = sup.result()
    """

    def __init__(self, plans: Sequence[WorkerPlan], infos: Sequence[Mapping[str, Any]], *,
                 on_worker_loss: str, start_at: float, deadline_at: float,
                 log: Log = lambda _m: None) -> None:
        self._shares = {p.worker_index: _Share(p, i) for p, i in zip(plans, infos, strict=True)}
        self._on_loss = on_worker_loss
        self.start_at = start_at
        self._deadline = deadline_at
        self._log = log
        self._merge = WindowMerge()
        self._gaps: list[Gap] = []
        self._abort = self.aborted = False
        self._stop_at: float | None = None
        self._earlier: list[Progress] = []  # last totals of replaced actors, for the live view
        self._excluded_s = max((p.excluded_s for p in plans), default=0.0)
        self.repoll_s = repoll_s(len(plans), max((p.window_s for p in plans), default=1.0))
        # How many live shares have reported up to each window index: its lowest key bounds
        # the finished windows, without a scan of every share per snapshot.
        self._reported: dict[int, int] = {-1: len(self._shares)} if self._shares else {}

    # --- events -----------------------------------------------------------------------------

    def begin(self, now: float) -> list[Command]:
        """Return the first poll of every worker (they were started at ``start_at``)."""
        return [self._poll(i, now) for i in self._shares]

    def received(self, worker: int, snapshot: Snapshot, now: float) -> list[Command]:
        """Fold a worker's snapshot in; return its next poll unless it was the final one."""
        share = self._shares[worker]
        if not share.live:
            return []
        before = share.reported
        share.take(snapshot.windows)
        for window in snapshot.windows:
            self._merge.add(window)
        if snapshot.progress is not None:
            share.progress = snapshot.progress
        self._count(before, -1)
        if snapshot.final is not None:
            share.state, share.final = "done", snapshot.final
        else:
            self._count(share.reported, +1)
        self._finalise()
        return [] if snapshot.final is not None else [self._poll(worker, now, self.repoll_s)]

    def failed(self, worker: int, reason: str, now: float) -> list[Command]:
        """A poll of ``worker`` failed (its actor died or raised): the worker is lost."""
        return self._lost(self._shares[worker], worker, reason, now)

    def tick(self, now: float) -> list[Command]:
        """Check silence and the deadline; stop everyone once aborted. Call often."""
        commands: list[Command] = []
        for worker, share in self._shares.items():
            if share.state != "running":
                continue
            if now - share.polled_at > SILENCE_S:
                commands += self._lost(share, worker, SILENT_REASON, now)
            elif now > self._deadline:
                commands += self._lost(share, worker, "still running at the deadline", now)
        if self._abort and self._stop_at is None:
            commands += self._stop(now)
        return commands

    def abort(self) -> None:
        """Ask for the run to stop (Ctrl-C, SIGTERM); the next :meth:`tick` stops the workers."""
        self._abort = True

    def replaced(self, worker: int, plan: WorkerPlan, info: Mapping[str, Any],
                 now: float) -> list[Command]:
        """A new actor runs ``worker``'s share from ``plan.resume_s``; record the gap."""
        share = self._shares[worker]
        self._gaps.append(Gap(worker_index=worker, lost_at_s=share.lost_at - self.start_at,
                              resumed_at_s=plan.resume_s))
        self._log(f"worker #{worker} replaced; it resumes at {plan.resume_s:.1f} s")
        share.plan, share.info, share.state = plan, dict(info), "running"
        return [self._poll(worker, now)]

    def replace_failed(self, worker: int, now: float) -> list[Command]:
        """No new actor could start for ``worker``'s share: it stays lost."""
        share = self._shares[worker]
        return self._give_up(share, worker, share.reason or "lost", now)

    # --- state ------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Return True when every worker has returned its final report or is lost."""
        return not any(s.live for s in self._shares.values())

    @property
    def open_windows(self) -> int:
        """Return how many run-level windows are still open (their parts in memory)."""
        return self._merge.open_count

    @property
    def finished_windows(self) -> int:
        """Return how many run-level windows are finished (encoded)."""
        return self._merge.final_count

    def view(self, now: float) -> LiveView:
        """Return the running totals over every worker, replaced actors included."""
        current = [s.progress for s in self._shares.values() if s.progress is not None]
        progresses = [*current, *self._earlier]
        latency = Histogram.sum(p.latency for p in progresses)
        p50, p99 = (latency.percentile_ns(q) for q in (50, 99))
        return LiveView(
            elapsed_s=max(0.0, now - self.start_at),
            requests=sum(p.requests for p in progresses),
            errors=sum(p.errors for p in progresses),
            in_flight=sum(s.progress.in_flight for s in self._shares.values()
                          if s.live and s.progress is not None),
            latency_p50_ms=None if p50 is None else p50 / 1e6,
            latency_p99_ms=None if p99 is None else p99 / 1e6,
            workers=len(self._shares),
            lost=sum(s.state == "lost" for s in self._shares.values()),
            by_version=_by_version(progresses))

    def result(self) -> MergedRun:
        """Return the merged run (call once :attr:`done`; finishes every open window)."""
        windows, latency, service = self._merge.finish()
        reports = [s.final for s in self._shares.values() if s.final is not None]
        measured = max((r.measured_s for r in reports), default=0.0)
        if self._stop_at is not None:  # stopped early: each worker loaded for its own length
            measured = self._stopped_measured_s(measured)
        return MergedRun(windows=tuple(windows), latency=latency, service=service,
                         workers=tuple(_summary(i, s) for i, s in sorted(self._shares.items())),
                         gaps=tuple(self._gaps), aborted=self.aborted, measured_s=measured,
                         measured_from=self.start_at + self._excluded_s)

    # --- inside -----------------------------------------------------------------------------

    def _stopped_measured_s(self, longest: float) -> float:
        """Return the measured length of a run stopped early, when the workers loaded for
        different lengths (each reports until its last request ended; a lost one loaded until
        it was lost): the length over which the run's requests give the sum of the workers' own
        rates, so its throughput is the rate really sent. ``longest`` where a share finished
        requests with no length to put them over."""
        total = rate = 0.0
        for share in self._shares.values():
            requests = sum(share.counts.values())
            if not requests:
                continue
            if share.final is not None:
                loaded = share.final.measured_s
            elif share.state == "lost":
                loaded = share.lost_at - self.start_at - self._excluded_s
            else:
                return longest
            if loaded <= 0:
                return longest
            total += requests
            rate += requests / loaded
        return total / rate if rate else longest

    def _poll(self, worker: int, now: float, after_s: float = 0.0) -> Poll:
        self._shares[worker].polled_at = now + after_s  # silence counts from the poll
        return Poll(worker, now + after_s if after_s > 0 else None)

    def _count(self, reported: int, change: int) -> None:
        left = self._reported.get(reported, 0) + change
        if left:
            self._reported[reported] = left
        else:
            self._reported.pop(reported, None)

    def _finalise(self) -> None:
        """Finish the run-level windows every live worker has reported (handed over) up to."""
        upto = min(self._reported) if self._reported else _FOREVER - 1
        self._merge.finalise_before(upto + 1)

    def _lost(self, share: _Share, worker: int, reason: str, now: float) -> list[Command]:
        if share.state != "running":
            return []
        lost_at = now - self.start_at
        self._log(f"worker #{worker} lost at {lost_at:.1f} s: {reason}")
        share.reason, share.lost_at = reason, now
        if self._on_loss == "replace" and not self._abort and self._stop_at is None:
            share.state = "replacing"
            if share.progress is not None:
                self._earlier.append(share.progress)
            share.progress = None
            resume_s = lost_at + START_SLACK_S + 1.0  # after the new actor is up
            assert share.plan is not None  # a share that ran has its plan
            plan = dataclasses.replace(share.plan, resume_s=max(share.plan.resume_s, resume_s))
            return [Replace(worker, plan)]
        return self._give_up(share, worker, reason, now)

    def _give_up(self, share: _Share, worker: int, reason: str, now: float) -> list[Command]:
        share.state, share.reason = "lost", reason
        self._count(share.reported, -1)
        self._gaps.append(Gap(worker_index=worker, lost_at_s=share.lost_at - self.start_at,
                              resumed_at_s=None))
        self._finalise()  # the lost share no longer holds windows open
        if self._on_loss == "fail" and self._stop_at is None:
            return self._stop(now)  # the run is INVALID: stop the others now
        return []

    def _stop(self, now: float) -> list[Command]:
        self._stop_at, self.aborted = now, self._abort  # a loss under "fail" is no abort
        self._log("stopping the workers; partial results will be kept")
        return [Stop(tuple(i for i, s in self._shares.items() if s.state == "running"))]



def _by_version(progresses: list[Progress]) -> dict[str, int]:
    """Return requests per version ("baseline", "candidate") of a two-version run, else {}."""
    out: dict[str, int] = {}
    for progress in progresses:
        for label, count in progress.by_label.items():
            version, _ = split_version(label)
            if version is not None:
                out[version] = out.get(version, 0) + count
    return out


def repoll_s(workers: int, window_s: float) -> float:
    """Return how long after an answer a worker is polled again: 0 up to
    :data:`WORKERS_PER_POLL` workers, then a window more per such many (see there)."""
    return window_s * (-(-workers // WORKERS_PER_POLL) - 1)


class _LostLike(Protocol):
    worker_index: int
    reason: str


def merge_outcomes(outcomes: Sequence[WorkerReport | _LostLike], *, aborted: bool = False,
                   gaps: Sequence[Any] = ()) -> MergedRun:
    """Return the merged run of whole worker reports (and lost workers with the windows they
    sent): the same merge, all at once, for callers that hold every window already."""
    merge = WindowMerge()
    workers = []
    for outcome in outcomes:
        share = _Share(None, {"host": getattr(outcome, "host", None),
                                  "pid": getattr(outcome, "pid", None),
                                  "node_id": getattr(outcome, "node_id", None)})
        windows = getattr(outcome, "windows", ())
        share.take(windows)
        for window in windows:
            merge.add(window)
        if isinstance(outcome, WorkerReport):
            share.final = outcome
        share.reason = getattr(outcome, "reason", None)
        workers.append(_summary(outcome.worker_index, share))
    windows, latency, service = merge.finish()
    measured = max((o.measured_s for o in outcomes if isinstance(o, WorkerReport)), default=0.0)
    return MergedRun(
        windows=tuple(windows), latency=latency, service=service,
        workers=tuple(sorted(workers, key=lambda w: w.index)), aborted=aborted,
        gaps=tuple(Gap(worker_index=g.worker_index, lost_at_s=g.lost_at_s,
                       resumed_at_s=g.resumed_at_s) for g in gaps),
        measured_s=measured)


def _summary(index: int, share: _Share) -> WorkerSummary:
    """Return a share's row of the workers table (a share without a final report is lost)."""
    final = share.final
    if final is None:
        return WorkerSummary(index=index, status="lost", counts=dict(share.counts),
                             cpu_s=share.cpu_s, reason=share.reason or "lost",
                             host=share.info.get("host"), pid=share.info.get("pid"),
                             node_id=share.info.get("node_id"))
    return WorkerSummary(
        index=index, status="ok", counts=dict(share.counts), cpu_s=share.cpu_s, host=final.host,
        pid=final.pid, node_id=share.info.get("node_id") or final.node_id,
        warmup_requests=final.warmup_requests, unsent=final.unsent,
        measured_s=final.measured_s, started_at=final.started_at,
        stopped_early=final.stopped_early)
