"""The supervisor stepped one event at a time with an in-process fake worker pool and injected
times: streaming merge, loss under fail and replace, silence, the deadline, gaps, abort, the live
view, and what it keeps per worker. No Ray: the same object RayPool drives, fed by hand.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.merge import FinalWindow, WindowMerge, merge_windows, totals
from bench.coordinator_scale import run_shape
from coordinator.run import build_results
from coordinator.spec import ExperimentSpec, parse_spec
from coordinator.split import worker_plans
from coordinator.supervisor import (
    SILENCE_S,
    Gap,
    Poll,
    Replace,
    Stop,
    Supervisor,
    WorkerSummary,
    merge_outcomes,
    repoll_s,
)
from coordinator.wire import pack, unpack
from tests.support.helpers import present
from workers.histogram import Histogram
from workers.load_worker import Snapshot, WorkerReport
from workers.recorder import Key, Progress, Window

T0 = 1_000.0  # unix time of the common start
A_OK, A_503, B_OK = ("GET /a", "status:200"), ("GET /a", "status:503"), ("GET /b", "status:200")


def _spec(workers: int = 2, *, duration: str = "12s", warmup: str | None = None,
          on_loss: str = "fail") -> ExperimentSpec:
    load: dict[str, object] = {"rate": 100 * workers, "duration": duration, "workers": workers,
                               "onWorkerLoss": on_loss}
    if warmup:
        load["warmup"] = warmup
    return parse_spec({"name": "sup", "target": "http://127.0.0.1:9", "load": load,
                       "endpoints": [{"path": "/a"}, {"path": "/b"}],
                       "objectives": [{"metric": "error-rate", "upperLimit": "10%"}]})


def _hist(values_ms: Sequence[float]) -> Histogram:
    return Histogram.from_values(np.asarray(values_ms) * 1e6).compact()


def fake_window(worker: int, index: int, keys: Sequence[Key] = (A_OK, A_503, B_OK)) -> Window:
    """Return worker ``worker``'s window ``index`` as a worker sends it (compact histograms):
    per key (10 + worker) requests at known latencies, service 1 ms less, lag 0.1 ms."""
    n = 10 + worker
    latency = {k: _hist([5.0 + index + i * 0.5 + worker for i in range(n)]) for k in keys}
    service = {k: _hist([4.0 + index + i * 0.5 + worker for i in range(n)]) for k in keys}
    return Window(index=index, start_s=float(index), latency=latency, service=service,
                  lag=_hist([0.1] * n * len(keys)), scheduled=n * len(keys),
                  sent=n * len(keys), cpu_s=0.1 * (worker + 1), in_flight_max=worker + 1)


def _progress(requests: int, *, errors: int = 0, in_flight: int = 2,
              by_label: dict[str, int] | None = None) -> Progress:
    return Progress(elapsed_s=1.0, requests=requests, errors=errors, in_flight=in_flight,
                    latency=_hist([10.0] * requests), by_label=by_label or {})


def _final(worker: int, measured_s: float = 12.0) -> WorkerReport:
    return WorkerReport(worker_index=worker, host=f"host-{worker}", pid=100 + worker,
                        started_at=T0, measured_s=measured_s, windows=(), warmup_requests=3,
                        unsent=1)


class FakePool:
    """An in-process worker pool: workers answer polls with snapshots built from fake windows,
    and every command the supervisor gives back is recorded."""

    def __init__(self, spec: ExperimentSpec, *, on_loss: str = "fail") -> None:
        self.spec = spec
        self.plans = worker_plans(spec)
        self.sup = Supervisor(self.plans, [{"host": f"host-{p.worker_index}", "node_id": "n"}
                                           for p in self.plans],
                              on_worker_loss=on_loss, start_at=T0, deadline_at=T0 + 60.0)
        self.sent: dict[int, list[Window]] = {p.worker_index: [] for p in self.plans}
        self.commands = self.sup.begin(T0)

    def answer(self, worker: int, *indices: int, at_s: float, final: bool = False,
               progress: Progress | None = None, measured_s: float = 12.0) -> list[object]:
        """Worker ``worker`` answers its poll at ``at_s`` after the start with these windows
        (``final``: and its report, of ``measured_s`` loaded)."""
        windows = tuple(fake_window(worker, i) for i in indices)
        self.sent[worker] += windows
        snapshot = Snapshot(windows=windows, progress=progress,
                            final=_final(worker, measured_s) if final else None)
        self.commands = self.sup.received(worker, snapshot, T0 + at_s)
        return self.commands

    def batch(self) -> list[Window]:
        """Return the all-at-once merge of every window sent so far (the reference)."""
        return merge_windows(self.sent.values())


def _decoded(series: Sequence[tuple[Key, int, str]]) -> dict[Key, Histogram]:
    return {key: Histogram.decode(hdr) for key, _, hdr in series}


def assert_same(streamed: Sequence[FinalWindow], batch: Sequence[Window]) -> None:
    """Assert the streamed run-level windows equal the all-at-once merge, field by field."""
    assert [w.index for w in streamed] == [w.index for w in batch]
    for got, want in zip(streamed, batch, strict=True):
        assert _decoded(got.latency) == dict(want.latency)
        assert _decoded(got.service) == dict(want.service)
        assert [c for _, c, _ in got.latency] == [want.latency[k].total for k in sorted(want.latency)]
        assert got.lag == want.lag and Histogram.decode(got.lag_hdr) == want.lag
        assert (got.scheduled, got.sent, got.in_flight_max) == (
            want.scheduled, want.sent, want.in_flight_max)
        assert got.cpu_s == pytest.approx(want.cpu_s)


# --- merging as windows arrive ------------------------------------------------------------------


def test_a_window_is_finished_once_every_live_worker_handed_it_over() -> None:
    """Window k stays open until both workers have sent it; then it is encoded and dropped
    from the open ones, and the next answer of each worker is polled for."""
    pool = FakePool(_spec(2))
    assert pool.commands == [Poll(0), Poll(1)]
    assert pool.answer(0, 0, 1, at_s=2.5) == [Poll(0)]
    assert (pool.sup.open_windows, pool.sup.finished_windows) == (2, 0)
    pool.answer(1, 0, at_s=2.6)
    assert (pool.sup.open_windows, pool.sup.finished_windows) == (1, 1)
    pool.answer(1, 1, 2, at_s=3.5)
    assert (pool.sup.open_windows, pool.sup.finished_windows) == (1, 2)
    pool.answer(0, 2, at_s=3.6, final=True)
    pool.answer(1, at_s=3.7, final=True)
    assert pool.sup.done and pool.sup.open_windows == 0
    merged = pool.sup.result()
    assert_same(merged.windows, pool.batch())
    assert merged.latency == totals(pool.batch())
    assert merged.service == totals(pool.batch(), corrected=False)


def test_a_window_sent_again_after_it_was_finished_is_added_not_lost() -> None:
    """A worker's late rows for a finished window (a second window 0) are added into the
    finished window and the totals: the result is still the all-at-once merge."""
    pool = FakePool(_spec(2))
    pool.answer(0, 0, at_s=2.5)
    pool.answer(1, 0, at_s=2.5)
    assert pool.sup.finished_windows == 1
    pool.answer(0, 0, 1, at_s=3.5, final=True)
    pool.answer(1, 1, at_s=3.5, final=True)
    merged = pool.sup.result()
    assert_same(merged.windows, pool.batch())
    assert sum(w.requests for w in merged.windows) == sum(
        w.requests for ws in pool.sent.values() for w in ws) == 3 * 30 + 2 * 33


@st.composite
def _arrivals(draw: st.DrawFn) -> tuple[int, list[list[list[int]]], list[int]]:
    """Workers, each one's answers (window indices in order, gaps allowed, split into
    answers), and a random interleaving of the answers across workers."""
    workers = draw(st.integers(1, 4))
    answers = []
    for _ in range(workers):
        indices = sorted(draw(st.sets(st.integers(0, 7), max_size=6)))
        cuts = sorted(draw(st.sets(st.integers(1, max(1, len(indices))), max_size=3)))
        answers.append([indices[a:b] for a, b in zip([0, *cuts], [*cuts, len(indices)], strict=True)])
    order = [w for w in range(workers) for _ in answers[w]]
    return workers, answers, draw(st.permutations(order))


@settings(max_examples=60, deadline=None)
@given(_arrivals())
def test_streaming_merge_equals_the_batch_merge_in_any_arrival_order(
        arrival: tuple[int, list[list[list[int]]], list[int]]) -> None:
    """Whatever order the workers' answers interleave in (each worker's own in order, with
    gaps in its windows), the supervisor's run-level windows and totals equal merge_windows."""
    workers, answers, order = arrival
    pool = FakePool(_spec(workers))
    queues = [list(a) for a in answers]
    for step, worker in enumerate(order):
        pool.answer(worker, *queues[worker].pop(0), at_s=1.0 + step * 0.01)
    for worker in range(workers):
        pool.answer(worker, at_s=2.0, final=True)
    merged = pool.sup.result()
    assert_same(merged.windows, pool.batch())
    assert merged.latency == totals(pool.batch())
    assert [w.requests for w in merged.workers] == [
        sum(w.requests for w in pool.sent[i]) for i in range(workers)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 5)), max_size=12),
       st.lists(st.integers(0, 7), max_size=4))
