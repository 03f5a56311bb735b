"""``python -m bench.scaling``: slogate through Ray with 1 actor, then 2, against one local nginx.

Runs slogate's real distributed path: ``coordinator.ray_pool.RayPool`` on an embedded local Ray,
plans from ``coordinator.spec.parse_spec`` + ``coordinator.split.worker_plans``, closed model, the
same total connections split across the actors. Per run it reports requests, requests/s, requests
per actor, the actors' load-thread CPU (the sum of ``WorkerReport.windows[*].cpu_s``) and requests
per actor-CPU-second, then the 2-actor/1-actor ratios.

It also accounts for the machine's CPU over each measured phase, so the ratio can be read: a
thread samples ``/proc`` every 0.2 s (``/proc/stat`` for the machine and per core, and every
``/proc/<pid>/stat``); the samples that bracket the measured phase give, in cores busy on
average: nginx (master and worker), the actor processes (all their threads), Ray and this driver
(the rest of this process's tree), irq+softirq (loopback networking), and everything else on the
machine (other users' processes). nginx is pinned to core 0 as in ``python -m bench``; the Ray
actors are not pinned (Ray starts its own processes).

Example::

    .venv/bin/python -m bench.scaling --duration 5        # under a minute

Writes ``bench/out/scaling.json`` atomically. Exit codes: 0 ran (failed runs are rows marked
FAILED), 2 bad arguments, 3 could not run (no nginx, or Ray would not start).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from bench import BenchError, install, report
from bench.measure import Pinning, pinning
from bench.nginx import Target, nginx_target

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "out" / "scaling.json"
ACTOR_COUNTS = (1, 2)
SAMPLE_EVERY_S = 0.2
REQUEST_TIMEOUT = "5s"
TOP_OTHER = 3  # the busiest other processes named per run
SATURATED = 0.9  # a share of capacity at or above this counts as saturated

Log = Callable[[str], None]


def log(message: str) -> None:
    """Print one progress line to stderr."""
    print(f"bench.scaling: {message}", file=sys.stderr, flush=True)


# --- /proc: pure parsers ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CpuTimes:
    """One ``cpu``/``cpuN`` line of ``/proc/stat``, in clock ticks."""

    user: int
    nice: int
    system: int
    idle: int
    iowait: int = 0
    irq: int = 0
    softirq: int = 0
    steal: int = 0

    @property
    def busy(self) -> int:
        """Return ticks not idle (iowait counts as idle), irq, softirq and steal included."""
        return self.user + self.nice + self.system + self.irq + self.softirq + self.steal

    @property
    def total(self) -> int:
        """Return every tick of the line's first eight fields."""
        return self.busy + self.idle + self.iowait


def parse_cpu_times(text: str) -> dict[str, CpuTimes]:
    """Return ``/proc/stat``'s CPU lines by name (``cpu`` is the machine, ``cpu0``... each core)."""
    out = {}
    for line in text.splitlines():
        if not line.startswith("cpu"):
            continue
        name, *fields = line.split()
        out[name] = CpuTimes(*(int(f) for f in fields[:8]))
    if "cpu" not in out:
        raise ValueError("no 'cpu' line in /proc/stat")
    return out


class ProcStat(NamedTuple):
    """What this module reads of one ``/proc/<pid>/stat``."""

    comm: str
    ppid: int
    ticks: int  # utime + stime


def parse_pid_stat(text: str) -> ProcStat:
    """Return the command name, parent pid and utime + stime (clock ticks) of a stat line.

    The command name (field 2) is in parentheses and may hold spaces or ')', so fields are
    counted after the last ')'.
    """
    close = text.rindex(")")
    fields = text[close + 2:].split()
    return ProcStat(text[text.index("(") + 1:close], int(fields[1]),
                    int(fields[11]) + int(fields[12]))


