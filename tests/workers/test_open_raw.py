"""The open model on the raw-socket engine (:class:`RawUsersEngine`), on both pumps, against the
protocol-connection engine (:class:`FastEngine`) as the reference: the same plan, run on each
against a real server on 127.0.0.1, must give the same schedule (intended times), the same
outcome counts, and latency counted from the intended time when requests wait in the queue."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import pytest
import uvloop

from tests.support import servers
from tests.workers.test_engine import plan_for, window_outcomes
from workers.plan import WorkerPlan
from workers.pump import PUMP_ENV, compiled_available
from workers.raw_engine import FastEngine, RawUsersEngine
from workers.recorder import Recorder
from workers.run_state import pacer_for

MS = 1_000_000
ENGINES = ("protocol", "raw-compiled", "raw-python")


@dataclass(frozen=True, slots=True, kw_only=True)
class Rows:
    """What one engine recorded: outcome counts, and every request's (intended, sent, done)
    in ns from the start, ordered by intended time."""

    outcomes: dict[str, int]
    times: list[tuple[int, int, int]]

    @property
    def intended(self) -> list[int]:
        """Return the intended send times, in order."""
        return [t[0] for t in self.times]


def run_on(engine_name: str, plan: WorkerPlan, monkeypatch: pytest.MonkeyPatch) -> Rows:
    """Run ``plan`` on the named engine (a fresh uvloop, started 50 ms from now) and return
    what it recorded; a raw engine must run the pump its name says."""
    if engine_name == "raw-compiled" and not compiled_available():
        pytest.fail("the compiled pump is not built: run `pip install -e .` (or make test)")
    if engine_name == "raw-python":
        monkeypatch.setenv(PUMP_ENV, "python")
    else:
        monkeypatch.delenv(PUMP_ENV, raising=False)
    recorder = Recorder(labels=[t.label for t in plan.requests], window_s=1.0)

    async def drive() -> None:
        cls = FastEngine if engine_name == "protocol" else RawUsersEngine
        engine = cls(plan, recorder, time.monotonic_ns() + 50 * MS)
        if isinstance(engine, RawUsersEngine):
            assert (engine.compiled is not None) is (engine_name == "raw-compiled")
        await engine.prepare(0.04)
        await engine.go()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(drive())
    times = sorted(zip(recorder.intended, recorder.sent, recorder.done, strict=True))
    return Rows(outcomes=window_outcomes(recorder.close()), times=times)


@pytest.fixture
def refused() -> Iterator[servers.Served]:
    """A loopback port bound but not listening: every connect is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield servers.Served(url=f"http://127.0.0.1:{sock.getsockname()[1]}")


MIXED = (200, 404, "reset", 503, "hang", "close")
Server = Callable[[], AbstractContextManager[servers.Served]]


def answering(*actions: servers.Action) -> Server:
    """Return a maker of :func:`servers.outcome_server` with these actions."""
    return lambda: servers.outcome_server(actions)