def test_window_merge_equals_the_batch_merge_whatever_finishes_when(
        sent: list[tuple[int, int]], finish_at: list[int]) -> None:
    """WindowMerge fed windows in any order, with windows finished at arbitrary points (so
    that some arrive late), ends equal to merge_windows over the same windows."""
    merge = WindowMerge()
    windows = [fake_window(worker, index) for worker, index in sent]
    for i, window in enumerate(windows):
        merge.add(window)
        if i < len(finish_at):
            merge.finalise_before(finish_at[i])
    got, latency, service = merge.finish()
    assert_same(got, merge_windows([windows]))
    assert latency == totals(windows) and service == totals(windows, corrected=False)


def test_the_supervisor_holds_no_window_once_it_is_finished() -> None:
    """After 4 workers sent 40 windows each in step, no Window object is alive anywhere
    (each was merged and dropped), at most one run-level window is open, and what is kept
    per worker is counts by key, not histograms."""
    pool = FakePool(_spec(4, duration="40s"))
    for index in range(40):
        for worker in range(4):
            pool.sup.received(worker, Snapshot(windows=(fake_window(worker, index),),
                                               progress=None), T0 + index + 2.5)
        assert pool.sup.open_windows <= 1
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, Window)]
    assert (pool.sup.finished_windows, pool.sup.open_windows) == (40, 0)
    for share in pool.sup._shares.values():
        assert share.counts == {A_OK: 40 * (10 + present(share.plan).worker_index),
                                A_503: 40 * (10 + present(share.plan).worker_index),
                                B_OK: 40 * (10 + present(share.plan).worker_index)}
        assert not any(isinstance(getattr(share, name), (Histogram, Window, list, tuple))
                       for name in share.__slots__)


