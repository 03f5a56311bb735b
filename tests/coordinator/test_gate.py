"""The gate for rollout controllers: Flagger's webhook (and a GET for Argo Rollouts' web
metric) answered over real HTTP on 127.0.0.1 from a real run archive on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from coordinator.archive import open_archive
from coordinator.gate_server import make_server
from tests.support.helpers import REPO_ROOT, free_port
from tests.support.runs import DAY0, document, write_run

NOW = DAY0 + timedelta(days=3, hours=1)
OBJECTIVES: list[object] = [{"metric": "error-rate", "upperLimit": "5%"},
              {"metric": "latency-p99", "upperLimit": "500ms"}]


def flagger(name: str = "checkout", **metadata: str) -> bytes:
    """Return Flagger's webhook payload for the canary ``name`` with ``metadata``."""
    return json.dumps({"name": name, "namespace": "shop", "phase": "Progressing",
                       "checksum": "85d557f47b", "metadata": metadata}).encode()


def call(url: str, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
    """POST ``body`` (GET without one) and return the status and the JSON answer."""
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """A run archive: checkout passed on day 0 and 1; on day 2 it FAILed (20% errors); cart
    only passed, on day 0; "forged" says PASS but its histograms FAIL."""
    root = tmp_path / "results"
    for day in (0, 1):
        write_run(root, document(day=day, name="checkout", objectives=OBJECTIVES))
    write_run(root, document(day=2, name="checkout", errors=400, objectives=OBJECTIVES))
    write_run(root, document(day=0, name="cart", objectives=OBJECTIVES))
    write_run(root, document(day=2, name="forged", errors=400, objectives=OBJECTIVES,
                             verdict="PASS"))
    return root


@pytest.fixture
def gate(archive: Path) -> Iterator[str]:
    """The gate serving ``archive`` on a free port, its clock at day 3 + 1 h; yields its URL."""
    where = open_archive(str(archive))
    server = make_server("127.0.0.1", 0, lambda: [(r.results, r.source)
                                                   for r in where.scan().runs],
                         default_max_age_s=None, log=lambda _m: None, now=lambda: NOW)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("body, status, verdict", [
    pytest.param(flagger("cart"), 200, "PASS", id="pass-proceeds"),
    pytest.param(flagger("checkout"), 412, "FAIL", id="newest-fail-halts"),
    pytest.param(flagger("canary-x", experiment="cart"), 200, "PASS", id="experiment-in-metadata"),
    pytest.param(flagger("forged"), 412, "FAIL", id="forged-pass-rejudged"),
    pytest.param(flagger("cart", maxAge="24h"), 409, "PASS", id="too-old"),
    pytest.param(flagger("nothing"), 404, None, id="no-run"),
])
def test_flagger_webhook(gate: str, body: bytes, status: int, verdict: str | None) -> None:
    """Only a re-judged PASS that is recent enough answers 2xx; FAIL 412, stale 409, none 404."""
    got, answer = call(gate + "/v1/flagger", body)
    assert (got, answer["verdict"]) == (status, verdict)


@pytest.mark.parametrize("body, error", [
    pytest.param(b"{not json", "the body is not JSON", id="not-json"),
    pytest.param(b"[]", "the body is not a JSON object", id="not-object"),
    pytest.param(json.dumps({"metadata": {}}).encode(),
                 "no experiment: give metadata.experiment, or the canary's name", id="no-name"),
    pytest.param(flagger("cart", maxAge="soon"), "metadata.maxAge: ", id="bad-max-age"),
])
def test_malformed_webhook_is_400(gate: str, body: bytes, error: str) -> None:
    """A payload that is not Flagger's is a 400 saying what is wrong."""
    got, answer = call(gate + "/v1/flagger", body)
    assert got == 400 and answer["error"].startswith(error)


def test_verdict_by_get_names_the_run(gate: str) -> None:
    """GET /v1/verdict answers the same, with the run, its start and its age."""
    got, answer = call(gate + "/v1/verdict?experiment=cart")
    assert got == 200
    assert (answer["verdict"], answer["startTime"], answer["ageS"]) == (
        "PASS", "2026-11-01T02:00:00.000Z", 3 * 86400 + 3600.0)
    assert answer["run"].endswith("results.json")


def test_gate_serve_command_answers_over_http(archive: Path) -> None:
    """`slogate gate-serve DIR` as a process: healthz, then Flagger's webhook answered 412 for
    the failing experiment and 200 for the passing one."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "coordinator.cli", "gate-serve", str(archive),
                             "--listen", f"127.0.0.1:{port}"], env=env, cwd=REPO_ROOT,
                            stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                assert call(url + "/healthz") == (200, {"status": "ok"})
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        assert call(url + "/v1/flagger", flagger("checkout"))[0] == 412
        assert call(url + "/v1/flagger", flagger("cart"))[0] == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stderr is not None
        stderr = proc.stderr.read()
    assert "POST /v1/flagger -> 412 FAIL" in stderr and "POST /v1/flagger -> 200 PASS" in stderr
