"""The Ray adapter: the one module of slogate that imports ray.

``RayPool`` starts an embedded local Ray (no address, no ``RAY_ADDRESS``) or joins a cluster (the
repository root travels as the ``working_dir``), reserves one placement-group bundle per worker
(``spread``: best effort across nodes; ``strict_spread``: one per node, refused at once when there
are too few nodes), creates one ``LoadWorker`` actor per bundle (``ray.remote`` is applied here,
to a thin subclass that also exports Ray metrics), starts them on one common start time, and
streams their snapshots with ``ray.wait`` on outstanding ``poll`` calls: no busy waiting; a
worker whose process dies is noticed at once, one that stops answering (a node cut off) within
5 s.

The embedded Ray listens on 127.0.0.1 only (Ray binds its servers to the node's address, and the
node's address is made the loopback one), starts its dashboard (and its API server process) only
when asked, starts in a thread of its own (:meth:`RayPool.start`, while the caller checks the
target; the thread lives until it shuts Ray down, see :class:`_RayHost`), and is never
left behind: a Ctrl-C while it starts is held until ``ray.init`` returns and then shuts it down
(:class:`~coordinator.errors.Interrupted`), and a small watcher (:mod:`coordinator.reaper`)
kills what is left of it if this process dies without shutting it down (``kill -9``). Before
it starts, a worker count this machine's memory cannot hold is refused.

Supervision (loss, silence, replacement, gaps, the live view, merging the windows as they
arrive) is :class:`coordinator.supervisor.Supervisor`'s; this module only carries messages
between it and the actors. Loss policy: ``fail`` stops the others and the run is INVALID;
``replace`` starts a new actor for the same share, which takes over from the next slot after it
is up, and records the gap. Every wait has a deadline derived from the plans.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from coordinator.errors import ClusterError, Interrupted
from coordinator.run_metrics import bucket_increments, cumulative_buckets
from coordinator.supervisor import (
    POLL_S,
    START_SLACK_S,
    Command,
    Gap,
    LiveView,
    MergedRun,
    Poll,
    Replace,
    Stop,
    Supervisor,
    WorkerLost,
)
from coordinator.wire import Packed, pack, unpack
from workers.load_worker import LoadWorker, Snapshot
from workers.plan import WorkerPlan
from workers.recorder import Progress

__all__ = ["Gap", "LiveView", "RayLoadWorker", "RayPool", "WorkerLost"]

REPO_ROOT = Path(__file__).resolve().parent.parent
_EXCLUDES = [".git", ".venv", "**/__pycache__", ".pytest_cache", ".hypothesis", "bench/out",
             "results", "out"]
_START_SLACK_S = START_SLACK_S
_START_SLACK_PER_WORKER_S = 0.001  # sending one actor its start call, with room to spare
_MIN_START_SLACK_S = 0.25
_READY_TIMEOUT_S = 120.0
_BATCH_S = 0.1  # delayed polls due within this go out together
_VIEW_EVERY_S = 0.25  # the live view is computed at most this often (and at the end)
_REPLACE_FOR_S = 30.0  # a replacement actor is tried until this long after the loss
_WAIT_SLICE_S = 0.5  # start-up waits look at abort() this often
# What one worker costs the embedded Ray (its Ray worker process with the load engine loaded; the
# figure measured in issue #12), and Ray's own processes beside them.
WORKER_MEMORY_MB = 85
_RAY_BASE_MEMORY_MB = 600
PLACEMENTS = {"spread": "SPREAD", "strict_spread": "STRICT_SPREAD"}


Log = Callable[[str], None]


class RayLoadWorker(LoadWorker):
    """``LoadWorker`` plus where it runs and Ray metrics: requests and errors (counters), in
    flight, achieved rate and latency percentiles (gauges), latency buckets (counters that add
    up across workers), tagged with run and worker."""

    def __init__(self, plan: WorkerPlan, run_name: str) -> None:
        super().__init__(plan)
        from ray.util import metrics

        tags = {"run": run_name, "worker": str(plan.worker_index)}
        keys = tuple(tags)
        self._counters = {
            "requests": metrics.Counter("slogate_requests", "Requests finished", tag_keys=keys),
            "errors": metrics.Counter("slogate_errors", "Requests that were errors",
                                      tag_keys=keys),
            # Counters per bucket add up across workers (coordinator/run_metrics.py).
            "buckets": metrics.Counter("slogate_latency_ms_bucket", "Measured requests at or "
                                       "below le ms", tag_keys=(*keys, "le")),
        }
        self._gauges = {
            "in_flight": metrics.Gauge("slogate_in_flight", "Requests outstanding",
                                       tag_keys=keys),
            "rate": metrics.Gauge("slogate_achieved_rps", "Requests finished per second",
                                  tag_keys=keys),
            "p50": metrics.Gauge("slogate_latency_p50_ms", "Running latency p50", tag_keys=keys),
            "p99": metrics.Gauge("slogate_latency_p99_ms", "Running latency p99", tag_keys=keys),
        }
        for metric in (*self._counters.values(), *self._gauges.values()):
            metric.set_default_tags(tags)
        self._last = (0.0, 0, 0)  # elapsed, requests, errors at the last export
        self._buckets: list[tuple[str, int]] = []  # cumulative counts at the last export

    def ready(self) -> dict[str, object]:
        """Return host, pid and Ray node id."""
        return {**super().ready(), "node_id": ray.get_runtime_context().get_node_id()}

    def poll(self, timeout_s: float = 1.0) -> Snapshot:
        """Return the next snapshot, exporting its running totals as Ray metrics."""
        snapshot = super().poll(timeout_s)
        if snapshot.progress is not None:
            self._export(snapshot.progress)
        return snapshot

    def poll_packed(self, timeout_s: float = 1.0) -> Packed:
        """Return the next snapshot packed for the wire (:mod:`coordinator.wire`)."""
        return pack(self.poll(timeout_s))

    def _export(self, progress: Progress) -> None:
        elapsed, requests, errors = self._last
        count, gauge = self._counters, self._gauges
        if progress.requests > requests:
            count["requests"].inc(progress.requests - requests)
        if progress.errors > errors:
            count["errors"].inc(progress.errors - errors)
        gauge["in_flight"].set(progress.in_flight)
        if progress.elapsed_s > elapsed:
            gauge["rate"].set((progress.requests - requests) / (progress.elapsed_s - elapsed))
        for name, q in (("p50", 50), ("p99", 99)):
            value = progress.latency.percentile_ns(q)
            if value is not None:
                gauge[name].set(value / 1e6)
        buckets = cumulative_buckets(progress.latency)
        for le, increase in bucket_increments(self._buckets, buckets):
            count["buckets"].inc(increase, tags={"le": le})
        self._buckets = buckets
        self._last = (progress.elapsed_s, progress.requests, progress.errors)


@dataclass(slots=True)
class _Slot:
    """One worker's share during a run: its current actor and outstanding poll (what it sent
    lives in the supervisor, merged)."""

    plan: WorkerPlan
    actor: Any
    info: dict[str, Any] = field(default_factory=dict)
    poll_ref: Any = None


class RayPool:
    """Runs plans on Ray actors. Use as a context manager.

    Example::

        with RayPool(address=None, placement="spread", on_worker_loss="fail") as pool:
            merged = pool.run(plans)

    ``slogate run`` calls ``start()`` first (the embedded Ray starts while the target is
    checked) and passes ``linger=True``: Ray shuts down in the background from the end of the
    run, while it is judged and written, and ``wait_closed()`` waits for it.
    """

    worker_class: type[RayLoadWorker] = RayLoadWorker  # the actor class (a bench replaces it)

    def __init__(self, address: str | None = None, *, log: Log = lambda _m: None,
                 num_cpus: int | None = None, cpus_per_worker: float = 1.0,
                 placement: str = "spread", on_worker_loss: str = "fail",
                 run_name: str = "slogate", on_progress: Callable[[LiveView], None] | None = None,
                 dashboard: bool = False, workers: int | None = None,
                 linger: bool = False) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self._log = log
        self._num_cpus = num_cpus
        self._cpus = max(cpus_per_worker, 0.001)  # a bundle may not be empty
        if placement not in PLACEMENTS:
            raise ClusterError(f"load.placement: {placement!r} is not one of {sorted(PLACEMENTS)}")
        self._placement = placement
        self._on_loss = on_worker_loss
        self._run_name = run_name
        self.on_progress = on_progress or (lambda _v: None)
        self._dashboard = dashboard
        self._workers = workers  # known up front: checked against this machine before Ray starts
        self._reaper: subprocess.Popen[bytes] | None = None
        self._host: _RayHost | None = None
        # One run, then the embedded Ray shuts down in the background (begun as the run
        # ends); __exit__ does not wait for it, wait_closed() does.
        self._linger = linger
        self._owned = False
        self._abort = False
        self._delayed: list[tuple[float, int]] = []  # (unix time, worker): polls not yet due
        self.gaps: list[Gap] = []
        self.aborted = False
        self.dashboard_url: str | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Begin starting the embedded Ray in its own thread (see :class:`_RayHost`), so that it
        starts while the caller checks the target; ``__enter__`` waits for it. Joining a
        cluster (an address) waits for ``__enter__``. A refusal (memory) raises here."""
        if self.address or self._host is not None or ray.is_initialized():
            return
        _quiet_token_notice()
        if self._workers is not None:
            _check_machine(self._workers)
        self._reaper = _start_reaper()
        self._host = _RayHost(self._init)

    def __enter__(self) -> RayPool:
        if self._host is None and ray.is_initialized():
            self._log("using the Ray instance already running in this process")
            return self
        _quiet_token_notice()
        self.start()
        try:
            context = self._host.started() if self._host is not None else self._init()
        except (RayError, ConnectionError, ValueError, RuntimeError) as exc:
            self.wait_closed()
            where = self.address or "an embedded local instance"
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            hint = (" (check the address; with Ray's token authentication the driver needs the "
                    "cluster's token, see README)" if self.address else "")
            raise ClusterError(f"cannot start or join Ray ({where}): {text}{hint}") from exc
        self._owned = True
        if self._abort:  # a Ctrl-C while Ray was starting: held until now, then honoured
            self.__exit__(None, None, None)
            self.wait_closed()
            raise Interrupted("interrupted while Ray was starting; Ray is shut down")
        url = getattr(context, "dashboard_url", None)
        if url:
            self.dashboard_url = url if url.startswith("http") else f"http://{url}"
            self._log(f"Ray dashboard (metrics of this run under slogate_*): {self.dashboard_url}")
        return self

    def _init(self) -> Any:
        if self.address:
            _probe(self.address)
            self._log(f"joining Ray at {self.address}")
            return ray.init(address=self.address, logging_level=logging.WARNING,
                            runtime_env={"working_dir": str(REPO_ROOT), "excludes": _EXCLUDES})
        self._log("starting an embedded local Ray" + (" with its dashboard" if self._dashboard
                                                        else ""))
        # address="local": always a fresh instance of our own, even when another Ray runs here
        # (ray.init() without an address would join that one).
        with _loopback_node(), _lean_head(self._dashboard):
            return ray.init(address="local", num_cpus=self._num_cpus,
                            include_dashboard=self._dashboard, dashboard_host="127.0.0.1",
                            logging_level=logging.WARNING, log_to_driver=False)

    def __exit__(self, *exc_info: object) -> None:
        """Shut Ray down (one this pool started or joined); with ``linger``, only begin to:
        :meth:`wait_closed` waits for the end."""
        if self._owned:
            self._owned = False
            if self._host is not None:
                self._host.close()
            else:
                ray.shutdown()
        if not self._linger:
            self.wait_closed()

    def wait_closed(self) -> None:
        """Return once the embedded Ray this pool started (if any) is shut down, shutting it
        down first when the run never took it (a failed check before the load); then let the
        watcher go."""
        if self._host is not None:
            self._host.close()
            self._host.join()
            self._host = None
        self._stop_reaper()

    def _stop_reaper(self) -> None:
        """Tell the watcher Ray was shut down as it should be, and let it go."""
        if self._reaper is not None and self._reaper.stdin is not None:
            with contextlib.suppress(OSError):
                self._reaper.stdin.write(b"done\n")
                self._reaper.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._reaper.wait(timeout=5)
        self._reaper = None

    @property
    def stopping(self) -> bool:
        """Return True once :meth:`abort` was called."""
        return self._abort

    def abort(self) -> None:
        """Ask the pool to stop (Ctrl-C, SIGTERM): Ray's start and the workers' start end with
        Interrupted; a running ``run`` stops its workers and returns what it has."""
        self._abort = True

    # --- one run --------------------------------------------------------------------------------

    def run(self, plans: Sequence[WorkerPlan]) -> MergedRun:
        """Run every plan on its own actor from one common start; return the run, merged."""
        self._check_capacity(len(plans))
        self.gaps, self.aborted = [], False
        group = self._reserve(len(plans))
        slots = {p.worker_index: _Slot(plan=p, actor=self._actor(group, p)) for p in plans}
        try:
            self._wait_ready(list(slots.values()))
            start_at = time.time() + start_slack_s(len(slots))
            self._log(f"{len(slots)} worker(s) ready on "
                      f"{len({s.info.get('node_id') for s in slots.values()})} node(s); "
                      "load starts at the common start time")
            for slot in slots.values():
                slot.actor.start.remote(start_at)
            supervisor = Supervisor(
                plans, [slots[p.worker_index].info for p in plans],
                on_worker_loss=self._on_loss, start_at=start_at,
                deadline_at=start_at + max(p.expected_s for p in plans) + 30.0, log=self._log)
            merged = self._stream(supervisor, slots, group)
            self.gaps, self.aborted = list(merged.gaps), merged.aborted
            return merged
        finally:
            for slot in slots.values():
                ray.kill(slot.actor, no_restart=True)
            remove_placement_group(group)
            if self._linger and self._host is not None:
                self._host.close()  # one run per pool: Ray shuts down while the run is judged

    def _check_capacity(self, workers: int) -> None:
        alive = [n for n in ray.nodes() if n.get("Alive")]
        if self._placement == "strict_spread" and len(alive) < workers:
            raise ClusterError(f"load.placement strict_spread needs {workers} nodes (one per "
                               f"worker) but the Ray cluster has {len(alive)}")
        resources = ray.cluster_resources()
        available = resources.get("CPU", 0.0)
        if self._cpus * workers > available + 1e-9:
            raise ClusterError(f"load.workers x load.cpusPerWorker needs {self._cpus * workers:g} "
                               f"CPUs but the Ray cluster has {available:g}")
        memory_mb = resources.get("memory", 0.0) / 2**20
        if memory_mb and workers * WORKER_MEMORY_MB > memory_mb:
            raise ClusterError(f"load.workers: {workers} workers need about "
                               f"{_gb(workers * WORKER_MEMORY_MB)} ({WORKER_MEMORY_MB} MB each) but "
                               f"the Ray cluster has {_gb(memory_mb)} of memory for them")

    def _reserve(self, workers: int) -> Any:
        group = placement_group([{"CPU": self._cpus}] * workers,
                                strategy=PLACEMENTS[self._placement])
        try:
            self._wait_started([group.ready()], "placing the workers")
        except GetTimeoutError:
            remove_placement_group(group)
            raise ClusterError(f"could not place {workers} worker(s) ({self._placement}) within "
                               f"{_READY_TIMEOUT_S:.0f} s: not enough CPUs or nodes") from None
        except Interrupted:
            remove_placement_group(group)
            raise
        return group

    def _wait_started(self, refs: list[Any], what: str) -> list[Any]:
        """Return ``ray.get(refs)`` once all are ready, waiting in short slices so that an
        ``abort()`` (Ctrl-C) ends the wait at once with Interrupted; GetTimeoutError after
        the start-up timeout."""
        deadline = time.monotonic() + _READY_TIMEOUT_S
        pending = list(refs)
        while pending:
            if self._abort:
                raise Interrupted(f"interrupted while {what}; nothing was sent")
            if time.monotonic() > deadline:
                raise GetTimeoutError(what)
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=_WAIT_SLICE_S)
        return ray.get(list(refs))

    def _actor(self, group: Any, plan: WorkerPlan) -> Any:
        strategy = PlacementGroupSchedulingStrategy(
            placement_group=group, placement_group_bundle_index=plan.worker_index)
        remote = ray.remote(num_cpus=self._cpus, max_restarts=0)(self.worker_class)
        return remote.options(scheduling_strategy=strategy).remote(plan, self._run_name)

    def _wait_ready(self, slots: list[_Slot]) -> None:
        refs = [slot.actor.ready.remote() for slot in slots]
        try:
            infos = self._wait_started(refs, "starting the workers")
        except GetTimeoutError:
            raise ClusterError(f"workers did not start within {_READY_TIMEOUT_S:.0f} s") from None
        except RayActorError as exc:
            raise ClusterError(f"a worker failed to start: {_first_line(exc)}") from None
        for slot, info in zip(slots, infos, strict=True):
            slot.info = info

    # --- streaming: messages between the actors and the supervisor -----------------------------

    def _stream(self, supervisor: Supervisor, slots: dict[int, _Slot], group: Any) -> MergedRun:
        """Carry polls and answers until the supervisor has every worker's end."""
        self._delayed = []
        self._carry(supervisor.begin(time.time()), supervisor, slots, group)
        shown = 0.0
        while not supervisor.done:
            if self._abort:
                supervisor.abort()
            # Delayed polls go out in batches (those due within _BATCH_S), so that a thousand
            # workers' spread-out polls do not wake this loop a thousand times a second.
            self._poll_due(slots, time.time() + _BATCH_S)
            pending = {s.poll_ref: i for i, s in slots.items() if s.poll_ref is not None}
            wait_s = min([0.5, *(max(_BATCH_S, at - time.time()) for at, _ in self._delayed[:1])])
            # Take every answer that is ready (not just one), and after a slow step (a
            # replacement starting, seconds) read them before the next silence check: the
            # others answered while this loop was not listening.
            done: list[Any] = []
            if pending:
                done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=wait_s)
            else:  # polls not yet due, or replacements under way: nothing to wait on
                time.sleep(wait_s)
            slow = False
            for worker, answer in self._answers(done, pending, slots):
                now = time.time()
                commands = (supervisor.received(worker, answer, now)
                            if isinstance(answer, Snapshot) else
                            supervisor.failed(worker, answer, now))
                slow |= self._carry(commands, supervisor, slots, group)
            if not slow:
                slow = self._carry(supervisor.tick(time.time()), supervisor, slots, group)
            if time.time() - shown >= _VIEW_EVERY_S or supervisor.done:
                shown = time.time()
                self.on_progress(supervisor.view(shown))
        return supervisor.result()

    def _answers(self, done: list[Any], pending: dict[Any, int], slots: dict[int, _Slot]
                 ) -> Iterable[tuple[int, Snapshot | str]]:
        """Yield (worker, snapshot or why its poll failed) for every finished poll; one
        ``ray.get`` for all of them unless one failed."""
        for ref in done:
            slots[pending[ref]].poll_ref = None
        try:
            answers: list[Snapshot | str] = [unpack(packed) for packed in ray.get(done)]
        except RayError:
            answers = [self._answer(ref) for ref in done]
        for ref, answer in zip(done, answers, strict=True):
            yield pending[ref], answer

    @staticmethod
    def _answer(ref: Any) -> Snapshot | str:
        try:
            return unpack(ray.get(ref))
        except RayActorError as exc:
            return f"actor died: {_first_line(exc)}"
        except RayTaskError as exc:
            return f"worker raised: {_last_line(exc)}"

    def _carry(self, commands: list[Command], supervisor: Supervisor, slots: dict[int, _Slot],
               group: Any) -> bool:
        """Carry out the supervisor's commands (a replacement's first poll included); return
        True when one was slow (a replacement)."""
        queue, slow = deque(commands), False
        while queue:
            command = queue.popleft()
            if isinstance(command, Poll) and command.at is not None:
                heapq.heappush(self._delayed, (command.at, command.worker))
            elif isinstance(command, Poll):
                slot = slots[command.worker]
                slot.poll_ref = slot.actor.poll_packed.remote(POLL_S)
            elif isinstance(command, Stop):
                for worker in command.workers:
                    slots[worker].actor.stop.remote()
            elif isinstance(command, Replace):
                queue.extend(self._replace(command, supervisor, slots[command.worker], group))
                slow = True
        return slow

    def _poll_due(self, slots: dict[int, _Slot], now: float) -> None:
        """Send the delayed polls that are due (see ``supervisor.WORKERS_PER_POLL``)."""
        while self._delayed and self._delayed[0][0] <= now:
            _, worker = heapq.heappop(self._delayed)
            if slots[worker].poll_ref is None:
                slots[worker].poll_ref = slots[worker].actor.poll_packed.remote(POLL_S)

    def _replace(self, command: Replace, supervisor: Supervisor, slot: _Slot,
                 group: Any) -> list[Command]:
        """Start a new actor for the slot's share (the old one is killed).

        A node that died keeps its placement-group bundle until Ray declares it dead and moves
        the bundle: an actor put there meanwhile dies at once, so it is tried again, 1 s apart,
        until _REPLACE_FOR_S after the loss (seen on a real cluster: tests/coordinator/test_multinode.py),
        each try resuming a little later (after it is up)."""
        ray.kill(slot.actor, no_restart=True)
        slot.poll_ref = None
        give_up_at = time.time() + _REPLACE_FOR_S
        while True:
            resume_s = time.time() - supervisor.start_at + _START_SLACK_S + 1.0
            plan = dataclasses.replace(command.plan,
                                       resume_s=max(command.plan.resume_s, resume_s))
            actor = self._actor(group, plan)
            try:
                info = ray.get(actor.ready.remote(), timeout=max(1.0, give_up_at - time.time()))
                break
            except (GetTimeoutError, RayActorError):
                ray.kill(actor, no_restart=True)
                if time.time() + 1.0 >= give_up_at:
                    return supervisor.replace_failed(command.worker, time.time())
                time.sleep(1.0)
        actor.start.remote(supervisor.start_at)
        slot.actor, slot.plan, slot.info = actor, plan, info
        return supervisor.replaced(command.worker, plan, info, time.time())


