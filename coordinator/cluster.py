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
node's address is made the loopback one), starts its dashboard only when asked, and is never
left behind: a Ctrl-C while it starts is held until ``ray.init`` returns and then shuts it down
(:class:`~coordinator.errors.Interrupted`), and a small watcher (:mod:`coordinator.reaper`)
kills what is left of it if this process dies without shutting it down (``kill -9``). Before
it starts, a worker count this machine's memory cannot hold is refused.

Loss policy: ``fail`` stops the others and returns the lost worker as :class:`WorkerLost` (the
run is INVALID); ``replace`` starts a new actor for the same share, which takes over from the
next slot after it is up, and records the gap. Every wait has a deadline derived from the plans.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from analysis.catalog import split_version
from coordinator.errors import ClusterError, Interrupted
from workers.engine import LoadWorker, Snapshot, WorkerReport
from workers.plan import WorkerPlan
from workers.recorder import Progress, Window

REPO_ROOT = Path(__file__).resolve().parent.parent
_EXCLUDES = [".git", ".venv", "**/__pycache__", ".pytest_cache", ".hypothesis", "bench/out",
             "results", "out"]
_START_SLACK_S = 1.0  # between "all actors ready" and the common start time
_READY_TIMEOUT_S = 120.0
_POLL_S = 1.0  # a worker answers a poll within this; silence for _POLL_S + _LOST_AFTER_S = lost
_LOST_AFTER_S = 1.0
_WAIT_SLICE_S = 0.5  # start-up waits look at abort() this often
# What one worker costs the embedded Ray (its Ray worker process with the load engine loaded; the
# figure measured in issue #12), and Ray's own processes beside them.
WORKER_MEMORY_MB = 85
_RAY_BASE_MEMORY_MB = 600
PLACEMENTS = {"spread": "SPREAD", "strict_spread": "STRICT_SPREAD"}


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerLost:
    """A worker that did not return a final report, why, and the windows it sent before."""

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


WorkerOutcome = WorkerReport | WorkerLost
Log = Callable[[str], None]


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


class RayLoadWorker(LoadWorker):
    """``LoadWorker`` plus where it runs and Ray metrics: requests and errors (counters), in
    flight, achieved rate and latency percentiles (gauges), tagged with run and worker."""

    def __init__(self, plan: WorkerPlan, run_name: str) -> None:
        super().__init__(plan)
        from ray.util import metrics

        tags = {"run": run_name, "worker": str(plan.worker_index)}
        keys = tuple(tags)
        self._metrics = {
            "requests": metrics.Counter("slogate_requests", "Requests finished", tag_keys=keys),
            "errors": metrics.Counter("slogate_errors", "Requests that were errors",
                                      tag_keys=keys),
            "in_flight": metrics.Gauge("slogate_in_flight", "Requests outstanding",
                                       tag_keys=keys),
            "rate": metrics.Gauge("slogate_achieved_rps", "Requests finished per second",
                                  tag_keys=keys),
            "p50": metrics.Gauge("slogate_latency_p50_ms", "Running latency p50", tag_keys=keys),
            "p99": metrics.Gauge("slogate_latency_p99_ms", "Running latency p99", tag_keys=keys),
        }
        for metric in self._metrics.values():
            metric.set_default_tags(tags)
        self._last = (0.0, 0, 0)  # elapsed, requests, errors at the last export

    def ready(self) -> dict[str, object]:
        """Return host, pid and Ray node id."""
        return {**super().ready(), "node_id": ray.get_runtime_context().get_node_id()}

    def poll(self, timeout_s: float = 1.0) -> Snapshot:
        """Return the next snapshot, exporting its running totals as Ray metrics."""
        snapshot = super().poll(timeout_s)
        if snapshot.progress is not None:
            self._export(snapshot.progress)
        return snapshot

    def _export(self, progress: Progress) -> None:
        elapsed, requests, errors = self._last
        m = self._metrics
        if progress.requests > requests:
            m["requests"].inc(progress.requests - requests)
        if progress.errors > errors:
            m["errors"].inc(progress.errors - errors)
        m["in_flight"].set(progress.in_flight)
        if progress.elapsed_s > elapsed:
            m["rate"].set((progress.requests - requests) / (progress.elapsed_s - elapsed))
        for name, q in (("p50", 50), ("p99", 99)):
            value = progress.latency.percentile_ns(q)
            if value is not None:
                m[name].set(value / 1e6)
        self._last = (progress.elapsed_s, progress.requests, progress.errors)


