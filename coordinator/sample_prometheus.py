"""Start a real Prometheus (Debian's ``prometheus`` package) on loopback, scraping given targets.

Used by ``slogate demo --prometheus`` and by the tests. ``start_prometheus(targets)`` writes a
config that scrapes each ``host:port`` every second (with a ``track`` label per target), starts
the server on a free 127.0.0.1 port with a data directory of its own, waits until every target
is up (Prometheus hands its first targets to the scrapers after about 5 s) and yields its base
URL; the process is stopped on exit. Raises :class:`~coordinator.errors.ExampleError` when the
binary is missing or the server does not come up.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from coordinator.errors import ExampleError

SCRAPE_INTERVAL_S = 1.0
MISSING = ("prometheus is not installed (Debian's package: apt-get install -y prometheus; "
           "make test installs it as root)")


def prometheus_binary() -> str | None:
    """Return the path of the prometheus binary, or None."""
    return shutil.which("prometheus") or shutil.which("prometheus", path="/usr/bin:/usr/sbin")


def query(url: str, promql: str) -> list[dict[str, Any]]:
    """Return the result list of an instant query (readiness checks, tests)."""
    data = urllib.parse.urlencode({"query": promql}).encode()
    with urllib.request.urlopen(f"{url}/api/v1/query", data=data, timeout=5) as answer:
        return list(json.load(answer)["data"]["result"])


def config(targets: Mapping[str, str]) -> str:
    """Return a config scraping ``{host:port: track}`` every second (``track``: a target
    label, which series without a version label of their own, process_*, are told apart by)."""
    static = [{"targets": [target], "labels": {"track": track}} for target, track in targets.items()]
    return json.dumps({  # JSON is YAML
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S:g}s",
                   "evaluation_interval": f"{SCRAPE_INTERVAL_S:g}s"},
        "scrape_configs": [{"job_name": "hello", "static_configs": static}]})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def start_prometheus(targets: Mapping[str, str], timeout_s: float = 30.0) -> Iterator[str]:
    """Run Prometheus scraping ``{host:port: track}``; yield its URL once all are up."""
    binary = prometheus_binary()
    if binary is None:
        raise ExampleError(MISSING)
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="slogate-prometheus-") as tmp:
        (Path(tmp) / "prometheus.yml").write_text(config(targets))
        log_path = Path(tmp) / "log.txt"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [binary, f"--config.file={tmp}/prometheus.yml", f"--storage.tsdb.path={tmp}/data",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_up(url, len(targets), proc, timeout_s, log_path)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_up(url: str, count: int, proc: subprocess.Popen[bytes], timeout_s: float,
             log: Path) -> None:
    """Return once ``count`` targets are up; ExampleError if the server exits or is late."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = " ".join(log.read_text(errors="replace").split())[-300:]
            raise ExampleError(f"prometheus exited with status {proc.returncode}: {tail}")
        try:
            up: list[dict[str, Any]] | None = query(url, 'up{job="hello"} == 1')
        except OSError:
            up = None  # not listening yet
        if up is not None and len(up) == count:
            return
        time.sleep(0.2)
    raise ExampleError(f"prometheus did not scrape {count} target(s) within {timeout_s:g} s")