# --- loss, silence, deadline, replacement, abort --------------------------------------------------


def test_a_lost_worker_under_fail_stops_the_others_and_keeps_what_it_sent() -> None:
    """Worker 1 dies 4 s in (fail): the others are told to stop at once, the windows it sent
    are kept and no longer held open by it, the gap is never resumed, and the run's duration
    is the 4 s it loaded, not the 12 s planned; the run is INVALID."""
    pool = FakePool(_spec(3))
    for worker in range(3):
        pool.answer(worker, 0, 1, at_s=3.0)
    pool.answer(0, 2, at_s=3.9)
    assert pool.sup.failed(1, "actor died: killed", T0 + 4.0) == [Stop((0, 2))]
    assert pool.sup.finished_windows == 2  # window 2 waits for worker 2 only
    assert pool.sup.failed(1, "again", T0 + 4.1) == []  # lost once
    pool.answer(0, 3, at_s=5.0, final=True, measured_s=4.0)  # what a stopped worker loaded
    pool.answer(2, 2, 3, at_s=5.0, final=True, measured_s=4.0)
    merged = pool.sup.result()
    assert merged.gaps == (Gap(worker_index=1, lost_at_s=4.0, resumed_at_s=None),)
    assert merged.measured_s == 4.0 and not merged.aborted
    lost = merged.workers[1]
    assert (lost.status, lost.reason, lost.requests, lost.host) == (
        "lost", "actor died: killed", 2 * 33, "host-1")
    assert_same(merged.windows, pool.batch())
    results = build_results(pool.spec, merged, started=datetime.now(UTC),
                            ended=datetime.now(UTC))
    assert results.verdict == "INVALID" and "worker lost: #1: actor died: killed" in results.reasons
    assert [(w.index, w.status, w.requests, w.errors) for w in results.workers] == [
        (0, "ok", 4 * 30, 4 * 10), (1, "lost", 2 * 33, 2 * 11), (2, "ok", 4 * 36, 4 * 12)]
    assert results.duration_s == 4.0


