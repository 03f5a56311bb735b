"""The load engines against real servers on 127.0.0.1: what each transport sends and measures.

Every test runs the real ``LoadWorker`` (its own uvloop thread) with a plan built from a spec, as
the coordinator builds it, against the hello sample app (a real process) or a small real server
from ``tests.support.servers``. Where both transports can do a thing, both are run, and must agree.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.spec import parse_spec
from coordinator.split import worker_plans
from tests.support import servers
from tests.support.helpers import present, start_hello
from tests.workers.conftest import PURE, spec_transport
from workers.histogram import HIGHEST_NS, Histogram, index_of, lowest_equivalent
from workers.load_worker import LoadWorker, WorkerReport
from workers.plan import WorkerPlan
from workers.pump import PUMP_ENV
from workers.raw_engine import (
    FastEngine,
    RawUsersEngine,
    _Shape,
    fast_engine,
    one_keep_alive_response,
)
from workers.recorder import Recorder, Window
from workers.transport import Sender
from workers.transport_aiohttp import AiohttpSender

MS = 1_000_000
S = 1_000_000_000

TRANSPORTS = [pytest.param("fast", id="fast"), pytest.param(PURE, id=PURE),
              pytest.param("aiohttp", id="aiohttp")]
MODELS = [
    pytest.param({"rate": 400}, id="open"),
    pytest.param({"concurrency": 4}, id="closed"),
]


def plan_for(target: str, load: dict[str, Any], *, transport: str,
             endpoints: list[dict[str, Any]] | None = None, **http: Any) -> WorkerPlan:
    """Return the one worker plan of a spec, built as the coordinator builds it."""
    spec = parse_spec({"name": "t", "target": target, "load": load,
                       "endpoints": endpoints or [{"path": "/hello"}],
                       "http": {"transport": spec_transport(transport), **http}})
    [plan] = worker_plans(spec)
    assert plan.transport == spec_transport(transport)
    return plan


def run(target: str, load: dict[str, Any], *, transport: str,
        endpoints: list[dict[str, Any]] | None = None, **http: Any) -> WorkerReport:
    """Run one worker of the spec against ``target`` and return its report."""
    plan = plan_for(target, load, transport=transport, endpoints=endpoints, **http)
    return LoadWorker(plan).run(start_at=time.time() + 0.2)


def outcomes(report: WorkerReport) -> dict[str, int]:
    """Return finished requests per outcome, over all windows and endpoints."""
    return window_outcomes(report.windows)


def window_outcomes(windows: Iterable[Window]) -> dict[str, int]:
    """Return finished requests per outcome in ``windows``, over all endpoints."""
    counts: collections.Counter[str] = collections.Counter()
    for window in windows:
        for (_, outcome), hist in window.latency.items():
            counts[outcome] += hist.total
    return dict(counts)


def merged(report: WorkerReport, kind: str = "latency") -> Histogram:
    """Return the report's ``latency``, ``service`` or ``lag`` histogram over all windows."""
    if kind == "lag":
        return Histogram.sum(w.lag for w in report.windows)
    return Histogram.sum(h for w in report.windows for h in getattr(w, kind).values())


def at_least(hist: Histogram, ns: int) -> int:
    """Return how many values are at or above ``ns`` (a bucket straddling ``ns`` counts in)."""
    return hist.count_between(ns, HIGHEST_NS)


def floor_of(ns: int) -> int:
    """Return the lowest value of the histogram bucket holding ``ns``.

    ``min_ns`` reports a bucket's lowest value, up to 1/1024 below what was recorded (262 us at
    300 ms), so a lower bound on a minimum is checked against the bound's own bucket floor.
    """
    return int(lowest_equivalent(index_of([ns]))[0])


def assert_all_accounted(report: WorkerReport, n: int) -> None:
    """Every one of the n requests asked for was scheduled, sent and finished; none warm-up."""
    assert sum(w.scheduled for w in report.windows) == n
    assert sum(w.sent for w in report.windows) == n
    assert (report.unsent, report.warmup_requests) == (0, 0)


@pytest.fixture(scope="module")
def hello() -> Iterator[str]:
    """A plain hello app (no added latency), shared by the module."""
    with start_hello() as url:
        yield url


