"""Ctrl-C, SIGTERM and kill -9 on a real `slogate run` process: partial results on the first
signal during the load, out on the second; exit 130 with Ray shut down on one before the load; and
the embedded Ray on loopback only, never outliving its driver, and never sized beyond this machine.

The run starts in a session of its own, so that every process it started (Ray's included) is
found by its session id in /proc, and none of another test's.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.helpers import REPO_ROOT, start_hello

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _start_run(tmp_path: Path, url: str, workers: int = 1,
               duration: str = "30s") -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps({"name": "sig", "target": url,
                                "load": {"rate": 100, "duration": duration, "workers": workers},
                                "endpoints": [{"path": "/hello"}],
                                "objectives": ["p(99)<1s"]}))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen([sys.executable, "-m", "coordinator.cli", "run", str(spec),
                             "--out", str(tmp_path / "out")], cwd=REPO_ROOT, text=True, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()
    stderr = proc.stderr
    assert stderr is not None  # stderr=PIPE

    def forward() -> None:
        for line in stderr:
            lines.put(line)

    threading.Thread(target=forward, daemon=True).start()
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
    assert proc.returncode == 3, proc.stderr.read() if proc.stderr else ""
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


def _session(sid: int) -> dict[int, str]:
    """Return ``{pid: name}`` of the live processes in session ``sid`` (from /proc)."""
    found = {}
    for name in os.listdir("/proc"):
        try:
            text = Path(f"/proc/{name}/stat").read_text() if name.isdigit() else ""
        except OSError:
            continue
        if text:
            fields = text[text.rindex(")") + 2:].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                found[int(name)] = text[text.index("(") + 1:text.rindex(")")]
    return found


def _left_after(sid: int, timeout_s: float) -> dict[int, str]:
    """Wait until session ``sid`` has no live process; return what is left at the timeout."""
    deadline = time.monotonic() + timeout_s
    while (left := _session(sid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def _listening(pids: set[int]) -> list[str]:
    """Return the local addresses of the TCP sockets ``pids`` listen on (``ss -ltnp``)."""
    ss = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return [line.split()[3] for line in ss.splitlines()
            if {int(p) for p in re.findall(r"pid=(\d+)", line)} & pids]


@pytest.mark.parametrize("after, workers, said", [
    pytest.param("starting an embedded local Ray", 1, "while Ray was starting", id="ray-start"),
    pytest.param("loading ", 4, "while starting the workers", id="workers-start"),
])
def test_interrupt_before_the_load_exits_130_and_leaves_nothing(tmp_path: Path, after: str,
                                                                workers: int, said: str) -> None:
    """Ctrl-C while Ray or the workers start: exit 130 within seconds (not 1 with click's
    "Aborted!", not ignored until the 120 s start-up timeout), and no process of the run's
    session left."""
    with start_hello() as url:
        proc, lines = _start_run(tmp_path, url, workers=workers)
        _wait_for(lines, after, 60)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        stopped_at = time.monotonic()
        proc.wait(timeout=60)
        stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 130
    assert time.monotonic() - stopped_at < 30
    assert "Aborted!" not in stderr
    assert not (tmp_path / "out" / "results.json").exists()
    assert _left_after(proc.pid, 10) == {}


def test_embedded_ray_listens_on_loopback_only_and_dies_with_its_driver(tmp_path: Path) -> None:
    """During a run every socket the run's processes (GCS, raylet, agents, workers) listen on is
    on 127.0.0.1; after a kill -9 of the driver none of them is left within 10 s (Ray's agents
    alone stayed about 60 s)."""
    with start_hello() as url:
        proc, lines = _start_run(tmp_path, url)
        _wait_for(lines, "load starts", 60)
        ray_processes = set(_session(proc.pid)) - {proc.pid}
        addresses = _listening(ray_processes | {proc.pid})
        proc.kill()
        proc.wait(timeout=10)
        killed_at = time.monotonic()
        left = _left_after(proc.pid, 10)
    assert len(addresses) >= 4  # GCS, raylet (2), a worker, the agents
    assert {a.rpartition(":")[0] for a in addresses} <= {"127.0.0.1", "[::ffff:127.0.0.1]",
                                                         "[::1]"}, addresses
    assert left == {}, f"left {time.monotonic() - killed_at:.0f} s after kill -9: {left}"


def _command_lines(pids: set[int]) -> list[str]:
    """Return the command lines of ``pids`` (those still running)."""
    lines = []
    for pid in pids:
        try:
            lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return lines


def test_a_finished_run_started_no_api_server_and_leaves_nothing(tmp_path: Path) -> None:
    """Without --dashboard the embedded Ray runs no API server process (ray.init waited about
    1.8 s for it), no autoscaler monitor (it held ray.shutdown a second) and no log monitor (the
    workers' output is not sent to the driver), but still its
    per-node agent (the workers' metrics); Ray, started in a thread
    of its own (without Ray's notice about it on stderr) and shut down in it while the results
    are written, is gone once the run exits."""
    with start_hello() as url:
        proc, lines = _start_run(tmp_path, url, duration="2s")
        said: list[str] = []
        while not said or "load starts" not in said[-1]:
            said.append(lines.get(timeout=60))
        commands = _command_lines(set(_session(proc.pid)) - {proc.pid})
        proc.wait(timeout=60)
        left = _left_after(proc.pid, 10)
        time.sleep(0.2)  # the reader thread's last lines
        said.extend(lines.queue)
    assert not [line for line in said if "SIGTERM handler" in line], said
    assert proc.returncode in (0, 1, 3), proc.stderr.read() if proc.stderr else ""
    worker = json.loads((tmp_path / "out" / "results.json").read_text())["workers"][0]
    assert worker["requests"] + worker["unsent"] == 200  # 100 req/s for 2 s, all accounted for
    assert any("dashboard/agent.py" in c for c in commands), commands
    assert not any("dashboard/dashboard.py" in c for c in commands), commands
    assert not any("autoscaler/_private/monitor.py" in c for c in commands), commands
    assert not any("_private/log_monitor.py" in c for c in commands), commands
    assert left == {}, left


def test_more_workers_than_this_machine_holds_are_refused_before_ray_starts(
        tmp_path: Path) -> None:
    """workers: 1024 on the embedded Ray needs about 85 GB (85 MB a worker): refused in one line
    with exit 2 before Ray starts (it used to size Ray to 1,024 CPUs and take 12.5 GB)."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps({"name": "big", "target": "http://127.0.0.1:9",
                                "load": {"rate": 1024, "duration": "1s", "workers": 1024,
                                         "cpusPerWorker": 0.001},
                                "endpoints": [{"path": "/"}], "objectives": ["p(99)<1s"]}))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-m", "coordinator.cli", "run", str(spec), "--out",
                           str(tmp_path / "out")], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=60, start_new_session=True)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("slogate: error: load.workers: 1024 workers need about 85.6 GB on "
                           "this machine's embedded Ray (85 MB each) but "), line