class _RayHost:
    """The thread that starts the embedded Ray and, when told to, shuts it down.

    Ray starts its GCS and raylet with PR_SET_PDEATHSIG, which the kernel ties to the *thread*
    that started them: when that thread ends, they are killed (checked here: zombies within 2 s
    of a thread that ran ``ray.init`` returning). So this thread lives until the shutdown and
    does it itself; meanwhile the driver's calls come from the main thread (Ray's driver API
    is process-wide)."""

    def __init__(self, init: Callable[[], Any]) -> None:
        self._init = init
        self._ready = threading.Event()
        self._close = threading.Event()
        self._context: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="slogate-ray", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            self._context = self._init()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread by started()
            self._error = exc
            return
        finally:
            self._ready.set()
        self._close.wait()
        ray.shutdown()

    def started(self) -> Any:
        """Return ``ray.init``'s context once it has returned (waiting in slices, so that the
        main thread's signal handlers run), or raise what it raised."""
        while not self._ready.wait(_WAIT_SLICE_S):
            pass
        if self._error is not None:
            raise self._error
        return self._context

    def close(self) -> None:
        """Tell the thread to shut Ray down (after its start, when still starting)."""
        self._close.set()

    def join(self) -> None:
        """Return once the thread has ended (Ray shut down, or its start failed)."""
        while self._thread.is_alive():
            self._thread.join(_WAIT_SLICE_S)