# --- latency ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hello_10ms() -> Iterator[str]:
    """A hello app that answers every request after a fixed 10 ms."""
    with start_hello("--latency", "10ms") as url:
        yield url


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_fixed_server_latency_is_measured(hello_10ms: str, transport: str,
                                          model: dict[str, Any]) -> None:
    """With 10 ms added by the app, corrected p50 and p99 lie in [10 ms, 10 ms + overhead].

    The app waits out its delay on a monotonic clock and never answers early, so 10 ms is a hard
    lower bound of every latency and service time. Above it: a uvloop timer tick (1 ms) plus a
    loopback round trip through two Python event loops (under 1 ms here; the median measured
    10.3-11.2 ms), so the median gets 5 ms. p99 of 400 is the 4th-largest value, so it moves only
    when four requests are each delayed by CPU scheduling on this 2-core machine (generator, app
    and pytest share it; one preemption is at most a CFS latency period, up to ~20 ms): 10 + 20.
    Unit or clock errors (x1000) and coordinated-omission artefacts (a 100 ms start-up stall
    showed p99 ~ 110 ms) both fall far outside. Schedule lag, p99 under 10 ms, is a connect on
    loopback (under 1 ms) plus a preemption.
    """
    report = run(hello_10ms, {**model, "requests": 400}, transport=transport)
    assert outcomes(report) == {"status:200": 400}
    assert_all_accounted(report, 400)
    latency, service = merged(report), merged(report, "service")
    assert present(latency.min_ns) >= floor_of(10 * MS) and present(service.min_ns) >= floor_of(10 * MS)
    assert 10 * MS <= present(latency.percentile_ns(50)) <= 15 * MS
    assert 10 * MS <= present(latency.percentile_ns(99)) <= 30 * MS
    lag = merged(report, "lag")
    assert present(lag.percentile_ns(99)) <= 10 * MS
    if "concurrency" in model:  # a user's request is intended when the user sends it
        assert present(lag.max_ns) <= 1 * MS