def test_a_lost_worker_under_replace_resumes_on_a_new_actor_with_the_gap_recorded() -> None:
    """Worker 1 dies 4 s in (replace): the supervisor asks for a new actor resuming 2 s later,
    polls it once it is up, counts both actors' windows as worker 1's, and the run is judged
    with the gap in its reasons, not INVALID."""
    pool = FakePool(_spec(2, on_loss="replace"), on_loss="replace")
    pool.answer(0, 0, 1, 2, at_s=3.5)
    pool.answer(1, 0, 1, at_s=3.5)
    [replace] = pool.sup.failed(1, "no answer", T0 + 4.0)
    assert isinstance(replace, Replace) and replace.worker == 1
    assert replace.plan.resume_s == 4.0 + 2.0
    assert pool.sup.open_windows == 1  # window 2 waits for worker 1's share
    assert pool.sup.replaced(1, replace.plan, {"host": "host-9", "node_id": "m"},
                             T0 + 5.0) == [Poll(1)]
    pool.answer(1, 6, 7, at_s=9.0, final=True)
    pool.answer(0, 3, 6, 7, at_s=9.0, final=True)
    merged = pool.sup.result()
    assert merged.gaps == (Gap(worker_index=1, lost_at_s=4.0, resumed_at_s=6.0),)
    assert [(w.status, w.requests) for w in merged.workers] == [("ok", 6 * 30), ("ok", 4 * 33)]
    assert merged.workers[1].node_id == "m" and merged.measured_s == 12.0
    assert_same(merged.windows, pool.batch())
    results = build_results(pool.spec, merged, started=datetime.now(UTC),
                            ended=datetime.now(UTC))
    assert results.verdict != "INVALID"
    assert "gap: worker #1 lost at 4.0 s, replaced from 6.0 s" in results.reasons


def test_a_replacement_that_cannot_start_leaves_the_worker_lost() -> None:
    """No new actor comes up: the worker is lost for good, its gap never resumed; under
    replace the others are not stopped."""
    pool = FakePool(_spec(2, on_loss="replace"), on_loss="replace")
    [replace] = pool.sup.failed(0, "actor died: oom", T0 + 3.0)
    assert pool.sup.replace_failed(replace.worker, T0 + 33.0) == []
    pool.answer(1, 0, at_s=34.0, final=True)
    merged = pool.sup.result()
    assert merged.gaps == (Gap(worker_index=0, lost_at_s=3.0, resumed_at_s=None),)
    assert (merged.workers[0].status, merged.workers[0].reason) == ("lost", "actor died: oom")


@pytest.mark.parametrize("after_s, lost", [
    pytest.param(SILENCE_S, False, id="at-the-limit"),
    pytest.param(SILENCE_S + 0.01, True, id="past-the-limit"),
])
def test_a_worker_silent_past_the_limit_is_lost(after_s: float, lost: bool) -> None:
    """A worker whose poll has gone unanswered for longer than SILENCE_S is lost (node
    lost?); one answering at the limit is not."""
    pool = FakePool(_spec(2))
    pool.answer(0, at_s=1.0)
    pool.answer(1, at_s=1.0)
    pool.answer(0, at_s=1.0 + after_s - 0.5)
    commands = pool.sup.tick(T0 + 1.0 + after_s)
    assert commands == ([Stop((0,))] if lost else [])
    assert pool.sup.view(T0 + 1.0 + after_s).lost == int(lost)
    if lost:
        assert pool.sup.result().workers[1].reason == (
            "no answer to polls for 3 s (its node lost, or a CPU too busy to answer: give each "
            "worker more of one with load.cpusPerWorker)")


