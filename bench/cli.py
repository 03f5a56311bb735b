"""``python -m bench``: install the tools, start nginx, run every client against it, report ratios.

Progress goes to stderr, the report to stdout. Exit codes: 0 the benchmark ran and wrote its
results (goals met or not: they are in the report), 2 bad arguments, 3 it could not run (no
nginx, or nginx would not start). A client that cannot be installed or fails is a row marked
FAILED; the other clients still run.

Example::

    .venv/bin/python -m bench --quick            # 3 s per client, about two minutes
    .venv/bin/python -m bench --soak             # adds the 10M-request memory soak (minutes)
    .venv/bin/python -m bench --scaling          # then slogate on Ray, 1 vs 2 actors (bench.scaling)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench import BenchError, grpc_bench, install, peers, report, scaling
from bench.measure import Pinning, pinning, run_child, run_sampled, run_together
from bench.nginx import Target, nginx_target

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "out" / "results.json"
SLACK_S = 30.0  # start-up and shut-down allowance on top of a client's duration
SOAK_MARKS = (1_000_000, 5_000_000, 10_000_000)


def log(message: str) -> None:
    """Print one progress line to stderr."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Setup:
    """What every client run shares: the target, the pinning, the load shape, a scratch folder."""

    target: Target
    pin: Pinning
    duration_s: int
    connections: int
    scratch: Path
    floor: Path | None = None  # the floor client (bench/floor.c), where it was built


def run_wrk(setup: Setup) -> report.ClientResult:
    """Run wrk (one thread) and return its result."""
    cmd = peers.wrk_command(setup.target.url, connections=setup.connections,
                            duration_s=setup.duration_s)
    run = run_child([*setup.pin.client, *cmd], timeout_s=setup.duration_s + SLACK_S)
    return report.client_result("wrk", run, peers.parse_wrk)


def run_hey(setup: Setup) -> report.ClientResult:
    """Run hey (GOMAXPROCS 1) and return its result."""
    cmd = peers.hey_command(setup.target.url, connections=setup.connections,
                            duration_s=setup.duration_s)
    run = run_child([*setup.pin.client, *cmd], timeout_s=setup.duration_s + SLACK_S)
    return report.client_result("hey", run, peers.parse_hey)


def run_locust(setup: Setup) -> report.ClientResult:
    """Run Locust headless in one process and return its result, read from its stats CSV."""
    prefix = setup.scratch / "locust"
    cmd = peers.locust_command(setup.target.host, users=setup.connections,
                               duration_s=setup.duration_s, csv_prefix=str(prefix))
    run = run_child([*setup.pin.client, *cmd], timeout_s=setup.duration_s + 2 * SLACK_S,
                    cwd=setup.scratch)
    result = report.client_result("locust", run, peers.parse_locust_json)
    stats = Path(f"{prefix}_stats.csv")
    try:  # kept to show how far the CSV lags the final count (see parse_locust_json)
        csv_requests = peers.parse_locust_stats(stats.read_text()).requests
    except (OSError, ValueError, KeyError):
        csv_requests = None
    return dataclasses.replace(result, extra={**result.extra, "csv_requests": csv_requests})


def run_slogate(setup: Setup, transport: str) -> report.ClientResult:
    """Run ``bench.slogate_client`` in the closed model and return its result."""
    cmd = peers.slogate_command(setup.target.url, model="closed", connections=setup.connections,
                                duration_s=setup.duration_s, transport=transport)
    run = run_child([*setup.pin.client, *cmd], timeout_s=setup.duration_s + 2 * SLACK_S, cwd=REPO)
    return report.client_result(f"slogate[{transport}]", run, peers.parse_slogate)


OPEN_WARMUP_S = 1.0


def run_open(setup: Setup, transport: str, rate_rps: float) -> report.OpenResult:
    """Run slogate's open model at ``rate_rps`` and return rate and lag against their goals."""
    cmd = peers.slogate_command(setup.target.url, model="open", rate_rps=rate_rps,
                                duration_s=setup.duration_s, transport=transport,
                                warmup_s=OPEN_WARMUP_S)
    name = f"slogate[{transport}] open"

    def runner(s: Setup) -> report.ClientResult:
        run = run_child([*s.pin.client, *cmd], timeout_s=s.duration_s + OPEN_WARMUP_S + 2 * SLACK_S,
                        cwd=REPO)
        return report.client_result(name, run, peers.parse_slogate)

    return report.open_result(rate_rps, counted(setup.target, runner, setup))