def descendants(parents: Mapping[int, int], root: int) -> set[int]:
    """Return ``root`` and every pid below it, given {pid: parent pid}."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in out:
            out.add(pid)
            todo.extend(children.get(pid, ()))
    return out


# --- /proc: sampling ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Sample:
    """The machine's CPU lines and every process's (parent, CPU ticks) at unix time ``at``."""

    at: float
    cpus: dict[str, CpuTimes]
    procs: dict[int, ProcStat]


def take_sample() -> Sample:
    """Read ``/proc/stat`` and every ``/proc/<pid>/stat`` now."""
    at = time.time()
    with open("/proc/stat") as handle:
        cpus = parse_cpu_times(handle.read())
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as handle:
                procs[int(name)] = parse_pid_stat(handle.read())
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or unreadable
    return Sample(at=at, cpus=cpus, procs=procs)


class Sampler:
    """A thread that takes a :class:`Sample` every ``every_s`` while the context is open."""

    def __init__(self, every_s: float = SAMPLE_EVERY_S) -> None:
        self.every_s = every_s
        self.samples: list[Sample] = []
        self.cpu_s = 0.0  # this thread's own CPU time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="proc-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        cpu0 = time.thread_time()
        while True:
            self.samples.append(take_sample())
            if self._stop.wait(self.every_s):
                break
        self.samples.append(take_sample())
        self.cpu_s = time.thread_time() - cpu0


def bracket(samples: Sequence[Sample], start: float, end: float) -> tuple[Sample, Sample] | None:
    """Return the first sample at or after ``start`` and the last at or before ``end``."""
    inside = [s for s in samples if start <= s.at <= end]
    if len(inside) < 2:
        return None
    return inside[0], inside[-1]


@dataclass(frozen=True, slots=True, kw_only=True)
class CpuBudget:
    """Where the machine's CPU went between two samples, in cores busy on average."""

    span_s: float  # between the two samples
    cores: int  # the machine's CPUs (cpuN lines)
    machine: float
    nginx: float
    actors: float  # the actor processes, every thread
    ray_driver: float  # the rest of this process's tree: Ray's daemons, this driver, the sampler
    irq: float  # irq + softirq (loopback networking), not charged to any process here
    other: float  # the rest: other users' processes, and whatever escaped the above
    per_core: dict[str, float] = field(default_factory=dict)  # busy share of each core, 0..1
    per_actor: dict[int, float] = field(default_factory=dict)  # pid -> cores
    top_other: tuple[tuple[int, str, float], ...] = ()  # (pid, comm, cores) of the busiest others


def cpu_budget(first: Sample, last: Sample, *, hz: float, nginx_pid: int,
               actor_pids: Sequence[int], driver_pid: int) -> CpuBudget:
    """Return the CPU budget between two samples.

    A process present only in ``last`` started meanwhile and counts whole; one present only in
    ``first`` ended meanwhile and is lost to "other" via the machine total.
    """
    span = last.at - first.at
    if span <= 0:
        raise ValueError("the samples are not in time order")
    parents = {pid: proc.ppid for pid, proc in last.procs.items()}

    def ticks(pid: int) -> int:
        before = first.procs.get(pid)
        return last.procs[pid].ticks - (before.ticks if before else 0) if pid in last.procs else 0

    def cores(pids: Iterable[int]) -> float:
        return sum(ticks(pid) for pid in pids) / hz / span

    def machine_cores(name: str, part: Callable[[CpuTimes], int]) -> float:
        return (part(last.cpus[name]) - part(first.cpus[name])) / hz / span

    nginx = descendants(parents, nginx_pid)
    actors = set(actor_pids)
    tree = descendants(parents, driver_pid) - nginx - actors
    machine = machine_cores("cpu", lambda c: c.busy)
    irq = machine_cores("cpu", lambda c: c.irq + c.softirq)
    per_core = {}
    for name in sorted((n for n in last.cpus if n != "cpu"), key=lambda n: int(n[3:])):
        total = last.cpus[name].total - first.cpus[name].total
        per_core[name] = (last.cpus[name].busy - first.cpus[name].busy) / total if total else 0.0
    rest = sorted(((ticks(pid), pid) for pid in last.procs.keys() - nginx - actors - tree),
                  reverse=True)
    top_other = tuple((pid, last.procs[pid].comm, n / hz / span) for n, pid in rest[:TOP_OTHER]
                      if n > 0)
    budget = dict(nginx=cores(nginx), actors=cores(actors), ray_driver=cores(tree), irq=irq)
    return CpuBudget(span_s=span, cores=len(per_core) or 1, machine=machine,
                     other=max(0.0, machine - sum(budget.values())), per_core=per_core,
                     per_actor={pid: cores([pid]) for pid in actor_pids}, top_other=top_other,
                     **budget)


# --- results: pure ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class ActorResult:
    """One actor's share of a run."""

    index: int
    pid: int | None
    connections: int
    requests: int
    errors: int
    load_cpu_s: float  # the sum of its windows' cpu_s: the load thread's CPU
    lost: str | None = None  # why it did not report, when it did not