def test_a_worker_still_running_at_the_deadline_is_lost() -> None:
    """Past the deadline the plans allow, a worker that keeps answering is lost all the same."""
    pool = FakePool(_spec(1))
    pool.answer(0, at_s=60.0)
    assert pool.sup.tick(T0 + 60.5) == [Stop(())]
    assert pool.sup.result().workers[0].reason == "still running at the deadline"


def test_an_aborted_run_whose_workers_stopped_apart_reports_the_rate_sent() -> None:
    """Stopped early, one worker loaded 6 s and the other 8 s (the stop reached it later): the
    run's duration is the one over which its requests give the sum of the two rates, so the
    throughput is what they sent, not all requests over the longer 8 s."""
    pool = FakePool(_spec(2))
    pool.answer(0, *range(6), at_s=6.5)
    pool.answer(1, *range(8), at_s=8.5)
    pool.sup.abort()
    assert pool.sup.tick(T0 + 9.0) == [Stop((0, 1))]
    pool.answer(0, at_s=9.1, final=True, measured_s=6.0)
    pool.answer(1, at_s=9.1, final=True, measured_s=8.0)
    merged = pool.sup.result()
    shares = [w.requests for w in merged.workers]
    assert all(shares)
    sent = shares[0] / 6.0 + shares[1] / 8.0  # requests per second, each worker over its own
    assert merged.measured_s == pytest.approx(sum(shares) / sent)
    assert 6.0 < merged.measured_s < 8.0


def test_an_aborted_run_keeps_the_measured_time_not_the_planned_one() -> None:
    """Ctrl-C at 8 s of a 12 s run (1 s warm-up): everyone is stopped, and the duration is
    the 7 s the stopped workers report having loaded (8 s less the warm-up), so the throughput
    is successes / 7 s, not / 12 s (issue 13, item 4)."""
    pool = FakePool(_spec(2, warmup="1s"))
    for worker in range(2):
        pool.answer(worker, *range(6), at_s=7.5)
    pool.sup.abort()
    assert pool.sup.tick(T0 + 8.0) == [Stop((0, 1))]
    assert pool.sup.tick(T0 + 8.1) == []  # stopped once
    for worker in range(2):
        pool.answer(worker, 6, at_s=9.0, final=True, measured_s=7.0)
    merged = pool.sup.result()
    assert merged.aborted and merged.measured_s == 7.0
    results = build_results(pool.spec, merged, started=datetime.now(UTC),
                            ended=datetime.now(UTC))
    assert results.duration_s == 7.0 and results.aborted
    requests = 7 * (30 + 33)
    assert results.metrics["*"]["request-count"] == requests
    successes = requests - present(results.metrics["*"]["error-count"])  # throughput counts successes
    assert 0 < successes < requests
    assert results.metrics["*"]["throughput"] == pytest.approx(successes / 7.0)


def test_after_an_abort_a_lost_worker_is_not_replaced() -> None:
    """Once the run is stopping, a worker lost under replace stays lost (no new actor)."""
    pool = FakePool(_spec(2, on_loss="replace"), on_loss="replace")
    pool.sup.abort()
    pool.sup.tick(T0 + 2.0)
    assert pool.sup.failed(0, "actor died", T0 + 2.5) == []
    assert pool.sup.result().workers[0].status == "lost"


# --- live view, polling cadence, wire ---------------------------------------------------------------


def test_the_live_view_sums_every_worker_and_keeps_replaced_actors_requests() -> None:
    """The view adds up the workers' running totals, per version too; a replaced actor's
    requests stay in it, its in-flight requests do not."""
    pool = FakePool(_spec(2, on_loss="replace"), on_loss="replace")
    pool.answer(0, at_s=1.0, progress=_progress(
        100, errors=5, in_flight=3, by_label={"baseline: GET /a": 50, "candidate: GET /a": 50}))
    pool.answer(1, at_s=1.0, progress=_progress(50, in_flight=4,
                                                 by_label={"candidate: GET /a": 50}))
    view = pool.sup.view(T0 + 1.5)
    assert (view.requests, view.errors, view.in_flight, view.workers, view.lost) == (
        150, 5, 7, 2, 0)
    assert view.by_version == {"baseline": 50, "candidate": 100}
    assert view.elapsed_s == 1.5 and view.latency_p50_ms == pytest.approx(10.0, rel=1e-3)
    [replace] = pool.sup.failed(1, "actor died", T0 + 2.0)
    pool.sup.replaced(1, replace.plan, {}, T0 + 3.0)
    pool.answer(1, at_s=4.0, progress=_progress(20, in_flight=1))
    view = pool.sup.view(T0 + 4.0)
    assert (view.requests, view.errors, view.in_flight) == (170, 5, 4)


