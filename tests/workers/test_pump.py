"""The compiled pump (workers/_pump.pyx) against the pure-Python one and against llhttp: its
parser accepts only what llhttp reads the same way, and both pumps, fed the same byte streams
split at random points by a real server on 127.0.0.1, record the same rows."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, cast

import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.helpers import start_hello
from tests.workers.conftest import PURE
from tests.workers.test_engine import plan_for
from workers.pump import PUMP_ENV, compiled_available
from workers.raw_engine import RawUsersEngine, one_keep_alive_response, response_parts
from workers.recorder import Recorder

if compiled_available():
    from workers._pump import EngineFields, body_start, parse_one, scan_ends
else:  # the fixture in conftest fails every test of the compiled pump in that case
    def parse_one(data: bytes) -> int:
        """Stand-in where the extension is not built."""
        raise RuntimeError("the compiled pump is not built")

    def scan_ends(data: bytes, start: int) -> tuple[int, int]:
        """Stand-in where the extension is not built."""
        raise RuntimeError("the compiled pump is not built")

    body_start = parse_one


# --- the parser: what it accepts, llhttp reads the same way ------------------------------------

STATUSES = st.sampled_from([200, 201, 204, 301, 304, 404, 500, 599, 100, 101, 600, 99])
NAMES = st.sampled_from(["Server", "Date", "X-Id", "Content-Type", "Connection", "Keep-Alive",
                         "Upgrade", "Proxy-Connection", "content-length", "TRANSFER-ENCODING",
                         "X Bad", "X:Odd", ""])
VALUES = st.sampled_from(["nginx", "keep-alive", "close", "chunked", "gzip, chunked", " 5 ",
                          "05", "1 2", "a\tb", "é", "\x7f", "-1", "Keep-Alive", ""])


CLEAN_NAMES = st.sampled_from(["Server", "Date", "X-Id", "content-type", "Connection"])
CLEAN_VALUES = st.sampled_from(["nginx", "keep-alive", "Keep-Alive", "text/plain", "a b\tc"])


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    """A response: a status line, headers, a body framed right or wrongly, maybe a byte
    changed, dropped or added, maybe cut short or with something after it. Most start clean
    (what the C parser takes), so the edits probe the edge of what it accepts."""
    clean = draw(st.booleans())
    status = draw(st.integers(200, 599) if clean else STATUSES)
    version = b"HTTP/1.1" if clean else draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0",
                                                              b"HTTP/2.0"]))
    reason = draw(st.sampled_from([b" OK", b" ", b"", b" Not\tFound", b" \x01"]))
    pairs = st.tuples(CLEAN_NAMES, CLEAN_VALUES) if clean else st.tuples(NAMES, VALUES)
    headers = [f"{n}: {v}".encode() for n, v in draw(st.lists(pairs, max_size=3))]
    body = draw(st.binary(max_size=40))
    framing = draw(st.sampled_from(["length", "chunked"] if clean else
                                   ["length", "chunked", "none", "both", "wrong"]))
    if framing in ("length", "both", "wrong"):
        headers.append(b"Content-Length: %d" % (len(body) + (framing == "wrong")))
    if framing in ("chunked", "both"):
        headers.append(b"Transfer-Encoding: chunked")
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=3)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True) if b > a]
        ext = draw(st.sampled_from([b"", b"", b";x=1", b"  "]))
        body = b"".join(b"%x%s\r\n%s\r\n" % (len(p), ext, p) for p in pieces) + b"0\r\n\r\n"
    head = version + b" %03d" % status + reason + b"\r\n" + b"".join(h + b"\r\n" for h in headers)
    data = bytearray(head + b"\r\n" + body)
    edit = draw(st.sampled_from(["none", "none", "change", "drop", "add", "cut", "extra"]))
    if edit != "none" and data:
        at = draw(st.integers(0, len(data) - 1))
        byte = draw(st.sampled_from([b"\r", b"\n", b" ", b":", b"0", b"a", b"\x00", b"\x80"]))
        if edit == "change":
            data[at:at + 1] = byte
        elif edit == "drop":
            del data[at]
        elif edit == "add":
            data[at:at] = byte
        elif edit == "cut":
            del data[at:]
        else:
            data += b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    return bytes(data)


@pytest.mark.parametrize("transport", ["fast"])  # the compiled pump must be built
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=responses())
def test_what_the_parser_accepts_llhttp_reads_the_same_way(transport: str, data: bytes) -> None:
    """A response the compiled parser takes (status > 0) is, for llhttp, exactly one whole
    keep-alive response with that status and nothing after it."""
    status = parse_one(data)
    if status:
        assert one_keep_alive_response(data) == status


@pytest.mark.parametrize("transport", ["fast"])
@pytest.mark.parametrize("data", [
    pytest.param(b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 5\r\n\r\nhello", id="len"),
    pytest.param(b"HTTP/1.1 404 Not Found\r\ncontent-length:0\r\n\r\n", id="empty"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"5\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n", id="chunked"),
    pytest.param(b"HTTP/1.1 503 \r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nno",
                 id="keep-alive"),
])
def test_the_parser_takes_what_servers_send(transport: str, data: bytes) -> None:
    """Plain keep-alive responses (nginx's, aiohttp's, chunked) take the compiled path: the
    parser returns the status llhttp reads."""
    status = parse_one(data)
    assert status > 0 and one_keep_alive_response(data) == status


VALUE_BYTES = frozenset([9, *range(0x20, 0x7F), *range(0x80, 0x100)])  # RFC 9110 field-value
TOKEN_BYTES = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")
EDGE_BYTES = st.sampled_from([0, 9, 10, 13, 0x1F, 0x20, 0x2D, 0x3A, 0x41, 0x61, 0x7E, 0x7F,
                              0x80, 0xFF])


def value_end(data: bytes, start: int) -> int:
    """Where the run of field-value bytes from ``data[start]`` ends, a byte at a time."""
    i = start
    while i < len(data) and data[i] in VALUE_BYTES:
        i += 1
    return i


def name_end(data: bytes, start: int) -> int:
    """Where the token run from ``data[start]`` ends if a ``:`` follows it, else -1."""
    i = start
    while i < len(data) and data[i] in TOKEN_BYTES:
        i += 1
    return i if start < i < len(data) and data[i] == ord(":") else -1


@pytest.mark.parametrize("transport", ["fast"])
@settings(max_examples=3000, deadline=None)
@given(data=st.lists(EDGE_BYTES, max_size=40).map(bytes), start=st.integers(0, 40))
def test_word_scans_end_where_byte_scans_end(transport: str, data: bytes, start: int) -> None:
    """The parser's eight-bytes-a-step scans of a field value and a header name end exactly
    where a byte-by-byte scan by the RFC's byte classes ends, wherever the odd byte falls."""
    start = min(start, len(data))
    assert scan_ends(data, start) == (value_end(data, start), name_end(data, start))


