"""``python -m bench.request_data``: what request data and response checks cost per request.

Against the benchmark's nginx (:mod:`bench.nginx`, one worker, ``GET /hello``), one LoadWorker
(``bench.slogate_client``, no Ray) sends back to back from ``--connections`` users in three
variants, in turns, each round starting with the next one (fixed, rows, rows+check; rows,
rows+check, fixed; ...) so drift in the machine's load falls on all of them alike:

- ``fixed``: one pre-encoded request, as before;
- ``rows``: request data, ``--rows`` rows each its own ``/hello?id=N``, shuffled (one encoded
  request per row, built once);
- ``rows+check``: the same, and a body-contains check on every response.

Each run reports requests per CPU-second of its process (interpreter start-up excluded); the
report gives each variant's median and its ratio to ``fixed`` (goal: rows >= 0.90), and the
one-off cost per row (encoding its request, before the start: included in the runs' CPU, so
short runs with many rows pay it visibly). Progress on stderr, one JSON document on stdout::

    .venv/bin/python -m bench.request_data --duration 3 --rounds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

from bench import BenchError
from bench.measure import run_child
from bench.nginx import nginx_target
from bench.peers import parse_slogate, slogate_command
from workers.plan import RequestTemplate
from workers.raw_engine import encode_request
from workers.rows import per_endpoint

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {"fixed": [], "rows": ["--rows", "{rows}"],
            "rows+check": ["--rows", "{rows}", "--check", "hello"]}
GOAL = 0.90  # rows: at most 10 % fewer requests per CPU-second than a fixed request


def per_cpu_s(url: str, variant: str, args: argparse.Namespace) -> float:
    """Return requests per CPU-second of one run of ``variant``."""
    extra = [a.format(rows=args.rows) for a in VARIANTS[variant]]
    command = slogate_command(url, model="closed", connections=args.connections,
                              duration_s=args.duration) + extra
    run = run_child(command, timeout_s=args.duration + 60, cwd=REPO)
    if run.returncode != 0:
        raise BenchError(f"{variant}: slogate_client exited {run.returncode}: "
                         f"{run.stderr.strip()[-300:]}")
    count = parse_slogate(run.stdout)
    if count.errors:
        raise BenchError(f"{variant}: {count.errors} errors (outcomes {count.extra['outcomes']})")
    return count.requests / float(count.extra["run_cpu_s"])  # type: ignore[arg-type]


def encode_cost_us(rows: int) -> float:
    """Return the worker's one-off cost per row, in µs: encoding each row's request (before
    the start time, counted in each run's CPU above as well)."""
    template = RequestTemplate(label="GET /hello", method="GET", url="http://127.0.0.1:1/hello")
    rendered = [dataclasses.replace(template, url=f"{template.url}?id={k}") for k in range(rows)]
    with_rows = dataclasses.replace(template, rows=tuple(rendered), order="shuffle", stream="0")
    cpu0 = time.process_time()
    per_endpoint([with_rows], lambda t: encode_request(t, "127.0.0.1:1"))
    return (time.process_time() - cpu0) / rows * 1e6


def measure(args: argparse.Namespace) -> dict[str, object]:
    """Run the rounds and return the report document."""
    runs: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with nginx_target(args.nginx) as target:
        names = list(VARIANTS)
        for k in range(args.rounds):
            for variant in names[k % 3:] + names[:k % 3]:  # each first in turn: no order bias
                runs[variant].append(per_cpu_s(target.url, variant, args))
                print(f"bench: round {k + 1}/{args.rounds} {variant}: "
                      f"{runs[variant][-1]:,.0f} requests per CPU-second", file=sys.stderr)
    medians = {v: statistics.median(r) for v, r in runs.items()}
    return {
        "setup_us_per_row": encode_cost_us(args.rows),
        "conditions": {"target": "nginx, one worker, GET /hello", "client": "one LoadWorker, "
                       "fast transport (raw-socket users), closed model",
                       "connections": args.connections, "duration_s": args.duration,
                       "rounds": args.rounds, "rows": args.rows,
                       "cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "requests_per_cpu_s": runs, "median": medians,
        "ratio_to_fixed": {v: medians[v] / medians["fixed"] for v in VARIANTS},
        "ratio_per_round": {v: [a / b for a, b in zip(runs[v], runs["fixed"], strict=True)]
                            for v in VARIANTS},
        "goal": {"rows_ratio_at_least": GOAL,
                 "met": medians["rows"] / medians["fixed"] >= GOAL},
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print its JSON report; exit 0 when it ran, 3 when it could not."""
    parser = argparse.ArgumentParser(prog="python -m bench.request_data")
    parser.add_argument("--duration", type=float, default=3.0, help="measured s per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rows", type=int, default=1_000)
    parser.add_argument("--nginx", default="/usr/sbin/nginx")
    args = parser.parse_args(argv)
    try:
        document = measure(args)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 3
    print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
