"""Response checks against real servers on 127.0.0.1, on both transports: a wrong body is a
``check:<name>`` outcome from the first bad response on, and a check-rate is measured within its
binomial interval."""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

import pytest
import uvloop

from analysis.evidence import evidence_for, scopes
from analysis.merge import totals
from analysis.metrics import Measured, metrics_table
from coordinator.spec import parse_spec
from coordinator.split import worker_plans
from tests.support import servers
from tests.workers.conftest import PURE, spec_transport
from workers.load_worker import LoadWorker, WorkerReport
from workers.raw_engine import RawUsersEngine, fast_engine
from workers.recorder import Recorder

TRANSPORTS = [pytest.param("fast", id="fast"), pytest.param(PURE, id=PURE),
              pytest.param("aiohttp", id="aiohttp")]
GOOD = json.dumps({"status": "ok", "items": [1, 2]}).encode()
WRONG = json.dumps({"status": "degraded", "items": []}).encode()


def run(target: str, load: dict[str, Any], transport: str,
        checks: list[dict[str, Any]]) -> WorkerReport:
    """Run one worker of a spec whose one endpoint has ``checks``."""
    spec = parse_spec({"name": "t", "target": target, "load": load,
                       "http": {"transport": spec_transport(transport)},
                       "endpoints": [{"path": "/api", "checks": checks}]})
    [plan] = worker_plans(spec)
    return LoadWorker(plan).run(start_at=time.time() + 0.2)


def outcomes(report: WorkerReport) -> dict[str, int]:
    """Return finished requests per outcome."""
    counts: dict[str, int] = {}
    for window in report.windows:
        for (_, outcome), hist in window.latency.items():
            counts[outcome] = counts.get(outcome, 0) + hist.total
    return counts


CHECKS: list[dict[str, Any]] = [{"name": "ok", "json": "$.status", "equals": "ok"},
          {"name": "items", "json": "$.items[0]"},
          {"name": "traced", "header": "X-Trace"},
          {"name": "small", "maxBytes": 100}]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_body_turning_wrong_mid_run_is_caught_from_the_first_bad_response(
        transport: str) -> None:
    """The server answers well 25 times, then 200 with a wrong body: every wrong response,
    the first included, is ``check:ok``; the good ones stay ``status:200``."""
    def answer(n: int, path: str) -> tuple[int, bytes, dict[str, str]]:
        return 200, GOOD if n < 25 else WRONG, {"X-Trace": str(n)}

    with servers.scripted_server(answer) as server:
        report = run(server.url, {"concurrency": 1, "requests": 60}, transport, CHECKS)
    assert outcomes(report) == {"status:200": 25, "check:ok": 35}
    assert len(server.requests) == 60


@pytest.mark.parametrize(("answer", "outcome"), [
    pytest.param(lambda n, p: (200, GOOD, {}), "check:traced", id="header-gone"),
    pytest.param(lambda n, p: (200, GOOD + b" " * 100, {"X-Trace": "1"}), "check:small",
                 id="too-large"),
    pytest.param(lambda n, p: (200, b'{"status": "ok"}', {"X-Trace": "1"}), "check:items",
                 id="json-path-missing"),
    pytest.param(lambda n, p: (503, b"", {}), "status:503", id="error-status-stays"),
])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_each_failure_names_its_check(transport: str, answer: Any, outcome: str) -> None:
    """A response failing one check is that check's outcome; an error status stays a status."""
    with servers.scripted_server(answer) as server:
        report = run(server.url, {"rate": 200, "requests": 10}, transport, CHECKS)
    assert outcomes(report) == {outcome: 10}


class CountingEngine(RawUsersEngine):
    """The raw engine, counting the responses whose checks it ran (the others its
    repeated-response shortcut recognised): parsed by httptools, or by the compiled pump."""

    __slots__ = ("parsed",)

    def checked(self, conn: Any, status: int) -> int:
        self.parsed = getattr(self, "parsed", 0) + 1
        return super().checked(conn, status)

    def checked_whole(self, conn: Any, status: int, data: bytes, body_at: int) -> int:
        self.parsed = getattr(self, "parsed", 0) + 1
        return super().checked_whole(conn, status, data, body_at)