# --- coordinated omission -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("transport", "max_in_flight", "sent_into_the_stall"),
    [
        pytest.param("fast", 1, False, id="fast-one-connection"),
        pytest.param("aiohttp", 1, False, id="aiohttp-one-connection"),
        pytest.param("fast", 1000, True, id="fast-connection-per-request"),
        pytest.param("aiohttp", 1000, True, id="aiohttp-connection-per-request"),
    ],
)
def test_a_stall_shows_in_corrected_latency(transport: str, max_in_flight: int,
                                            sent_into_the_stall: bool) -> None:
    """A 1 s server stall during a 3 s run at 200 req/s puts ~1 s into corrected p99, whatever
    the connection cap; service time shows it only when requests could still be sent.

    The stall starts 1.5 s after the app is up, about 1.25 s into the run, so it lies wholly
    inside it. 200 of the 600 requests are intended during it; each of the 100 intended in its
    first half is answered at its end at the earliest, so at least 100 latencies are >= 0.5 s,
    and p99 (rank 594 of 600: the 7th-largest) >= 0.9 s, since the 20 intended in the stall's
    first 0.1 s wait at least 0.9 s. The median is a request outside the stall (0 ms app).

    Service time (from the real send) depends on where a request waits during the stall:
    - one connection (maxInFlight 1): the request on the wire when the stall began waits it out;
      every later one waits in the engine's queue (fast) or before its task starts (aiohttp,
      whose loop caps tasks at maxInFlight, so the pool never queues), is sent after the stall
      and answered in about a millisecond. Exactly one service time is >= 0.5 s, p99 stays
      under 250 ms (a quarter of the stall), and the waiting shows as schedule lag instead;
    - a connection per request (maxInFlight 1000): each request is sent on time on a fresh
      connection and waits at the server, so service = latency within a connect, >= 100 service
      times are >= 0.5 s, and lag p99 stays under 250 ms: opening ~200 connections at once
      costs event-loop time (measured 110-125 ms on this 2-core machine when it was shared with
      other test runs), still a quarter of what queueing behind one connection gives (~1 s).
    """
    with start_hello("--stall-after", "1.5s", "--stall-for", "1s") as url:
        report = run(url, {"rate": 200, "duration": "3s", "maxInFlight": max_in_flight},
                     transport=transport)
    assert outcomes(report) == {"status:200": 600}
    assert_all_accounted(report, 600)
    latency, service, lag = merged(report), merged(report, "service"), merged(report, "lag")
    assert at_least(latency, S // 2) >= 100
    assert present(latency.percentile_ns(99)) >= 900 * MS
    assert present(latency.percentile_ns(50)) <= 50 * MS
    if sent_into_the_stall:
        # Sent ``lag`` after its intended time, a request waits at the server until the stall
        # ends: service >= latency - lag. On a loaded machine the ~200 connections open late, so
        # the bounds above hold less the measured lag p99, for all but the 6 requests (1 %)
        # whose lag may exceed it: >= 100 - 6 service times >= 0.5 s - lag, and the 7th-largest
        # is still one of the 20 intended in the stall's first 0.1 s, >= 0.9 s - lag.
        late = present(lag.percentile_ns(99))
        assert late <= 250 * MS
        assert at_least(service, S // 2 - late) >= 100 - 6
        assert present(service.percentile_ns(99)) >= 900 * MS - late
    else:
        assert at_least(service, S // 2) == 1
        assert present(service.percentile_ns(99)) <= 250 * MS
        assert present(lag.percentile_ns(99)) >= 900 * MS


def test_slow_engine_setup_does_not_delay_the_schedule(hello: str) -> None:
    """Time spent building the engine before the start (imports, TLS contexts) is not lag.

    The sender here takes 300 ms to build (as importing aiohttp and loading CA certificates took
    ~200 ms in a fresh process); the start is 600 ms away, so the first request must still go
    out on time: lag under 100 ms, against the 300 ms a run that counted its wait from before
    the setup would show.
    """
    def slow_sender(plan: WorkerPlan) -> Sender:
        time.sleep(0.3)
        return AiohttpSender(plan.requests, timeout_s=plan.timeout_s, connections=16)

    plan = plan_for(hello, {"rate": 100, "requests": 20}, transport="aiohttp")
    report = LoadWorker(plan, sender_factory=slow_sender).run(start_at=time.time() + 0.6)
    assert outcomes(report) == {"status:200": 20}
    assert present(merged(report, "lag").max_ns) <= 100 * MS


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_closed_model_never_starts_before_the_start_time(hello: str, transport: str) -> None:
    """Back-to-back users never send before the common start, so no request is taken as warm-up.

    A uvloop timer can fire up to a tick (1 ms) early; requests sent in that millisecond would
    be intended before the start and silently counted as warm-up: before the fix, about 4 runs
    in 10 of the fast transport lost one to six requests so. Eight runs of 4 users x 40 requests
    all pass a broken engine with probability ~0.6^8 < 2 %.
    """
    for _ in range(8):
        report = run(hello, {"concurrency": 4, "requests": 40}, transport=transport)
        assert outcomes(report) == {"status:200": 40}
        assert_all_accounted(report, 40)


# --- failures are data --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def refused_url() -> Iterator[str]:
    """A loopback URL whose port is bound but not listening: every connect gets RST (refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # held, so no other process can start listening there
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize(
    "load",
    [
        pytest.param({"rate": 100, "requests": 50}, id="open"),
        pytest.param({"concurrency": 2, "requests": 50}, id="closed"),
    ],
)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_refused_connections_are_connect_outcomes(refused_url: str, transport: str,
                                                  load: dict[str, Any]) -> None:
    """Against a port nobody listens on, every request is a ``connect`` outcome, exactly N of them.

    The worker returns a report (no exception), and a failed connect costs exactly the request
    waiting for it: neither lost nor counted twice, although connects are retried.
    """
    report = run(refused_url, load, transport=transport)
    assert outcomes(report) == {"connect": 50}
    assert_all_accounted(report, 50)


@pytest.fixture(scope="module")
def hello_2s() -> Iterator[str]:
    """A hello app that takes 2 s to answer."""
    with start_hello("--latency", "2s") as url:
        yield url


@pytest.mark.parametrize(
    ("transport", "early_ns"),
    [
        pytest.param("fast", 0, id="fast"),
        pytest.param(PURE, 0, id=PURE),
        pytest.param("aiohttp", 5 * MS, id="aiohttp"),
    ],
)
@pytest.mark.parametrize("load", [pytest.param({"rate": 20}, id="open"),
                                  pytest.param({"concurrency": 2}, id="closed")])
def test_slow_responses_time_out(hello_2s: str, transport: str, early_ns: int,
                                 load: dict[str, Any]) -> None:
    """With a 0.3 s request timeout and a 2 s server, every request is a ``timeout`` after ~0.3 s.

    Early: the fast engine's sweep compares the monotonic clock with the send time, so never
    (checked against the bucket floor of 300 ms, as ``min_ns`` reports bucket floors).
    aiohttp arms a timer from uvloop's ``loop.time()``, libuv's clock in whole milliseconds,
    cached when the loop iteration began: up to 1 ms of truncation plus the iteration's run so
    far (0.4-0.6 ms early was seen); 5 ms covers a preempted iteration on a busy core.
    Late by at most: the fast engine's sweep period, min(100 ms, timeout / 4) = 75 ms, plus
    ~125 ms of loop and CPU scheduling; 0.5 s is still far from the 2 s answer.
    """
    report = run(hello_2s, {**load, "requests": 6, "timeout": "0.3s"}, transport=transport)
    assert outcomes(report) == {"timeout": 6}
    assert_all_accounted(report, 6)
    service = merged(report, "service")
    assert floor_of(300 * MS - early_ns) <= present(service.min_ns) and present(service.max_ns) <= 500 * MS


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_resets_are_reset_outcomes_and_not_retried(transport: str, model: dict[str, Any]) -> None:
    """A server that resets every connection after reading the request gives N ``reset`` outcomes,
    and sees exactly N requests: the generator does not retry (aiohttp would, unasked)."""
    with servers.reset_server() as server:
        report = run(server.url, {**model, "requests": 20}, transport=transport)
    assert outcomes(report) == {"reset": 20}
    assert_all_accounted(report, 20)
    assert len(server.requests) == server.connections == 20


@pytest.fixture(scope="module")
def hello_closing() -> Iterator[str]:
    """A hello app that closes the connection after every second response."""
    with start_hello("--close-every", "2") as url:
        yield url


@pytest.mark.parametrize(
    "load",
    [
        pytest.param({"rate": 400, "requests": 200}, id="open"),
        pytest.param({"concurrency": 2, "requests": 200}, id="closed"),
    ],
)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_server_closing_connections_loses_nothing(hello_closing: str, transport: str,
                                                  load: dict[str, Any]) -> None:
    """When the server closes every second keep-alive connection, every request still gets 200."""
    report = run(hello_closing, load, transport=transport)
    assert outcomes(report) == {"status:200": 200}
    assert_all_accounted(report, 200)


@pytest.mark.parametrize("think", [pytest.param({}, id="back-to-back"),
                                   pytest.param({"thinkTime": "2ms"}, id="thinking")])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_closed_users_send_warmup_then_limit_split_by_weight(transport: str,
                                                             think: dict[str, Any]) -> None:
    """Closed-model users send exactly the warm-up plus the measured requests, each recorded under
    the endpoint it went to, in the picker's 3:1 order (a, a, b, a; warm-up takes the first 30)."""
    load = {"concurrency": 3, "requests": 300, "warmupRequests": 30, **think}
    endpoints = [{"path": "/a", "weight": 3}, {"path": "/b", "weight": 1}]
    with servers.recording_server() as server:
        report = run(server.url, load, transport=transport, endpoints=endpoints)
    by_label: collections.Counter[str] = collections.Counter()
    for window in report.windows:
        for (label, outcome), hist in window.latency.items():
            assert outcome == "status:200"
            by_label[label] += hist.total
    assert dict(by_label) == {"GET /a": 225, "GET /b": 75}
    assert (report.warmup_requests, report.unsent) == (30, 0)
    assert collections.Counter(r["target"] for r in server.requests) == {"/a": 248, "/b": 82}


# --- response framing and request contents -----------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_chunked_responses_complete(transport: str, model: dict[str, Any]) -> None:
    """Responses in chunked transfer encoding (no Content-Length, three chunks) are status 200."""
    with servers.chunked_server() as server:
        report = run(server.url, {**model, "requests": 20}, transport=transport,
                     endpoints=[{"path": "/chunked"}])
    assert outcomes(report) == {"status:200": 20}
    assert_all_accounted(report, 20)
    assert len(server.requests) == 20


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_close_delimited_responses_complete(transport: str, model: dict[str, Any]) -> None:
    """A response whose body ends when the server closes the connection is status 200, not reset."""
    with servers.close_delimited_server() as server:
        report = run(server.url, {**model, "requests": 20}, transport=transport)
    assert outcomes(report) == {"status:200": 20}
    assert_all_accounted(report, 20)
    assert server.connections == 20


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_no_spare_connections_when_each_response_closes_its_own(transport: str) -> None:
    """Responses 35 ms late at 100 req/s overlap, so new connections open while others close:
    each close-delimited response costs exactly one connection, none is opened to sit idle (one
    request in the queue is served by the one connection already opening for it)."""
    with servers.close_delimited_server(delay_s=0.035) as server:
        report = run(server.url, {"rate": 100, "requests": 40}, transport=transport)
    assert outcomes(report) == {"status:200": 40}
    assert server.connections == 40


@pytest.mark.parametrize(
    ("endpoint", "method", "target", "content_type", "body"),
    [
        pytest.param(
            {"path": "/echo", "method": "POST", "query": {"x": "1"},
             "headers": {"X-Trace": "abc"}, "json": {"a": 1, "b": [1, 2]}},
            "POST", "/echo?x=1", "application/json", b'{"a":1,"b":[1,2]}', id="post-json"),
        pytest.param(
            {"path": "/items/7", "method": "PUT", "headers": {"X-Trace": "abc"},
             "body": "plain text\n", "contentType": "text/plain"},
            "PUT", "/items/7", "text/plain", b"plain text\n", id="put-text"),
    ],
)
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_request_method_headers_and_body_reach_the_server(
    transport: str, model: dict[str, Any], endpoint: dict[str, Any], method: str, target: str,
    content_type: str, body: bytes,
) -> None:
    """Each request arrives with the spec's method, path and query, headers and body intact."""
    with servers.recording_server() as server:
        report = run(server.url, {**model, "requests": 5}, transport=transport,
                     endpoints=[endpoint])
    assert outcomes(report) == {"status:200": 5}
    assert len(server.requests) == 5
    for got in server.requests:
        headers = got["headers"]
        assert (got["method"], got["target"], got["body"]) == (method, target, body)
        assert headers["x-trace"] == "abc"
        assert headers["content-type"].startswith(content_type)
        assert headers["content-length"] == str(len(body))
        assert headers["user-agent"] == "slogate"


def socket_send_buffer_max() -> int:
    """Return the most a TCP socket here buffers for sending (``tcp_wmem``'s maximum), or 4 MiB."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 * 1024**2


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_body_larger_than_the_socket_buffer_arrives_whole(transport: str,
                                                            model: dict[str, Any]) -> None:
    """A body twice the most a socket can buffer cannot go out in one write: the rest waits for
    the socket to drain (the closed model's raw sockets keep it and watch for writability).
    Every byte arrives, in order, for every request; the closed model's 4 users send the last
    two from the pump (the compiled one: without the GIL, handing the rest to Python)."""
    size = 2 * socket_send_buffer_max()
    body = b"".join(b"%015d\n" % i for i in range(size // 16))  # ASCII: the spec's body is text
    with servers.recording_server(max_body=len(body)) as server:
        report = run(server.url, {**model, "requests": 6, "timeout": "20s"}, transport=transport,
                     endpoints=[{"path": "/upload", "method": "POST", "body": body.decode(),
                                 "contentType": "application/octet-stream"}])
    assert outcomes(report) == {"status:200": 6}
    assert [r["body"] == body for r in server.requests] == [True] * 6


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_response_larger_than_a_read_completes(transport: str, model: dict[str, Any]) -> None:
    """A 4 MiB response arrives over many reads (the raw engine reads 64 KiB at a time) and is
    one 200, every time; the server answered exactly the requests sent."""
    with servers.large_response_server(4 * 1024**2) as server:
        report = run(server.url, {**model, "requests": 12, "timeout": "20s"}, transport=transport,
                     endpoints=[{"path": "/large"}])
    assert outcomes(report) == {"status:200": 12}
    assert_all_accounted(report, 12)
    assert len(server.requests) == 12


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stop_ends_a_long_run_early_and_keeps_what_finished(hello: str, transport: str,
                                                           model: dict[str, Any]) -> None:
    """``stop()`` half a second into a 60 s run: the worker returns within seconds, with the
    requests that finished (all 200: requests in flight finish, none is cut off as a reset),
    and reports the half second it loaded, not the 60 s planned, so a rate over it is the rate
    sent (the open model's 400 req/s)."""
    plan = plan_for(hello, {**model, "duration": "60s"}, transport=transport)
    worker = LoadWorker(plan)
    began = time.monotonic()
    worker.start(time.time() + 0.2)
    time.sleep(0.7)
    worker.stop()
    final = None
    windows = []
    while final is None:
        snapshot = worker.poll(timeout_s=10.0)
        windows.extend(snapshot.windows)
        final = snapshot.final
    assert time.monotonic() - began < 10
    counts = outcomes(dataclasses.replace(final, windows=tuple(windows)))
    assert set(counts) == {"status:200"} and counts["status:200"] > 0
    assert 0.3 <= final.measured_s <= 5.0
    if "rate" in model:
        assert 320 <= counts["status:200"] / final.measured_s <= 480


@pytest.mark.parametrize(("url", "load", "engine"), [
    pytest.param("http", {"concurrency": 2, "requests": 1}, RawUsersEngine, id="closed"),
    pytest.param("https", {"concurrency": 2, "requests": 1}, FastEngine, id="closed-tls"),
    pytest.param("http", {"concurrency": 2, "requests": 1, "thinkTime": "1ms"}, FastEngine,
                 id="closed-think"),
    pytest.param("http", {"rate": 10, "requests": 1}, RawUsersEngine, id="open"),
    pytest.param("http", {"rate": 10, "requests": 1, "arrival": "poisson"},
                 RawUsersEngine, id="open-poisson"),
    pytest.param("http", {"rate": 10, "duration": "1s", "ramp": {"duration": "1s"}},
                 RawUsersEngine, id="open-ramp"),
    pytest.param("http", {"stages": [{"rate": 10, "duration": "1s"}]}, RawUsersEngine,
                 id="open-stages"),
    pytest.param("https", {"rate": 10, "requests": 1}, FastEngine, id="open-tls"),
])
def test_plain_http_runs_on_raw_sockets_where_it_can(url: str, load: dict[str, Any],
                                                     engine: type) -> None:
    """Back-to-back users and every open-model shape over plain HTTP get the raw-socket engine;
    think time and TLS keep protocol connections (the raw engine handles neither)."""
    plan = plan_for(f"{url}://127.0.0.1:9", load, transport="fast")
    built = fast_engine(plan, Recorder(labels=["GET /hello"], window_s=1.0), time.monotonic_ns())
    assert type(built) is engine
    if isinstance(built, RawUsersEngine):
        built.epoll.close()


@pytest.mark.parametrize("transport", ["fast", PURE])
def test_raw_users_try_each_address_of_the_host(hello: str, transport: str) -> None:
    """The closed model's raw sockets connect as ``create_connection`` does: an address that
    refuses (::1 on the app's port, held unlistened here) is skipped for the next (127.0.0.1),
    which the next connections then try first. Every request gets its 200."""
    port = int(hello.rsplit(":", 1)[1])
    plan = plan_for(hello, {"concurrency": 2, "requests": 20}, transport=transport)
    recorder = Recorder(labels=["GET /hello"], window_s=1.0)
    with socket.socket(socket.AF_INET6) as held:
        held.bind(("::1", port))  # bound, not listening: a connect there is refused

        async def run_engine() -> list[tuple[int, tuple[object, ...]]]:
            engine = RawUsersEngine(plan, recorder, time.monotonic_ns())
            engine.addresses = [(socket.AF_INET6, ("::1", port, 0, 0)),
                                (socket.AF_INET, ("127.0.0.1", port))]
            await engine.prepare(2.0)
            await engine.go()
            return engine.addresses

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            addresses = runner.run(run_engine())
    assert addresses[0] == (socket.AF_INET, ("127.0.0.1", port))
    assert window_outcomes(recorder.close()) == {"status:200": 20}


# --- repeated responses (the raw engine's _Shape) ---------------------------------------------


def response(status: int = 200, date: bytes = b"Sun, 29 Nov 2026 18:00:00 GMT",
             extra: bytes = b"", body: bytes = b"hello world\n") -> bytes:
    """Return an HTTP/1.1 response as a server writes it."""
    return (b"HTTP/1.1 %d OK\r\nServer: test\r\nDate: %s\r\n%sContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (status, date, extra, len(body), body))


def test_a_changing_date_widens_the_shape_to_its_value_only() -> None:
    """Two responses a second apart differ in Date: the shape then matches any Date of that
    length, and a third response is recognised without parsing; the status is the sample's."""
    first, second = response(date=b"Sun, 29 Nov 2026 18:00:00 GMT"), \
        response(date=b"Sun, 29 Nov 2026 18:00:01 GMT")
    assert one_keep_alive_response(first) == 200
    exact = _Shape.exact(first, 200)
    assert exact.matches(first) and not exact.matches(second)
    shape = exact.widened(second)
    assert shape is not None
    assert first[shape.start:shape.end] == b"0" and second[shape.start:shape.end] == b"1"
    later = response(date=b"Mon, 30 Nov 2026 09:59:59 GMT")
    assert not shape.matches(later)  # outside the stretch seen so far: parsed, then widened
    wider = shape.widened(later)
    assert wider is not None and first[wider.start:wider.end] == b"Sun, 29 Nov 2026 18:00:00"
    assert wider.matches(response(date=b"Tue, 01 Dec 2026 23:11:12 GMT"))


KEEP_ALIVE = b"Connection: keep-alive\r\n"


@pytest.mark.parametrize(("sample", "other"), [
    pytest.param(response(), response(status=503), id="status-line"),
    pytest.param(response(), response(body=b"hello wOrld\n"), id="body"),
    pytest.param(response(extra=KEEP_ALIVE), response(extra=b"Connection: close     \r\n"),
                 id="connection"),
    pytest.param(response(), response().replace(b"Length: 12", b"Length: 13"), id="content-length"),
    pytest.param(response(), response().replace(b" 18:00:00 GMT", b"\r\nX: 00:00 GM"),
                 id="line-break-in-value"),
    pytest.param(response(), response().replace(b"18:00:00", b"18:00:\x000"), id="control-byte"),
])
def test_differences_outside_one_plain_header_value_are_not_widened(sample: bytes,
                                                                    other: bytes) -> None:
    """A difference in the status line, the body, a framing header or across a line, or a byte
    llhttp refuses in a header value, leaves the shape as it was (the response is parsed)."""
    assert len(other) == len(sample) and other != sample
    assert _Shape.exact(sample, 200).widened(other) is None


PRINTABLE = st.binary(min_size=1, max_size=6).map(lambda b: bytes(32 + c % 95 for c in b))


@given(
    date_edits=st.lists(st.tuples(st.integers(0, 28), PRINTABLE), min_size=1, max_size=3),
    edits=st.lists(st.tuples(st.integers(0, 200), st.binary(min_size=1, max_size=4)),
                   max_size=3),
    probes=st.lists(st.tuples(st.integers(0, 200), st.binary(min_size=1, max_size=40)),
                    min_size=1, max_size=3),
    status=st.sampled_from([200, 204, 404, 503]),
)
@settings(max_examples=500, deadline=None)
def test_a_recognised_response_parses_as_the_sample_did(
    date_edits: list[tuple[int, bytes]], edits: list[tuple[int, bytes]],
    probes: list[tuple[int, bytes]], status: int,
) -> None:
    """The claim the fast path rests on, checked against llhttp itself: a shape widened by
    responses that differ in the Date value (as a real server's do) and by random same-length
    edits anywhere (only the safe ones may widen it) matches only responses that llhttp reads
    as exactly one whole keep-alive response with the sample's status, whether it matched the
    last stretch seen or checked a new one."""
    sample = response(status=status, body=b"" if status == 204 else b"hello world\n")
    assert one_keep_alive_response(sample) == status
    date_at = sample.index(b"Date: ") + 6

    def edited(at: int, new: bytes) -> bytes:
        at %= len(sample)
        return (sample[:at] + new + sample[at + len(new):])[:len(sample)]

    shape = _Shape.exact(sample, status)
    widened_by = []
    for at, new in date_edits:
        variant = edited(date_at + at, new[:29 - at])
        if variant != sample:
            shape = shape.widened(variant) or pytest.fail(f"a Date edit was refused: {variant!r}")
            widened_by.append(variant)
    for at, new in edits:
        variant = edited(at, new)
        if one_keep_alive_response(variant) == status:
            shape = shape.widened(variant) or shape
    for variant in widened_by:  # the shape still matches what it was widened with
        assert shape.matches(variant) and one_keep_alive_response(variant) == status
    for probe in probes:  # later probes may match by the last stretch seen (one comparison)
        data = edited(*probe)
        if shape.matches(data):
            assert one_keep_alive_response(data) == status


def test_raw_users_recognise_the_apps_repeated_response(hello: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Against the sample app (aiohttp: a Date header) the pure-Python pump learns the
    response's shape, and the run still records every request as the 200 it was."""
    monkeypatch.setenv(PUMP_ENV, "python")  # the compiled pump parses every response instead
    plan = plan_for(hello, {"concurrency": 2, "requests": 300}, transport="fast")
    recorder = Recorder(labels=["GET /hello"], window_s=1.0)

    async def run_engine() -> _Shape | None:
        engine = RawUsersEngine(plan, recorder, time.monotonic_ns())
        await engine.prepare(2.0)
        await engine.go()
        return engine.shape

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        shape = runner.run(run_engine())
    assert shape is not None and shape.status == 200 and b"Date: " in shape.sample
    assert window_outcomes(recorder.close()) == {"status:200": 300}


# --- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate (and key) for 127.0.0.1, made for this module."""
    return servers.self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.mark.parametrize(
    ("insecure", "expected"),
    [
        pytest.param(False, "tls", id="verified-self-signed-is-tls"),
        pytest.param(True, "status:200", id="insecure-accepts-it"),
    ],
)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tls_verification(certificate: tuple[Path, Path], transport: str, insecure: bool,
                          expected: str) -> None:
    """Verifying a self-signed certificate fails every request as ``tls``; ``insecure`` gets 200s.

    Both transports report a failed handshake as ``tls`` (not ``connect``): the TCP connect
    succeeds and the certificate error is an ``ssl.SSLError`` (aiohttp's
    ``ClientConnectorCertificateError`` is a ``ClientSSLError``). The certificate names
    127.0.0.1, so the only failure is trust; no request reaches the handler then.
    """
    with servers.tls_server(*certificate) as server:
        report = run(server.url, {"rate": 100, "requests": 10}, transport=transport,
                     insecure=insecure)
    assert outcomes(report) == {expected: 10}
    assert_all_accounted(report, 10)
    assert len(server.requests) == (10 if insecure else 0)


# --- the transports agree -----------------------------------------------------------------------


def seeded_errors(seed: int, rate: float, n: int) -> int:
    """Return how many of the hello app's first n error draws fail (its ``Random(seed)`` stream)."""
    rng = random.Random(seed)
    return sum(rng.random() < rate for _ in range(n))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_transports_agree_on_seeded_errors(transport: str) -> None:
    """A fresh app with a seeded 30 % error rate gives each transport the same, known status counts.

    The app draws one number from one seeded generator per request, in arrival order. Concurrent
    requests may arrive in any order, so which request fails can differ between runs, but the
    multiset of the first 600 draws cannot: the count of 500s is fixed by the seed, as long as
    the app sees exactly 600 requests (no retries, none lost). Both transports must hit it.
    """
    n = 600
    failures = seeded_errors(5, 0.3, n)
    assert 150 <= failures <= 210  # sanity: the stream itself is ~Binomial(600, 0.3), sd 11
    with start_hello("--error-rate", "0.3", "--seed", "5") as url:
        report = run(url, {"rate": 600, "requests": n}, transport=transport)
    assert outcomes(report) == {"status:200": n - failures, "status:500": failures}
    assert_all_accounted(report, n)


@pytest.mark.parametrize(("transport", "loaded"), [
    ("fast", ["uvloop", "workers.raw_engine", "workers._pump"]),
    ("aiohttp", ["uvloop", "workers.transport_aiohttp"]),
])
def test_ready_loads_what_the_run_needs_before_the_start_time(transport: str,
                                                              loaded: list[str]) -> None:
    """``ready()`` imports the plan's transport: imported after the start time instead, on a busy
    2-core host, they took a second, and every request of that second went out late (CI saw the
    p99 schedule lag at 1.4 s and an INCONCLUSIVE verdict for a 2 ms app)."""
    code = (
        "import sys, json\n"
        "from coordinator.spec import parse_spec\n"
        "from coordinator.split import worker_plans\n"
        "from workers.load_worker import LoadWorker\n"
        "[plan] = worker_plans(parse_spec({'name': 't', 'target': 'http://127.0.0.1:9', "
        "'load': {'rate': 10, 'duration': '1s'}, 'endpoints': [{'path': '/'}], "
        f"'http': {{'transport': {transport!r}}}}}))\n"
        f"before = [m for m in {loaded!r} if m in sys.modules]\n"
        "LoadWorker(plan).ready()\n"
        f"print(json.dumps([before, [m for m in {loaded!r} if m in sys.modules]]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[2], timeout=60).stdout
    before, after = json.loads(out)
    assert before == [], "the check proves nothing if all were loaded"
    assert after == loaded