def run_soak(setup: Setup, transport: str, requests: int, max_s: float) -> report.SoakResult:
    """Run a long closed-model slogate run, sampling its RSS from here; return peak and flatness."""
    cmd = peers.slogate_command(setup.target.url, model="closed", connections=setup.connections,
                                requests=requests, transport=transport, max_duration_s=max_s)
    log(f"soak: up to {requests} requests or {max_s:g} s, RSS sampled every 0.5 s")
    run = run_sampled([*setup.pin.client, *cmd], timeout_s=max_s + 2 * SLACK_S, cwd=REPO)
    client = report.client_result(f"slogate[{transport}] soak", run, peers.parse_slogate)
    if client.ok and client.requests is not None and client.requests < requests:
        client = dataclasses.replace(client, error=f"stopped at the {max_s:g} s bound")
    return report.soak_result(client, run.rss_samples)


PEERS = {"wrk": peers.parse_wrk, "hey": peers.parse_hey, "locust": peers.parse_locust_json,
         "floor": peers.parse_floor}  # floor: a bare C epoll loop (bench/floor.c), no goal


BODIES = ("fixed", "dynamic")  # nginx's /hello and /dynamic ($request_id), see bench.nginx


def run_paired(setup: Setup, transport: str, rounds: int, problems: dict[str, str]
               ) -> list[report.PairedResult]:
    """Run slogate together with each installed peer, ``rounds`` times, against the fixed body
    and then the dynamic one; return the ratios."""
    mine = f"slogate[{transport}]"
    out = []
    for body in BODIES:
        url = setup.target.url if body == "fixed" else setup.target.dynamic_url
        slogate_cmd = peers.slogate_command(url, model="closed", connections=setup.connections,
                                            duration_s=setup.duration_s, transport=transport)
        for peer, parse in PEERS.items():
            if peer in problems:
                continue
            pairs = []
            for k in range(rounds):
                log(f"same-time pair {k + 1}/{rounds}, {body} body: {mine} with {peer}")
                runs = run_together([[*setup.pin.client, *slogate_cmd],
                                     [*setup.pin.client, *_peer_command(peer, setup, url)]],
                                    timeout_s=setup.duration_s + 2 * SLACK_S, cwd=REPO)
                pairs.append((report.client_result(mine, runs[0], peers.parse_slogate),
                              report.client_result(peer, runs[1], parse)))
            out.append(report.paired_result(peer, pairs, body))
    return out


def _peer_command(peer: str, setup: Setup, url: str) -> list[str]:
    if peer == "floor":
        assert setup.floor is not None  # run_paired skips a peer with a problem
        return peers.floor_command(str(setup.floor), url, connections=setup.connections,
                                   duration_s=setup.duration_s)
    if peer == "wrk":
        return peers.wrk_command(url, connections=setup.connections, duration_s=setup.duration_s)
    if peer == "hey":
        return peers.hey_command(url, connections=setup.connections, duration_s=setup.duration_s)
    path = url.removeprefix(setup.target.host)
    return peers.locust_command(setup.target.host, users=setup.connections,
                                duration_s=setup.duration_s,
                                csv_prefix=str(setup.scratch / "locust-paired"), path=path)


def closed_clients(args: argparse.Namespace, problems: dict[str, str]
                   ) -> list[tuple[str, Callable[[Setup], report.ClientResult]]]:
    """Return (name, runner) per client in run order; a runner of a missing tool reports why."""
    runners: list[tuple[str, Callable[[Setup], report.ClientResult]]] = [
        ("wrk", run_wrk), ("hey", run_hey), ("locust", run_locust)]
    for transport in args.transport:
        runners.append((f"slogate[{transport}]",
                        partial(_run_slogate_with, transport)))
    out = []
    for name, runner in runners:
        if name in problems:
            problem = problems[name]
            runner = partial(_not_installed, name, problem)
        out.append((name, runner))
    return out


def _run_slogate_with(transport: str, setup: Setup) -> report.ClientResult:
    """Return slogate's result over ``transport`` (the runner for one ``--transport``)."""
    return run_slogate(setup, transport)


def _not_installed(name: str, problem: str, _setup: Setup) -> report.ClientResult:
    """Return the failed result that stands for a client that is not installed."""
    return report.failed_result(name, f"not installed: {problem}")


def tool_versions(nginx: str) -> dict[str, str]:
    """Return the first line each tool prints about its version (before any measured run)."""
    commands = {"nginx": [nginx, "-v"], "wrk": ["wrk", "-v"],
                "locust": [sys.executable, "-m", "locust", "--version"]}
    versions = {}
    for name, cmd in commands.items():
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
            lines = (done.stdout + done.stderr).strip().splitlines()
            versions[name] = lines[0] if lines else ""
        except OSError as exc:
            versions[name] = f"unavailable: {exc}"
        except subprocess.TimeoutExpired:
            versions[name] = "unavailable: timed out"
    return versions


