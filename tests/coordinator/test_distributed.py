"""The Ray pool as a distributed system: placement over several nodes, a worker killed mid-run,
exact merging of what every actor measured, Ray metrics, abort and live progress.

Everything is real: Ray (a three-node ``ray.cluster_utils.Cluster`` on this machine, or one local
node with its dashboard and metrics agent), the ``RayLoadWorker`` actors, and the hello sample app
on 127.0.0.1. A worker is "lost" the way a node or an OOM kill loses it: its process gets SIGKILL,
its pid taken from Ray's public state API (``ray.util.state.list_actors``, served by the dashboard).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from analysis.results import Results, unseries
from analysis.verdict import Verdict
from coordinator.errors import ClusterError
from coordinator.ray_pool import LiveView, RayPool
from coordinator.run import build_results, run_experiment
from coordinator.spec import ExperimentSpec, parse_spec
from coordinator.split import worker_plans
from coordinator.supervisor import MergedRun, WorkerSummary
from tests.support.helpers import free_port, present, start_hello
from workers.histogram import Histogram

ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.ray]


def _spec(url: str, *, paths: tuple[str, ...] = ("/hello",), objectives: tuple[dict, ...] = (),
          **load: object) -> ExperimentSpec:
    return parse_spec({"name": "dist", "target": url, "load": load,
                       "endpoints": [{"path": p} for p in paths], "objectives": list(objectives)})


def _run(spec: ExperimentSpec, **pool_args: Any) -> tuple[MergedRun, Results, RayPool]:
    """Run the spec on a fresh pool (on the Ray already started); return the merged run and
    its results."""
    started = datetime.now(UTC)
    with RayPool(**pool_args) as pool:
        merged = pool.run(worker_plans(spec))
    results = build_results(spec, merged, started=started, ended=datetime.now(UTC))
    return merged, results, pool


def _ok(merged: MergedRun) -> list[WorkerSummary]:
    return [w for w in merged.workers if w.status == "ok"]


def _counts(series_list: Any) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for item in series_list:
        counts[(item.endpoint, item.outcome)] += item.count
    return counts



# --- several nodes ------------------------------------------------------------------------------


@pytest.fixture(scope="class")
def three_nodes() -> Iterator[set[str]]:
    """Start a head and two more raylets on this machine (2 logical CPUs each), join it, yield
    the node ids; SPREAD is then a real choice (PACK would fit 3 workers on 2 nodes)."""
    from ray.cluster_utils import Cluster

    logging.getLogger("ray").setLevel(logging.ERROR)
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 2, "include_dashboard": False})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.ERROR)
        try:
            yield {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        finally:
            ray.shutdown()
    finally:
        cluster.shutdown()


@pytest.mark.usefixtures("three_nodes")
class TestSeveralNodes:
    @pytest.mark.parametrize("placement", [pytest.param("spread", id="spread"),
                                           pytest.param("strict_spread", id="strict_spread")])
    def test_three_workers_run_on_three_distinct_nodes(self, three_nodes: set[str],
                                                       placement: str) -> None:
        """Three workers over three nodes land one per node, and reports and results say which."""
        assert len(three_nodes) == 3
        with start_hello() as url:
            spec = _spec(url, rate=150, duration="1s", workers=3, timeout="1s",
                         placement=placement)
            merged, results, _ = _run(spec, placement=spec.load.placement)
        reports = _ok(merged)
        assert len(reports) == 3
        assert {r.node_id for r in reports} == three_nodes
        assert {w.index: w.node for w in results.workers} == {r.index: r.node_id for r in reports}
        assert results.metrics["*"]["request-count"] == 150

    def test_strict_spread_refuses_more_workers_than_nodes_at_once(self) -> None:
        """strict_spread with 4 workers on 3 nodes raises ClusterError naming both counts, at once
        (the placement timeout is 120 s; the cluster has CPUs enough, so only nodes are short)."""
        with start_hello() as url:
            spec = _spec(url, rate=100, duration="1s", workers=4, placement="strict_spread")
            began = time.monotonic()
            with RayPool(placement="strict_spread") as pool, \
                    pytest.raises(ClusterError, match=r"strict_spread needs 4 nodes.* has 3"):
                pool.run(worker_plans(spec))
        assert time.monotonic() - began < 10.0

    def test_merged_totals_are_the_exact_sum_of_every_actor(self, three_nodes: set[str]) -> None:
        """Two endpoints and injected errors over three nodes: the run-level windows merged as
        they arrived add up exactly to the totals per key, whose counts are the sum of what
        each actor counted per key."""
        with start_hello("--error-rate", "0.2", "--seed", "5") as url:
            spec = _spec(url, paths=("/hello", "/healthz"), rate=300, requests=600, workers=3)
            run, results, _ = _run(spec)
        reports = _ok(run)
        assert len({r.node_id for r in reports}) == 3
        assert [r.requests for r in reports] == [200, 200, 200]
        per_key: Counter[tuple[str, str]] = Counter()
        for report in reports:
            per_key.update(report.counts)
        merged = unseries(results.histograms.latency)
        assert {key: hist.total for key, hist in merged.items()} == per_key
        summed: dict[tuple[str, str], Histogram] = {}
        for window in results.windows:
            for key, hist in unseries(window.latency).items():
                summed[key] = summed[key] + hist if key in summed else hist
        assert merged == summed
        assert {o for _, o in merged} == {"status:200", "status:500"}
        assert {e for e, _ in merged} == {"GET /hello", "GET /healthz"}
        assert sum(h.total for h in merged.values()) == results.metrics["*"]["request-count"] == 600
        window_latency = _counts(s for w in results.windows for s in w.latency)
        window_service = _counts(s for w in results.windows for s in w.service)
        assert window_latency == _counts(results.histograms.latency)
        assert window_service == _counts(results.histograms.service)
        assert sum(w.requests for w in results.workers) == 600


# --- one node, with dashboard (state API) and metrics agent ---------------------------------------


@dataclass(frozen=True)
class LocalRay:
    metrics_port: int
    dashboard_url: str  # the state API's address; named, since other Ray instances may run here


@pytest.fixture(scope="class")
def local_ray() -> Iterator[LocalRay]:
    """Start a local Ray (4 logical CPUs) with its dashboard, which serves the state API, and
    its metrics exported every 500 ms on a free port."""
    logging.getLogger("ray").setLevel(logging.ERROR)
    port = free_port()
    context = ray.init(address="local", num_cpus=4, include_dashboard=True,
                       dashboard_port=free_port(), log_to_driver=False,
                       logging_level=logging.ERROR,
                       _metrics_export_port=port,
                       _system_config={"metrics_report_interval_ms": 500})
    try:
        yield LocalRay(metrics_port=port, dashboard_url=f"http://{context.dashboard_url}")
    finally:
        ray.shutdown()


@dataclass
class Killer:
    """SIGKILLs one load actor's process once the run has been loading ``after_s`` seconds.

    Fed by ``on_progress`` (the pool's live view gives the time since the common start); the
    kill itself runs in a thread of its own, as a node failure would, not inside the pool's loop.
    """

    after_s: float
    state_api: str
    views: list[LiveView] = field(default_factory=list)
    killed_pid: int | None = None
    killed_at_s: float | None = None  # seconds from the common start
    start_at: float = 0.0  # unix time of the common start, from the first view after after_s
    _due: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._kill, daemon=True)
        self._thread.start()

    def on_progress(self, view: LiveView) -> None:
        self.views.append(view)
        if view.elapsed_s >= self.after_s and not self._due.is_set():
            self.start_at = time.time() - view.elapsed_s
            self._due.set()

    def _kill(self) -> None:
        from ray.util.state import list_actors

        if not self._due.wait(timeout=60.0):
            return
        alive = list_actors(address=self.state_api, detail=True, filters=[
            ("class_name", "=", "RayLoadWorker"), ("state", "=", "ALIVE")])
        victim = min(present(actor.pid) for actor in alive)  # an alive actor has its process
        os.kill(victim, signal.SIGKILL)
        self.killed_pid, self.killed_at_s = victim, time.time() - self.start_at

    def join(self) -> None:
        assert self._thread is not None
        self._thread.join(timeout=5.0)


class TestOneNode:
    def test_a_lost_worker_fails_the_run_and_stops_the_others(self, local_ray: LocalRay) -> None:
        """onWorkerLoss fail: a worker killed 3 s into a 10 s run makes the run INVALID (exit 3),
        the others stop at once, and the windows it sent before dying are kept in the totals.

        Windows of 0.5 s with a 0.5 s timeout are handed over 1.5 s after they end, so by 3 s the
        victim has sent its first windows. Each worker's share is 50 req/s, 500 over the 10 s.
        """
        killer = Killer(after_s=3.0, state_api=local_ray.dashboard_url)
        with start_hello() as url:
            spec = _spec(url, rate=150, duration="10s", workers=3, window="0.5s", timeout="0.5s",
                         onWorkerLoss="fail")
            merged, results, pool = _run(spec, on_worker_loss="fail",
                                         on_progress=killer.on_progress)
            returned_at_s = time.time() - killer.start_at
        killer.join()
        assert killer.killed_pid is not None and killer.killed_at_s is not None
        assert returned_at_s - killer.killed_at_s < 4.0  # 7 s of load were still planned
        lost = [w for w in merged.workers if w.status == "lost"]
        reports = _ok(merged)
        assert len(lost) == 1 and len(reports) == 2
        assert lost[0].reason is not None and "actor died" in lost[0].reason
        assert killer.killed_pid not in {r.pid for r in reports}
        assert results.verdict == "INVALID"
        assert Verdict(results.verdict).exit_code == 3
        assert any(r.startswith("worker lost: #") for r in results.reasons)
        assert results.aborted is False and pool.aborted is False  # nobody asked to abort
        rows = {w.index: w for w in results.workers}
        victim = rows[lost[0].index]
        assert victim.status == "lost" and victim.requests > 0
        for report in reports:
            assert 0 < rows[report.index].requests < 300
        assert results.metrics["*"]["request-count"] == sum(w.requests for w in results.workers)
        assert [(g.worker, g.resumed_at_s) for g in results.gaps] == [(victim.index, None)]
        # The others were stopped soon after the loss: the measured time is the load's, not
        # the 10 s planned (the measured phase starts at the common start: no warm-up).
        assert killer.killed_at_s <= results.duration_s <= returned_at_s

    def test_a_lost_worker_is_replaced_and_the_gap_recorded(self, local_ray: LocalRay) -> None:
        """onWorkerLoss replace: a worker killed 2 s into a 6 s run is noticed within 2 s and
        replaced; the run is judged (not INVALID), its gap is in the results and in the reasons.

        The replacement sends the victim's slots from the resume time on: 50 req/s over
        (6 s - resumedAtS), within two slots; the victim's share misses at least the gap.
        """
        killer = Killer(after_s=2.0, state_api=local_ray.dashboard_url)
        with start_hello() as url:
            spec = _spec(url, rate=150, duration="6s", workers=3, window="0.5s", timeout="0.5s",
                         onWorkerLoss="replace",
                         objectives=({"metric": "error-rate", "upperLimit": "1%"},))
            pool_log: list[str] = []
            merged, results, _ = _run(spec, on_worker_loss="replace",
                                      on_progress=killer.on_progress, log=pool_log.append)
        killer.join()
        assert killer.killed_pid is not None and killer.killed_at_s is not None
        reports = _ok(merged)
        assert len(reports) == 3
        assert killer.killed_pid not in {r.pid for r in reports}
        assert results.verdict != "INVALID", results.reasons
        assert [o.verdict for o in results.objectives] == ["PASS"], results.objectives
        assert not any(r.startswith("worker lost") for r in results.reasons)
        assert len(results.gaps) == 1, (results.gaps, results.reasons, pool_log)
        [gap] = results.gaps
        assert gap.resumed_at_s is not None and gap.resumed_at_s > gap.lost_at_s
        assert 0.0 <= gap.lost_at_s - killer.killed_at_s <= 2.0
        assert any(r.startswith(f"gap: worker #{gap.worker} lost at") for r in results.reasons)
        rows = {w.index: w for w in results.workers}
        replaced = rows[gap.worker].requests
        assert replaced >= 50 * (6.0 - gap.resumed_at_s) - 2
        assert replaced <= 300 - 50 * (gap.resumed_at_s - gap.lost_at_s) + 2
        assert all(rows[i].requests == 300 for i in rows if i != gap.worker)

    def test_workers_export_ray_metrics_tagged_with_the_run(self, local_ray: LocalRay) -> None:
        """After a run, Ray's metrics endpoint serves slogate's counters and gauges for each
        worker of that run (Ray prefixes custom names with ``ray_``; counters end ``_total``)."""
        run_name = f"metrics-{uuid.uuid4().hex[:8]}"
        with start_hello() as url:
            spec = _spec(url, rate=100, duration="2s", workers=2, window="0.5s", timeout="0.5s")
            _, results, _ = _run(spec, run_name=run_name)
        metrics_url = f"http://127.0.0.1:{local_ray.metrics_port}/metrics"
        line = re.compile(r'^(ray_slogate_\w+)\{([^}]*)\} (\S+)$')
        found: dict[tuple[str, str], float] = {}
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline:
            body = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
            found = {}
            for match in map(line.match, body.splitlines()):
                if match and f'run="{run_name}"' in match.group(2):
                    worker = re.search(r'worker="(\d+)"', match.group(2))
                    found[(match.group(1), worker.group(1) if worker else "")] = float(
                        match.group(3))
            if {("ray_slogate_requests_total", w) for w in ("0", "1")} <= set(found):
                break
            time.sleep(0.5)
        requests = {w: v for (name, w), v in found.items() if name == "ray_slogate_requests_total"}
        assert set(requests) == {"0", "1"}, sorted(found)
        assert all(v > 0 for v in requests.values())
        # The last increments may still be in a killed actor's buffer: at most, not exactly.
        assert sum(requests.values()) <= present(results.metrics["*"]["request-count"]) == 200
        names = {name for name, _ in found}
        assert {"ray_slogate_in_flight", "ray_slogate_achieved_rps",
                "ray_slogate_latency_p50_ms", "ray_slogate_latency_p99_ms"} <= names

    def test_abort_stops_the_run_and_marks_it_invalid(self, local_ray: LocalRay) -> None:
        """pool.abort() from another thread 1 s into a 10 s run returns within a few seconds,
        with partial results judged INVALID for the reason that the run was aborted."""
        loading, aborted_at = threading.Event(), []

        def on_progress(view: LiveView) -> None:
            if view.elapsed_s >= 1.0:
                loading.set()

        with start_hello() as url:
            spec = _spec(url, rate=100, duration="10s", workers=2, window="0.5s", timeout="0.5s")
            with RayPool(on_progress=on_progress) as pool:
                def abort() -> None:
                    if loading.wait(timeout=60.0):
                        aborted_at.append(time.monotonic())
                        pool.abort()

                threading.Thread(target=abort, daemon=True).start()
                results = run_experiment(spec, pool)
                returned_at = time.monotonic()
        assert aborted_at and returned_at - aborted_at[0] < 3.0  # 9 s of load were still planned
        assert pool.aborted is True and results.aborted is True
        assert results.verdict == "INVALID"
        assert "the run was aborted before it finished" in results.reasons
        assert 0 < present(results.metrics["*"]["request-count"]) < 500
        # The duration is the time loaded until the abort, not the 10 s planned, so the
        # throughput is the 100 req/s really sent (not a tenth of it over 10 s): the stop
        # reaches the workers within a loop turn (0.5 s), a few requests after it.
        assert 1.0 <= results.duration_s <= 3.0
        assert 80.0 <= present(results.metrics["*"]["throughput"]) <= 120.0

    def test_live_progress_grows_to_the_final_count(self, local_ray: LocalRay) -> None:
        """on_progress gets views during the run whose request totals grow, window by window,
        to exactly the number of requests in the results."""
        views: list[LiveView] = []
        with start_hello() as url:
            spec = _spec(url, rate=100, duration="3s", workers=2, window="0.5s", timeout="0.5s")
            _, results, _ = _run(spec, on_progress=views.append)
        requests = [v.requests for v in views]
        assert requests == sorted(requests)
        assert len({r for r in requests if 0 < r < 300}) >= 3  # several updates mid-run
        assert requests[-1] == results.metrics["*"]["request-count"] == 300
        elapsed = [v.elapsed_s for v in views]
        assert elapsed == sorted(elapsed)
        assert all(v.workers == 2 and v.lost == 0 for v in views)
        assert all(v.latency_p50_ms is not None for v in views if v.requests > 0)
