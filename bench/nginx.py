"""The benchmark's target: Debian's nginx on 127.0.0.1:<free port>, serving ``GET /hello`` (a
fixed body) and ``GET /dynamic`` (``$request_id``: 32 hex digits that differ on every request,
as a real service's bodies do, so no client can lean on responses repeating byte for byte).

nginx runs in the foreground (``daemon off``) as a child of this process, with its own config,
pid file, error log and temp folders in a temporary directory, one worker process, no access log,
and keep-alive limits high enough that no client's connection is closed mid-run (nginx's default
closes a keep-alive connection every 1000 requests, which would penalise the fastest clients).
``/nginx_status`` (stub_status) gives the server's own request count, to check each client's.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import BenchError

READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """A running nginx: where to send load, and its pid."""

    host: str  # http://127.0.0.1:PORT
    port: int
    pid: int

    @property
    def url(self) -> str:
        """Return the URL of the benchmark's endpoint with the fixed body."""
        return f"{self.host}/hello"

    @property
    def dynamic_url(self) -> str:
        """Return the URL of the endpoint whose body differs on every request."""
        return f"{self.host}/dynamic"

    def served(self) -> int | None:
        """Return how many requests nginx has read so far (stub_status), this query included."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5.0)
        try:
            conn.request("GET", "/nginx_status")
            response = conn.getresponse()
            return parse_stub_status(response.read().decode()) if response.status == 200 else None
        except (OSError, ValueError):
            return None
        finally:
            conn.close()


def parse_stub_status(text: str) -> int:
    """Return the "requests" total of nginx's stub_status page."""
    lines = text.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.strip() == "server accepts handled requests":
            return int(lines[i + 1].split()[2])
    raise ValueError("no 'server accepts handled requests' line in stub_status output")


def render_config(*, prefix: Path, port: int) -> str:
    """Return nginx.conf text for one worker serving ``/hello`` on 127.0.0.1:``port``."""
    return f"""\
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    server {{
        listen 127.0.0.1:{port};
        location = /hello {{
            default_type text/plain;
            return 200 "hello\\n";
        }}
        location = /dynamic {{
            default_type text/plain;
            return 200 $request_id;
        }}
        location = /nginx_status {{
            stub_status;
        }}
    }}
}}
"""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def nginx_target(nginx: str, *, pin: tuple[str, ...] = ()) -> Iterator[Target]:
    """Start nginx (under the ``pin`` prefix), wait until ``/hello`` answers, yield, stop it."""
    with tempfile.TemporaryDirectory(prefix="slogate-bench-nginx-") as tmp:
        prefix = Path(tmp)
        port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(render_config(prefix=prefix, port=port))
        command = [*pin, nginx, "-e", str(prefix / "error.log"), "-p", str(prefix),
                   "-c", str(conf)]
        with open(prefix / "stdio.log", "w") as stdio:
            proc = subprocess.Popen(command, stdout=stdio, stderr=subprocess.STDOUT)
        try:
            target = Target(host=f"http://127.0.0.1:{port}", port=port, pid=proc.pid)
            _wait_ready(proc, port, prefix)
            yield target
        finally:
            _stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], port: int, prefix: Path) -> None:
    """Return once GET /hello answers 200; raise BenchError if nginx exits or never answers."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"nginx exited with {proc.returncode}: {_logs(prefix)}")
        if _answers(port):
            return
        time.sleep(0.05)
    raise BenchError(f"nginx did not answer within {READY_TIMEOUT_S:g} s: {_logs(prefix)}")


def _answers(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        conn.request("GET", "/hello")
        response = conn.getresponse()
        return response.status == 200 and response.read() == b"hello\n"
    except OSError:
        return False
    finally:
        conn.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop nginx: SIGTERM (fast shutdown), then SIGKILL if it lingers; always reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _logs(prefix: Path) -> str:
    parts = [p.read_text(errors="replace").strip() for p in
             (prefix / "stdio.log", prefix / "error.log") if p.exists()]
    return " | ".join(part for part in parts if part)[-2000:] or "(no log)"