def prepare() -> tuple[str, dict[str, str]]:
    """Install what is missing; return nginx's path and {client: problem} for missing peers."""
    problems = install.ensure_debian_tools(list(install.DEBIAN_TOOLS), log)
    if "nginx" in problems:
        raise BenchError(f"nginx is needed as the target: {problems['nginx']}")
    locust_problem = install.ensure_locust(log)
    if locust_problem:
        problems["locust"] = locust_problem
    nginx = install.find_tool("nginx")
    assert nginx is not None  # ensure_debian_tools said it is there
    return nginx, problems


def measure_all(args: argparse.Namespace, nginx: str, problems: dict[str, str],
                pin: Pinning) -> dict[str, Any]:
    """Start nginx, run every step against it, stop it; return the results by step."""
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="slogate-bench-") as scratch, \
            nginx_target(nginx, pin=pin.target) as target:
        floor, problem = (install.build_floor(Path(scratch), log) if args.paired
                          else (None, None))
        if problem:
            problems = {**problems, "floor": problem}
            out["floor_problem"] = problem
        setup = Setup(target=target, pin=pin, duration_s=args.duration,
                      connections=args.connections, scratch=Path(scratch), floor=floor)
        log(f"target: nginx pid {target.pid} at {target.url}; {pin.note}")
        results = []
        for name, runner in closed_clients(args, problems):
            log(f"closed model: {name}, {args.connections} connections, {args.duration} s")
            results.append(counted(setup.target, runner, setup))
            _log_result(results[-1])
        out["closed"] = results
        transport = args.transport[0]
        log(f"open model: slogate[{transport}] at {args.rate:g} req/s for {args.duration} s")
        out["open"] = run_open(setup, transport, args.rate)
        out["soak"] = (run_soak(setup, transport, args.soak_requests, args.soak_max_s)
                       if args.soak else None)
        out["paired"] = (run_paired(setup, transport, args.paired, problems)
                         if args.paired else None)
    return out


def counted(target: Target, runner: Callable[[Setup], report.ClientResult],
            setup: Setup) -> report.ClientResult:
    """Run one client and attach nginx's own count of the requests it served meanwhile."""
    before = target.served()
    result = runner(setup)
    after = target.served()
    if before is None or after is None or not result.ok:
        return result
    return dataclasses.replace(result, server_requests=after - before - 1)  # minus that query


def _log_result(result: report.ClientResult) -> None:
    if result.ok:
        log(f"  {result.requests} requests, {result.cpu_s:.2f} CPU s, {result.wall_s:.1f} s wall")
    else:
        log(f"  FAILED: {result.error}")


def notes(results: list[report.ClientResult], pin: Pinning, *, paired: bool = False
          ) -> list[str]:
    """Return the caveats a reader of the numbers needs."""
    out = [pin.note,
           "CPU s = the client process's user+sys time (RUSAGE_CHILDREN delta), start-up included",
           "locust: its CPU and wall time include interpreter start-up and a 1 s ramp (-r = -u)",
           f"open model: {OPEN_WARMUP_S:g} s warm-up first (excluded, as a spec's load.warmup "
           "is), so a cold nginx and fresh connections do not count"]
    if paired:
        out.append("floor: a bare C loop (bench/floor.c: one epoll set, one read and one write "
                   "per response, a log-bucket latency histogram), paired like the peers; no "
                   "goal, it shows how far slogate is from a client with no interpreter")
        out.append("the table's clients ran one after another, each in whatever state the shared "
                   "machine was in then (here ratios moved by 10 % between runs); the same-time "
                   "pairs saw the same state, so their medians are the steadier figure")
    for r in results:
        run_cpu = r.extra.get("run_cpu_s") if r.ok else None
        if run_cpu is not None:
            out.append(f"{r.name}: {run_cpu:.2f} of {r.cpu_s:.2f} CPU s were the run itself "
                       f"(the rest is interpreter start-up and imports)")
        if r.ok and r.measured_s and r.cpu_s < 0.9 * r.measured_s:
            out.append(f"{r.name}: {r.cpu_s:.2f} CPU s in {r.measured_s:.2f} s is under one "
                       f"busy core: its rate was limited by waiting, not by its own CPU")
        csv_requests = r.extra.get("csv_requests") if r.ok else None
        if csv_requests is not None and csv_requests != r.requests:
            out.append(f"{r.name}: its stats CSV says {csv_requests} requests, its final JSON "
                       f"{r.requests}: the CSV is rewritten once a second, not at exit")
        if r.ok and r.extra.get("pump"):
            out.append(f"{r.name}: the {r.extra['pump']} pump ran (workers.pump)")
        if r.ok and r.extra.get("exit_status"):
            out.append(f"{r.name}: exited with status {r.extra['exit_status']}")
    return out