@pytest.mark.parametrize("transport", ["fast", PURE])
def test_the_raw_engines_shortcut_checks_every_response_it_cannot_prove(transport: str) -> None:
    """Back-to-back users on the raw engine, either pump: 100 good responses (the same bytes
    but for the Date: the shortcuts recognise them, the pure-Python pump's shape or the compiled
    pump's last checked response), then 50 wrong bodies, then 50 good again. Each wrong body is
    check:ok from the first, each good one 200, and the shortcut still served most."""
    def answer(n: int, path: str) -> tuple[int, bytes, dict[str, str]]:
        return 200, WRONG if 100 <= n < 150 else GOOD, {"X-Trace": "1"}

    with servers.scripted_server(answer) as server:
        spec = parse_spec({"name": "t", "target": server.url, "http": {"transport": "fast"},
                           "load": {"concurrency": 1, "requests": 200},
                           "endpoints": [{"path": "/api", "checks": CHECKS}]})
        [plan] = worker_plans(spec)
        recorder = Recorder(labels=["GET /api"], window_s=1.0)

        async def run_engine() -> CountingEngine:
            engine = CountingEngine(plan, recorder, time.monotonic_ns())
            await engine.prepare(2.0)
            await engine.go()
            return engine

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            engine = runner.run(run_engine())
    counts: dict[str, int] = {}
    for window in recorder.close():
        for (_, outcome), hist in window.latency.items():
            counts[outcome] = counts.get(outcome, 0) + hist.total
    assert counts == {"status:200": 150, "check:ok": 50}
    assert type(fast_engine(plan, Recorder(labels=["x"], window_s=1.0), 0)) is RawUsersEngine
    assert getattr(engine, "parsed", 0) < 100  # at most half parsed: the 50 wrong ones, a few more


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_one_response_is_judged_by_each_endpoints_own_checks(transport: str) -> None:
    """Two endpoints get the same bytes back: the one whose check the body fails records
    check:absent for every request, the other 200, though the raw engine's shortcut has
    learnt the response from either."""
    with servers.scripted_server(lambda n, p: (200, GOOD, {})) as server:
        spec = parse_spec({"name": "t", "target": server.url,
                           "http": {"transport": spec_transport(transport)},
                           "load": {"concurrency": 2, "requests": 200},
                           "endpoints": [{"path": "/a", "checks": [{"bodyContains": "ok"}]},
                                         {"path": "/b", "checks": [{"name": "absent",
                                                                    "bodyContains": "nope"}]}]})
        [plan] = worker_plans(spec)
        report = LoadWorker(plan).run(start_at=time.time() + 0.2)
    by_key: dict[tuple[str, str], int] = {}
    for window in report.windows:
        for key, hist in window.latency.items():
            by_key[key] = by_key.get(key, 0) + hist.total
    assert by_key == {("GET /a", "status:200"): 100, ("GET /b", "check:absent"): 100}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_check_failing_on_3_percent_gives_a_check_rate_in_its_interval(transport: str) -> None:
    """The server sends a wrong body to each request with probability 3 % (seeded): the run
    counts exactly the wrong bodies it sent as check failures, and the 95 % Clopper-Pearson
    interval of the check-rate holds the true 3 % (and the measured rate is the server's)."""
    def bad(n: int) -> bool:
        return random.Random(n).random() < 0.03

    def answer(n: int, path: str) -> tuple[int, bytes, dict[str, str]]:
        return 200, WRONG if bad(n) else GOOD, {"X-Trace": "1"}

    requests = 3000
    with servers.scripted_server(answer) as server:
        report = run(server.url, {"concurrency": 4, "requests": requests}, transport, CHECKS)
    sent_wrong = sum(bad(n) for n in range(len(server.requests)))
    assert outcomes(report) == {"status:200": requests - sent_wrong, "check:ok": sent_wrong}
    measured = Measured(latency=totals(report.windows), duration_s=report.measured_s)
    table = metrics_table(measured)
    point: dict[str, Any] = {str(k): v for k, v in table.loc["*"].to_dict().items()}
    evidence = evidence_for("check-rate", scopes(measured)["*"], point, 0.95)
    assert evidence.value == pytest.approx(sent_wrong / requests)
    assert evidence.interval is not None
    low, high = evidence.interval
    assert low < 0.03 < high
    assert point["error-rate"] == pytest.approx(sent_wrong / requests)
    assert point["latency-p50"] is not None


@pytest.mark.parametrize(("checks", "outcome"), [
    pytest.param([{"name": "abc", "bodyContains": "ABC"}, {"name": "big", "minBytes": 299_000}],
                 "status:200", id="passes"),
    pytest.param([{"name": "small", "maxBytes": 1000}], "check:small", id="fails"),
])
@pytest.mark.parametrize("transport", ["fast", PURE])
def test_a_response_over_many_reads_is_checked_whole(transport: str, checks: list[Any],
                                                     outcome: str) -> None:
    """A 300 kB body arrives over many reads, which the compiled parser leaves to httptools:
    the checks still see the whole body (its size, a run of bytes inside it) on either pump."""
    with servers.large_response_server(300_000) as server:
        spec = parse_spec({"name": "t", "target": server.url,
                           "http": {"transport": spec_transport(transport)},
                           "load": {"concurrency": 2, "requests": 20},
                           "endpoints": [{"path": "/large", "checks": checks}]})
        [plan] = worker_plans(spec)
        report = LoadWorker(plan).run(start_at=time.time() + 0.2)
    assert outcomes(report) == {outcome: 20}
