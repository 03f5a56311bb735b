"""The gRPC engine against real grpcio servers on 127.0.0.1: latency, status codes, deadlines, a
stalling server, TLS, metadata and per-request messages, mixed HTTP + gRPC, channels.

Each test builds its plan the way ``slogate run`` does (spec -> resolved schema -> worker plans)
and runs a plain :class:`LoadWorker` (no Ray), so what is asserted is what a run would record.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from coordinator.grpc_schema import resolve_grpc
from coordinator.spec import parse_spec
from coordinator.split import worker_plans
from tests.support.grpc_servers import (
    PROTOS,
    Behaviour,
    ca_and_server_cert,
    grpc_server,
    hello_grpc,
)
from tests.support.helpers import free_port, start_hello
from tests.support.servers import self_signed_cert
from workers.histogram import Histogram
from workers.load_worker import LoadWorker, WorkerReport

CALL = "hello.Greeter/SayHello"


def _spec(url: str, *, load: dict[str, Any], grpc: dict[str, Any] | None = None,
          endpoint: dict[str, Any] | None = None, **more: Any) -> Any:
    return parse_spec({"name": "g", "target": url, "load": {"workers": 1, **load},
                       "grpc": {"proto": ["hello.proto"], **(grpc or {})},
                       "endpoints": [{"call": CALL, "data": {"name": "slogate"},
                                      **(endpoint or {})}], **more})


def _run(spec: Any, base_dir: Path = PROTOS) -> WorkerReport:
    [plan] = worker_plans(spec, base_dir, resolve_grpc(spec, base_dir))
    return LoadWorker(plan).run(start_at=time.time() + 0.2)


def _by_outcome(report: WorkerReport, which: str = "latency") -> dict[str, Histogram]:
    out: dict[str, Histogram] = {}
    for window in report.windows:
        for (_, outcome), hist in getattr(window, which).items():
            out.setdefault(outcome, Histogram()).add(hist)
    return out


def _p_ms(hist: Histogram, q: float) -> float:
    value = hist.percentile_ns(q)
    assert value is not None
    return value / 1e6


def test_known_latency_is_measured_within_tolerance() -> None:
    """The sample app told to answer after 20 ms (a process of its own): 200 calls at 100/s all
    OK, median in [20, 25] ms and no call under 20 ms (asyncio.sleep never returns early);
    corrected latency >= service time.

    5 ms above the delay covers loopback gRPC on both sides of a busy 2-core machine (~1-2 ms
    measured) while catching a unit or clock error, which would be off by a factor.
    """
    with hello_grpc("--latency", "20ms") as url:
        report = _run(_spec(url, load={"rate": 100, "duration": "2s"}, grpc={"proto": [],
                                                                              "reflection": True}))
    latency, service = _by_outcome(report)["grpc:OK"], _by_outcome(report, "service")["grpc:OK"]
    assert latency.total == service.total == 200
    assert 20.0 <= _p_ms(latency, 50) <= 25.0
    assert (latency.min_ns or 0) >= 20_000_000
    assert _p_ms(latency, 50) >= _p_ms(service, 50)


def test_a_known_share_of_unavailable_is_counted_exactly() -> None:
    """A server that fails every 4th call UNAVAILABLE: exactly 25 of 100 calls are
    grpc:UNAVAILABLE and 75 grpc:OK, none lost or counted twice."""
    with grpc_server(Behaviour(unavailable_every=4)) as served:
        report = _run(_spec(served.url, load={"rate": 200, "requests": 100}))
    counts = {outcome: hist.total for outcome, hist in _by_outcome(report).items()}
    assert counts == {"grpc:OK": 75, "grpc:UNAVAILABLE": 25}


@pytest.mark.parametrize(("behaviour", "deadline"), [
    pytest.param(Behaviour(delay_s=0.3), "50ms", id="slow-server"),
    pytest.param(Behaviour(stall=True), "80ms", id="stalling-server"),
])
def test_the_deadline_ends_every_slow_call(behaviour: Behaviour, deadline: str) -> None:
    """Calls to a server slower than the endpoint's deadline (or one that never answers) end as
    grpc:DEADLINE_EXCEEDED near the deadline, and the run still ends on schedule."""
    limit_s = float(deadline.removesuffix("ms")) / 1e3
    with grpc_server(behaviour) as served:
        started = time.monotonic()
        report = _run(_spec(served.url, load={"rate": 50, "duration": "1s", "timeout": "5s"},
                            endpoint={"deadline": deadline}))
        took_s = time.monotonic() - started
    outcomes = _by_outcome(report)
    assert set(outcomes) == {"grpc:DEADLINE_EXCEEDED"}
    assert outcomes["grpc:DEADLINE_EXCEEDED"].total == 50
    assert limit_s * 1e3 <= _p_ms(outcomes["grpc:DEADLINE_EXCEEDED"], 50) <= limit_s * 1e3 + 30
    assert took_s < 1.0 + 0.2 + limit_s + 1.5  # no wait for the 5 s timeout


def test_metadata_and_per_request_messages_reach_the_server(tmp_path: Path) -> None:
    """Metadata arrives with every call and the lines of dataFile are sent in turn, each
    serialized as the method's input type."""
    (tmp_path / "hello.proto").write_text((PROTOS / "hello.proto").read_text())
    (tmp_path / "requests.jsonl").write_text("\n".join(
        json.dumps({"name": n, "times": i}) for i, n in enumerate(["a", "b", "c"])) + "\n")
    with grpc_server() as served:
        _run(_spec(served.url, load={"rate": 100, "requests": 6},
                   endpoint={"data": None, "dataFile": "requests.jsonl",
                             "metadata": {"x-team": "sre"}}), tmp_path)
    assert sorted(served.bodies) == sorted([b"\n\x01a", b"\n\x01b\x10\x01", b"\n\x01c\x10\x02"] * 2)
    assert all(m.get("x-team") == "sre" for m in served.metadata)


