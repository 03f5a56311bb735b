"""A real Prometheus (Debian's ``prometheus`` package) on 127.0.0.1 for the custom-metrics tests.

``start_prometheus(targets)`` writes a config that scrapes each ``host:port`` every second, starts
the server on a free loopback port with its own data directory, waits until every target is up
(Prometheus hands its first targets to the scrapers after about 5 s) and yields its base URL;
the process is stopped on exit. ``prometheus_binary()`` says why there is none when it is missing
(``make test`` installs it as root, as the bench installs nginx).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web

from tests.support.helpers import free_port
from tests.support.servers import Served, Stop, _aiohttp, _in_thread

SCRAPE_INTERVAL_S = 1.0


def prometheus_binary() -> tuple[str | None, str]:
    """Return (path of the prometheus binary, "") or (None, why it is missing)."""
    found = shutil.which("prometheus") or shutil.which("prometheus", path="/usr/bin:/usr/sbin")
    if found:
        return found, ""
    return None, ("prometheus is not installed (make test installs Debian's package as root: "
                  "apt-get install -y prometheus)")


def query(url: str, promql: str) -> list[dict[str, Any]]:
    """Return the result list of an instant query (for waiting and checks in tests)."""
    data = urllib.parse.urlencode({"query": promql}).encode()
    with urllib.request.urlopen(f"{url}/api/v1/query", data=data, timeout=5) as answer:
        return json.load(answer)["data"]["result"]


def _config(targets: Mapping[str, str]) -> str:
    """Return a config scraping ``{host:port: track}`` every second (``track``: a target
    label, which series without a version label of their own, process_*, are told apart by)."""
    static = [{"targets": [target], "labels": {"track": track}} for target, track in targets.items()]
    return json.dumps({  # JSON is YAML
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S:g}s",
                   "evaluation_interval": f"{SCRAPE_INTERVAL_S:g}s"},
        "scrape_configs": [{"job_name": "hello", "static_configs": static}]})


@contextlib.contextmanager
def start_prometheus(targets: Mapping[str, str], timeout_s: float = 30.0) -> Iterator[str]:
    """Run Prometheus scraping ``{host:port: track}``; yield its URL once all are up."""
    binary, why = prometheus_binary()
    if binary is None:
        raise RuntimeError(why)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="slogate-prometheus-") as tmp:
        config = Path(tmp) / "prometheus.yml"
        config.write_text(_config(targets))
        log = open(Path(tmp) / "log.txt", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp}/data",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_up(url, len(targets), proc, timeout_s, Path(tmp) / "log.txt")
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def _wait_up(url: str, count: int, proc: subprocess.Popen[bytes], timeout_s: float,
             log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited {proc.returncode}: {log.read_text()[-500:]}")
        try:
            up: list[dict[str, Any]] | None = query(url, 'up{job="hello"} == 1')
        except OSError:
            up = None  # not listening yet
        if up is not None and len(up) == count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"prometheus did not scrape {count} target(s) within {timeout_s:g} s")


@contextlib.contextmanager
def auth_proxy(upstream: str, authorization: str | None,
               tls: tuple[Path, Path] | None = None) -> Iterator[tuple[Served, dict[str, bool]]]:
    """Run a reverse proxy on 127.0.0.1 in front of ``upstream`` that answers 401 unless the
    request's ``Authorization`` header is ``authorization`` (None: any; Prometheus itself checks
    no token), and 503 while ``switch["fail"]`` is set; over HTTPS with ``tls`` (certificate,
    key); yield (its Served record, the switch)."""
    switch = {"fail": False}
    context = None
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)

    async def start(served: Served) -> tuple[int, Stop]:
        session = ClientSession()

        async def forward(request: web.Request) -> web.Response:
            served.requests.append({"path": request.path,
                                    "authorization": request.headers.get("Authorization")})
            if authorization is not None and request.headers.get("Authorization") != authorization:
                return web.Response(status=401, text="Unauthorized\n")
            if switch["fail"]:
                return web.Response(status=503, text="Service Unavailable\n")
            async with session.request(request.method, upstream + request.path_qs,
                                       data=await request.read(),
                                       headers={"Content-Type": request.content_type}) as answer:
                return web.Response(status=answer.status, body=await answer.read(),
                                    content_type="application/json")

        port, stop = await _aiohttp(served, [web.route("*", "/{tail:.*}", forward)],
                                    ssl_context=context)

        async def stop_all() -> None:
            await session.close()
            await stop()

        return port, stop_all

    with _in_thread(start, scheme="https" if tls else "http") as served:
        yield served, switch
