"""Locust's side of the benchmark: one FastHttpUser sending ``GET /hello`` back to back (or the
path in ``BENCH_PATH``: ``/dynamic`` for the body that changes on every request).

Run by ``python -m bench`` as ``locust -f bench/locustfile.py --headless ...``; the host comes from
``--host``. ``wait_time = constant(0)`` makes it a closed model like wrk's and hey's connections.
"""

from __future__ import annotations

import os

from locust import FastHttpUser, constant, task

PATH = os.environ.get("BENCH_PATH", "/hello")


class HelloUser(FastHttpUser):
    """One virtual user: GET /hello, no think time."""

    wait_time = constant(0)

    @task
    def hello(self) -> None:
        """Send one GET of the benchmark's path."""
        self.client.get(PATH)