@dataclass(slots=True)
class _Slot:
    """One worker's share during a run: its current actor and what it has sent so far."""

    plan: WorkerPlan
    actor: Any
    info: dict[str, Any] = field(default_factory=dict)
    windows: list[Window] = field(default_factory=list)
    progress: Progress | None = None
    earlier: list[Progress] = field(default_factory=list)  # final totals of replaced actors
    poll_ref: Any = None
    polled_at: float = 0.0
    outcome: WorkerOutcome | None = None


class RayPool:
    """Runs plans on Ray actors. Use as a context manager.

    Example::

        with RayPool(address=None, placement="spread", on_worker_loss="fail") as pool:
            outcomes = pool.run(plans)
    """

    def __init__(self, address: str | None = None, *, log: Log = lambda _m: None,
                 num_cpus: int | None = None, cpus_per_worker: float = 1.0,
                 placement: str = "spread", on_worker_loss: str = "fail",
                 run_name: str = "slogate", on_progress: Callable[[LiveView], None] | None = None,
                 dashboard: bool = False, workers: int | None = None) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self._log = log
        self._num_cpus = num_cpus
        self._cpus = max(cpus_per_worker, 0.001)  # a bundle may not be empty
        if placement not in PLACEMENTS:
            raise ClusterError(f"load.placement: {placement!r} is not one of {sorted(PLACEMENTS)}")
        self._placement = placement
        self._on_loss = on_worker_loss
        self._run_name = run_name
        self._on_progress = on_progress or (lambda _v: None)
        self._dashboard = dashboard
        self._workers = workers  # known up front: checked against this machine before Ray starts
        self._reaper: subprocess.Popen[bytes] | None = None
        self._owned = False
        self._abort = False
        self.gaps: list[Gap] = []
        self.aborted = False
        self.dashboard_url: str | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> RayPool:
        if ray.is_initialized():
            self._log("using the Ray instance already running in this process")
            return self
        # Ray logs a notice on how to opt out of token auth at every start; keep stderr to ours.
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
            logging.ERROR)
        if not self.address:
            if self._workers is not None:
                _check_machine(self._workers)
            self._reaper = _start_reaper()
        try:
            context = self._init()
        except (RayError, ConnectionError, ValueError, RuntimeError) as exc:
            self._stop_reaper()
            where = self.address or "an embedded local instance"
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            hint = (" (check the address; with Ray's token authentication the driver needs the "
                    "cluster's token, see README)" if self.address else "")
            raise ClusterError(f"cannot start or join Ray ({where}): {text}{hint}") from exc
        self._owned = True
        if self._abort:  # a Ctrl-C while Ray was starting: held until now, then honoured
            self.__exit__(None, None, None)
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
        with _loopback_node():
            return ray.init(address="local", num_cpus=self._num_cpus,
                            include_dashboard=self._dashboard, dashboard_host="127.0.0.1",
                            logging_level=logging.WARNING, log_to_driver=False)

    def __exit__(self, *exc_info: object) -> None:
        if self._owned:
            self._owned = False
            ray.shutdown()
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

    def abort(self) -> None:
        """Ask the pool to stop (Ctrl-C, SIGTERM): Ray's start and the workers' start end with
        Interrupted; a running ``run`` stops its workers and returns what it has."""
        self._abort = True

    # --- one run --------------------------------------------------------------------------------

    def run(self, plans: Sequence[WorkerPlan]) -> list[WorkerOutcome]:
        """Run every plan on its own actor from one common start; return reports or losses."""
        self._check_capacity(len(plans))
        self.gaps, self.aborted = [], False
        group = self._reserve(len(plans))
        slots = [_Slot(plan=p, actor=self._actor(group, p)) for p in plans]
        try:
            self._wait_ready(slots)
            start_at = time.time() + _START_SLACK_S
            self._log(f"{len(slots)} worker(s) ready on {len({s.info.get('node_id') for s in slots})}"
                      " node(s); load starts at the common start time")
            for slot in slots:
                slot.actor.start.remote(start_at)
            deadline = start_at + max(p.expected_s for p in plans) + 30.0
            self._stream(slots, group, start_at, deadline)
            return [s.outcome for s in slots if s.outcome is not None]
        finally:
            for slot in slots:
                ray.kill(slot.actor, no_restart=True)
            remove_placement_group(group)

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
        remote = ray.remote(num_cpus=self._cpus, max_restarts=0)(RayLoadWorker)
        return remote.options(scheduling_strategy=strategy).remote(plan, self._run_name)

    def _wait_ready(self, slots: list[_Slot]) -> None:
        refs = [slot.actor.ready.remote() for slot in slots]
        try:
            infos = self._wait_started(refs, "starting the workers")
        except GetTimeoutError:
            raise ClusterError(f"workers did not start within {_READY_TIMEOUT_S:.0f} s") from None
        except RayActorError as exc:
            raise ClusterError(f"a worker failed to start: {_first_line(exc)}") from None
        for slot, info in zip(slots, infos):
            slot.info = info

    # --- streaming --------------------------------------------------------------------------

    def _stream(self, slots: list[_Slot], group: Any, start_at: float, deadline: float) -> None:
        """Poll every worker until each has a final report or is lost (see the module doc)."""
        for slot in slots:
            self._issue_poll(slot)
        stopping = failed = False
        while any(s.outcome is None for s in slots):
            if (self._abort or failed) and not stopping:
                stopping, self.aborted = True, self._abort  # a loss under "fail" is no abort
                self._log("stopping the workers; partial results will be kept")
                for slot in slots:
                    if slot.outcome is None:
                        slot.actor.stop.remote()
            pending = {s.poll_ref: s for s in slots if s.outcome is None}
            # Take every answer that is ready (not just one): after a slow step (a replacement
            # starting) healthy workers' answers must be read before the silence check below.
            done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0.5)
            for ref in done:
                self._receive(pending[ref], ref, group, start_at)
            now = time.time()
            for slot in slots:
                if slot.outcome is None and now - slot.polled_at > _POLL_S + _LOST_AFTER_S + 1.0:
                    if ray.wait([slot.poll_ref], timeout=0)[0]:
                        # It answered while another slot was being replaced (a slow step
                        # in the loop above): not silent. Found by tests/test_multinode.py.
                        self._receive(slot, slot.poll_ref, group, start_at)
                        continue
                    self._lost(slot, "no answer to polls (node lost?)", group, start_at)
                elif slot.outcome is None and now > deadline:
                    self._lost(slot, "still running at the deadline", group, start_at)
            self._on_progress(self._view(slots, start_at))
            if not stopping and self._on_loss == "fail" and any(
                    isinstance(s.outcome, WorkerLost) for s in slots):
                failed = True  # the run is INVALID: stop the others now

    def _issue_poll(self, slot: _Slot) -> None:
        slot.poll_ref = slot.actor.poll.remote(_POLL_S)
        slot.polled_at = time.time()

    def _receive(self, slot: _Slot, ref: Any, group: Any, start_at: float) -> None:
        try:
            snapshot: Snapshot = ray.get(ref)
        except RayActorError as exc:
            self._lost(slot, f"actor died: {_first_line(exc)}", group, start_at)
            return
        except RayTaskError as exc:
            self._lost(slot, f"worker raised: {_last_line(exc)}", group, start_at)
            return
        slot.windows.extend(snapshot.windows)
        if snapshot.progress is not None:
            slot.progress = snapshot.progress
        if snapshot.final is not None:
            slot.outcome = dataclasses.replace(snapshot.final, windows=tuple(slot.windows),
                                               node_id=slot.info.get("node_id"))
        else:
            self._issue_poll(slot)

    def _lost(self, slot: _Slot, reason: str, group: Any, start_at: float) -> None:
        lost_at = time.time() - start_at
        self._log(f"worker #{slot.plan.worker_index} lost at {lost_at:.1f} s: {reason}")
        if self._on_loss == "replace" and not self._abort and self._replace(slot, group, start_at):
            return
        self.gaps.append(Gap(worker_index=slot.plan.worker_index, lost_at_s=lost_at,
                             resumed_at_s=None))
        slot.outcome = WorkerLost(worker_index=slot.plan.worker_index, reason=reason,
                                  windows=tuple(slot.windows), host=slot.info.get("host"),
                                  node_id=slot.info.get("node_id"))

    def _replace(self, slot: _Slot, group: Any, start_at: float) -> bool:
        """Start a new actor for the slot's share; return False when none could start.

        A node that died keeps its placement-group bundle until Ray declares it dead and moves
        the bundle: an actor put there meanwhile dies at once, so it is tried again, 1 s apart,
        until 30 s after the loss (seen on a real cluster: tests/test_multinode.py)."""
        ray.kill(slot.actor, no_restart=True)
        lost_at = time.time() - start_at
        give_up_at = time.time() + 30.0
        while True:
            resume_s = time.time() - start_at + _START_SLACK_S + 1.0  # after the new actor is up
            plan = dataclasses.replace(slot.plan, resume_s=max(slot.plan.resume_s, resume_s))
            actor = self._actor(group, plan)
            try:
                info = ray.get(actor.ready.remote(), timeout=max(1.0, give_up_at - time.time()))
                break
            except (GetTimeoutError, RayActorError):
                ray.kill(actor, no_restart=True)
                if time.time() + 1.0 >= give_up_at:
                    return False
                time.sleep(1.0)
        actor.start.remote(start_at)
        self.gaps.append(Gap(worker_index=slot.plan.worker_index, lost_at_s=lost_at,
                             resumed_at_s=plan.resume_s))
        self._log(f"worker #{slot.plan.worker_index} replaced; it resumes at {plan.resume_s:.1f} s")
        slot.actor, slot.plan, slot.info = actor, plan, info
        if slot.progress is not None:  # keep the lost actor's totals in the live view
            slot.earlier.append(slot.progress)
            slot.progress = None
        self._issue_poll(slot)
        return True

    def _view(self, slots: list[_Slot], start_at: float) -> LiveView:
        current = [s.progress for s in slots if s.progress is not None]
        progresses = [*current, *(p for s in slots for p in s.earlier)]
        latency = None
        if progresses:
            from workers.histogram import Histogram

            latency = Histogram.sum(p.latency for p in progresses)
        def ms(q: float) -> float | None:
            value = latency.percentile_ns(q) if latency is not None else None
            return None if value is None else value / 1e6
        return LiveView(
            elapsed_s=max(0.0, time.time() - start_at),
            requests=sum(p.requests for p in progresses),
            errors=sum(p.errors for p in progresses),
            in_flight=sum(p.in_flight for p in current),
            latency_p50_ms=ms(50), latency_p99_ms=ms(99), workers=len(slots),
            lost=sum(isinstance(s.outcome, WorkerLost) for s in slots),
            by_version=_by_version(progresses),
        )


def _by_version(progresses: list[Progress]) -> dict[str, int]:
    """Return requests per version ("baseline", "candidate") of a two-version run, else {}."""
    out: dict[str, int] = {}
    for progress in progresses:
        for label, count in progress.by_label.items():
            version, _ = split_version(label)
            if version is not None:
                out[version] = out.get(version, 0) + count
    return out


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
    cluster is not touched. tests/test_signals.py checks the listening sockets."""
    from ray._private import ray_constants

    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


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