def print_report(data: dict[str, Any], marks: tuple[int, ...], *, numerator: str,
                 duration_s: int, connections: int) -> None:
    """Print the table, the ratios, the open-model figures, the soak and the notes."""
    closed = data["closed"]
    print(report.format_table(closed))
    print()
    print(report.format_ratios(data["ratios"]))
    print()
    print(report.format_open(data["open"]))
    if data["soak"] is not None:
        print()
        print(report.format_soak(data["soak"], marks))
    if data.get("paired"):
        print()
        print(report.format_paired(data["paired"], numerator=numerator, duration_s=duration_s,
                                   connections=connections))
    print()
    for note in data["notes"]:
        print(f"note: {note}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Return the parsed command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per client (10)")
    parser.add_argument("--connections", type=int, default=50, help="connections/users (50)")
    parser.add_argument("--quick", action="store_true", help="3 s per client")
    parser.add_argument("--rate", type=float, default=20000.0, help="open model req/s (20000)")
    parser.add_argument("--transport", default="fast",
                        help="slogate transport(s), comma-separated: fast,aiohttp (fast)")
    parser.add_argument("--soak", action="store_true", help="add the memory soak (minutes)")
    parser.add_argument("--soak-requests", type=int, default=10_000_000)
    parser.add_argument("--soak-max-s", type=float, default=900.0, help="soak time bound (900)")
    parser.add_argument("--paired", type=int, default=3, metavar="ROUNDS",
                        help="then run slogate and each peer at the same time on the client "
                        "core, ROUNDS times (3; 0: none): a ratio steadier than the "
                        "one-after-another table")
    parser.add_argument("--scaling", action="store_true",
                        help="after the peers, run bench.scaling (slogate on Ray, 1 vs 2 actors; "
                        "writes bench/out/scaling.json)")
    parser.add_argument("--no-grpc", action="store_true",
                        help="leave out the gRPC section (bench.grpc_bench: slogate's gRPC path "
                        "vs a bare grpc.aio loop, writes bench/out/grpc.json)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.transport = [t.strip() for t in args.transport.split(",") if t.strip()]
    if not args.transport or set(args.transport) - {"fast", "aiohttp"}:
        parser.error("--transport takes fast, aiohttp or both, comma-separated")
    if args.quick:
        args.duration = 3
    if args.duration < 1 or args.connections < 1 or args.rate <= 0:
        parser.error("--duration, --connections and --rate must be positive")
    if args.paired < 0:
        parser.error("--paired takes a number of rounds (0: none)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit code (0 ran, 3 could not run)."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    started = datetime.now(UTC)
    try:
        nginx, problems = prepare()
        pin = pinning()
        versions = tool_versions(nginx)
        data = measure_all(args, nginx, problems, pin)
    except BenchError as exc:
        log(f"error: {exc}")
        return 3
    command = f"{shlex.quote(sys.executable)} -m bench {shlex.join(argv)}".strip()
    data["ratios"] = report.ratios(data["closed"])
    data["notes"] = notes(data["closed"], pin, paired=bool(data.get("paired")))
    if data.get("floor_problem"):
        data["notes"].append(f"floor: not built, so not paired: {data.pop('floor_problem')}")
    load = os.getloadavg()
    data["notes"].append("load average at the end (1, 5, 15 min): "
                         + ", ".join(f"{v:.2f}" for v in load)
                         + " on this machine's " + str(os.cpu_count()) + " CPUs")
    print_report(data, SOAK_MARKS, numerator=f"slogate[{args.transport[0]}]",
                 duration_s=args.duration, connections=args.connections)
    settings = {"duration_s": args.duration, "connections": args.connections,
                "open_rate_rps": args.rate, "transports": args.transport, "pinning": pin.note,
                "target": "nginx, 1 worker, GET /hello (fixed body) and GET /dynamic "
                "($request_id) for the same-time pairs", "versions": versions,
                "load_average": load}
    document = {"command": command, "cwd": str(Path.cwd()), "started_at": started.isoformat(),
                "finished_at": datetime.now(UTC).isoformat(), "settings": settings,
                **report.as_json(data)}
    report.write_json(args.out, document)
    print(f"\nresults: {args.out}\nproduced by: (cd {shlex.quote(str(Path.cwd()))} && {command})")
    if not args.no_grpc:
        log("grpc: slogate's gRPC path vs a bare grpc.aio loop, same time on the client CPU")
        print()
        if grpc_bench.main(["--duration", str(min(args.duration, 5))]) != 0:
            return 3
    if args.scaling:
        log(f"scaling: slogate on Ray, actors {'/'.join(map(str, scaling.ACTOR_COUNTS))}, "
            f"{args.connections} connections, {args.duration} s each")
        print()
        try:
            scaling.run_and_report(nginx, pin, duration_s=args.duration,
                                   connections=args.connections, out=scaling.DEFAULT_OUT,
                                   command=command)
        except BenchError as exc:
            log(f"error: scaling: {exc}")
            return 3
    return 0