@dataclass(frozen=True, slots=True, kw_only=True)
class ScalingRun:
    """One run: N actors sharing the connections, what they did, and where the CPU went."""

    actors: int
    connections: int
    requests: int | None = None
    errors: int | None = None
    measured_s: float | None = None
    rps: float | None = None
    load_cpu_s: float | None = None
    req_per_load_cpu_s: float | None = None
    server_requests: int | None = None  # what nginx counted meanwhile (stub_status)
    per_actor: tuple[ActorResult, ...] = ()
    cpu: CpuBudget | None = None
    sampler_cpu_s: float = 0.0  # the /proc sampler's own CPU during the run
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Return whether the run produced numbers."""
        return self.error is None


def scaling_spec(host: str, *, connections: int, duration_s: int, actors: int) -> dict[str, Any]:
    """Return the experiment spec of one run (closed model, ``connections`` split over actors)."""
    return {"name": "scaling", "target": host,
            "load": {"concurrency": connections, "duration": f"{duration_s}s", "workers": actors,
                     "timeout": REQUEST_TIMEOUT},
            "endpoints": [{"path": "/hello"}]}


def actor_result(outcome: Any, connections: int) -> ActorResult:
    """Return one actor's figures from its ``WorkerReport`` (or ``WorkerLost``: windows so far),
    or from the pool's ``WorkerSummary`` (counts by key, no windows)."""
    if hasattr(outcome, "counts"):
        counts = outcome.counts.items()
        load_cpu_s, index = outcome.cpu_s, outcome.index
    else:
        counts = [(key, h.total) for w in outcome.windows for key, h in w.latency.items()]
        load_cpu_s, index = sum(w.cpu_s for w in outcome.windows), outcome.worker_index
    requests = sum(n for _, n in counts)
    ok = sum(n for (_, result), n in counts if result == "status:200")
    return ActorResult(index=index, pid=getattr(outcome, "pid", None),
                       connections=connections, requests=requests, errors=requests - ok,
                       load_cpu_s=load_cpu_s, lost=getattr(outcome, "reason", None))


def scaling_run(actors: int, connections: int, outcomes: Sequence[Any], plans_users: Sequence[int],
                *, server_requests: int | None = None, cpu: CpuBudget | None = None
                ) -> ScalingRun:
    """Return a run's totals from its outcomes; a lost actor makes the run FAILED (kept per actor)."""
    users = dict(enumerate(plans_users))
    per_actor = tuple(sorted((actor_result(o, users.get(_index(o), 0)) for o in outcomes),
                             key=lambda a: a.index))
    base: dict[str, Any] = dict(actors=actors, connections=connections, per_actor=per_actor,
                server_requests=server_requests, cpu=cpu)
    lost = [a for a in per_actor if a.lost is not None]
    if lost or len(per_actor) != actors:
        why = "; ".join(f"actor #{a.index}: {a.lost}" for a in lost) or (
            f"{len(per_actor)} of {actors} actors reported")
        return ScalingRun(**base, error=why)
    measured = max(o.measured_s or 0.0 for o in outcomes)
    requests = sum(a.requests for a in per_actor)
    load_cpu = sum(a.load_cpu_s for a in per_actor)
    return ScalingRun(**base, requests=requests, errors=sum(a.errors for a in per_actor),
                      measured_s=measured, rps=requests / measured if measured > 0 else None,
                      load_cpu_s=load_cpu,
                      req_per_load_cpu_s=requests / load_cpu if load_cpu > 0 else None)


def _index(outcome: Any) -> int:
    return outcome.index if hasattr(outcome, "counts") else outcome.worker_index


def scaling_ratios(runs: Sequence[ScalingRun]) -> dict[str, float | None]:
    """Return the last run's requests/s and requests per actor-CPU-second over the first's."""
    if len(runs) < 2:
        return {"rps": None, "req_per_load_cpu_s": None}
    first, last = runs[0], runs[-1]
    return {metric: _divide(getattr(last, metric), getattr(first, metric))
            for metric in ("rps", "req_per_load_cpu_s")}