@pytest.mark.parametrize("workers, expected_s", [
    pytest.param(1, 0.0, id="1"), pytest.param(256, 0.0, id="256"),
    pytest.param(257, 1.0, id="257"), pytest.param(1024, 3.0, id="1024"),
])
def test_past_256_workers_each_is_polled_every_few_windows(workers: int,
                                                           expected_s: float) -> None:
    """Up to 256 workers each is polled again at once; more are polled a window later per
    256 (1,024 workers: every 4 windows), and their silence counts from that poll."""
    assert repoll_s(workers, 1.0) == expected_s
    pool = FakePool(_spec(workers, duration="4s"))
    for worker in range(workers):
        command = pool.answer(worker, at_s=2.0)
        assert command == [Poll(worker, T0 + 2.0 + expected_s if expected_s else None)]
    assert pool.sup.tick(T0 + 2.0 + expected_s + SILENCE_S) == []


def test_a_packed_snapshot_unpacks_equal() -> None:
    """unpack(pack(s)) has the same windows (keys in order, equal histograms, health), the
    same progress and the same final report."""
    windows = (fake_window(1, 0), fake_window(1, 1, keys=(B_OK,)))
    snapshot = Snapshot(windows=windows, progress=_progress(7, by_label={"GET /a": 7}),
                        final=_final(1))
    back = unpack(pack(snapshot))
    assert back.final == snapshot.final
    assert back.progress is not None and back.progress.latency == snapshot.progress.latency
    assert (back.progress.requests, back.progress.by_label) == (7, {"GET /a": 7})
    for got, want in zip(back.windows, windows, strict=True):
        assert list(got.latency) == list(want.latency)
        assert dict(got.latency) == dict(want.latency) and dict(got.service) == dict(want.service)
        assert got.lag == want.lag and (got.index, got.sent, got.cpu_s) == (
            want.index, want.sent, want.cpu_s)
    empty = unpack(pack(Snapshot(windows=(), progress=None)))
    assert empty == Snapshot(windows=(), progress=None)
    with pytest.raises(ValueError, match="not a packed snapshot"):
        unpack(("something", "else"))


def test_merging_whole_reports_gives_the_rows_the_workers_table_needs() -> None:
    """merge_outcomes (whole reports, as tests and tools hold them) gives each worker its
    counts by key, host, pid and counters, and a lost one its reason."""
    report = WorkerReport(worker_index=0, host="a", pid=1, started_at=T0, measured_s=2.0,
                          windows=(fake_window(0, 0), fake_window(0, 1)), warmup_requests=4,
                          unsent=2, node_id="n0")

    class Lost:
        worker_index, reason, windows, host = 1, "gone", (fake_window(1, 0),), "b"

    merged = merge_outcomes([report, Lost()])
    assert merged.workers == (
        WorkerSummary(index=0, status="ok", counts={A_OK: 20, A_503: 20, B_OK: 20},
                      cpu_s=pytest.approx(0.2), host="a", pid=1, node_id="n0",
                      warmup_requests=4, unsent=2, measured_s=2.0, started_at=T0),
        WorkerSummary(index=1, status="lost", counts={A_OK: 11, A_503: 11, B_OK: 11},
                      cpu_s=pytest.approx(0.2), reason="gone", host="b"))
    assert merged.measured_s == 2.0
    assert_same(merged.windows, merge_windows([report.windows, Lost.windows]))


def test_the_scale_bench_stream_merges_exactly() -> None:
    """A small coordinator_scale run (300 workers answering 2 windows at a time, a third a
    window late) ends with every request fed, every window, and a PASS (no timing asserted)."""
    figures = run_shape(300, 5, rps=20)
    assert figures.per_answer == 2
    assert figures.requests == figures.fed > 0
    assert figures.result_windows == 5 and figures.verdict == "PASS"
