"""``python -m bench.coordinator_scale``: the coordinator at scale, without Ray or a target.

Feeds simulated snapshot streams through the code path the Ray pool uses (one
:class:`coordinator.supervisor.Supervisor`, fed as :class:`coordinator.ray_pool.RayPool` feeds it),
then merges and judges as ``slogate run`` does at the end (:func:`coordinator.run.build_results`),
and prints, per shape (workers x one-second windows):

- CPU per worker-window while the load runs: decoding the snapshot (``pickle.loads`` of the
  bytes a worker's packed answer is made of, as Ray deserialises it, then
  :func:`coordinator.wire.unpack`, as the pool does), merging it, and the supervisor's ticks and
  live views (twice per simulated second, as the pool's loop does). Ray's own cost per poll is
  not in it (``--ray`` measures that);
- merge + judge after the load: the last windows finished, the metrics table, the verdict and
  the results document (``results.json`` text written separately);
- peak RSS of the process (a fresh child process per shape, so peaks do not mix), and the RSS
  before the stream (interpreter, numpy, pandas, templates).

The snapshots are realistic: windows recorded by the workers' own :class:`workers.recorder.Recorder`
from log-normal latencies (3 keys per window: two endpoints' 200s and one endpoint's 503s; about
``--rps`` requests per worker-window), compacted as workers send them, plus the running progress
each snapshot carries. A few dozen such snapshots are pickled once and cycled over the workers;
each worker-window decodes its own copy and gets its own window index.

Goals (issue 14): 64 x 600 in <= 1 s and <= 500 MB; 1,024 x 3,600 in <= 3 s and <= 2 GB; memory
flat in the worker count at a fixed number of windows; under half a core at 1,024 workers
sending a window a second (< ~490 us per worker-window).

Example::

    python -m bench.coordinator_scale                 # 64 x 600, 1,024 x 600, 64 x 3,600
    python -m bench.coordinator_scale --full          # adds 1,024 x 3,600 (3.7 M worker-windows)
    python -m bench.coordinator_scale --shape 16x60   # any shapes
    python -m bench.coordinator_scale --ray 32        # Ray's receive cost, 32 canned actors
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from coordinator.run import build_results
from coordinator.spec import ExperimentSpec, parse_spec
from coordinator.split import worker_plans
from coordinator.supervisor import Supervisor
from coordinator.wire import pack, unpack
from workers.load_worker import Snapshot, WorkerReport
from workers.recorder import CODE_SPAN, Recorder

DEFAULT_SHAPES = ((64, 600), (1024, 600), (64, 3600))
FULL_SHAPE = (1024, 3600)
TEMPLATES = 32
GOALS = {(64, 600): (1.0, 500), (1024, 3600): (3.0, 2000)}  # (s after the load, MB peak)
CORE_BUDGET_US = 0.5 / 1024 * 1e6  # half a core over 1,024 windows a second
_START = datetime(2026, 12, 1, tzinfo=UTC)


def spec_for(workers: int, windows: int) -> ExperimentSpec:
    """Return the spec the simulated run judges: two endpoints, 1 s windows, four objectives."""
    return parse_spec({
        "name": "scale", "target": "http://127.0.0.1:9",
        "load": {"rate": 100 * workers, "duration": f"{windows}s", "workers": workers,
                 "window": "1s"},
        "endpoints": [{"path": "/a"}, {"path": "/b"}],
        "objectives": [{"metric": "latency-p99", "upperLimit": "200ms"},
                       {"metric": "latency-p50", "upperLimit": "50ms", "endpoint": "GET /a"},
                       {"metric": "error-rate", "upperLimit": "5%"},
                       {"metric": "throughput", "lowerLimit": "10/s"}]})


def template_snapshots(count: int, rps: int, *, windows: int = 1, seed: int = 1) -> list[bytes]:
    """Return ``count`` pickled, packed snapshots of ``windows`` windows each (indices from 0),
    recorded by a real Recorder: ``rps`` requests a window over two endpoints, 2 % of /a's
    answered 503 (3 keys), as a worker's answer to a poll is made."""
    rng = np.random.default_rng(seed)
    out = []
    n = rps * windows
    for _ in range(count):
        rec = Recorder(labels=["GET /a", "GET /b"], window_s=1.0)
        intended = np.sort(rng.uniform(0, windows * 1e9, n)).astype(np.int64)
        lag = rng.exponential(200e3, n).astype(np.int64)
        service = rng.lognormal(np.log(8e6), 0.5, n).astype(np.int64)
        endpoint = rng.integers(0, 2, n)
        status = np.where((endpoint == 0) & (rng.random(n) < 0.02), 503, 200)
        for i in range(n):
            sent = int(intended[i] + lag[i])
            rec.record(int(endpoint[i]) * CODE_SPAN + int(status[i]), int(intended[i]), sent,
                       sent + int(service[i]))
        for k in range(windows):
            rec.sample(k * 1_000_000_000 + 500_000_000, cpu_s=0.05,
                       in_flight=int(rng.integers(1, 20)))
        recorded = rec.close()
        progress = rec.progress(elapsed_s=float(windows), in_flight=3)
        progress.latency.compact()
        out.append(pickle.dumps(pack(Snapshot(windows=tuple(recorded), progress=progress)),
                                protocol=pickle.HIGHEST_PROTOCOL))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    """One shape's measurements."""

    workers: int
    windows: int
    per_answer: int  # windows per answer to a poll
    stream_cpu_s: float
    per_window_us: float
    end_s: float  # merge + judge after the load
    json_s: float  # results.json text
    rss_before_mb: float
    peak_rss_mb: float
    open_max: int  # most run-level windows open at once
    requests: int  # in the results
    fed: int  # in the windows fed
    result_windows: int
    verdict: str


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _stream(sup: Supervisor, workers: int, windows: int, templates: list[bytes],
            every: int, seed: int) -> tuple[int, int]:
    """Feed the answers of a run: each worker answers every ``every`` windows (as the pool
    polls it), in random order, a third of them a window late; return the most open windows
    and how many requests the windows fed held."""
    rng = random.Random(seed)
    loads, received, set_field = pickle.loads, sup.received, object.__setattr__
    late: list[tuple[int, int, int]] = []  # (worker, first, last window) answered a round late
    following = [0] * workers  # the first window each worker has not answered with yet
    open_max = fed = 0
    for k in range(windows + 1):
        now = sup.start_at + k + 2.5  # window k is handed over 1.5 s after it ends
        due = []
        for w in range(workers):
            if k < windows and ((k + w) % every == every - 1 or k == windows - 1):
                due.append((w, following[w], k))
                following[w] = k + 1
            elif k == 0:  # the first poll is answered at once, with the progress only
                due.append((w, 0, -1))
        rng.shuffle(due)
        delayed = [rng.random() < 1 / 3 for _ in due]
        answers = late + [a for a, d in zip(due, delayed, strict=True) if not d]
        late = [a for a, d in zip(due, delayed, strict=True) if d]
        for n, (worker, first, last) in enumerate(answers):
            snapshot = unpack(loads(templates[(worker + first) % len(templates)]))
            snapshot = Snapshot(windows=snapshot.windows[:last - first + 1],
                                progress=snapshot.progress)
            for i, window in enumerate(snapshot.windows):  # a fresh copy: index it in place
                set_field(window, "index", first + i)
                set_field(window, "start_s", float(first + i))
                fed += window.requests
            received(worker, snapshot, now)
            if n == len(answers) // 2:
                sup.tick(now), sup.view(now)
        sup.tick(now), sup.view(now)
        open_max = max(open_max, sup.open_windows)
    return open_max, fed