@pytest.mark.parametrize(("server", "load", "expected"), [
    pytest.param(answering(*MIXED), {"rate": 300, "requests": 36},
                 {"status:200": 12, "status:404": 6, "status:503": 6, "reset": 6, "timeout": 6},
                 id="constant-status-reset-timeout-close"),
    pytest.param(None, {"rate": 300, "requests": 12}, {"connect": 12}, id="connect-refused"),
    pytest.param(answering(200), {"rate": 400, "arrival": "poisson", "seed": 7, "requests": 30},
                 {"status:200": 30}, id="poisson"),
    pytest.param(answering(200), {"window": "0.1s", "stages": [{"rate": 100, "duration": "0.1s"},
                                             {"rate": 300, "duration": "0.1s"}]},
                 {"status:200": 40}, id="stages"),
    pytest.param(answering(200), {"rate": 300, "duration": "0.1s",
                                  "ramp": {"from": 100, "duration": "0.1s"}},
                 {"status:200": 50}, id="ramp"),
])
def test_both_pumps_and_the_protocol_engine_agree(
        server: Server | None, load: dict[str, Any], expected: dict[str, int],
        refused: servers.Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """An open-model plan gives the same outcome counts, known from what the server does to
    the n-th request (a 0.2 s timeout ends a hang), and exactly the pacer's intended times on
    the protocol engine and on the raw-socket engine with either pump; every request is sent
    no earlier than intended and finishes after it is sent.

    Ramp: (100 + 300) / 2 x 0.1 s = 20 requests, then 300/s x 0.1 s = 30."""
    total = sum(expected.values())
    results = {}
    for name in ENGINES:
        with (server() if server is not None else contextlib.nullcontext(refused)) as served:
            plan = plan_for(served.url, {**load, "timeout": "0.2s"}, transport="fast")
            results[name] = run_on(name, plan, monkeypatch)
        if server is not None and load.get("requests"):
            assert len(served.requests) == total  # none retried, none lost
    pacer = pacer_for(plan)
    schedule = [int(pacer.intended_s(k) * 1e9) for k in range(total)]
    for name, rows in results.items():
        assert (name, rows.outcomes) == (name, expected)
        assert (name, rows.intended) == (name, schedule)
        assert all(i <= s <= d for i, s, d in rows.times), name


@pytest.mark.parametrize("engine_name", ENGINES)
def test_a_queued_request_counts_its_latency_from_its_intended_time(
        engine_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One connection (maxInFlight 1) to a server that takes 40 ms per request, at 100 req/s:
    request k is intended at 10k ms but waits in the queue until the k responses before it
    are done (>= 40 ms each, less 1 ms of timer slack: sent >= 39k ms), so its recorded wait
    (sent - intended, schedule lag) is >= 29k ms and its latency (done - intended) >= 29k + 39 ms:
    the wait in the queue counts, as wrk2's correction asks."""
    with servers.scripted_server(lambda n, path: (200, b"ok", {}), workers=1,
                                 service_s=0.04) as served:
        plan = plan_for(served.url, {"rate": 100, "requests": 6, "maxInFlight": 1},
                        transport="fast")
        rows = run_on(engine_name, plan, monkeypatch)
    assert rows.outcomes == {"status:200": 6}
    assert rows.intended == [k * 10 * MS for k in range(6)]
    waits = [sent - intended for intended, sent, _ in rows.times]
    latencies = [done - intended for intended, _, done in rows.times]
    for k in range(6):
        assert waits[k] >= 29 * k * MS, (k, waits)
        assert latencies[k] >= (29 * k + 39) * MS, (k, latencies)


class CountingTicks(RawUsersEngine):
    """The raw-socket engine, counting how often its pacer runs."""

    __slots__ = ("ticks",)

    def _tick(self) -> None:
        self.ticks = getattr(self, "ticks", 0) + 1
        super()._tick()


def test_the_compiled_pump_wakes_the_pacer_when_a_request_is_due(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On the compiled pump the pacer runs about once per request (a timerfd in the engine's
    epoll set fires when the next one is due), where uvloop's millisecond timers made it spin
    through the last millisecond before each request: at 100 req/s with nothing in flight,
    hundreds of runs per request. 30 requests: at most 3 runs each (the timer, a completion,
    the start) allow for a busy machine; a spin of even 10 us per run would be ~100 each."""
    if not compiled_available():
        pytest.fail("the compiled pump is not built: run `pip install -e .` (or make test)")
    monkeypatch.delenv(PUMP_ENV, raising=False)
    with servers.outcome_server((200,)) as served:
        plan = plan_for(served.url, {"rate": 100, "requests": 30}, transport="fast")
        recorder = Recorder(labels=["GET /hello"], window_s=1.0)

        async def drive() -> int:
            engine = CountingTicks(plan, recorder, time.monotonic_ns() + 50 * MS)
            await engine.prepare(0.04)
            await engine.go()
            return engine.ticks

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            ticks = runner.run(drive())
    assert window_outcomes(recorder.close()) == {"status:200": 30}
    assert ticks <= 3 * 30 + 2, ticks
