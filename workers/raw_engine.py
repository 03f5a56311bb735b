"""The engines of ``transport: fast``: HTTP/1.1 keep-alive on ``asyncio.Protocol`` connections
(:class:`FastEngine`) or raw sockets (:class:`RawUsersEngine`), parsed by httptools.

Two whole engines that subclass :class:`~workers.run_state.RunState`, not a
:class:`~workers.transport.Sender`: they own the connections, the pacing and the recording;
:func:`fast_engine` picks one for a plan.

The one module of ``workers`` that imports httptools. Built for the hot path: requests are
encoded to bytes once, a connection is a small object whose callbacks record the result and send
the next request directly (no coroutine, no future per request), and recording is four appends
(three for back-to-back users).

Closed model: each virtual user owns one connection and sends back to back (after ``think_s``).
Back-to-back users over plain HTTP on Linux (the closed model's hot path, and what ``make
bench`` measures) run on :class:`RawUsersEngine`: non-blocking sockets in an epoll set of the
engine's own, which uvloop watches as one file descriptor, so one Python call handles every
ready user (read, parse, record, write) instead of two or three callbacks per response; and a
response the target keeps repeating (the same bytes but for its ``Date``) is recognised in three
C calls rather than parsed again (:class:`_Shape`). What each gave, measured: docs/performance.md.
Think time and TLS stay on protocol connections.
Open model: a pacer callback launches every due request on an idle connection, opens a new one
while fewer than ``max_in_flight`` exist, or queues the request; a connection that finishes takes
the oldest queued request at once. A queued request's latency still counts from its intended
time, so a slow target or a saturated generator shows up as latency and schedule lag. Over plain
HTTP on Linux it too runs on :class:`RawUsersEngine` (every arrival shape: constant, Poisson,
ramp, stages): the pump records each response and gives its connection the oldest queued
request or parks it, and pumps the pacer once per batch; over TLS it runs on :class:`FastEngine`.

Timers on uvloop have millisecond granularity (a wait under 0.5 ms fires at once, a longer one
can fire up to a tick early or late), so the pacer arms its timer about 1 ms early. Within that
last millisecond, when requests are in flight, every completed response pumps the pacer (at high
rates responses arrive every few microseconds) with a 1 ms timer as a backstop; when nothing is
in flight, it yields to the event loop (``call_soon``) until the request is due. Sends are then
late by microseconds, not by a timer tick, at the cost of a busy core at middling rates. On the
compiled pump, a timerfd in the engine's epoll set wakes the pacer when the next request is due
instead (late by the kernel's timer slack, ~50 us; never early), and the core idles in between.

Failures are data: ``connect`` (refused, unreachable, connect timeout), ``timeout`` (no whole
response within the request timeout; found by a sweep every ``timeout/4``, at most 100 ms),
``reset`` (closed or reset before the response completed, or an unparseable response), ``tls``.
A response that closes its connection (``Connection: close`` or HTTP/1.0) completes normally and
the connection is replaced.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import select
import socket
import ssl
import time
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

import httptools

from workers.checks import Checker
from workers.plan import RequestTemplate, WorkerPlan
from workers.pump import ConnFields, EngineFields, compiled_pump
from workers.recorder import CODE_SPAN, CONNECT_CODE, RESET_CODE, TIMEOUT_CODE, TLS_CODE, Recorder
from workers.rows import per_endpoint
from workers.run_state import RunState, pacer_for
from workers.transport import check_outcome

_now = time.monotonic_ns
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token: a header name
_NOT_VALUE = re.compile(r"[\r\n\x00]")
_NOT_TARGET = re.compile(r"[\x00-\x20\x7f]")


def encode_request(template: RequestTemplate, host_header: str) -> bytes:
    """Return the whole HTTP/1.1 request as bytes (request line, headers, body).

    The spec refuses what could split a request (see :mod:`coordinator.spec`); this checks again,
    so a template built elsewhere cannot smuggle a second request either: ValueError for a
    target with a space or a control character, a header name that is not a token, a value
    with CR, LF or NUL, or anything outside Latin-1.
    """
    parts = urlsplit(template.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if _NOT_TARGET.search(target):
        raise ValueError(f"request target {target!r} has a space or a control character")
    for name, value in template.headers:
        if not _TOKEN.fullmatch(name) or _NOT_VALUE.search(value):
            raise ValueError(f"header {name!r}: not a token, or CR, LF or NUL in its value")
    names = {name.lower() for name, _ in template.headers}
    lines = [f"{template.method} {target} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {host_header}")
    if "user-agent" not in names:
        lines.append("User-Agent: slogate")
    lines += [f"{name}: {value}" for name, value in template.headers]
    body = template.body or b""
    if body or template.method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Origin:
    """Where every template of a plan is sent: one scheme, host and port."""

    def __init__(self, templates: Sequence[RequestTemplate], verify_tls: bool) -> None:
        origins = {urlsplit(t.url)[:2] for t in templates}
        if len(origins) != 1:
            raise ValueError("the fast transport sends to one origin; endpoints differ in host")
        parts = urlsplit(templates[0].url)
        self.host = parts.hostname or "127.0.0.1"
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        default = (self.tls and self.port == 443) or (not self.tls and self.port == 80)
        self.host_header = parts.netloc.rsplit("@", 1)[-1] if not default else self.host
        self.ssl: ssl.SSLContext | None = None
        if self.tls:
            self.ssl = ssl.create_default_context()
            if not verify_tls:
                self.ssl.check_hostname = False
                self.ssl.verify_mode = ssl.CERT_NONE


class _Conn(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight (no pipelining)."""

    __slots__ = ("engine", "transport", "parser", "busy", "code", "seq", "intended", "sent",
                 "got", "user", "write")

    def __init__(self, engine: FastEngine) -> None:
        self.engine = engine
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.busy = False
        self.code = self.seq = self.intended = self.sent = 0
        self.got = False  # bytes of the current response have arrived
        self.user = False  # closed model: this connection is a virtual user

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.write = transport.write  # type: ignore[attr-defined]

    def close(self) -> None:
        """Close the connection (what is buffered is still sent)."""
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close the connection at once."""
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        self.got = True
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # noqa: BLE001 - HttpParserUpgrade (a 101) is no HttpParserError
            self.engine.failed(self, self.engine.unexpected(exc))

    def on_message_complete(self) -> None:
        """A whole response arrived: for a virtual user sending back to back (the closed model's
        hot path), record it and send the next request on this connection, written out flat;
        anything else goes to :meth:`FastEngine.completed`."""
        engine, parser = self.engine, self.parser
        if not (self.user and self.busy and engine.back_to_back):
            engine.completed(self, parser.get_status_code(), parser.should_keep_alive())
            return
        now = _now()
        base = engine.start_ns
        if self.seq >= engine.warmup_n:
            engine.append_code(self.code + parser.get_status_code())
            engine.append_intended(self.intended - base)
            engine.append_sent(self.sent - base)
            engine.append_done(now - base)
            engine.measured_end_ns = now
        else:
            engine.recorder.warmup_count += 1
        seq = engine.launched
        keep_alive = parser.should_keep_alive()
        if keep_alive and now < engine.users_stop_ns and seq < engine.users_limit:
            engine.launched = seq + 1
            self.seq, self.intended, self.sent, self.got = seq, now, now, False
            if engine.single:
                self.write(engine.payload)
            else:
                endpoint = engine.picker.pick()
                self.code = endpoint * CODE_SPAN
                self.write(engine.payloads[endpoint]())
            return
        self.busy = False
        engine.in_flight -= 1
        if keep_alive:
            engine._next(self)
        else:
            engine._replace(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.engine.lost(self, exc)


class _KeepsResponse:
    """httptools callbacks that keep a response's header names and body, for response checks
    (:meth:`FastEngine.checked`); mixed into the connections of an engine with checks."""

    __slots__ = ()
    names: list[bytes]
    body: list[bytes]

    def on_message_begin(self) -> None:
        self.names.clear()
        self.body.clear()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.names.append(name)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)


class _CheckedConn(_KeepsResponse, _Conn):
    """A protocol connection whose every response goes through :meth:`FastEngine.checked`
    (no back-to-back shortcut: it reads only the status)."""

    __slots__ = ("body", "names")

    def __init__(self, engine: FastEngine) -> None:
        super().__init__(engine)
        self.names, self.body = [], []

    def on_message_complete(self) -> None:
        parser, engine = self.parser, self.engine
        engine.completed(self, engine.checked(self, parser.get_status_code()),
                         parser.should_keep_alive())


class FastEngine(RunState, EngineFields):
    """Runs one plan over :class:`_Conn` connections (see the module docstring)."""

    # Slots keep attribute access on the hot path cheap: past 30 instance attributes CPython
    # (3.11) stops sharing dict keys between instances and looks attributes up in a plain dict.
    # What the compiled pump reads on every batch (launched, in_flight, measured_end_ns,
    # users_stop_ns, next_due_ns, stopping, backstop, finished) are EngineFields' C members.
    __slots__ = ("plan", "recorder", "start_ns", "picker", "hard_stop_ns", "schedule_end_ns",
                 "limit", "unsent", "user_stages",  # RunState's
                 "origin", "payloads", "payload", "timeout_ns", "think_s", "conns", "idle",
                 "queue", "connecting", "users_left", "done",
                 "warmup_n", "single", "back_to_back", "users_limit",
                 "append_code", "append_intended", "append_sent", "append_done",
                 "timer", "loop", "pacer", "checkers", "check_codes", "checking", "parked",
                 "stage_timer", "send")

    def __init__(self, plan: WorkerPlan, recorder: Recorder, start_ns: int) -> None:
        super().__init__(plan, recorder, start_ns)
        self.origin = _Origin(plan.requests, plan.verify_tls)
        host = self.origin.host_header
        # per endpoint: its next request's bytes (request data: the next row's), encoded once
        self.payloads = per_endpoint(plan.requests, lambda t: encode_request(t, host))
        self.timeout_ns = int(plan.timeout_s * 1e9)
        self.think_s = plan.think_s
        self.conns: set[_Conn | _RawConn] = set()
        self.idle: list[_Conn | _RawConn] = []
        self.queue: collections.deque[tuple[int, int]] = collections.deque()
        self.connecting = 0
        self.launched = 0
        self.stopping = False
        self.users_left = 0
        self.done: asyncio.Future[None] | None = None
        self.finished = False  # done is set (the compiled pump then hands the loop back)
        self.in_flight = 0
        self.backstop = False  # the pacer's timer is the 1 ms backstop, completions pump it
        self.warmup_n = plan.warmup_requests
        self.single = len(plan.requests) == 1 and not plan.requests[0].rows
        self.payload = self.payloads[0]() if self.single else b""
        self.back_to_back = plan.model == "closed" and not plan.think_s  # users' hot path
        self.users_limit = 1 << 62 if self.limit is None else self.limit
        self.users_stop_ns = min(self.schedule_end_ns, self.hard_stop_ns)
        self.append_code = recorder.codes.append
        self.append_intended = recorder.intended.append
        self.append_sent = recorder.sent.append
        self.append_done = recorder.done.append
        self.next_due_ns = 1 << 62  # open model: when the pacer next has a request due
        self.timer: asyncio.Handle | None = None
        # None until the engine starts (stop() checks); every callback that uses it runs after
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        # response checks (workers.checks): connections that keep headers and body for them
        self.checkers = [None if t.checks is None else Checker(t.checks) for t in plan.requests]
        self.check_codes: dict[str, int] = {}
        self.checking = any(self.checkers)
        # stages of users: users beyond the stage's count, parked on their idle connection (None:
        # one whose connection closed while parked, reconnected when it runs again)
        self.parked: list[_Conn | _RawConn | None] = []
        self.stage_timer: asyncio.TimerHandle | None = None
        # sends request (seq, intended) on a free connection: _send, or the compiled pump's
        self.send = self._send

    # --- running -----------------------------------------------------------------------------

    async def prepare(self, within_s: float) -> None:
        """Open connections before the start time, so the first requests do not wait for them.

        Closed model: one per user. Open model: enough for about 1 ms of the rate (more open on
        demand). A connect that fails or is not done within ``within_s`` is simply retried
        when the run needs it; its failure is recorded then, as part of the run.
        """
        self.loop = asyncio.get_running_loop()
        plan = self.plan
        if plan.model == "closed":
            count = plan.concurrency
        else:
            count = min(plan.max_in_flight, int((plan.rate_rps or 0) / 1000) + 1)
        tasks = [self.loop.create_task(self._preconnect()) for _ in range(count)]
        if tasks:
            await asyncio.wait(tasks, timeout=max(0.0, within_s))
        for task in tasks:
            task.cancel()

    async def _preconnect(self) -> None:
        try:
            conn = await self._dial()
        except (OSError, ssl.SSLError, ssl.CertificateError):
            return
        self.conns.add(conn)
        self.idle.append(conn)

    async def _dial(self) -> _Conn:
        """Open one connection to the origin (TLS included) and return it."""
        origin = self.origin
        _, conn = await self.loop.create_connection(
            lambda: (_CheckedConn if self.checking else _Conn)(self), origin.host, origin.port,
            ssl=origin.ssl,
            server_hostname=origin.host if origin.tls else None)
        return conn

    async def go(self) -> None:
        """Run until the schedule is over and every request has finished or timed out."""
        self.loop = asyncio.get_running_loop()
        self.done = self.loop.create_future()
        sweeper = self.loop.create_task(self._sweep())
        try:
            if self.plan.model == "open":
                self.pacer = pacer_for(self.plan)
                if self.plan.resume_s > 0:  # a replacement: the slots before it are lost
                    self.launched = self.pacer.due(self.plan.resume_s - 1e-9)
                self._tick()
            else:
                self.users_left = self.plan.concurrency
                ready, self.idle = self.idle, []
                for conn in ready:
                    conn.user = True
                    self._next(conn)
                for _ in range(self.plan.concurrency - len(ready)):
                    self._open_connection(user=True)
                self._stage_change()
            await self.done
        finally:
            sweeper.cancel()
            for timer in (self.timer, self.stage_timer):
                if timer is not None:
                    timer.cancel()
            for conn in list(self.conns):
                conn.abort()
        if self.plan.model == "open":
            self.count_unsent(self.pacer, self.launched)

    def stop(self) -> None:
        """End the schedule now: nothing new is sent; requests in flight finish or time out."""
        super().stop()
        self.users_stop_ns = min(self.users_stop_ns, self.schedule_end_ns)
        if self.loop is None or self.done is None:
            return  # not running yet: go() will find the schedule already over
        if self.plan.model == "open":
            self._tick()
        else:
            self._leave_parked()
            for conn in [c for c in self.conns if not c.busy]:
                self._drop(conn)
                self._user_gone()

    def _finish_run(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)
            self.finished = True

    def _schedule_over(self, now: int) -> bool:
        if now >= self.schedule_end_ns or now >= self.hard_stop_ns:
            return True
        return self.limit is not None and self.launched >= self.limit

    # --- open model: the pacer ----------------------------------------------------------------

    def _tick(self) -> None:
        now = _now()
        pacer, start = self.pacer, self.start_ns
        due = pacer.due((now - start) / 1e9)
        if self.limit is not None and due > self.limit:
            due = self.limit
        while self.launched < due:
            intended = start + int(pacer.intended_s(self.launched) * 1e9)
            if intended >= self.schedule_end_ns:
                break
            seq = self.launched
            self.launched += 1
            if self.idle:
                self.send(self.idle.pop(), seq, intended)
            else:
                self.queue.append((seq, intended))
                if self._queue_needs_a_connection():
                    self._open_connection(user=False)
        next_intended = start + int(pacer.intended_s(self.launched) * 1e9)
        self.next_due_ns = next_intended
        if self._schedule_over(next_intended) or now >= self.hard_stop_ns:
            self.stopping = True
            self.next_due_ns = 1 << 62
            self._maybe_done()
            return
        self._wake_at(next_intended)

    def _wake_at(self, due_ns: int) -> None:
        """Have :meth:`_tick` run when the next request is due, at ``due_ns``."""
        if self.timer is not None:
            self.timer.cancel()
        wait = due_ns - _now()
        if wait >= 1_500_000:  # a timer, armed to fire early (uvloop timers have 1 ms ticks)
            self.timer = self.loop.call_later((wait - 1_000_000) / 1e9, self._tick)
        elif self.in_flight:  # completions pump the pacer; the timer is only a backstop
            self.timer = self.loop.call_later(0.001, self._tick)
            self.backstop = True
            return
        else:  # nothing in flight and due within ~1 ms: yield to the loop until it is due
            self.timer = self.loop.call_soon(self._tick)
        self.backstop = False

    def _maybe_done(self) -> None:
        if self.stopping and not self.queue and not any(c.busy for c in self.conns) \
                and not self.connecting:
            self._finish_run()

    # --- connections --------------------------------------------------------------------------

    def _open_connection(self, *, user: bool) -> None:
        self.connecting += 1
        self.loop.create_task(self._connect(user))

    async def _connect(self, user: bool) -> None:
        failure = None
        try:
            conn = await asyncio.wait_for(self._dial(), timeout=self.plan.timeout_s)
        except (ssl.SSLError, ssl.CertificateError):
            failure = TLS_CODE
        except (TimeoutError, OSError):
            failure = CONNECT_CODE
        finally:
            self.connecting -= 1
        if failure is not None:
            self._connect_failed(failure, user)
            return
        conn.user = user
        self.conns.add(conn)
        self._next(conn)

    def _connect_failed(self, code: int, user: bool) -> None:
        """A failed connect costs the request that was waiting for it (open: the oldest queued)."""
        now = _now()
        if user:
            if self._schedule_over(now):
                self._user_gone()
                return
            seq, endpoint = self._take_seq(), self.picker.pick()
            self.finish(seq, endpoint * CODE_SPAN + code, now, now, now)
            self._open_connection(user=True)  # the user tries again
            return
        if self.queue:
            seq, intended = self.queue.popleft()
            endpoint = self.picker.pick()
            self.finish(seq, endpoint * CODE_SPAN + code, intended, now, now)
            if self._queue_needs_a_connection():
                self._open_connection(user=False)
        self._maybe_done()

    def _queue_needs_a_connection(self) -> bool:
        """Return whether queued requests outnumber the connections already on their way, under
        the cap (each connection that opens takes the oldest queued request)."""
        return (len(self.queue) > self.connecting
                and len(self.conns) + self.connecting < self.plan.max_in_flight)

    def _take_seq(self) -> int:
        seq = self.launched
        self.launched += 1
        return seq

    def _user_gone(self) -> None:
        self.users_left -= 1
        if self.users_left <= 0:
            self._finish_run()

    def _next(self, conn: _Conn | _RawConn) -> None:
        """Give a free connection its next request, park it, or close it."""
        if conn.user:
            now = _now()
            if self._schedule_over(now):
                self._drop(conn)
                self._user_gone()
            elif self.user_stages is not None and self._parks(conn, now):
                return
            elif self.think_s:
                self.loop.call_later(self.think_s, self._user_send, conn)
            else:
                self._send(conn, self._take_seq(), now)
        elif self.queue:
            seq, intended = self.queue.popleft()
            self.send(conn, seq, intended)
        else:
            self.idle.append(conn)
            self._maybe_done()

    def _user_send(self, conn: _Conn | _RawConn) -> None:
        if conn in self.conns:
            now = _now()
            if self._schedule_over(now):
                self._drop(conn)
                self._user_gone()
            elif self.user_stages is None or not self._parks(conn, now):
                self._send(conn, self._take_seq(), now)

    # --- closed model: stages of users ----------------------------------------------------------
    # A worker runs its peak of users; beyond the stage's count a user parks on its idle
    # connection instead of sending. The hot paths (the pumps) send a user's next request
    # themselves only before ``users_stop_ns``, which is kept at the next change of the count:
    # from then on every completion comes here through completed() -> _next(), and the pumps
    # need no stage logic of their own.

    def _parks(self, conn: _Conn | _RawConn, now: int) -> bool:
        """Park ``conn``'s user when more users run than its stage allows; return whether it did."""
        stages = self.user_stages
        assert stages is not None
        elapsed_s = (now - self.start_ns) / 1e9
        parks = self._running() > stages.users_at(elapsed_s)
        if parks:
            self.parked.append(conn)
        self._hot_until_the_next_change(elapsed_s)
        return parks

    def _running(self) -> int:
        return self.users_left - len(self.parked)

    def _hot_until_the_next_change(self, elapsed_s: float) -> None:
        """Let the pumps send users' next requests themselves until the count next changes, once
        no more users run than the count at ``elapsed_s`` (until then they come to _parks)."""
        assert self.user_stages is not None
        if self._running() > self.user_stages.users_at(elapsed_s):
            return
        change_ns = self.start_ns + self.user_stages.next_change_s(elapsed_s) * 1e9
        self.users_stop_ns = int(min(self.schedule_end_ns, self.hard_stop_ns, change_ns))

    def _stage_change(self) -> None:
        """At each change of the count (and at the schedule's end): wake parked users the stage
        has room for, or let them all leave once the schedule is over; then wait for the next."""
        self.stage_timer = None
        stages = self.user_stages
        if stages is None:
            return
        now = _now()
        if self._schedule_over(now):
            self._leave_parked()
            return
        elapsed_s = (now - self.start_ns) / 1e9
        while self.parked and self._running() < stages.users_at(elapsed_s):
            conn = self.parked.pop()
            if conn is None:
                self._open_connection(user=True)
            else:
                self._user_send(conn)
        self._hot_until_the_next_change(elapsed_s)
        at_ns = min(self.start_ns + stages.next_change_s(elapsed_s) * 1e9, self.schedule_end_ns)
        self.stage_timer = self.loop.call_later(max(0.0, (at_ns - _now()) / 1e9),
                                                self._stage_change)

    def _leave_parked(self) -> None:
        """The schedule is over: every parked user leaves (its connection closed)."""
        while self.parked:
            conn = self.parked.pop()
            if conn is not None:
                self._drop(conn)
            self._user_gone()

    def _send(self, conn: _Conn | _RawConn, seq: int, intended: int) -> None:
        endpoint = self.picker.pick()
        conn.busy, conn.got = True, False
        self.in_flight += 1
        conn.seq, conn.intended, conn.code = seq, intended, endpoint * CODE_SPAN
        conn.sent = _now()
        conn.write(self.payloads[endpoint]())

    def _drop(self, conn: _Conn | _RawConn) -> None:
        self.conns.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if self.parked and conn in self.parked:
            self.parked.remove(conn)
        if conn.busy:
            conn.busy = False
            self.in_flight -= 1
        conn.close()

    # --- callbacks from connections -------------------------------------------------------------

    def completed(self, conn: _Conn | _RawConn, status: int, keep_alive: bool) -> None:
        """A whole response arrived (open model, or a user that thinks): record it, pump the
        pacer, then reuse or replace the connection."""
        if not conn.busy:
            return
        conn.busy = False
        self.in_flight -= 1
        now = _now()
        self.finish(conn.seq, conn.code + status, conn.intended, conn.sent, now)
        if now >= self.next_due_ns or (self.backstop and self.in_flight == 0):
            self._tick()  # pump the pacer: a due request can take this connection
        if keep_alive:
            self._next(conn)
        else:
            self._replace(conn)

    def checked(self, conn: _Conn | _RawConn, status: int) -> int:
        """Return ``status``, or the outcome code of the first check of ``conn``'s endpoint that
        the response ``conn`` kept (:class:`_KeepsResponse`) fails (``check:<name>``)."""
        checker = self.checkers[conn.code // CODE_SPAN]
        if checker is None:
            return status
        failed = checker.first_failure(status, conn.names, b"".join(conn.body))  # type: ignore[union-attr]
        return status if failed is None else self.check_code(failed)

    def check_code(self, failed: str) -> int:
        """Return the outcome code of ``check:<failed>``."""
        code = self.check_codes.get(failed)
        if code is None:
            code = self.check_codes[failed] = self.recorder.code_of(0, check_outcome(failed))
        return code

    def unexpected(self, exc: BaseException) -> int:
        """Return the outcome code of what parsing a response raised: ``reset`` for a response
        llhttp cannot parse, ``error:<Name>`` for anything else (say ``HttpParserUpgrade``,
        which is no HttpParserError), so the request still ends as exactly one outcome."""
        if isinstance(exc, httptools.HttpParserError):
            return RESET_CODE
        return self.recorder.code_of(0, f"error:{type(exc).__name__}")

    def failed(self, conn: _Conn | _RawConn, code: int) -> None:
        """The request on ``conn`` failed (unparseable response): record it, drop the connection."""
        if conn.busy:
            self._settle(conn, code)
        self._replace(conn)

    def _settle(self, conn: _Conn | _RawConn, code: int) -> None:
        """Record the request in flight on ``conn`` with outcome ``code``; the conn is free."""
        conn.busy = False
        self.in_flight -= 1
        self.finish(conn.seq, conn.code + code, conn.intended, conn.sent, _now())

    def lost(self, conn: _Conn | _RawConn, exc: Exception | None) -> None:
        """The connection closed: a request in flight is a reset, unless its response was
        delimited by the close (headers seen, no length), then it completed."""
        if conn not in self.conns:
            return
        if conn.busy:
            status = conn.parser.get_status_code() if conn.got else 0
            if status and exc is None and self.checking:
                status = self.checked(conn, status)
            self._settle(conn, status if status and exc is None else RESET_CODE)
        self._replace(conn)

    def _replace(self, conn: _Conn | _RawConn) -> None:
        was_user = conn.user
        if self.parked and conn in self.parked:  # it reconnects when its stage lets it run
            self.parked[self.parked.index(conn)] = None
            self._drop(conn)
            return
        self._drop(conn)
        if was_user:
            # With a request limit, users already connecting take the last requests: a user
            # whose connection closed then leaves rather than open one that would sit unused.
            covered = self.limit is not None and self.launched + self.connecting >= self.limit
            if covered or self._schedule_over(_now()):
                self._user_gone()
            else:
                self._open_connection(user=True)
        elif self._queue_needs_a_connection():
            self._open_connection(user=False)
        else:
            self._maybe_done()

    async def _sweep(self) -> None:
        """Time out requests in flight for longer than the request timeout."""
        interval = min(0.1, self.plan.timeout_s / 4)
        while True:
            await asyncio.sleep(interval)
            limit = _now() - self.timeout_ns
            for conn in [c for c in self.conns if c.busy and c.sent < limit]:
                self._settle(conn, TIMEOUT_CODE)
                self._replace(conn)
            if self.stopping:
                self._maybe_done()


# --- the closed model's hot path: virtual users on raw sockets ----------------------------------

_EPOLLIN = getattr(select, "EPOLLIN", 1)
_EPOLLOUT = getattr(select, "EPOLLOUT", 4)
_LEARNING_TRIES = 64  # responses that fail to extend the repeated shape before it stops trying
_READ_BYTES = 65_536  # os.read allocates this much first: past 128 KiB, glibc maps fresh pages


# --- repeated responses: recognised, not parsed again ------------------------------------------

# What llhttp refuses inside a header value (it allows HTAB, SP, VCHAR and obs-text).
_NOT_HEADER_VALUE = re.compile(rb"[^\t\x20-\x7e\x80-\xff]")
# Headers whose value changes how llhttp frames a message or whether the connection stays open.
_FRAMING_HEADERS = frozenset({b"connection", b"proxy-connection", b"keep-alive",
                              b"content-length", b"transfer-encoding", b"upgrade"})


class _Shape:
    """A keep-alive response that the target sends again and again, byte for byte, except in
    ``[start, end)``: a stretch of one header's value (``Date`` changes every second), never
    the status line, a framing header (``Connection``, ``Content-Length``...) or the body.

    A response of the same length with the same bytes outside that stretch, and only bytes
    llhttp accepts in a header value inside it, parses exactly as the sample did: one whole
    keep-alive message with the sample's status. :meth:`RawUsersEngine._pump` checks that in
    three C calls instead of feeding httptools (its Python callback included): the length, the
    tail, and the head with the last stretch seen (:attr:`last`; a new ``Date`` goes through
    :meth:`seen` once). ``tests/workers/test_engine.py`` checks the claim against llhttp on random
    variations.

    Response checks (:mod:`workers.checks`) read the status, the header names, the body and its
    size, all outside the stretch: a response that matches the shape passes or fails every
    check exactly as the sample does, so the engine checks the sample once per shape and
    endpoint (:meth:`RawUsersEngine.shape_outcome`) and every other response in full.
    """

    __slots__ = ("sample", "status", "start", "end", "head", "tail", "last")

    def __init__(self, sample: bytes, status: int, start: int, end: int) -> None:
        self.sample, self.status, self.start, self.end = sample, status, start, end
        self.head, self.tail = sample[:start], sample[end:]
        # head plus the stretch of the last response that matched: a response repeating it
        # (the same Date, within the same second) is recognised by one comparison
        self.last = sample[:end]

    @classmethod
    def exact(cls, sample: bytes, status: int) -> _Shape:
        """Return the shape matching ``sample`` only (nothing varies yet)."""
        return cls(sample, status, len(sample), len(sample))

    def matches(self, data: bytes) -> bool:
        """Return whether ``data`` is a repeat of the sample (what the pump checks inline: the
        length, the tail, then the last stretch seen or :meth:`seen`)."""
        return (len(data) == len(self.sample) and data.endswith(self.tail)
                and (data.startswith(self.last) or self.seen(data)))

    def seen(self, data: bytes) -> bool:
        """Return whether ``data``, of the sample's length and tail, has the sample's head and a
        stretch llhttp accepts in a header value; if so, remember it as the last stretch seen
        (a new ``Date`` is checked here once, then recognised by one comparison)."""
        if data.startswith(self.head) and _NOT_HEADER_VALUE.search(data, self.start,
                                                                   self.end) is None:
            self.last = data[:self.end]
            return True
        return False

    def widened(self, other: bytes) -> _Shape | None:
        """Return the shape that also matches ``other`` (a response of the same status), or None
        when ``other`` differs from the sample anywhere but within one safe header value."""
        sample = self.sample
        if len(other) != len(sample) or other == sample:
            return None
        lo = 0
        while sample[lo] == other[lo]:
            lo += 1
        hi = len(sample)
        while sample[hi - 1] == other[hi - 1]:
            hi -= 1
        start, end = (lo, hi) if self.start == self.end else (min(lo, self.start),
                                                              max(hi, self.end))
        status_line_end, headers_end = sample.find(b"\r\n"), sample.find(b"\r\n\r\n")
        if not status_line_end + 2 <= start < end <= headers_end:
            return None
        if (_NOT_HEADER_VALUE.search(sample, start, end) is not None
                or _NOT_HEADER_VALUE.search(other, start, end) is not None):
            return None  # CR and LF among them: the stretch stays within one header line
        line = sample.rfind(b"\r\n", 0, start) + 2
        colon = sample.find(b":", line, start)
        if colon < 0 or sample[line:colon].strip().lower() in _FRAMING_HEADERS:
            return None
        return _Shape(sample, self.status, start, end)


def one_keep_alive_response(data: bytes) -> int | None:
    """Return the status if llhttp reads ``data`` as exactly one whole keep-alive response
    (nothing before or after it), else None."""

    class Count:
        def __init__(self) -> None:
            self.begun = 0
            self.ended: list[bool] = []

        def on_message_begin(self) -> None:
            self.begun += 1

        def on_message_complete(self) -> None:
            self.ended.append(parser.should_keep_alive())

    count = Count()
    parser = httptools.HttpResponseParser(count)
    try:
        parser.feed_data(data)
    except Exception:  # noqa: BLE001 - HttpParserError, HttpParserUpgrade: not one response
        return None
    return parser.get_status_code() if count.begun == 1 and count.ended == [True] else None


def raw_users_apply(plan: WorkerPlan) -> bool:
    """Return whether ``plan`` runs on :class:`RawUsersEngine`: the open model, or the closed one
    back to back (no think time); plain HTTP, on a platform with epoll (Linux)."""
    return ((plan.model == "open" or not plan.think_s) and hasattr(select, "epoll")
            and urlsplit(plan.requests[0].url).scheme == "http")


class _RawConn(ConnFields):
    """A keep-alive connection (a virtual user's, or the open model's) on a non-blocking
    socket, read by :meth:`RawUsersEngine._pump`. Same fields as :class:`_Conn`, so the
    engine's bookkeeping (send, settle, replace, sweep) serves both; the numeric ones come from
    :class:`workers.pump.ConnFields` (C members where the compiled pump is built)."""

    __slots__ = ("engine", "sock", "parser", "pending", "done")

    def __init__(self, engine: RawUsersEngine, sock: socket.socket) -> None:
        self.engine = engine
        self.sock = sock
        self.fd = sock.fileno()
        self.parser = httptools.HttpResponseParser(self)
        self.busy = self.got = self.user = False
        self.code = self.seq = self.intended = self.sent = 0
        self.done: bool | None = None  # a response completed: whether the connection stays open
        self.pending = b""  # the unsent rest of a request the socket did not take at once

    def on_message_complete(self) -> None:
        """httptools: a whole response was parsed. Whether the connection stays open is known
        only now (the parser forgets it once this returns), so it is kept for the pump."""
        self.done = self.parser.should_keep_alive()

    def write(self, data: bytes) -> None:
        """Send ``data``; what the socket does not take now goes out when it is writable.

        A broken connection is handled on the next loop turn (as a transport would), so the
        caller's bookkeeping finishes first.
        """
        try:
            sent = os.write(self.fd, data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self.engine.loop.call_soon(self.engine.lost, self, exc)
            return
        if sent < len(data):
            self.pending = data[sent:]
            self.engine.epoll.modify(self.fd, _EPOLLIN | _EPOLLOUT)

    def flush(self) -> None:
        """The socket is writable: send more of the pending request."""
        data, self.pending = self.pending, b""
        if data:
            self.engine.epoll.modify(self.fd, _EPOLLIN)
            self.write(data)

    def close(self) -> None:
        """Stop watching the socket and close it."""
        if self.sock.fileno() >= 0:
            self.engine.watched[self.fd] = None
            self.engine.epoll.unregister(self.fd)
            self.sock.close()

    abort = close


class _CheckedRawConn(_KeepsResponse, _RawConn):
    """A raw connection of an engine with response checks: it keeps what httptools parses."""

    __slots__ = ("body", "names")

    def __init__(self, engine: RawUsersEngine, sock: socket.socket) -> None:
        super().__init__(engine, sock)
        self.names, self.body = [], []


class RawUsersEngine(FastEngine):
    """The closed model with back-to-back users, or the open model, over plain HTTP: the same
    engine, but each connection is a non-blocking socket in an epoll set of its own, and uvloop
    watches that one epoll file descriptor. When any socket is readable, :meth:`_pump` handles
    every ready connection in one Python call: read, recognise the repeated response
    (:class:`_Shape`) or parse it (httptools), record, then write the user's next request
    (closed model) or take the oldest queued request or park the connection (open model,
    :meth:`freed`; the pacer runs after the batch, :meth:`paced`). No protocol callbacks, no
    transport buffer, one Python frame per batch of responses (about 35 per wake-up at 50 users
    against nginx) rather than two or three per response.

    Everything else (the pacer, connecting, timeouts, stop, resets, closes, failures) is
    :class:`FastEngine`'s, shared through the connection's ``write``/``close`` and the same
    bookkeeping fields. TLS and users with think time stay on :class:`_Conn` connections.
    """

    __slots__ = ("epoll", "watched", "addresses", "shape", "learning", "shape_outcomes",
                 "compiled")

    def __init__(self, plan: WorkerPlan, recorder: Recorder, start_ns: int) -> None:
        super().__init__(plan, recorder, start_ns)
        if plan.model == "closed":  # back-to-back users: the pump appends no intended time
            recorder.sent_when_intended()
        self.epoll = select.epoll()
        self.watched: list[_RawConn | None] = []  # by file descriptor (a list indexes fastest)
        # (family, sockaddr) of the origin's host, the one that last connected first
        self.addresses: list[tuple[int, tuple[object, ...]]] | None = None
        self.shape: _Shape | None = None  # the response the target keeps repeating, if any
        self.learning = _LEARNING_TRIES  # tries left to find (or widen) it; 0: stop trying
        self.shape_outcomes: dict[int, int] = {}  # checks: request code -> the shape's outcome
        self.compiled = compiled_pump(self)  # workers/_pump.pyx in place of _pump, if built
        if self.compiled is not None:
            self.send = self.compiled.send

    async def prepare(self, within_s: float) -> None:
        self._watch()
        await super().prepare(within_s)

    async def go(self) -> None:
        self._watch()
        try:
            await super().go()  # closes every connection when done
        finally:
            self.loop.remove_reader(self.epoll.fileno())
            self.epoll.close()
            if self.compiled is not None:
                self.compiled.close()

    def _watch(self) -> None:
        """Have the event loop call :meth:`_pump` whenever a socket in the epoll set is ready."""
        self.loop = asyncio.get_running_loop()
        pump = self._pump if self.compiled is None else self.compiled.pump
        self.loop.add_reader(self.epoll.fileno(), pump)  # replaces an earlier watch

    def _wake_at(self, due_ns: int) -> None:
        """Open model on the compiled pump: a timerfd in the epoll set wakes the pump when the
        next request is due (to within the kernel's timer slack, ~50 us; never early), which
        then pumps the pacer. No early uvloop timer, no spinning through the last millisecond:
        the core idles between requests. The pure-Python pump keeps the uvloop timers."""
        if self.compiled is None:
            super()._wake_at(due_ns)
            return
        self.compiled.arm(due_ns)

    async def _dial(self) -> _RawConn:  # type: ignore[override]
        """Connect a non-blocking socket to the origin and watch it; as ``create_connection``
        does, try each address of the host in turn (``localhost`` may be ::1, then 127.0.0.1)."""
        if self.addresses is None:
            origin = self.origin
            infos = await self.loop.getaddrinfo(origin.host, origin.port,
                                                type=socket.SOCK_STREAM)
            self.addresses = [(family, sockaddr) for family, _, _, _, sockaddr in infos]
        failure: OSError = ConnectionRefusedError("no address to connect to")
        for address in list(self.addresses):
            try:
                sock = await self._connect_to(*address)
            except OSError as exc:
                failure = exc
                continue
            if self.addresses[0] != address:  # the next connections try this one first
                self.addresses.remove(address)
                self.addresses.insert(0, address)
            conn = (_CheckedRawConn if self.checking else _RawConn)(self, sock)
            if conn.fd >= len(self.watched):
                self.watched.extend([None] * (conn.fd + 1 - len(self.watched)))
            self.watched[conn.fd] = conn
            self.epoll.register(conn.fd, _EPOLLIN)
            return conn
        raise failure

    async def _connect_to(self, family: int, sockaddr: tuple[object, ...]) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await self.loop.sock_connect(sock, sockaddr)
            if self.epoll.closed:
                raise ConnectionAbortedError("the run is over")
        except BaseException:
            sock.close()
            raise
        return sock

    def _pump(self) -> None:
        """Handle every ready connection: the closed model's hot path, written out flat.

        A user whose response completed, with the schedule still on and the connection kept
        alive, records the result and sends its next request here; anything else (a partial
        response, a close, an error, the end of the schedule) goes to the shared bookkeeping.
        """
        keep_alive: bool | None
        events = self.epoll.poll(0)
        watched, read, write, now_ns = self.watched, os.read, os.write, _now
        base, stop_ns, limit, warmup_n = (
            self.start_ns, self.users_stop_ns, self.users_limit, self.warmup_n)
        append_code, append_sent, append_done = self.append_code, self.append_sent, self.append_done
        single, payload, epollin = self.single, self.payload, _EPOLLIN
        shape, checking, shape_outcomes = self.shape, self.checking, self.shape_outcomes
        if shape is None:
            length, tail, last_seen, shape_status = -1, b"", b"", 0
        else:
            length, tail, last_seen = len(shape.sample), shape.tail, shape.last
            shape_status = shape.status
        last, read_bytes = 0, _READ_BYTES
        # The next sequence number, kept in a local and handed back to self.launched around
        # every call into the shared bookkeeping (which takes numbers from it too).
        launched = self.launched
        users = self.plan.model == "closed"  # open model: every response goes to completed()
        try:
            for fd, mask in events:
                conn = watched[fd]
                if conn is None:
                    continue
                if mask != epollin:
                    self.launched = launched
                    self._event(conn, mask)
                    launched = self.launched
                    continue
                try:
                    data = read(fd, read_bytes)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    self.launched = launched
                    self.lost(conn, exc)
                    launched = self.launched
                    continue
                if not data:
                    self.launched = launched
                    self.lost(conn, None)
                    launched = self.launched
                    continue
                if (len(data) == length and not conn.got and data.endswith(tail)
                        and (data.startswith(last_seen) or shape.seen(data))):  # type: ignore[union-attr]
                    # (length is -1, which no data matches, when shape is None)
                    keep_alive, status = True, shape_status  # the repeated response (_Shape)
                    if checking:  # what the checks said of the shape's sample: see _Shape
                        status = shape_outcomes.get(conn.code) or self.shape_outcome(conn.code)
                else:
                    parser = conn.parser
                    try:
                        parser.feed_data(data)
                    except Exception as exc:  # noqa: BLE001 - see _Conn.data_received
                        self.launched = launched
                        self._unparsed(conn, exc)
                        launched = self.launched
                        continue
                    keep_alive = conn.done
                    if keep_alive is None:
                        conn.got = True
                        continue
                    conn.done = None
                    status = parser.get_status_code()
                    if conn.got:  # it came in several reads
                        conn.got = False
                    elif self.learning and keep_alive:
                        self._learn(data, status)
                    if checking:
                        status = self.checked(conn, status)
                now = now_ns()
                if not users:
                    self.launched = launched
                    self.freed(conn, status, keep_alive, now)
                    launched = self.launched
                    continue
                if not (keep_alive and launched < limit and now < stop_ns):
                    self.launched = launched
                    self.completed(conn, status, keep_alive)
                    launched = self.launched
                    continue
                if conn.seq >= warmup_n:
                    append_code(conn.code + status)
                    append_sent(conn.sent - base)
                    append_done(now - base)
                    last = now
                else:
                    self.recorder.warmup_count += 1
                conn.seq, conn.sent = launched, now  # intended: the sent time; got is False
                launched += 1
                if single:
                    request = payload
                else:
                    endpoint = self.picker.pick()
                    conn.code = endpoint * CODE_SPAN
                    request = self.payloads[endpoint]()
                try:
                    sent = write(fd, request)
                except BlockingIOError:
                    sent = 0
                except OSError as exc:
                    self.loop.call_soon(self.lost, conn, exc)
                    continue
                if sent < len(request):
                    conn.write(request[sent:])  # the rest goes out when the socket is writable
        finally:
            self.launched = launched
        if last:
            self.measured_end_ns = last
        if not users:
            self.paced()

    def freed(self, conn: _RawConn, status: int, keep_alive: bool, now: int) -> None:
        """Open model: a whole response arrived on ``conn`` at ``now``. Record it, then give the
        connection the oldest queued request (its intended time kept: its latency counts from
        then) or park it; the pacer is pumped once per batch, after (:meth:`paced`). A close,
        or a response on a connection with nothing in flight, goes to :meth:`completed`.
        The compiled pump does the same inline."""
        if not (keep_alive and conn.busy):
            self.completed(conn, status, keep_alive)
            return
        self.finish(conn.seq, conn.code + status, conn.intended, conn.sent, now)
        self.in_flight -= 1
        if self.queue:
            seq, intended = self.queue.popleft()
            self.send(conn, seq, intended)
        else:
            conn.busy = False
            self.idle.append(conn)

    def paced(self) -> None:
        """Open model, after a batch of responses: launch what is due (on the connections just
        parked), or, once the schedule is over, end the run when nothing is left in flight."""
        if self.stopping:
            self._maybe_done()
        elif _now() >= self.next_due_ns or (self.backstop and self.in_flight == 0):
            self._tick()

    def _learn(self, data: bytes, status: int) -> None:
        """A whole keep-alive response arrived in one read and went through httptools: take it
        as the shape the target repeats, or widen the shape to cover it (see :class:`_Shape`).
        Responses that fit neither use up a try; the shape found so far stays."""
        shape = self.shape
        self.shape_outcomes.clear()  # checks: found again for the new shape
        if shape is None:
            if one_keep_alive_response(data) == status:
                self.shape = _Shape.exact(data, status)
                return
        elif status == shape.status:
            widened = shape.widened(data)
            if widened is not None:
                self.shape = widened
                return
        self.learning -= 1

    def _unparsed(self, conn: _RawConn, exc: Exception) -> None:
        """httptools raised on ``conn``'s data: a response it completed first (a 101 that
        upgrades) is recorded as such and the connection replaced, as the protocol connections
        do; otherwise the request fails (:meth:`FastEngine.unexpected`)."""
        if conn.done is None:
            self.failed(conn, self.unexpected(exc))
            return
        conn.done = None
        self.completed(conn, conn.parser.get_status_code(), False)

    def _event(self, conn: _RawConn, mask: int) -> None:
        """Anything but plain readability: writable (a pending request), hang-up or error."""
        if mask & _EPOLLOUT:
            conn.flush()
        if mask & ~_EPOLLOUT and conn in self.conns:
            self._read(conn)

    def _read(self, conn: _RawConn) -> None:
        """Read what arrived on ``conn`` and parse it: what the pump does inline, minus its
        fast way to the next request."""
        try:
            data = os.read(conn.fd, _READ_BYTES)
        except BlockingIOError:
            return
        except OSError as exc:
            self.lost(conn, exc)
            return
        if not data:
            self.lost(conn, None)
            return
        outcome = self._parse(conn, data)
        if outcome is not None:
            status, keep_alive = outcome
            self.completed(conn, self.checked(conn, status) if self.checking else status,
                           keep_alive)

    def _parse(self, conn: _RawConn, data: bytes) -> tuple[int, bool] | None:
        """Feed ``data`` to ``conn``'s httptools parser: return the status and keep-alive of the
        response it completed, or None (more to come, or the request failed and was settled).
        The compiled pump calls this for every read it does not parse itself."""
        parser = conn.parser
        try:
            parser.feed_data(data)
        except Exception as exc:  # noqa: BLE001 - see _Conn.data_received
            self._unparsed(conn, exc)
            return None
        keep_alive, conn.done = conn.done, None
        if keep_alive is None:
            conn.got = True
            return None
        conn.got = False
        return parser.get_status_code(), keep_alive

    def checked_whole(self, conn: _RawConn, status: int, data: bytes, body_at: int) -> int:
        """The compiled pump's :meth:`checked` of a whole response it parsed itself: ``data`` is
        the response, its body from ``body_at`` (-1: chunked, split here by httptools)."""
        checker = self.checkers[conn.code // CODE_SPAN]
        if checker is None:
            return status
        if body_at < 0:
            names, body = response_parts(data)
            failed = checker.first_failure(status, names, body)
        else:
            failed = checker.first_failure(status, _header_names(data, body_at), data[body_at:])
        return status if failed is None else self.check_code(failed)

    def shape_outcome(self, code: int) -> int:
        """Return the outcome of a response matching the shape, for the endpoint of request
        ``code``: what that endpoint's checks say of the shape's sample, found once per shape."""
        endpoint = code // CODE_SPAN
        outcome = self.shape_outcomes.get(code)
        if outcome is None:
            shape = self.shape
            assert shape is not None
            checker = self.checkers[endpoint]
            failed = None if checker is None else checker.first_failure(
                shape.status, *response_parts(shape.sample))
            outcome = shape.status if failed is None else self.check_code(failed)
            self.shape_outcomes[code] = outcome
        return outcome


def _header_names(data: bytes, body_at: int) -> Iterator[bytes]:
    """Yield the header names of the response ``data`` whose body starts at ``body_at``, one
    the compiled parser took (so every header line is ``name:value``, no CR or LF inside);
    a check reads them only if it looks for a header."""
    for line in data[:body_at - 4].split(b"\r\n")[1:]:
        yield line.split(b":", 1)[0]


def response_parts(data: bytes) -> tuple[list[bytes], bytes]:
    """Return the header names and the body of the one response in ``data``."""
    class Keep(_KeepsResponse):
        __slots__ = ("body", "names")

        def __init__(self) -> None:
            self.names: list[bytes] = []
            self.body: list[bytes] = []

    keep = Keep()
    httptools.HttpResponseParser(keep).feed_data(data)
    return keep.names, b"".join(keep.body)


def fast_engine(plan: WorkerPlan, recorder: Recorder, start_ns: int) -> FastEngine:
    """Return the fast engine for ``plan``: raw-socket users where they apply, else protocols."""
    cls = RawUsersEngine if raw_users_apply(plan) else FastEngine
    return cls(plan, recorder, start_ns)
