"""The fast engine: HTTP/1.1 keep-alive on ``asyncio.Protocol`` connections, parsed by httptools.

The one module of ``workers`` that imports httptools. Built for the hot path: requests are
encoded to bytes once, a connection is a small object whose callbacks record the result and send
the next request directly (no coroutine, no future per request), and recording is four appends.

Closed model: each virtual user owns one connection and sends back to back (after ``think_s``).
Open model: a pacer callback launches every due request on an idle connection, opens a new one
while fewer than ``max_in_flight`` exist, or queues the request; a connection that finishes takes
the oldest queued request at once. A queued request's latency still counts from its intended
time, so a slow target or a saturated generator shows up as latency and schedule lag.

Timers on uvloop have millisecond granularity and can fire early; the pacer sleeps until about
1 ms before the next intended send and then yields to the event loop (``call_soon``) until it is
due, so sends are not late by a timer tick.

Failures are data: ``connect`` (refused, unreachable, connect timeout), ``timeout`` (no whole
response within the request timeout; found by a sweep every ``timeout/4``, at most 100 ms),
``reset`` (closed or reset before the response completed, or an unparseable response), ``tls``.
A response that closes its connection (``Connection: close`` or HTTP/1.0) completes normally and
the connection is replaced.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import httptools

from workers.engine import RunState, pacer_for
from workers.plan import RequestTemplate, WorkerPlan
from workers.recorder import CODE_SPAN, CONNECT_CODE, RESET_CODE, TIMEOUT_CODE, TLS_CODE, Recorder

_now = time.monotonic_ns
_SPIN_NS = 1_500_000  # below this distance to the next send, yield instead of arming a timer


def encode_request(template: RequestTemplate, host_header: str) -> bytes:
    """Return the whole HTTP/1.1 request as bytes (request line, headers, body)."""
    parts = urlsplit(template.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
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
                 "status", "user")

    def __init__(self, engine: FastEngine) -> None:
        self.engine = engine
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.busy = False
        self.code = self.seq = self.intended = self.sent = self.status = 0
        self.user = False  # closed model: this connection is a virtual user

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.engine.failed(self, RESET_CODE)

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_message_complete(self) -> None:
        self.engine.completed(self, self.parser.should_keep_alive())

    def connection_lost(self, exc: Exception | None) -> None:
        self.engine.lost(self, exc)


class FastEngine(RunState):
    """Runs one plan over :class:`_Conn` connections (see the module docstring)."""

    def __init__(self, plan: WorkerPlan, recorder: Recorder, start_ns: int) -> None:
        super().__init__(plan, recorder, start_ns)
        self.origin = _Origin(plan.requests, plan.verify_tls)
        self.payloads = [encode_request(t, self.origin.host_header) for t in plan.requests]
        self.timeout_ns = int(plan.timeout_s * 1e9)
        self.think_s = plan.think_s
        self.conns: set[_Conn] = set()
        self.idle: list[_Conn] = []
        self.queue: collections.deque[tuple[int, int]] = collections.deque()
        self.connecting = 0
        self.launched = 0
        self.stopping = False
        self.users_left = 0
        self.done: asyncio.Future[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    # --- running -----------------------------------------------------------------------------

    async def go(self) -> None:
        """Run until the schedule is over and every request has finished or timed out."""
        self.loop = asyncio.get_running_loop()
        self.done = self.loop.create_future()
        sweeper = self.loop.create_task(self._sweep())
        try:
            if self.plan.model == "open":
                self.pacer = pacer_for(self.plan)
                self._tick()
            else:
                self.users_left = self.plan.concurrency
                for _ in range(self.plan.concurrency):
                    self._open_connection(user=True)
            await self.done
        finally:
            sweeper.cancel()
            for conn in list(self.conns):
                if conn.transport is not None:
                    conn.transport.abort()
        if self.plan.model == "open":
            self.count_unsent(self.pacer, self.launched)

    def _finish_run(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

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
                self._send(self.idle.pop(), seq, intended)
            else:
                self.queue.append((seq, intended))
                if len(self.conns) + self.connecting < self.plan.max_in_flight:
                    self._open_connection(user=False)
        next_intended = start + int(pacer.intended_s(self.launched) * 1e9)
        if self._schedule_over(next_intended) or now >= self.hard_stop_ns:
            self.stopping = True
            self._maybe_done()
            return
        wait = next_intended - _now()
        if wait <= _SPIN_NS:
            self.loop.call_soon(self._tick)
        else:
            self.loop.call_later((wait - 1_000_000) / 1e9, self._tick)

    def _maybe_done(self) -> None:
        if self.stopping and not self.queue and not any(c.busy for c in self.conns) \
                and not self.connecting:
            self._finish_run()

    # --- connections --------------------------------------------------------------------------

    def _open_connection(self, *, user: bool) -> None:
        self.connecting += 1
        self.loop.create_task(self._connect(user))

    async def _connect(self, user: bool) -> None:
        origin = self.origin
        failure = None
        try:
            _, conn = await asyncio.wait_for(self.loop.create_connection(
                lambda: _Conn(self), origin.host, origin.port, ssl=origin.ssl,
                server_hostname=origin.host if origin.tls else None,
            ), timeout=self.plan.timeout_s)
        except (ssl.SSLError, ssl.CertificateError):
            failure = TLS_CODE
        except (OSError, asyncio.TimeoutError):
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
            if self.queue and len(self.conns) + self.connecting < self.plan.max_in_flight:
                self._open_connection(user=False)
        self._maybe_done()

    def _take_seq(self) -> int:
        seq = self.launched
        self.launched += 1
        return seq

    def _user_gone(self) -> None:
        self.users_left -= 1
        if self.users_left <= 0:
            self._finish_run()

    def _next(self, conn: _Conn) -> None:
        """Give a free connection its next request, park it, or close it."""
        if conn.user:
            now = _now()
            if self._schedule_over(now):
                self._drop(conn)
                self._user_gone()
            elif self.think_s:
                self.loop.call_later(self.think_s, self._user_send, conn)
            else:
                self._send(conn, self._take_seq(), now)
        elif self.queue:
            seq, intended = self.queue.popleft()
            self._send(conn, seq, intended)
        else:
            self.idle.append(conn)
            self._maybe_done()

    def _user_send(self, conn: _Conn) -> None:
        if conn in self.conns:
            now = _now()
            if self._schedule_over(now):
                self._drop(conn)
                self._user_gone()
            else:
                self._send(conn, self._take_seq(), now)

    def _send(self, conn: _Conn, seq: int, intended: int) -> None:
        endpoint = self.picker.pick()
        conn.busy = True
        conn.seq, conn.intended, conn.code, conn.status = seq, intended, endpoint * CODE_SPAN, 0
        conn.sent = _now()
        conn.transport.write(self.payloads[endpoint])

    def _drop(self, conn: _Conn) -> None:
        self.conns.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        conn.busy = False
        if conn.transport is not None:
            conn.transport.close()

    # --- callbacks from connections -------------------------------------------------------------

    def completed(self, conn: _Conn, keep_alive: bool) -> None:
        """A whole response arrived: record it, then reuse or replace the connection."""
        if not conn.busy:
            return
        conn.busy = False
        self.finish(conn.seq, conn.code + conn.status, conn.intended, conn.sent, _now())
        if keep_alive:
            self._next(conn)
        else:
            self._replace(conn)

    def failed(self, conn: _Conn, code: int) -> None:
        """The request on ``conn`` failed (unparseable response): record it, drop the connection."""
        if conn.busy:
            conn.busy = False
            self.finish(conn.seq, conn.code + code, conn.intended, conn.sent, _now())
        self._replace(conn)

    def lost(self, conn: _Conn, exc: Exception | None) -> None:
        """The connection closed: a request in flight is a reset, unless its response was
        delimited by the close (headers seen, no length), then it completed."""
        if conn not in self.conns:
            return
        if conn.busy:
            conn.busy = False
            code = conn.status if conn.status and exc is None else RESET_CODE
            self.finish(conn.seq, conn.code + code, conn.intended, conn.sent, _now())
        self._replace(conn)

    def _replace(self, conn: _Conn) -> None:
        was_user = conn.user
        self._drop(conn)
        if was_user:
            if self._schedule_over(_now()):
                self._user_gone()
            else:
                self._open_connection(user=True)
        elif self.queue and len(self.conns) + self.connecting < self.plan.max_in_flight:
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
                conn.busy = False
                self.finish(conn.seq, conn.code + TIMEOUT_CODE, conn.intended, conn.sent, _now())
                self._replace(conn)
            if self.stopping:
                self._maybe_done()
