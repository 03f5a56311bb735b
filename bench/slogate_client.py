"""Runs slogate's load engine directly (one ``LoadWorker``, no Ray) and prints one JSON line.

Usage::

    python -m bench.slogate_client --url http://127.0.0.1:8080/hello --model closed \\
        --connections 50 --duration 10
    python -m bench.slogate_client --url ... --model open --rate 20000 --duration 10

The JSON line has: ``requests`` (every finished request, any outcome), ``errors`` (outcomes other
than ``status:200``), ``elapsed_s`` (the engine's measured phase), ``achieved_rps``, ``lag_p99_ms``
(schedule lag, open model; also ``lag_max_ms`` and ``lag_p99_ms_by_window``, one per 1 s window),
latency ``p50_ms``/``p99_ms``, ``outcomes``, ``scheduled``/``sent``/``unsent``, ``transport`` and
``run_cpu_s`` (this process's CPU time during the run, interpreter start-up and imports excluded;
``run_user_s`` and ``run_sys_s`` split it), and ``pump`` (either model over plain HTTP: the
``compiled`` or the ``python`` pump, see :mod:`workers.pump`).
On failure it prints ``{"error": ...}`` and exits 1; bad arguments exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import time
from collections import Counter
from typing import Any

# This process stands in for one LoadWorker actor, and Ray sets OMP_NUM_THREADS to an actor's
# CPU count (ray._private.utils.set_omp_num_threads_if_unset: 1 for a one-CPU worker), so
# numpy's BLAS starts no thread pool of its own here either (~0.07 CPU-s at import otherwise).
os.environ.setdefault("OMP_NUM_THREADS", "1")

from workers.checks import Check, ResponseChecks
from workers.histogram import Histogram
from workers.load_worker import LoadWorker, WorkerReport
from workers.plan import RequestTemplate, WorkerPlan
from workers.pump import pump_name
from workers.recorder import Window

START_DELAY_S = 0.2
STOP_SLACK_S = 5.0
UNBOUNDED_MAX_S = 3600.0


def build_plan(args: argparse.Namespace) -> WorkerPlan:
    """Return the one-worker plan the arguments describe."""
    template = RequestTemplate(label="GET /hello", method="GET", url=args.url)
    if args.rows:  # request data: one request per row, as the coordinator renders a data file
        template = dataclasses.replace(template, order="shuffle", stream="0/0/0", rows=tuple(
            dataclasses.replace(template, url=f"{args.url}?id={k}") for k in range(args.rows)))
    if args.check:  # a response check on every response (the body nginx sends: "hello")
        template = dataclasses.replace(template, checks=ResponseChecks(
            checks=(Check(name="body", contains=args.check.encode()),)))
    limit_s = (args.duration if args.duration is not None else UNBOUNDED_MAX_S) + args.warmup
    max_s = args.max_duration if args.max_duration is not None else limit_s + STOP_SLACK_S
    common: dict[str, Any] = dict(
        worker_index=0, worker_count=1, requests=(template,), duration_s=args.duration,
        request_limit=args.requests, timeout_s=args.timeout, window_s=1.0, warmup_s=args.warmup,
        max_duration_s=max_s, transport=args.transport)
    if args.model == "open":
        return WorkerPlan(model="open", rate_rps=args.rate, schedule_rate_rps=args.rate,
                          max_in_flight=args.max_in_flight, **common)
    return WorkerPlan(model="closed", concurrency=args.connections, **common)


class Totals:
    """Running totals of the windows a worker hands over, which are then dropped: the process
    holds what a LoadWorker actor holds in a cluster (its windows go to the coordinator), so
    its RSS is the worker's own."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.latency = Histogram()
        self.lag = Histogram()
        self.lag_p99_by_window: list[float | None] = []
        self.scheduled = self.sent = 0

    def add(self, window: Window) -> None:
        """Fold one window into the totals."""
        for (_, outcome), hist in window.latency.items():
            self.outcomes[outcome] += hist.total
            self.latency.add(hist)
        self.lag.add(window.lag)
        self.lag_p99_by_window.append(_ms(window.lag.percentile_ns(99)))
        self.scheduled += window.scheduled
        self.sent += window.sent


def run_streaming(worker: LoadWorker, start_at: float) -> tuple[Totals, WorkerReport]:
    """Run the worker, folding each polled window into totals; return them and the report."""
    totals = Totals()
    worker.start(start_at)
    while True:
        snapshot = worker.poll(timeout_s=60.0)
        for window in snapshot.windows:
            totals.add(window)
        if snapshot.final is not None:
            return totals, snapshot.final


def summarize(totals: Totals, report: WorkerReport) -> dict[str, Any]:
    """Return the JSON-ready totals of a run."""
    requests = sum(totals.outcomes.values())
    return {
        "requests": requests,
        "errors": requests - totals.outcomes.get("status:200", 0),
        "elapsed_s": report.measured_s,
        "achieved_rps": requests / report.measured_s if report.measured_s > 0 else None,
        "lag_p99_ms": _ms(totals.lag.percentile_ns(99)),
        "lag_max_ms": _ms(totals.lag.max_ns),
        "lag_p99_ms_by_window": totals.lag_p99_by_window,
        "p50_ms": _ms(totals.latency.percentile_ns(50)),
        "p99_ms": _ms(totals.latency.percentile_ns(99)),
        "outcomes": dict(totals.outcomes),
        "scheduled": totals.scheduled,
        "sent": totals.sent,
        "unsent": report.unsent,
    }


def _ms(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e6


def _cpu_s() -> tuple[float, float]:
    """Return this process's (user, system) CPU seconds so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Return the parsed command line; exits 2 on a bad combination."""
    parser = argparse.ArgumentParser(prog="python -m bench.slogate_client", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", choices=("closed", "open"), default="closed")
    parser.add_argument("--connections", type=int, default=50, help="closed model: users")
    parser.add_argument("--rate", type=float, help="open model: requests/s")
    parser.add_argument("--duration", type=float, help="measured seconds")
    parser.add_argument("--requests", type=int,
                        help="measured requests (instead of, or with, --duration)")
    parser.add_argument("--max-in-flight", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=5.0, help="per-request timeout, s")
    parser.add_argument("--max-duration", type=float, help="hard stop, s (default duration + 5)")
    parser.add_argument("--transport", choices=("fast", "aiohttp"), default="fast")
    parser.add_argument("--rows", type=int, default=0,
                        help="request data: this many rows, each its own ?id=N (shuffled)")
    parser.add_argument("--check", default="", help="a body-contains check on every response")
    parser.add_argument("--warmup", type=float, default=0.0,
                        help="seconds sent first and excluded from the figures")
    args = parser.parse_args(argv)
    if args.duration is None and args.requests is None:
        parser.error("give --duration or --requests (every run is bounded)")
    if args.model == "open" and not args.rate:
        parser.error("--model open needs --rate")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the plan and print its JSON summary; return the exit code."""
    args = parse_args(argv)
    try:
        worker = LoadWorker(build_plan(args))  # the engine picks the transport from the plan
        user0, sys0 = _cpu_s()
        totals, report = run_streaming(worker, start_at=time.time() + START_DELAY_S)
        user1, sys1 = _cpu_s()
    except Exception as exc:  # noqa: BLE001 -- reported as data; the harness keeps going with other clients
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}", "transport": args.transport}))
        return 1
    summary = summarize(totals, report)
    summary.update(transport=args.transport, run_cpu_s=user1 - user0 + sys1 - sys0,
                   run_user_s=user1 - user0, run_sys_s=sys1 - sys0, pump=pump_name())
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