def _divide(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def bound_note(run: ScalingRun) -> str:
    """Return what bounded one run's throughput, read from its CPU budget."""
    cpu = run.cpu
    if not run.ok or cpu is None or run.measured_s is None:
        return f"{run.actors} actor(s): no CPU budget ({run.error or 'too few /proc samples'})"
    s = run.measured_s

    def cpu_s(cores: float) -> str:
        return f"{cores * s:.1f}"

    plural = "s" if run.actors > 1 else ""
    busy = cpu.machine / cpu.cores
    load = run.load_cpu_s or 0.0
    head = (f"{run.actors} actor{plural} + nginx on {cpu.cores} cores: nginx used "
            f"{cpu_s(cpu.nginx)} CPU-s of {s:g} s, actors {cpu_s(cpu.actors)} (load threads "
            f"{load:.1f}), Ray+driver {cpu_s(cpu.ray_driver)}, irq {cpu_s(cpu.irq)}, other "
            f"processes {cpu_s(cpu.other)}; machine {100 * busy:.0f} % busy")
    core0 = cpu.per_core.get("cpu0")
    others = ""
    if cpu.other >= 0.1 * cpu.cores:
        named = ", ".join(f"{comm} [{pid}] {cores * s:.1f}" for pid, comm, cores in cpu.top_other)
        rest = ("; the rest from processes that ended during the phase"
                if sum(cores for _, _, cores in cpu.top_other) < 0.5 * cpu.other else "")
        others = (f" (other processes took {cpu_s(cpu.other)} CPU-s"
                  + (f": {named}" if named else "") + rest + ")")
    if busy >= SATURATED:
        core = f" (nginx's core 0: {100 * core0:.0f} %)" if core0 is not None else ""
        return f"{head}{core}: bounded by the machine, not by slogate{others}"
    if cpu.nginx >= SATURATED:
        return (f"{head}: nginx's one worker is saturated: bounded by the target, not by "
                f"slogate{others}")
    if load / s / run.actors >= SATURATED:
        return f"{head}: each actor's load thread is CPU-bound: bounded by slogate's CPU{others}"
    return f"{head}: nothing saturated: bounded by round trips (waiting), not by CPU{others}"


def imbalance_note(run: ScalingRun, tolerance: float = 0.2) -> str | None:
    """Return a note when the actors' request counts differ by more than ``tolerance``."""
    if not run.ok or len(run.per_actor) < 2:
        return None
    counts = [a.requests for a in run.per_actor]
    if max(counts) <= (1.0 + tolerance) * min(counts):
        return None
    rates = [a.requests / a.load_cpu_s if a.load_cpu_s > 0 else None for a in run.per_actor]
    per_cpu = " vs ".join(report.num(r, ".0f") for r in rates)
    known = [r for r in rates if r is not None]
    same = (len(known) == len(rates) and max(known) <= (1.0 + tolerance / 2) * min(known))
    return (f"{run.actors} actors: requests {' vs '.join(map(str, counts))} from load-thread CPU "
            f"{' vs '.join(f'{a.load_cpu_s:.2f}' for a in run.per_actor)} s (requests per "
            f"CPU-s {per_cpu}): the actors are unpinned and got unequal shares of the cores"
            + ("; per CPU-second they did about the same work" if same else ""))


# --- printing -----------------------------------------------------------------------------------

def format_table(runs: Sequence[ScalingRun]) -> str:
    """Return the runs as a fixed-width table: load figures, then the CPU budget in cores."""
    head = (f"{'actors':>6}{'conns':>12}{'requests':>10}{'nginx saw':>10}{'errors':>7}"
            f"{'req/s':>9}  {'per-actor requests':<22}{'actor CPU s':>12}{'req/actor-CPU-s':>16}")
    lines = [head, "-" * len(head)]
    for r in runs:
        conns = "+".join(str(a.connections) for a in r.per_actor) or str(r.connections)
        if not r.ok:
            lines.append(f"{r.actors:>6}{conns:>12}  FAILED: {r.error}")
            continue
        per_actor = "+".join(str(a.requests) for a in r.per_actor)
        cpus = "+".join(f"{a.load_cpu_s:.2f}" for a in r.per_actor)
        lines.append(f"{r.actors:>6}{conns:>12}{r.requests:>10}{report.num(r.server_requests, 'd'):>10}"
                     f"{r.errors:>7}{report.num(r.rps, '.0f'):>9}  {per_actor:<22}{cpus:>12}"
                     f"{report.num(r.req_per_load_cpu_s, '.0f'):>16}")
    cores = next((r.cpu.cores for r in runs if r.cpu is not None), None)
    lines += ["", f"CPU over each measured phase, in cores busy on average (of {cores or '?'}):"]
    head2 = (f"{'actors':>6}{'machine':>9}{'nginx':>7}{'actors':>8}{'Ray+drv':>9}{'irq':>6}"
             f"{'other':>7}{'req/nginx-CPU-s':>16}  per core busy")
    lines += [head2, "-" * (len(head2) + 12)]
    for r in runs:
        c = r.cpu
        if c is None:
            lines.append(f"{r.actors:>6}  -")
            continue
        per_core = " ".join(f"{n}={100 * v:.0f}%" for n, v in c.per_core.items())
        per_nginx = _divide(r.rps, c.nginx)
        lines.append(f"{r.actors:>6}{c.machine:>9.2f}{c.nginx:>7.2f}{c.actors:>8.2f}"
                     f"{c.ray_driver:>9.2f}{c.irq:>6.2f}{c.other:>7.2f}"
                     f"{report.num(per_nginx, '.0f'):>16}  {per_core}")
    return "\n".join(lines)


def format_ratios(runs: Sequence[ScalingRun], ratios: Mapping[str, float | None]) -> str:
    """Return the last run over the first, side by side with both figures."""
    if len(runs) < 2:
        return "ratio: needs two runs"
    a, b = runs[0], runs[-1]
    return "\n".join([
        f"{b.actors}-actor/{a.actors}-actor:",
        f"  requests/s               {report.num(b.rps, '.0f'):>8} / {report.num(a.rps, '.0f'):>8} = "
        f"{report.num(ratios['rps'], '.2f')}x",
        f"  requests/actor-CPU-s     {report.num(b.req_per_load_cpu_s, '.0f'):>8} / "
        f"{report.num(a.req_per_load_cpu_s, '.0f'):>8} = {report.num(ratios['req_per_load_cpu_s'], '.2f')}x",
    ])


def notes(runs: Sequence[ScalingRun], pin: Pinning, sampler_cpu_s: float) -> list[str]:
    """Return what bounded each run, and the caveats a reader of the numbers needs."""
    out = [bound_note(r) for r in runs]
    out += [n for n in map(imbalance_note, runs) if n is not None]
    out += [f"{pin.note.split(',')[0]}; the Ray actors and the driver are not pinned "
            "(Ray starts its own processes)",
            "actor CPU s = the load threads' CPU over the measured phase (the sum of each "
            "WorkerReport's windows' cpu_s); the CPU table's 'actors' column is the whole actor "
            "processes (Ray's RPC threads included), from /proc",
            "CPU table: /proc sampled every "
            f"{SAMPLE_EVERY_S:g} s; the samples inside each measured phase bracket it; 'other' = "
            "machine busy minus the rest (other users' processes, and any process that ended "
            f"mid-phase); the sampler itself used {sampler_cpu_s:.2f} CPU s in all"]
    return out


# --- running ------------------------------------------------------------------------------------

def run_one(pool: Any, target: Target, *, actors: int, connections: int, duration_s: int,
            log: Log) -> ScalingRun:
    """Run one closed-model experiment on ``actors`` actors; return its result."""
    from coordinator.errors import ClusterError, SpecError
    from coordinator.spec import parse_spec
    from coordinator.split import worker_plans

    try:
        plans = worker_plans(parse_spec(scaling_spec(target.host, connections=connections,
                                                      duration_s=duration_s, actors=actors)))
    except SpecError as exc:
        return ScalingRun(actors=actors, connections=connections, error=str(exc))
    users = [p.concurrency for p in plans]
    log(f"{actors} actor(s), {'+'.join(map(str, users))} connections, {duration_s} s")
    before = target.served()
    try:
        with Sampler() as sampler:
            outcomes = pool.run(plans).workers
    except ClusterError as exc:
        return ScalingRun(actors=actors, connections=connections, error=str(exc))
    after = target.served()
    served = after - before - 1 if before is not None and after is not None else None
    run = scaling_run(actors, connections, outcomes, users, server_requests=served)
    run = dataclasses.replace(_with_cpu(run, outcomes, sampler, target),
                              sampler_cpu_s=sampler.cpu_s)
    if run.ok:
        log(f"  {run.requests} requests, {report.num(run.rps, '.0f')} req/s, actor load CPU "
            f"{run.load_cpu_s:.2f} s")
    else:
        log(f"  FAILED: {run.error}")
    return run


def _with_cpu(run: ScalingRun, outcomes: Sequence[Any], sampler: Sampler,
              target: Target) -> ScalingRun:
    starts = [o.started_at for o in outcomes if getattr(o, "started_at", None) is not None]
    if not run.ok or not starts or run.measured_s is None:
        return run
    start = min(starts)
    pair = bracket(sampler.samples, start, start + run.measured_s)
    if pair is None:
        return run
    pids = [a.pid for a in run.per_actor if a.pid is not None]
    cpu = cpu_budget(*pair, hz=os.sysconf("SC_CLK_TCK"), nginx_pid=target.pid, actor_pids=pids,
                     driver_pid=os.getpid())
    return dataclasses.replace(run, cpu=cpu)


def measure(nginx: str, pin: Pinning, *, duration_s: int, connections: int,
            actor_counts: Sequence[int] = ACTOR_COUNTS, log: Log = log) -> list[ScalingRun]:
    """Start nginx and an embedded Ray, run each actor count in turn, stop both."""
    from coordinator.errors import ClusterError
    from coordinator.ray_pool import RayPool

    with nginx_target(nginx, pin=pin.target) as target:
        log(f"target: nginx pid {target.pid} at {target.url}; {pin.note.split(',')[0]}")
        try:
            with RayPool(None, num_cpus=max(actor_counts), cpus_per_worker=1, dashboard=False,
                         log=log) as pool:
                return [run_one(pool, target, actors=n, connections=connections,
                                duration_s=duration_s, log=log) for n in actor_counts]
        except ClusterError as exc:
            raise BenchError(str(exc)) from None


def document(runs: Sequence[ScalingRun], *, command: str, started: datetime, pin: Pinning,
             duration_s: int, connections: int) -> dict[str, Any]:
    """Return the JSON document of a scaling benchmark."""
    ratios = scaling_ratios(runs)
    return {
        "command": command, "cwd": str(Path.cwd()), "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "settings": {"duration_s": duration_s, "connections": connections,
                     "actor_counts": [r.actors for r in runs], "model": "closed",
                     "pinning": pin.note.split(",")[0] + "; Ray actors unpinned",
                     "target": "nginx, 1 worker, GET /hello",
                     "pool": "coordinator.ray_pool.RayPool, embedded local Ray, 1 CPU per actor",
                     "cores": os.cpu_count()},
        "runs": [{**asdict(r), "ok": r.ok} for r in runs],
        "ratios": ratios,
        "notes": notes(runs, pin, sum(r.sampler_cpu_s for r in runs)),
    }