def test_closed_model_users_call_back_to_back() -> None:
    """Four users against a 10 ms server make about 4 / 10 ms calls a second, every one OK."""
    with grpc_server(Behaviour(delay_s=0.010)) as served:
        report = _run(_spec(served.url, load={"concurrency": 4, "duration": "1s"}))
    outcomes = _by_outcome(report)
    assert set(outcomes) == {"grpc:OK"}
    assert 200 <= outcomes["grpc:OK"].total <= 400  # 400 at exactly 10 ms a call


def test_tls_with_a_private_ca_and_server_name(tmp_path: Path) -> None:
    """A server whose certificate a private CA signed for hello.test: with the CA and
    serverName every call is OK; without the CA (system roots) every call is UNAVAILABLE."""
    ca, key, cert = ca_and_server_cert(tmp_path)
    (tmp_path / "hello.proto").write_text((PROTOS / "hello.proto").read_text())
    with grpc_server(tls=(key, cert)) as served:
        trusted = _run(_spec(served.url, load={"rate": 50, "requests": 20},
                             grpc={"tls": {"ca": ca.name, "serverName": "hello.test"}}), tmp_path)
        untrusted = _run(_spec(served.url, load={"rate": 50, "requests": 20, "timeout": "2s"},
                               grpc={"tls": {"serverName": "hello.test"}}), tmp_path)
    assert {o: h.total for o, h in _by_outcome(trusted).items()} == {"grpc:OK": 20}
    assert {o: h.total for o, h in _by_outcome(untrusted).items()} == {"grpc:UNAVAILABLE": 20}


def test_insecure_tls_trusts_a_self_signed_server(tmp_path: Path) -> None:
    """tls.insecure: a server with a self-signed certificate is called without a CA file."""
    certfile, keyfile = self_signed_cert(tmp_path)
    with grpc_server(tls=(keyfile.read_bytes(), certfile.read_bytes())) as served:
        report = _run(_spec(served.url, load={"rate": 50, "requests": 10},
                            grpc={"tls": {"insecure": True}}))
    assert {o: h.total for o, h in _by_outcome(report).items()} == {"grpc:OK": 10}


def test_http_and_grpc_endpoints_in_one_experiment() -> None:
    """A mixed experiment: the HTTP endpoint goes to the HTTP target, the call to grpc.target,
    alternating by weight, each recorded with its own outcome kind."""
    with start_hello() as http_url, grpc_server() as served:
        spec = parse_spec({
            "name": "mixed", "target": http_url, "load": {"rate": 100, "requests": 40},
            "grpc": {"proto": ["hello.proto"], "target": served.url},
            "endpoints": [{"path": "/hello"}, {"call": CALL, "data": {"name": "x"}}]})
        report = _run(spec)
    counts: dict[tuple[str, str], int] = {}
    for window in report.windows:
        for key, hist in window.latency.items():
            counts[key] = counts.get(key, 0) + hist.total
    assert counts == {("GET /hello", "status:200"): 20, (CALL, "grpc:OK"): 20}
    assert served.calls == 20


@pytest.mark.parametrize("channels", [1, 3])
def test_channels_per_worker_are_separate_connections(channels: int) -> None:
    """grpc.channels opens that many HTTP/2 connections per worker (the server sees that many
    peers) and calls go round-robin over them."""
    with grpc_server(Behaviour(delay_s=0.005)) as served:
        report = _run(_spec(served.url, load={"rate": 200, "requests": 60},
                            grpc={"channels": channels}))
    assert _by_outcome(report)["grpc:OK"].total == 60
    assert len(served.peers) == channels


def test_a_server_that_is_not_there_gives_unavailable() -> None:
    """Nothing listens on the port: every call ends grpc:UNAVAILABLE, none is lost, and the
    run still ends on schedule (grpc does not wait for the server to come up)."""
    spec = _spec(f"grpc://127.0.0.1:{free_port()}", load={"rate": 50, "duration": "1s"})
    started = time.monotonic()
    report = _run(spec)
    assert {o: h.total for o, h in _by_outcome(report).items()} == {"grpc:UNAVAILABLE": 50}
    assert time.monotonic() - started < 1.0 + 0.2 + 2.0


def test_max_in_flight_bounds_calls_to_a_stalling_server() -> None:
    """Open model at 100/s for 1 s against a server that never answers, maxInFlight 5 and a
    200 ms deadline: never more than 5 calls outstanding, so the 100 due calls go out 5 per
    200 ms, late; none is lost, and the lateness shows as schedule lag (the last call is sent
    about 100 / 5 x 0.2 s - 1 s = 3 s after its intended time) and in the corrected latency."""
    with grpc_server(Behaviour(stall=True)) as served:
        report = _run(_spec(served.url, load={"rate": 100, "duration": "1s", "maxInFlight": 5},
                            endpoint={"deadline": "200ms"}))
    outcomes = _by_outcome(report)
    assert {o: h.total for o, h in outcomes.items()} == {"grpc:DEADLINE_EXCEEDED": 100}
    assert report.unsent == 0
    assert max(w.in_flight_max for w in report.windows) <= 5
    lag = Histogram.sum(w.lag for w in report.windows)
    assert 2.5 <= (lag.max_ns or 0) / 1e9 <= 3.5
    assert _p_ms(outcomes["grpc:DEADLINE_EXCEEDED"], 100) >= 2700
