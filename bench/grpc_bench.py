"""The gRPC section of ``make bench``: slogate's gRPC path against a bare ``grpc.aio`` loop.

The target is the gRPC sample app (``examples/hello-grpc/server.py``, no added latency) pinned
to the target CPU; both clients (:mod:`bench.grpc_client`) run at the same time on the client
CPU, ``rounds`` times, so they share the same machine state. The figure is requests per client
CPU-second, slogate's over the bare loop's (goal >= 0.9x with recording on). Then slogate alone
with 1 and 4 channels per worker, for the effect of the channel count.

    python -m bench.grpc_bench --duration 5 --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import BenchError
from bench.measure import Pinning, pinning, run_child, run_together

REPO = Path(__file__).resolve().parents[1]
SERVER = REPO / "examples" / "hello-grpc" / "server.py"
DEFAULT_OUT = REPO / "bench" / "out" / "grpc.json"
GOAL = 0.9


@contextlib.contextmanager
def hello_grpc(pin: Pinning) -> Iterator[str]:
    """Run the gRPC sample app with no added latency on the target CPU; yield its URL."""
    proc = subprocess.Popen([*pin.target, sys.executable, str(SERVER), "--port", "0",
                             "--latency", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip() if proc.stdout else ""
        if not line.startswith("READY grpc://"):
            raise BenchError(f"the gRPC sample app did not start: {line!r}")
        yield line.removeprefix("READY ")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _client(pin: Pinning, client: str, url: str, args: argparse.Namespace,
            channels: int = 1) -> list[str]:
    return [*pin.client, sys.executable, "-m", "bench.grpc_client", client, "--url", url,
            "--concurrency", str(args.concurrency), "--duration", str(args.duration),
            "--channels", str(channels)]


def _parsed(stdout: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise BenchError(f"{what} printed no result") from None
    if "error" in data:
        raise BenchError(f"{what}: {data['error']}")
    return data


def per_cpu_s(result: dict[str, Any]) -> float:
    """Return requests per CPU-second of one client run."""
    return result["requests"] / result["run_cpu_s"] if result["run_cpu_s"] > 0 else 0.0


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run the paired rounds and the channel comparison; return the JSON-ready figures."""
    pin = pinning()
    timeout_s = args.duration + 60.0
    with hello_grpc(pin) as url:
        rounds: list[dict[str, Any]] = []
        for _ in range(args.rounds):
            runs = run_together([_client(pin, "slogate", url, args),
                                 _client(pin, "bare", url, args)], timeout_s=timeout_s, cwd=REPO)
            slogate, bare = (_parsed(r.stdout, c)
                             for r, c in zip(runs, ("slogate", "bare"), strict=True))
            rounds.append({"slogate": slogate, "bare": bare,
                           "ratio": per_cpu_s(slogate) / per_cpu_s(bare)})
        channels = {}
        for count in (1, 4):
            run = run_child(_client(pin, "slogate", url, args, count), timeout_s=timeout_s,
                            cwd=REPO)
            result = _parsed(run.stdout, f"slogate with {count} channels")
            channels[str(count)] = {**result, "per_s": result["requests"] / result["wall_s"],
                                    "per_cpu_s": per_cpu_s(result)}
    ratios: list[float] = [r["ratio"] for r in rounds]
    return {"pinning": pin.note.replace("nginx", "the server"), "concurrency": args.concurrency,
            "duration_s": args.duration, "rounds": rounds, "median_ratio": statistics.median(ratios),
            "channels": channels, "goal": GOAL}


def format_report(data: dict[str, Any]) -> str:
    """Return the gRPC section as text."""
    lines = [f"gRPC: slogate vs bare grpc.aio loop, {data['concurrency']} callers, "
             f"{data['duration_s']:g} s, same time on the client CPU ({data['pinning']})",
             f"{'round':>5}  {'slogate req/CPU-s':>18}  {'bare req/CPU-s':>15}  {'ratio':>6}"]
    for index, r in enumerate(data["rounds"], start=1):
        lines.append(f"{index:>5}  {per_cpu_s(r['slogate']):>18,.0f}  "
                     f"{per_cpu_s(r['bare']):>15,.0f}  {r['ratio']:>5.2f}x")
    median = float(data["median_ratio"])
    met = "met" if median >= GOAL else "not met"
    lines.append(f"median ratio {median:.2f}x (goal >= {GOAL}x: {met})")
    for count, c in data["channels"].items():
        lines.append(f"slogate alone, {count} channel(s) per worker: {c['per_s']:,.0f} req/s, "
                     f"{c['per_cpu_s']:,.0f} req/CPU-s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the gRPC section, print it and write its JSON; 3 when it could not run."""
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per client (5)")
    parser.add_argument("--concurrency", type=int, default=50, help="callers (50)")
    parser.add_argument("--rounds", type=int, default=3, help="same-time pairs (3)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        data = measure(args)
    except BenchError as exc:
        print(f"bench: error: grpc: {exc}", file=sys.stderr)
        return 3
    print(format_report(data))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
