"""One gRPC client for the gRPC section of the benchmark; prints one JSON line.

Two clients, the same closed-model load (``--concurrency`` callers back to back for
``--duration`` seconds) of unary ``hello.Greeter/SayHello`` calls, on uvloop:

- ``slogate``: one :class:`LoadWorker` on its gRPC plan, recording every call (histograms,
  windows), as a worker actor does;
- ``bare``: the most a Python client on grpcio can do: ``--concurrency`` coroutines awaiting a
  raw-bytes ``grpc.aio`` multicallable in a loop, counting calls and nothing else.

The line has ``requests``, ``ok``, ``run_cpu_s`` (this process's CPU time during the load,
interpreter start-up and imports excluded) and ``wall_s``.

    python -m bench.grpc_client slogate --url grpc://127.0.0.1:50051 --concurrency 50 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as in a Ray worker (see bench.slogate_client)

import grpc
import uvloop
from grpc import aio

from workers.load_worker import LoadWorker
from workers.plan import GRPC_METHOD, GrpcChannels, RequestTemplate, WorkerPlan

PATH = "/hello.Greeter/SayHello"
BODY = b"\n\x07slogate"  # HelloRequest{name: "slogate"}


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_slogate(args: argparse.Namespace) -> dict[str, object]:
    """Run one LoadWorker on a closed-model gRPC plan; return its counts."""
    template = RequestTemplate(label="SayHello", method=GRPC_METHOD, url=args.url + PATH,
                               body=BODY, bodies=(BODY,))
    plan = WorkerPlan(worker_index=0, worker_count=1, requests=(template,), model="closed",
                      concurrency=args.concurrency, duration_s=args.duration, timeout_s=5.0,
                      max_duration_s=args.duration + 10.0, transport="grpc",
                      grpc=GrpcChannels(channels=args.channels))
    cpu0, wall0 = _cpu_s(), time.perf_counter()
    report = LoadWorker(plan).run(start_at=time.time() + 0.2)
    cpu_s, wall_s = _cpu_s() - cpu0, time.perf_counter() - wall0 - 0.2
    counts: dict[str, int] = {}
    for window in report.windows:
        for (_, outcome), hist in window.latency.items():
            counts[outcome] = counts.get(outcome, 0) + hist.total
    return {"requests": sum(counts.values()), "ok": counts.get("grpc:OK", 0),
            "run_cpu_s": cpu_s, "wall_s": wall_s}


async def _bare(args: argparse.Namespace) -> tuple[int, int]:
    address = args.url.removeprefix("grpc://")
    channels = [aio.insecure_channel(address, [("grpc.use_local_subchannel_pool", 1)])
                for _ in range(args.channels)]
    methods = [c.unary_unary(PATH) for c in channels]
    stop = time.monotonic() + args.duration
    done = ok = 0

    async def caller(index: int) -> None:
        nonlocal done, ok
        method = methods[index % len(methods)]
        while time.monotonic() < stop:
            try:
                await method(BODY, timeout=5.0)
                ok += 1
            except aio.AioRpcError:
                pass
            done += 1

    await asyncio.gather(*(caller(i) for i in range(args.concurrency)))
    for channel in channels:
        await channel.close()
    return done, ok


def run_bare(args: argparse.Namespace) -> dict[str, object]:
    """Run the bare grpc.aio loop; return its counts."""
    cpu0, wall0 = _cpu_s(), time.perf_counter()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        done, ok = runner.run(_bare(args))
    return {"requests": done, "ok": ok, "run_cpu_s": _cpu_s() - cpu0,
            "wall_s": time.perf_counter() - wall0}


def main(argv: list[str] | None = None) -> int:
    """Run the client named on the command line and print its JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_client", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("client", choices=("slogate", "bare"))
    parser.add_argument("--url", required=True, help="grpc://host:port of hello-grpc")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--channels", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        result = run_slogate(args) if args.client == "slogate" else run_bare(args)
    except (grpc.RpcError, OSError, RuntimeError) as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps({"client": args.client, "channels": args.channels, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
