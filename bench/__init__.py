"""Benchmarks of slogate's load engine against wrk, hey and Locust, run by ``python -m bench``.

One run starts one nginx on 127.0.0.1 (pinned to CPU 0), then runs each client in turn against it
(pinned to CPU 1), same duration and connections, and reports ratios: absolute numbers on a
shared 2-core machine are noise, ratios measured side by side in the same run are the figure.

Data flow: ``install`` makes the tools present -> ``nginx`` starts the target -> ``measure`` runs
one child process and returns its wall time, CPU time (a ``RUSAGE_CHILDREN`` delta) and output ->
``peers`` builds each client's command and parses its output into a :class:`~bench.peers.Count`
-> ``report`` turns the results into ratios against goals, a table and ``bench/out/results.json``.
``scaling`` (``python -m bench.scaling``, or ``python -m bench --scaling`` after the peers) runs
slogate through ``coordinator.ray_pool.RayPool`` with 1 then 2 actors against the same nginx and
accounts for the machine's CPU from ``/proc`` (``bench/out/scaling.json``).
``coordinator_scale`` (``python -m bench.coordinator_scale``, ``make bench-scale``) needs no
target: it feeds recorded windows through the coordinator's supervisor for up to 1,024 workers
x 3,600 windows and reports its CPU per worker-window, the time left after the load and the RSS.

Invariants:
- load goes only to 127.0.0.1; every child runs under a wall-clock timeout, and every load loop
  is bounded by count and time;
- a client that fails to install, start, or report is a result with ``error`` set; the other
  clients still run, and no ratio is computed from a failed result;
- parsers (``peers``) and ratio/goal logic (``report``) are pure: text or values in, values out.

Errors: :class:`BenchError` for what stops the whole benchmark (no nginx, no free port).
"""

from __future__ import annotations


class BenchError(Exception):
    """The benchmark cannot run at all (its target could not be installed or started)."""
