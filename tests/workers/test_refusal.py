"""A target that refuses every connection: the worker ends its load in the first second and the
run stops early, naming the address and the error, with results written and exit 3."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from array import array
from pathlib import Path

import pytest
import yaml

from coordinator.spec import parse_spec
from coordinator.split import worker_plans
from tests.support import servers
from tests.support.helpers import REPO_ROOT, free_port
from workers.load_worker import LoadWorker
from workers.recorder import CODE_SPAN, CONNECT_CODE, TIMEOUT_CODE
from workers.refusal import ConnectWatch, connect_error, origins

S = 1_000_000_000


def rows(*items: tuple[int, int]) -> tuple[array, array]:
    """Return recorder-like buffers of (outcome code, done ns) rows, on endpoint 1."""
    return (array("q", [CODE_SPAN + code for code, _ in items]),
            array("q", [done for _, done in items]))


@pytest.mark.parametrize(("batches", "now_ns", "expected"), [
    pytest.param([[(CONNECT_CODE, S // 10)] * 5], S, True, id="all-refused"),
    pytest.param([[(CONNECT_CODE, S // 10)], [(CONNECT_CODE, S // 2)]], S + 1, True,
                 id="all-refused-over-two-flushes"),
    pytest.param([[(CONNECT_CODE, S // 10), (200, S // 2)]], S, False, id="one-answered"),
    pytest.param([[(CONNECT_CODE, S // 10), (TIMEOUT_CODE, S // 2)]], S, False,
                 id="one-timed-out"),
    pytest.param([[]], S, False, id="none-finished"),
    pytest.param([[(CONNECT_CODE, S // 10)]], S - 1, False, id="first-second-not-over"),
    pytest.param([[(CONNECT_CODE, S // 10), (200, S + 5)]], 2 * S, True,
                 id="answers-after-the-first-second-do-not-count"),
])
def test_connect_watch_answers_whether_the_whole_first_second_was_refused(
        batches: list[list[tuple[int, int]]], now_ns: int, expected: bool) -> None:
    """True only once the first second is over and every request finished in it failed to
    connect; answered once (then done), False for ever after."""
    watch = ConnectWatch(begin_ns=0)
    for batch in batches:
        watch.observe(*rows(*batch))
    assert watch.all_failed(now_ns) is expected
    assert watch.done is (now_ns >= S)
    if watch.done:
        assert watch.all_failed(now_ns + S) is False


def test_origins_are_distinct_with_default_ports() -> None:
    """URLs reduce to their distinct (host, port), default ports filled in, in order."""
    assert origins(["http://a/x", "http://a:80/y", "https://b/", "http://[::1]:8080/z"]) == [
        ("a", 80), ("b", 443), ("::1", 8080)]


def test_connect_error_names_the_refused_address() -> None:
    """A closed port on 127.0.0.1 reads `connection refused: 127.0.0.1:PORT`; a listening one is
    left out (and alone, says every request failed to connect)."""
    closed = free_port()
    with servers.recording_server() as served:
        text = asyncio.run(connect_error([f"http://127.0.0.1:{closed}/a", f"{served.url}/b"]))
        alone = asyncio.run(connect_error([f"{served.url}/b"]))
    assert text == f"connection refused: 127.0.0.1:{closed}"
    assert alone == (f"every request of the first 1 s failed to connect to "
                     f"{served.url.removeprefix('http://')}")


@pytest.mark.parametrize("transport", [pytest.param("fast", id="fast"),
                                       pytest.param("aiohttp", id="aiohttp")])
def test_a_worker_ends_its_load_when_the_first_second_is_refused(transport: str) -> None:
    """Against a closed port a worker planned for 10 s at 50 req/s stops after its first
    second (at most ~1.3 s of 50 req/s sent, not 500) and says why."""
    port = free_port()
    spec = parse_spec({"name": "t", "target": f"http://127.0.0.1:{port}",
                       "load": {"rate": 50, "duration": "10s", "warmup": "500ms"},
                       "http": {"transport": transport}})
    [plan] = worker_plans(spec)
    report = LoadWorker(plan).run(start_at=time.time() + 0.1)
    assert report.stopped_early == f"connection refused: 127.0.0.1:{port}"
    sent = report.warmup_requests + sum(h.total for w in report.windows
                                        for h in w.latency.values())
    assert 40 <= sent <= 65


def test_a_worker_against_a_live_target_is_not_stopped() -> None:
    """A target that answers keeps the whole schedule: no early stop, every request sent."""
    with servers.recording_server() as served:
        spec = parse_spec({"name": "t", "target": served.url,
                           "load": {"rate": 40, "duration": "1.5s"}})
        [plan] = worker_plans(spec)
        report = LoadWorker(plan).run(start_at=time.time() + 0.1)
    assert report.stopped_early is None
    assert sum(h.total for w in report.windows for h in w.latency.values()) == 60


@pytest.mark.ray
@pytest.mark.slow
def test_slogate_run_against_a_closed_port_stops_early_with_one_line(tmp_path: Path) -> None:
    """`slogate run` against a closed port: one line `stopped early: connection refused:
    127.0.0.1:PORT`, results.json written (INVALID, that reason first, the load's end well
    before its planned 20 s), exit 3."""
    port = free_port()
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "refused", "target": f"http://127.0.0.1:{port}",
        "load": {"rate": 50, "duration": "20s", "warmup": "1s", "workers": 2},
        "objectives": ["p(95)<50ms"]}))
    proc = subprocess.run(
        [sys.executable, "-m", "coordinator.cli", "run", str(spec), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=180)
    assert proc.returncode == 3, proc.stderr
    said = [line for line in proc.stderr.splitlines() if "refused" in line]
    assert said == [f"slogate: stopped early: connection refused: 127.0.0.1:{port}"]
    assert "Traceback" not in proc.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["verdict"] == "INVALID"
    assert results["reasons"][0] == f"stopped early: connection refused: 127.0.0.1:{port}"
    assert results["aborted"] is True
    assert {w["reason"] for w in results["workers"]} == {
        f"connection refused: 127.0.0.1:{port}"}
    assert results["metrics"]["*"]["request-count"] < 100  # 20 s would have been 1,000