def run_shape(workers: int, windows: int, *, rps: int = 100, seed: int = 1) -> Figures:
    """Stream ``workers`` x ``windows`` snapshots through a supervisor; merge and judge."""
    spec = spec_for(workers, windows)
    plans = worker_plans(spec)
    start_at = 1_000_000.0
    sup = Supervisor(plans, [{"host": f"node-{w % 16}", "pid": w} for w in range(workers)],
                     on_worker_loss="fail", start_at=start_at,
                     deadline_at=start_at + windows + 60.0)
    every = round(sup.repoll_s) + 1  # windows per answer, as the pool polls
    templates = template_snapshots(TEMPLATES, rps, windows=every, seed=seed)
    rss_before = _rss_mb()
    cpu0 = time.process_time()
    sup.begin(start_at + 2.0)
    open_max, fed = _stream(sup, workers, windows, templates, every, seed)
    stream_cpu = time.process_time() - cpu0
    began = time.perf_counter()
    for worker in range(workers):
        sup.received(worker, Snapshot(windows=(), progress=None, final=WorkerReport(
            worker_index=worker, host=f"node-{worker % 16}", pid=worker, started_at=start_at,
            measured_s=float(windows), windows=(), warmup_requests=0, unsent=0)),
            start_at + windows + 3)
    merged = sup.result()
    results = build_results(spec, merged, started=_START,
                            ended=_START + timedelta(seconds=windows))
    end_s = time.perf_counter() - began
    began = time.perf_counter()
    results.to_json()
    json_s = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return Figures(workers=workers, windows=windows, per_answer=every, stream_cpu_s=stream_cpu,
                   per_window_us=stream_cpu / (workers * windows) * 1e6, end_s=end_s,
                   json_s=json_s, rss_before_mb=rss_before, peak_rss_mb=peak, open_max=open_max,
                   requests=int(results.metrics["*"]["request-count"] or 0), fed=fed,
                   result_windows=len(results.windows), verdict=results.verdict)