LONG_NAME, LONG_VALUE = b"X-Request-Identifier", b"0123456789abcdef0123456789abcdef"


def with_header(name: bytes, value: bytes) -> bytes:
    """A whole keep-alive response with one extra header ``name: value``."""
    return (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n" + name + b": " + value +
            b"\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")


@pytest.mark.parametrize("transport", ["fast"])
@pytest.mark.parametrize("byte, taken", [
    pytest.param(b"\t", True, id="tab"), pytest.param(b"\x80", True, id="obs-text"),
    pytest.param(b":", True, id="colon"), pytest.param(b"\x00", False, id="nul"),
    pytest.param(b"\x7f", False, id="del"), pytest.param(b"\x1f", False, id="control"),
])
def test_an_odd_byte_in_a_long_value_at_any_offset(transport: str, byte: bytes,
                                                    taken: bool) -> None:
    """A byte the RFC allows in a value keeps the response on the compiled path wherever it
    falls in an eight-byte word; one it forbids sends it to llhttp, wherever it falls."""
    for at in range(len(LONG_VALUE)):
        data = with_header(LONG_NAME, LONG_VALUE[:at] + byte + LONG_VALUE[at:])
        assert parse_one(data) == (200 if taken else 0), at
        if taken:
            assert one_keep_alive_response(data) == 200


