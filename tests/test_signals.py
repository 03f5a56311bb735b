"""Ctrl-C and SIGTERM on a real `slogate run` process: partial results on the first, out on the second."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, start_hello

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _start_run(tmp_path: Path, url: str) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps({"name": "sig", "target": url,
                                "load": {"rate": 100, "duration": "30s", "workers": 1},
                                "endpoints": [{"path": "/hello"}],
                                "objectives": ["p(99)<1s"]}))
    proc = subprocess.Popen([sys.executable, "-m", "coordinator.cli", "run", str(spec),
                             "--out", str(tmp_path / "out")], cwd=REPO_ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    return proc, lines


def _wait_for(lines: queue.Queue[str], text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if text in lines.get(timeout=0.5):
                return
        except queue.Empty:
            continue
    raise AssertionError(f"{text!r} not seen within {timeout_s} s")


@pytest.mark.parametrize("signum", [pytest.param(signal.SIGINT, id="SIGINT"),
                                    pytest.param(signal.SIGTERM, id="SIGTERM")])
def test_first_signal_stops_the_workers_and_keeps_partial_results(tmp_path: Path,
                                                                  signum: int) -> None:
    """One signal 2 s into a 30 s run: the run ends within seconds, exit 3, results.json marked
    aborted with the requests sent so far."""
    with start_hello() as url:
        proc, lines = _start_run(tmp_path, url)
        _wait_for(lines, "load starts", 60)
        time.sleep(2.5)
        proc.send_signal(signum)
        stopped_at = time.monotonic()
        proc.wait(timeout=30)
    assert proc.returncode == 3
    assert time.monotonic() - stopped_at < 15
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["aborted"] is True and saved["verdict"] == "INVALID"
    assert 0 < saved["metrics"]["*"]["request-count"] < 3000


def test_second_signal_exits_at_once(tmp_path: Path) -> None:
    """A second Ctrl-C exits immediately with 130, without waiting for the workers."""
    with start_hello() as url:
        proc, lines = _start_run(tmp_path, url)
        _wait_for(lines, "load starts", 60)
        proc.send_signal(signal.SIGINT)
        _wait_for(lines, "stopping the workers", 10)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert proc.returncode == 130