# --- through Ray: the coordinator's cost per answer, Ray's receive included ----------------------


class CannedWorkers:
    """Makes RayPool's actors answer polls with recorded windows (packed once) instead of
    loading a target: windows of ``window_s`` each, handed over 1.5 windows after they end,
    as a real worker does; everything between them and the supervisor is RayPool's own."""

    @staticmethod
    def actor_class(template: bytes, windows: int) -> type:
        """Return the RayLoadWorker subclass whose polls answer with ``template``'s windows
        (all of them at once, re-indexed; ``windows`` a multiple of their number)."""
        from coordinator.ray_pool import RayLoadWorker

        class Canned(RayLoadWorker):
            def start(self, start_at: float) -> None:
                self._start_at, self._next, self._stopped = start_at, 0, False
                self._packed = pickle.loads(template)

            def stop(self) -> None:
                self._stopped = True

            def poll_packed(self, timeout_s: float = 1.0) -> tuple[object, ...]:
                per = len(self._packed[1])
                until = time.time() + timeout_s
                while True:
                    ready = (time.time() - self._start_at) / self.plan.window_s - 1.5
                    if self._stopped or ready >= self._next + per:
                        return self._answer()
                    if time.time() >= until:
                        return pack(Snapshot(windows=(), progress=None))
                    time.sleep(min(0.01, self.plan.window_s / 10))

            def _answer(self) -> tuple[object, ...]:
                version, metas, progress, _, sizes, indices, counts = self._packed
                window_s = self.plan.window_s
                metas = tuple((self._next + i, (self._next + i) * window_s, *m[2:])
                              for i, m in enumerate(metas))
                self._next += len(metas)
                final = None
                if self._next >= windows:
                    final = WorkerReport(worker_index=self.plan.worker_index, host="canned",
                                         pid=0, started_at=self._start_at,
                                         measured_s=windows * window_s, windows=(),
                                         warmup_requests=0, unsent=0)
                return (version, metas, progress, final, sizes, indices, counts)

        return Canned