@pytest.mark.parametrize("transport", ["fast"])
def test_a_separator_in_a_long_name_at_any_offset_defers(transport: str) -> None:
    """A byte outside the token set anywhere in a header name (a space, ``@``, a tab) sends the
    response to llhttp; the same name without it is taken."""
    assert parse_one(with_header(LONG_NAME, b"v")) == 200
    for at in range(1, len(LONG_NAME)):
        for byte in (b" ", b"@", b"\t", b"\x80"):
            assert parse_one(with_header(LONG_NAME[:at] + byte + LONG_NAME[at:], b"v")) == 0


@pytest.mark.parametrize("transport", ["fast"])
def test_both_builds_of_the_engine_fields_have_the_same_names(transport: str) -> None:
    """The pure-Python stand-in for the engine's C members names exactly the same fields."""
    from workers.pump import _PyEngineFields
    compiled = {name for name in dir(EngineFields) if not name.startswith("_")}
    assert compiled == set(_PyEngineFields.__slots__)


# --- both pumps on the same byte streams --------------------------------------------------------

SCRIPT_RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbusy",
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Body: " + b"x" * 3000 + b"\r\nContent-Length: 3\r\n\r\nbig",
    b"HTTP/1.1 500 Oops\r\n\r\nclose-delimited body",  # ends with the connection
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 2x0 Bad\r\nContent-Length: 0\r\n\r\n",  # llhttp refuses: a reset
]
CLOSES = {2, 5, 6, 7}  # the server closes after these (the client drops an unparsed one)


