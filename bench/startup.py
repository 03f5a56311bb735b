"""Start-up overhead of ``slogate run``: wall time beyond the load's duration, and where it goes.

Runs ``python -m coordinator.cli run`` as a child process (the way a user runs it) on a 5 s,
1-worker experiment against the bundled sample app on 127.0.0.1, ``--runs`` times, and stamps
each progress line on stderr as it arrives. The phases are the gaps between those lines:

- ``imports+spec``: process start until slogate says it starts Ray (Python, click, the spec);
- ``ray start``: until the load is planned on a started Ray (``ray.init`` in its own thread,
  and the dashboard when asked; meanwhile the main thread imports SciPy and checks the target);
- ``workers``: until the worker actors are ready (placement group, actor processes);
- ``load``: the common start slack plus the measured load (0.25 s + 1 ms a worker, + 5 s);
- ``end``: judging and writing results and reports while Ray shuts down (begun as the load
  ended), until the process exits.

Not a test: the figures depend on the machine and on what else runs on it (the README quotes
them with the machine's load). Usage::

    python -m bench.startup [--runs 3] [--duration 5] [-- EXTRA SLOGATE RUN ARGS]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from coordinator.sample_app import REPO_ROOT, start_hello

# (phase name, the stderr text that ends it); the last phase ends when the process exits.
MARKS = (("imports+spec", "Ray"), ("ray start", "loading "),
         ("workers", "load starts"), ("load", "load finished"))


def run_once(url: str, duration_s: float, extra: list[str], timeout_s: float) -> dict[str, float]:
    """Run one ``slogate run``; return the seconds of each phase, ``total`` and ``overhead``."""
    with tempfile.TemporaryDirectory(prefix="slogate-startup-") as tmp:
        spec = Path(tmp) / "spec.yaml"
        spec.write_text(json.dumps({
            "name": "startup", "target": url,
            "load": {"rate": 50, "duration": f"{duration_s:g}s", "workers": 1},
            "endpoints": [{"path": "/hello"}], "objectives": ["p(99)<1s"]}))
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "coordinator.cli", "run", str(spec), "--out",
             str(Path(tmp) / "out"), *extra], cwd=REPO_ROOT, env=env, text=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        seen: list[tuple[float, str]] = []
        reader = threading.Thread(target=lambda: seen.extend(
            (time.monotonic(), line) for line in proc.stderr), daemon=True)  # type: ignore[union-attr]
        reader.start()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise SystemExit(f"slogate run did not finish within {timeout_s:.0f} s") from None
        ended = time.monotonic()
        reader.join(5)
    if proc.returncode not in (0, 1, 3):  # 3: INCONCLUSIVE on a busy machine
        raise SystemExit(f"slogate run exited {proc.returncode}:\n"
                         + "".join(line for _, line in seen))
    phases, last = {}, started
    for name, text in MARKS:
        at = next((t for t, line in seen if text in line and t >= last), None)
        if at is None:
            raise SystemExit(f"no line with {text!r} on stderr:\n" + "".join(line for _, line in seen))
        phases[name], last = at - last, at
    phases["end"] = ended - last
    phases["total"] = ended - started
    phases["overhead"] = phases["total"] - duration_s
    return phases


def main(argv: list[str] | None = None) -> int:
    """Measure ``--runs`` runs and print each phase's median (and min-max) in seconds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="load duration, s")
    parser.add_argument("extra", nargs="*", help="more `slogate run` arguments (after --)")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    with start_hello() as url:
        runs = [run_once(url, args.duration, args.extra, 120 + args.duration)
                for _ in range(args.runs)]
    print(f"slogate run, {args.duration:g} s at 50 req/s, 1 worker, {args.runs} run(s), "
          f"{os.cpu_count()} CPUs, load average {load:.1f} before; "
          f"extra args: {' '.join(args.extra) or '(none)'}")
    for name in runs[0]:
        values = [r[name] for r in runs]
        print(f"  {name:<13} {statistics.median(values):6.2f} s   "
              f"({min(values):.2f}-{max(values):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