def run_ray(workers: int, windows: int, window_s: float, per_poll: int, rps: int) -> dict[str, float]:
    """Run ``workers`` canned actors on an embedded Ray through RayPool, polling each every
    ``per_poll`` windows; return the driver's CPU per worker-window and per answer."""
    import coordinator.supervisor as supervision
    from coordinator.ray_pool import RayPool

    supervision.WORKERS_PER_POLL = max(1, -(-workers // per_poll))  # per_poll windows an answer
    spec = parse_spec({"name": "ray-scale", "target": "http://127.0.0.1:9",
                       "load": {"rate": 10 * workers, "duration": f"{windows * window_s:g}s",
                                "workers": workers, "window": f"{window_s:g}s"},
                       "endpoints": [{"path": "/a"}, {"path": "/b"}]})
    template = template_snapshots(1, rps, windows=per_poll)[0]
    marks: list[float] = []

    def on_progress(_view: object) -> None:
        if not marks:
            marks.append(time.process_time())

    class Pool(RayPool):
        worker_class = CannedWorkers.actor_class(template, windows)

    with Pool(num_cpus=workers, cpus_per_worker=0.01, dashboard=False,
              on_progress=on_progress) as pool:
        merged = pool.run(worker_plans(spec))
        cpu = time.process_time() - marks[0]
    return {"workers": workers, "windows": len(merged.windows), "per_poll": per_poll,
            "window_s": window_s, "ok": sum(w.status == "ok" for w in merged.workers),
            "requests": sum(w.requests for w in merged.workers),
            "per_window_us": cpu / (workers * windows) * 1e6,
            "per_answer_us": cpu / (workers * windows / per_poll) * 1e6}


def _child(workers: int, windows: int, rps: int) -> Figures:
    """Run one shape in a fresh interpreter (so its peak RSS is its own); return its figures."""
    out = subprocess.run([sys.executable, "-m", "bench.coordinator_scale", "--child",
                          f"{workers}x{windows}", "--rps", str(rps)],
                         check=True, capture_output=True, text=True)
    return Figures(**json.loads(out.stdout.strip().splitlines()[-1]))


def _goal(f: Figures) -> str:
    goal = GOALS.get((f.workers, f.windows))
    if goal is None:
        return ""
    ok = f.end_s <= goal[0] and f.peak_rss_mb <= goal[1] and f.per_window_us < CORE_BUDGET_US
    return f"{'met' if ok else 'MISSED'} (<= {goal[0]:g} s, <= {goal[1]} MB)"


def table(figures: list[Figures]) -> str:
    """Return the figures as a Markdown table."""
    lines = ["| workers x windows | windows per answer | CPU per worker-window "
             "| cores at 1 window/s | merge + judge after the load | results.json text "
             "| RSS before | peak RSS | open windows (max) | exact | goal |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for f in figures:
        exact = f.requests == f.fed and f.result_windows == f.windows and f.verdict == "PASS"
        lines.append(
            f"| {f.workers:,} x {f.windows:,} | {f.per_answer} | {f.per_window_us:.0f} us "
            f"| {f.per_window_us * f.workers / 1e6:.2f} | {f.end_s:.2f} s | {f.json_s:.2f} s "
            f"| {f.rss_before_mb:.0f} MB | {f.peak_rss_mb:.0f} MB | {f.open_max} "
            f"| {'yes' if exact else 'NO'} ({f.requests:,} requests) | {_goal(f)} |")
    return "\n".join(lines)


def _shape(text: str) -> tuple[int, int]:
    workers, _, windows = text.partition("x")
    try:
        return int(workers), int(windows)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WORKERSxWINDOWS, e.g. 64x600") from None


def main(argv: list[str] | None = None) -> int:
    """Run the shapes (each in a child process) and print the table; return 0."""
    parser = argparse.ArgumentParser(prog="python -m bench.coordinator_scale",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=_shape, action="append",
                        help="WORKERSxWINDOWS (repeatable); default 64x600, 1024x600, 64x3600")
    parser.add_argument("--full", action="store_true", help="add 1024x3600 (the acceptance run)")
    parser.add_argument("--rps", type=int, default=100, help="requests per worker-window")
    parser.add_argument("--ray", type=int, metavar="ACTORS",
                        help="instead: ACTORS canned actors through RayPool on an embedded Ray, "
                             "1 then 4 windows per answer (Ray's receive cost included)")
    parser.add_argument("--child", type=_shape, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_as_dict(run_shape(*args.child, rps=args.rps))))
        return 0
    if args.ray:
        print("| actors | windows per answer | driver CPU per worker-window | per answer |")
        print("|---:|---:|---:|---:|")
        for per_poll in (1, 4):
            got = run_ray(args.ray, 40, 0.25, per_poll, args.rps)
            print(f"| {args.ray} | {per_poll} | {got['per_window_us']:.0f} us "
                  f"| {got['per_answer_us']:.0f} us |")
        return 0
    shapes = list(args.shape or DEFAULT_SHAPES) + ([FULL_SHAPE] if args.full else [])
    figures = []
    for workers, windows in shapes:
        print(f"coordinator_scale: {workers} x {windows} ...", file=sys.stderr, flush=True)
        figures.append(_child(workers, windows, args.rps))
    print(table(figures))
    return 0


def _as_dict(figures: Figures) -> dict[str, object]:
    return {name: getattr(figures, name) for name in Figures.__slots__}


if __name__ == "__main__":
    sys.exit(main())