def _probe(address: str, timeout_s: float = 3.0) -> None:
    """Fail fast when a HOST:PORT (or ray://HOST:PORT) address does not accept connections:
    ray.init would otherwise retry for minutes. ``auto`` is left to Ray."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ClusterError(f"cannot reach Ray at {address}: {exc.strerror or exc} (is the "
                           "cluster up, and the address host:port of its head?)") from None


def _quiet_token_notice() -> None:
    """Keep stderr to ours: Ray logs a notice on how to opt out of token auth at every start,
    and one that it set no SIGTERM handler when started outside the main thread (slogate's own
    handler is in place: see ``coordinator.cli``)."""
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR)
    worker_log = logging.getLogger("ray._private.worker")
    if _no_sigterm_notice not in worker_log.filters:
        worker_log.addFilter(_no_sigterm_notice)


def _no_sigterm_notice(record: logging.LogRecord) -> bool:
    """Return False for Ray's "SIGTERM handler is not set" notice (a logging filter)."""
    return not record.getMessage().startswith("SIGTERM handler is not set")


def _gb(mb: float) -> str:
    return f"{mb / 1024:.1f} GB"


def _available_memory_mb() -> float | None:
    """Return this machine's available memory (MemAvailable), or None where it is unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _check_machine(workers: int) -> None:
    """Refuse, before Ray starts, more workers than this machine's memory holds for the
    embedded Ray (it would size itself to them and start their processes before any load)."""
    available = _available_memory_mb()
    need = _RAY_BASE_MEMORY_MB + workers * WORKER_MEMORY_MB
    if available is not None and need > available:
        raise ClusterError(
            f"load.workers: {workers} workers need about {_gb(need)} on this machine's embedded "
            f"Ray ({WORKER_MEMORY_MB} MB each) but {_gb(available)} is available; use fewer "
            "workers or join a cluster (--address)")


@contextlib.contextmanager
def _loopback_node() -> Any:
    """Within: Ray takes 127.0.0.1 as this node's address, so that the GCS, the raylet, the
    workers and the agents (which bind to the node's address) listen on loopback only.

    ``ray.init(_node_ip_address="127.0.0.1")`` is turned back into the machine's address by Ray;
    what Ray reads is its clusters switch (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``, read once at
    import, so switched on Ray's constants module for the time of ``ray.init``). A joined
    cluster is not touched. tests/coordinator/test_signals.py checks the listening sockets."""
    from ray._private import ray_constants

    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


@contextlib.contextmanager
def _lean_head(dashboard: bool) -> Any:
    """Within: the embedded Ray's head starts no log monitor and, unless ``dashboard``, neither
    an API server nor the autoscaler's monitor.

    ``include_dashboard=False`` still starts Ray's dashboard process (only its usage-stats
    module) and ``ray.init`` waits for it to publish its address: about 1.8 s of a 4 to 6 s
    start on the 2-core development machine (issue #14, measured with cProfile). slogate uses
    none of what it serves (the job and state APIs); the per-node agents that export the
    workers' metrics are the raylet's and still start. The monitor autoscales a cluster; an
    embedded one-node Ray has nothing to scale, and at ``ray.shutdown`` the monitor ignores
    SIGTERM until Ray's one-second grace runs out (1.0 of 1.4 s of the shutdown, measured).
    With the dashboard asked for, both start (its cluster page shows the monitor's view). The
    log monitor streams workers' output to the driver, which the embedded Ray never asks for
    (``log_to_driver=False``): one Python process less competing for the CPU during the start.
    """
    from ray._private.node import Node

    def no_api_server(node: Any, **_kwargs: Any) -> None:
        node._webui_url = None

    def nothing(_node: Any) -> None:
        pass

    before = Node.start_api_server, Node.start_monitor, Node.start_log_monitor
    Node.start_log_monitor = nothing  # type: ignore[method-assign]
    if not dashboard:
        Node.start_api_server = no_api_server  # type: ignore[method-assign,assignment]
        Node.start_monitor = nothing  # type: ignore[method-assign]
    try:
        yield
    finally:
        for name, method in zip(("start_api_server", "start_monitor", "start_log_monitor"),
                                before, strict=True):
            setattr(Node, name, method)


def start_slack_s(workers: int) -> float:
    """Return the time from "all actors ready" to the common start time for ``workers``
    actors: long enough for every start call to arrive (1 ms each, from a quarter second),
    never more than the supervisor's :data:`~coordinator.supervisor.START_SLACK_S`."""
    return min(_START_SLACK_S, _MIN_START_SLACK_S + _START_SLACK_PER_WORKER_S * workers)


def _start_reaper() -> subprocess.Popen[bytes]:
    """Start the watcher that kills the embedded Ray's processes if this process dies first."""
    return subprocess.Popen([sys.executable, str(Path(__file__).with_name("reaper.py")),
                             str(os.getpid())], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, start_new_session=True)


def _last_line(exc: BaseException) -> str:
    """Return the last line of a remote traceback: the exception type and message."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