@contextlib.contextmanager
def scripted_server(script: Sequence[tuple[int, tuple[int, ...]]]) -> Iterator[str]:
    """Answer the n-th request (over all connections) with ``SCRIPT_RESPONSES[script[n][0]]``,
    written in pieces cut at ``script[n][1]`` a millisecond apart, so they arrive in as many
    reads; close the connection after a response in :data:`CLOSES`."""
    listener = socket.create_server(("127.0.0.1", 0))
    answered = [0]
    lock = threading.Lock()

    def serve(conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:  # the client may drop a response it refused
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pending = b""
            while True:
                while b"\r\n\r\n" not in pending:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    pending += chunk
                pending = pending.split(b"\r\n\r\n", 1)[1]
                with lock:
                    n = answered[0]
                    answered[0] += 1
                which, cuts = script[n % len(script)]
                data = SCRIPT_RESPONSES[which]
                bounds = sorted({c % len(data) for c in cuts} - {0})
                for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True):
                    conn.sendall(data[a:b])
                    time.sleep(0.001)
                if which in CLOSES:
                    return

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def recorded_rows(url: str, requests: int, pure: bool,
                  monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Run one back-to-back user for ``requests`` requests on the compiled or the pure-Python
    pump and return the recorded outcome codes in order, checking each row's times."""
    if pure:
        monkeypatch.setenv(PUMP_ENV, "python")
    else:
        monkeypatch.delenv(PUMP_ENV, raising=False)
    plan = plan_for(url, {"concurrency": 1, "requests": requests, "timeout": "5s"},
                    transport="fast")
    recorder = Recorder(labels=["GET /hello"], window_s=1.0)

    async def run_engine() -> bool:
        engine = RawUsersEngine(plan, recorder, time.monotonic_ns())
        await engine.prepare(2.0)
        await engine.go()
        return engine.compiled is None

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(run_engine()) is pure
    assert not len(recorder.intended)
    assert all(0 <= s <= d for s, d in zip(recorder.sent, recorder.done, strict=True))
    return list(recorder.codes)


SCRIPTS = st.lists(st.tuples(st.integers(0, len(SCRIPT_RESPONSES) - 1),
                             st.lists(st.integers(1, 4000), max_size=3).map(tuple)),
                   min_size=1, max_size=6)


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["fast"])
@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(script=SCRIPTS)
def test_both_pumps_record_the_same_rows(transport: str, script: list[tuple[int, tuple[int, ...]]],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Fed the same responses split at the same points (each piece its own read), the compiled
    and the pure-Python pump record the same outcome for every request, in the same order."""
    with scripted_server(script) as url:
        compiled = recorded_rows(url, len(script), False, monkeypatch)
    with scripted_server(script) as url:
        pure = recorded_rows(url, len(script), True, monkeypatch)
    assert compiled == pure
    assert len(compiled) == len(script)


@pytest.mark.parametrize("transport", ["fast"])
def test_the_pump_hands_the_loop_back_while_responses_keep_coming(transport: str) -> None:
    """The compiled pump waits on its epoll set itself while responses keep arriving, but
    for one slice (2 ms) at a time: through a 1 s run of back-to-back users, a 5 ms timer on
    the same loop is never more than a fraction of the run late (it would be the whole run
    if the pump kept the loop until the set went quiet)."""
    recorder = Recorder(labels=["GET /hello"], window_s=1.0)

    async def run_engine(url: str) -> tuple[float, bool]:
        plan = plan_for(url, {"concurrency": 8, "duration": "1s"}, transport="fast")
        engine = RawUsersEngine(plan, recorder, time.monotonic_ns() + 300_000_000)
        await engine.prepare(0.25)
        running = asyncio.ensure_future(engine.go())
        latest = 0.0
        while not running.done():
            asked = time.monotonic()
            await asyncio.sleep(0.005)
            latest = max(latest, time.monotonic() - asked - 0.005)
        await running
        return latest, engine.compiled is not None

    with start_hello() as url, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        latest_s, compiled = runner.run(run_engine(url))
    assert compiled
    assert len(recorder.codes) > 500  # responses kept coming all along
    assert latest_s < 0.3, f"a 5 ms timer ran {latest_s * 1000:.0f} ms late"


@pytest.mark.parametrize("transport", ["fast"])
@pytest.mark.parametrize("reserve", [1, 3])
def test_a_stretch_without_the_gil_that_runs_out_of_room_loses_no_row(transport: str,
                                                                      reserve: int) -> None:
    """The closed model's GIL-free stretch records into room made at the end of the recorder's
    arrays; with room for only one or three rows it hands back to the GIL path on nearly every
    response, and every request still has its one row, a 200, with sent <= done."""
    recorder = Recorder(labels=["GET /hello"], window_s=1.0)

    async def run_engine(url: str) -> None:
        plan = plan_for(url, {"concurrency": 4, "requests": 3000}, transport="fast")
        engine = RawUsersEngine(plan, recorder, time.monotonic_ns())
        assert engine.compiled is not None
        engine.compiled.reserve = reserve
        await engine.prepare(2.0)
        await engine.go()

    with start_hello() as url, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run_engine(url))
    assert len(recorder.codes) == len(recorder.sent) == len(recorder.done) == 3000
    assert set(recorder.codes) == {200}
    assert all(0 <= s <= d for s, d in zip(recorder.sent, recorder.done, strict=True))


@pytest.mark.parametrize("transport", ["fast"])
def test_a_quiet_wait_ends_with_the_slice_and_leaves_no_timer_behind(transport: str) -> None:
    """The pump's waits carry no timeout: the slice's timerfd ends them. Something ready, then
    nothing: one call returns when the slice (2 ms) is over, not when a backstop write 1 s later
    wakes it, and leaves its timer read or disarmed (the epoll set is not readable after)."""
    recorder = Recorder(labels=["GET /hello"], window_s=1.0)
    plan = plan_for("http://127.0.0.1:9/hello", {"concurrency": 1, "requests": 1},
                    transport="fast")
    engine = RawUsersEngine(plan, recorder, time.monotonic_ns())  # connects nothing yet
    assert engine.compiled is not None
    once, once_peer = socket.socketpair()
    backstop, backstop_peer = socket.socketpair()
    late = threading.Timer(1.0, backstop_peer.send, args=(b"y",))
    try:
        engine.epoll.register(once.fileno(), select.EPOLLIN | select.EPOLLONESHOT)
        engine.epoll.register(backstop.fileno(), select.EPOLLIN)
        once_peer.send(b"x")  # ready on entry (an fd the pump does not watch), then quiet
        late.start()
        started = time.monotonic()
        engine.compiled.pump()
        took = time.monotonic() - started
        assert 0.0015 <= took < 0.5, f"the call took {took * 1000:.1f} ms"
        assert engine.epoll.poll(0.02) == []  # the slice timer neither readable nor armed
    finally:
        late.cancel()
        engine.compiled.close()
        engine.epoll.close()
        for sock in (once, once_peer, backstop, backstop_peer):
            sock.close()


@pytest.mark.parametrize("transport", ["fast", PURE])
def test_the_engine_logs_which_pump_runs(transport: str, caplog: pytest.LogCaptureFixture) -> None:
    """Building the raw-socket engine logs one line naming the pump it runs."""
    plan = plan_for("http://127.0.0.1:9", {"concurrency": 1, "requests": 1}, transport="fast")
    with caplog.at_level(logging.INFO, logger="workers.pump"):
        engine = RawUsersEngine(plan, Recorder(labels=["GET /hello"], window_s=1.0), 0)
    engine.epoll.close()
    expected = ("load engine: compiled pump (workers._pump)" if transport == "fast"
                else "load engine: pure-Python pump (SLOGATE_PUMP=python)")
    assert [r.getMessage() for r in caplog.records] == [expected]


@pytest.mark.parametrize("transport", ["fast"])
def test_an_engine_that_checks_responses_runs_the_compiled_pump(
        transport: str, caplog: pytest.LogCaptureFixture) -> None:
    """Response checks no longer keep an engine on the pure-Python pump: the compiled one runs,
    and the log says so."""
    plan = plan_for("http://127.0.0.1:9", {"concurrency": 1, "requests": 1}, transport="fast",
                    endpoints=[{"path": "/hello", "checks": [{"bodyContains": "ok"}]}])
    with caplog.at_level(logging.INFO, logger="workers.pump"):
        engine = RawUsersEngine(plan, Recorder(labels=["GET /hello"], window_s=1.0), 0)
    engine.epoll.close()
    assert engine.checking and engine.compiled is not None
    assert [r.getMessage() for r in caplog.records] == ["load engine: compiled pump (workers._pump)"]


CHECKS = [{"name": "ok", "json": "$.status", "equals": "ok"}, {"name": "traced", "header": "X-Id"},
          {"name": "small", "maxBytes": 30}, {"name": "word", "bodyMatches": "o.k"}]


class _Request:
    """What ``checked_whole`` reads of a connection: the request's code (endpoint 0)."""

    code = 0


@st.composite
def checked_responses(draw: st.DrawFn) -> bytes:
    """A whole keep-alive response the checks of :data:`CHECKS` judge differently: the header
    they look for there or not (in any case, or a longer name), a body that passes or fails
    each, framed by ``Content-Length`` or split into chunks."""
    headers = draw(st.lists(st.sampled_from([b"X-Id: 1", b"x-ID:2", b"Server: t", b"X-Idx: 3"]),
                            max_size=3))
    body = draw(st.sampled_from([b'{"status": "ok"}', b'{"status": "no"}', b"o-k", b"",
                                 b'{"status": "ok", "pad": "' + b"x" * 40 + b'"}']))
    if draw(st.booleans()):
        headers.append(b"Content-Length: %d" % len(body))
        payload = body
    else:
        headers.append(b"Transfer-Encoding: chunked")
        cut = draw(st.integers(0, len(body)))
        pieces = [piece for piece in (body[:cut], body[cut:]) if piece]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"
    status = draw(st.sampled_from([200, 201, 404, 500]))
    return (b"HTTP/1.1 %d X\r\n" % status + b"".join(h + b"\r\n" for h in headers) + b"\r\n"
            + payload)


@pytest.mark.parametrize("transport", ["fast"])
@settings(max_examples=400, deadline=None)
@given(data=checked_responses())
def test_checks_of_a_response_the_compiled_parser_took_match_httptools(
        transport: str, data: bytes) -> None:
    """``checked_whole`` (the compiled pump's check: header names split from the bytes, the
    body from where the C parser says it starts) gives every response the outcome the checks
    give it from what httptools parses (names and body), chunked bodies included."""
    status = parse_one(data)
    assert status  # every response here is one the compiled parser takes
    plan = plan_for("http://127.0.0.1:9", {"concurrency": 1, "requests": 1}, transport="fast",
                    endpoints=[{"path": "/hello", "checks": CHECKS}])
    engine = RawUsersEngine(plan, Recorder(labels=["GET /hello"], window_s=1.0), 0)
    engine.epoll.close()
    checker = engine.checkers[0]
    assert checker is not None
    failed = checker.first_failure(status, *response_parts(data))
    expected = status if failed is None else engine.check_code(failed)
    request = cast(Any, _Request())  # only its code is read
    assert engine.checked_whole(request, status, data, body_start(data)) == expected