def print_report(doc: Mapping[str, Any], runs: Sequence[ScalingRun]) -> None:
    """Print the table, the ratios and the notes."""
    settings = doc["settings"]
    print(f"scaling: slogate via RayPool (embedded Ray), closed model, {settings['connections']} "
          f"connections split across the actors, {settings['duration_s']} s per run")
    print(format_table(runs))
    print()
    print(format_ratios(runs, doc["ratios"]))
    print()
    for note in doc["notes"]:
        print(f"note: {note}")


def run_and_report(nginx: str, pin: Pinning, *, duration_s: int, connections: int, out: Path,
                   command: str) -> None:
    """Measure, print, and write ``out``; raise :class:`BenchError` if it cannot run."""
    started = datetime.now(UTC)
    runs = measure(nginx, pin, duration_s=duration_s, connections=connections)
    doc = document(runs, command=command, started=started, pin=pin, duration_s=duration_s,
                   connections=connections)
    print_report(doc, runs)
    report.write_json(out, doc)
    print(f"\nresults: {out}\nproduced by: (cd {shlex.quote(str(Path.cwd()))} && {command})")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Return the parsed command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (10)")
    parser.add_argument("--connections", type=int, default=50,
                        help="total connections, split across the actors (50)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.duration < 1 or args.connections < max(ACTOR_COUNTS):
        parser.error(f"--duration must be positive and --connections at least "
                     f"{max(ACTOR_COUNTS)} (one per actor)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the scaling benchmark; return the exit code (0 ran, 3 could not run)."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = f"{shlex.quote(sys.executable)} -m bench.scaling {shlex.join(argv)}".strip()
    problems = install.ensure_debian_tools(["nginx"], log)
    nginx = install.find_tool("nginx")
    if nginx is None:
        log(f"error: nginx is needed as the target: {problems.get('nginx')}")
        return 3
    try:
        run_and_report(nginx, pinning(), duration_s=args.duration, connections=args.connections,
                       out=args.out, command=command)
    except BenchError as exc:
        log(f"error: {exc}")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
