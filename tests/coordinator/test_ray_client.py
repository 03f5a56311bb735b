"""``slogate run --address ray://HOST:10001`` (Ray Client), as the in-cluster CronJob joins the
KubeRay head, against a real ``ray start --head`` on this machine with token authentication on
both sides: ``RAY_AUTH_MODE=token`` and the same ``RAY_AUTH_TOKEN``, as deploy/k8s sets them from
one Secret. The head is started in its own process group and stopped with it, never by
``ray stop`` (which would stop every Ray on the machine).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coordinator.sample_app import start_hello
from tests.support.helpers import REPO_ROOT, free_port

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TOKEN = "slogate-test-ray-token-0123456789abcdef"



def token_env() -> dict[str, str]:
    """Returns this environment with Ray's token authentication on, and no RAY_ADDRESS."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
    return {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}


def _node_up(ray: Path, port: int) -> bool:
    """Returns whether ``ray status`` (with the token) sees the head node with its 2 CPUs."""
    status = subprocess.run([str(ray), "status", f"--address=127.0.0.1:{port}"],
                            capture_output=True, text=True, env=token_env(), timeout=60)
    return status.returncode == 0 and "2.0 CPU" in status.stdout


@pytest.fixture(scope="module")
def ray_client_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Starts a token-authenticated Ray head with a client server; yields ``ray://...``."""
    # `ray start` records its address in /tmp/ray/ray_current_cluster, which a later plain
    # ray.init() would join; put back what was there before, as `ray stop` would.
    current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    before = current.read_bytes() if current.exists() else None
    port, client_port = free_port(), free_port()
    ray = Path(sys.executable).with_name("ray")
    head = subprocess.Popen(
        [str(ray), "start", "--head", "--block", f"--port={port}",
         f"--ray-client-server-port={client_port}", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats"],
        env=token_env(), cwd=tmp_path_factory.mktemp("ray-head"), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Ready means the client port listens and the head's node is up with its CPUs (the
        # client server alone can answer before the node can host a driver).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert head.poll() is None, "ray start --head exited"
            with socket.socket() as sock:
                listening = sock.connect_ex(("127.0.0.1", client_port)) == 0
            if listening and _node_up(ray, port):
                break
            time.sleep(0.5)
        else:
            pytest.fail("the Ray head was not ready within 120 s")
        yield f"ray://127.0.0.1:{client_port}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=5)  # `ray start --block` lingers ~30 s on SIGTERM
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        if before is None:
            current.unlink(missing_ok=True)
        else:
            current.write_bytes(before)


def test_run_through_ray_client_with_the_cluster_token(ray_client_address: str,
                                                       tmp_path: Path) -> None:
    """Joined through Ray Client with the cluster's token, the workers run on the head's node
    and the whole run comes back: every request measured, judged PASS."""
    with start_hello() as url:
        spec = tmp_path / "spec.yaml"
        spec.write_text(json.dumps({
            "name": "client", "target": url, "load": {"rate": 300, "duration": "3s",
                                                      "workers": 1},
            "endpoints": [{"path": "/hello"}], "analysis": {"maxScheduleLag": "200ms"},
            "objectives": ["rate<0.02"]}))
        proc = subprocess.run(
            [sys.executable, "-m", "coordinator.cli", "run", str(spec), "--address",
             ray_client_address, "--out", str(tmp_path / "out")],
            capture_output=True, text=True, cwd=REPO_ROOT, env=token_env(), timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert f"joining Ray at {ray_client_address}" in proc.stderr
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["verdict"] == "PASS"
    assert saved["metrics"]["*"]["request-count"] == 900
    assert TOKEN not in proc.stdout + proc.stderr + json.dumps(saved)
