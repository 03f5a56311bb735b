"""``LoadWorker``: runs one plan and returns windows of histograms.

A plain class (the coordinator wraps it with ``ray.remote``). ``run`` blocks: it runs its own event
loop (uvloop) in a thread of its own, waits for the common start time, sends the load with the
plan's transport, drains finished windows once per window (so memory stays bounded on long runs),
and returns a :class:`WorkerReport`.

Two kinds of engine share the plan, the pacers and the recorder (and :class:`RunState`, in
:mod:`workers.run_state`):
- ``fast`` (:mod:`workers.raw_engine`): callbacks on ``asyncio.Protocol`` connections, no
  coroutine per request; the closed model's back-to-back users over plain HTTP on raw sockets,
  a batch of ready users per Python call;
- ``aiohttp`` (:class:`AiohttpLoop` here): a coroutine per request over ``aiohttp``, for what the
  fast path does not do.

Every loop is bounded twice: by the plan's stop condition and by ``max_duration_s``; after the
schedule ends, outstanding requests get at most ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from workers.plan import WorkerPlan
from workers.recorder import Progress, Recorder, Window
from workers.refusal import ConnectWatch, connect_error
from workers.run_state import RunState, pacer_for
from workers.transport import TIMEOUT, Sender

SenderFactory = Callable[[WorkerPlan], Sender]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerReport:
    """What one worker measured: its windows, plus counts that are not in any window."""

    worker_index: int
    host: str
    pid: int
    started_at: float  # unix time of the common start
    measured_s: float  # length of the measured phase (ramp and warm-up excluded)
    windows: tuple[Window, ...]
    warmup_requests: int
    unsent: int  # due but never sent because the hard stop came first
    node_id: str | None = None  # set by the pool that ran it (Ray's node id)
    stopped_early: str | None = None  # why the worker ended its load by itself (one line)


class Engine(Protocol):
    """One run of one plan; ``go`` returns when every request has finished or timed out."""

    unsent: int
    measured_end_ns: int
    in_flight: int

    async def go(self) -> None: ...

    def stop(self) -> None: ...


def _new_runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """What :meth:`LoadWorker.poll` hands over: windows finished since the last poll, running
    totals, and (once the run is over) the final report, whose ``windows`` are empty because
    every window was handed over by earlier snapshots or this one."""

    windows: tuple[Window, ...]
    progress: Progress | None
    final: WorkerReport | None = None


class LoadWorker:
    """Sends one worker's share of the load. Plain class; ``ray.remote`` is applied elsewhere.

    Two ways to drive it: ``run(start_at)`` blocks and returns the whole report; or
    ``start(start_at)`` then ``poll()`` until a snapshot carries the final report (what the
    coordinator does, to stream windows and notice a lost worker within a poll), with ``stop()``
    to end the load early.

    Example::

        report = LoadWorker(plan).run(start_at=time.time() + 0.5)
    """

    def __init__(self, plan: WorkerPlan, sender_factory: SenderFactory | None = None) -> None:
        self.plan = plan
        self._sender_factory = sender_factory
        self._snapshots: queue.SimpleQueue[Snapshot | BaseException] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._engine_ref: Engine | None = None
        self._stop_asked = False
        self._stopped_early: str | None = None

    def ready(self) -> dict[str, object]:
        """Return where this worker runs (host and pid); the coordinator waits on it.

        Before answering, pay what the run would otherwise pay after its start time: importing
        the plan's transport and numpy's first calls. On a busy 2-core host that is a second,
        and every request of that second would be sent late (and counted as lag).
        """
        self._warm_up()
        return {"host": socket.gethostname(), "pid": os.getpid()}

    def _warm_up(self) -> None:
        plan = self.plan
        Recorder(labels=[t.label for t in plan.requests], window_s=plan.window_s)
        modules = ["uvloop"]
        if self._sender_factory is None:
            modules += (["workers.raw_engine", "workers._pump"] if plan.transport == "fast" else
                        ["workers.transport_aiohttp", "workers.grpc_engine", "workers.transport_grpc"]
                        if plan.transport == "grpc" else ["workers.transport_aiohttp"])
        for name in modules:
            # One that is missing (the compiled pump where it is not built) is met again, and
            # handled, where the run needs it.
            with contextlib.suppress(ImportError):
                importlib.import_module(name)

    def run(self, start_at: float) -> WorkerReport:
        """Run the plan from unix time ``start_at``; return the report when it is done."""
        self.start(start_at)
        windows: list[Window] = []
        while True:
            snapshot = self.poll(timeout_s=3600.0)
            windows.extend(snapshot.windows)
            if snapshot.final is not None:
                return dataclasses.replace(snapshot.final, windows=tuple(windows))

    def start(self, start_at: float) -> None:
        """Start the load in a thread of its own (its own uvloop loop) and return at once.

        A thread of its own, so the caller may itself be inside an event loop, as Ray's actor
        threads are.
        """
        if self._thread is not None:
            raise RuntimeError("this LoadWorker was already started")

        def target() -> None:
            try:
                with _new_runner() as runner:
                    final = runner.run(self._run(start_at))
                self._snapshots.put(Snapshot(windows=(), progress=None, final=final))
            except BaseException as exc:  # noqa: BLE001 -- handed to poll(), which raises it
                self._snapshots.put(exc)

        self._thread = threading.Thread(target=target, name=f"load-{self.plan.worker_index}",
                                        daemon=True)
        self._thread.start()

    def poll(self, timeout_s: float = 1.0) -> Snapshot:
        """Return what happened since the last poll, waiting up to ``timeout_s`` for news.

        Several pending snapshots are merged into one. Raises what the load raised, if it did.
        """
        items: list[Snapshot] = []
        try:
            items.append(self._take(self._snapshots.get(timeout=max(0.0, timeout_s))))
            while True:
                items.append(self._take(self._snapshots.get_nowait()))
        except queue.Empty:
            pass
        windows = tuple(w for item in items for w in item.windows)
        progress = next((i.progress for i in reversed(items) if i.progress is not None), None)
        final = next((i.final for i in items if i.final is not None), None)
        return Snapshot(windows=windows, progress=progress, final=final)

    @staticmethod
    def _take(item: Snapshot | BaseException) -> Snapshot:
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self) -> None:
        """End the load early: nothing new is sent, requests in flight finish or time out."""
        self._stop_asked = True
        loop, engine = self._loop, self._engine_ref
        if loop is not None and engine is not None and not loop.is_closed():
            loop.call_soon_threadsafe(engine.stop)

    def _engine(self, recorder: Recorder, start_ns: int) -> Engine:
        plan = self.plan
        if self._sender_factory is None and plan.transport == "fast":
            from workers.raw_engine import fast_engine

            return fast_engine(plan, recorder, start_ns)
        if self._sender_factory is None and plan.transport == "grpc":
            from workers.grpc_engine import grpc_sender

            sender, keeps_deadline = grpc_sender(plan, _aiohttp_sender)
            return AiohttpLoop(plan, sender, recorder, start_ns,
                               sender_keeps_deadline=keeps_deadline)
        factory = self._sender_factory or _aiohttp_sender
        return AiohttpLoop(plan, factory(plan), recorder, start_ns)

    async def _run(self, start_at: float) -> WorkerReport:
        plan = self.plan
        # start_at may lie in the past for a replacement worker: its windows still count from
        # the common start, and it begins sending at resume_s.
        start_ns = time.monotonic_ns() + int((start_at - time.time()) * 1e9)
        begin_ns = start_ns + int(plan.resume_s * 1e9)
        recorder = Recorder(labels=[t.label for t in plan.requests], window_s=plan.window_s,
                            excluded_ns=int(plan.excluded_s * 1e9), error_ranges=plan.error_ranges,
                            ok_outcomes=plan.ok_outcomes)
        engine = self._engine(recorder, start_ns)
        self._loop, self._engine_ref = asyncio.get_running_loop(), engine
        if self._stop_asked:
            engine.stop()
        publisher = asyncio.ensure_future(self._publish_forever(recorder, start_ns, engine))
        try:
            prepare = getattr(engine, "prepare", None)
            if prepare is not None:  # connections, within what is left before the start
                await prepare((begin_ns - time.monotonic_ns()) / 1e9 - 0.05)
            # uvloop timers can fire up to a tick early: never start before start_ns, or the
            # closed model's first requests are intended before the start and count as warm-up.
            while (wait_ns := begin_ns - time.monotonic_ns()) > 0 and not self._stop_asked:
                await asyncio.sleep(wait_ns / 1e9)
            await engine.go()
        finally:
            publisher.cancel()
        last = recorder.close()
        self._snapshots.put(Snapshot(windows=tuple(last), progress=recorder.progress(
            elapsed_s=(time.monotonic_ns() - start_ns) / 1e9, in_flight=0)))
        return WorkerReport(
            worker_index=plan.worker_index,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=start_at,
            measured_s=_measured_s(plan, engine.measured_end_ns - start_ns,
                                   stopped=self._stop_asked),
            windows=(),
            warmup_requests=recorder.warmup_count,
            unsent=engine.unsent,
            stopped_early=self._stopped_early,
        )

    async def _stop_if_refused(self, watch: ConnectWatch, recorder: Recorder, now_ns: int,
                               engine: Engine) -> None:
        """End the load early when every request of the first second failed to connect,
        naming what a fresh connection runs into (``connection refused: 127.0.0.1:18099``)."""
        watch.observe(recorder.codes, recorder.done)
        if watch.all_failed(now_ns):
            self._stopped_early = await connect_error(t.url for t in self.plan.requests)
            engine.stop()

    async def _publish_forever(self, recorder: Recorder, start_ns: int, engine: Engine) -> None:
        """Every 100 ms: sample generator health and bucket recorded rows; once per window,
        publish a snapshot with the finished windows and the running totals.

        Frequent small flushes keep each one short (no stall of the event loop, which would
        show up as schedule lag). A window is finished once every request intended in it has
        completed or timed out: its end plus the request timeout plus a second of slack. CPU is
        this thread's (the load's), so a worker sharing its process is still measured alone.
        """
        plan = self.plan
        slack_ns = int((plan.timeout_s + 1.0) * 1e9)
        flush_s = min(0.1, plan.window_s)
        next_publish = time.monotonic() + plan.window_s
        cpu = time.thread_time()
        watch = ConnectWatch(begin_ns=int(plan.resume_s * 1e9))
        while True:
            await asyncio.sleep(flush_s)
            if not watch.done:
                await self._stop_if_refused(watch, recorder, time.monotonic_ns() - start_ns,
                                            engine)
            now_ns, now_cpu = time.monotonic_ns(), time.thread_time()
            recorder.sample(now_ns - start_ns, cpu_s=now_cpu - cpu, in_flight=engine.in_flight)
            cpu = now_cpu
            if time.monotonic() < next_publish:
                recorder.flush()
                continue
            next_publish += plan.window_s
            windows = recorder.drain(now_ns - start_ns - slack_ns)
            progress = recorder.progress(elapsed_s=(now_ns - start_ns) / 1e9,
                                         in_flight=engine.in_flight)
            self._snapshots.put(Snapshot(windows=tuple(windows), progress=progress))


def _measured_s(plan: WorkerPlan, last_done_ns: int, *, stopped: bool = False) -> float:
    """Return the measured phase length: the planned duration, or until the last request ended.
    ``stopped`` (the coordinator stopped the worker): until the last request ended, at most the
    planned duration; its windows hold every request sent until then, so a throughput over
    this length is the rate really sent (cut at the coordinator's stop, it ran high by the
    requests sent while the stop was on its way)."""
    ran_s = max(0.0, last_done_ns / 1e9 - plan.excluded_s)
    if plan.duration_s is not None and (plan.request_limit is None or ran_s >= plan.duration_s):
        return min(ran_s, plan.duration_s) if stopped else plan.duration_s
    return ran_s


def _aiohttp_sender(plan: WorkerPlan) -> Sender:
    from workers.transport_aiohttp import AiohttpSender

    connections = plan.max_in_flight if plan.model == "open" else plan.concurrency
    return AiohttpSender(plan.requests, timeout_s=plan.timeout_s, connections=connections,
                         verify_tls=plan.verify_tls, follow_redirects=plan.follow_redirects)


class AiohttpLoop(RunState):
    """The coroutine engine over a :class:`Sender` (aiohttp, gRPC): one task per request.

    ``sender_keeps_deadline``: the Sender bounds every request itself and turns every failure
    into an outcome (gRPC: each call carries its deadline, which grpc enforces), so no second
    ``asyncio.timeout`` guard wraps each request; the hard stop still cancels stragglers.
    """

    def __init__(self, plan: WorkerPlan, sender: Sender, recorder: Recorder, start_ns: int,
                 *, sender_keeps_deadline: bool = False) -> None:
        super().__init__(plan, recorder, start_ns)
        self.sender = sender
        self._sender_keeps_deadline = sender_keeps_deadline
        self._codes: dict[tuple[int, str], int] = {}  # outcome codes, looked up once each

    def _code(self, endpoint: int, outcome: str) -> int:
        code = self._codes.get((endpoint, outcome))
        if code is None:
            code = self._codes[(endpoint, outcome)] = self.recorder.code_of(endpoint, outcome)
        return code

    async def go(self) -> None:
        try:
            if self.plan.model == "open":
                await self._open()
            else:
                self.seq = 0
                await asyncio.gather(*(self._user(k) for k in range(self.plan.concurrency)))
        finally:
            await self.sender.aclose()

    async def _one(self, seq: int, intended_ns: int) -> None:
        """Send request ``seq`` and record exactly one outcome for it, whatever happens: a
        Sender that raises gives ``error:<Name>``; one that has not answered a second after the
        request timeout (its own should have fired), or is cancelled, gives ``timeout``."""
        endpoint = self.picker.pick()
        self.in_flight += 1
        sent_ns = time.monotonic_ns()
        try:
            if self._sender_keeps_deadline:
                outcome, sent_ns = await self.sender.send(endpoint)
            else:
                async with asyncio.timeout(self.plan.timeout_s + 1.0):
                    outcome, sent_ns = await self.sender.send(endpoint)
        except TimeoutError:
            outcome = TIMEOUT
        except asyncio.CancelledError:
            self.finish(seq, self._code(endpoint, TIMEOUT), intended_ns, sent_ns,
                        time.monotonic_ns())
            raise
        except Exception as exc:  # noqa: BLE001 - a request is data, never an exception
            outcome = f"error:{type(exc).__name__}"
        finally:
            self.in_flight -= 1
        self.finish(seq, self._code(endpoint, outcome), intended_ns, sent_ns,
                    time.monotonic_ns())

    async def _open(self) -> None:
        """Launch every due request at each wake-up; latency counts from intended times.

        A late wake-up sends a burst rather than silently shifting the schedule. At
        ``max_in_flight`` it waits for a request to finish; the delay shows as schedule lag.
        """
        plan, pacer = self.plan, pacer_for(self.plan)
        in_flight: set[asyncio.Task[None]] = set()
        launched = pacer.due(plan.resume_s - 1e-9) if plan.resume_s > 0 else 0
        while time.monotonic_ns() < self.hard_stop_ns:
            due = pacer.due((time.monotonic_ns() - self.start_ns) / 1e9)
            if self.limit is not None:
                due = min(due, self.limit)
            while launched < due:
                intended_ns = self.start_ns + int(pacer.intended_s(launched) * 1e9)
                if intended_ns >= self.schedule_end_ns:
                    break
                if len(in_flight) >= plan.max_in_flight:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                task = asyncio.ensure_future(self._one(launched, intended_ns))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                launched += 1
            next_ns = self.start_ns + int(pacer.intended_s(launched) * 1e9)
            if (self.limit is not None and launched >= self.limit) or next_ns >= self.schedule_end_ns:
                break
            await asyncio.sleep(max(0.0, (next_ns - time.monotonic_ns()) / 1e9))
        if in_flight:
            _, pending = await asyncio.wait(set(in_flight), timeout=plan.timeout_s + 1.0)
            for task in pending:
                task.cancel()
            # let each cancelled request record its timeout before the recorder is closed
            await asyncio.gather(*pending, return_exceptions=True)
        self.count_unsent(pacer, launched)

    async def _user(self, user: int) -> None:
        """Virtual user ``user`` (from 0): request after request until the schedule ends; with
        stages of users it waits (parks) while its stage has no room for it."""
        stages = self.user_stages
        while True:
            now_ns = time.monotonic_ns()
            end_ns = min(self.schedule_end_ns, self.hard_stop_ns)
            if now_ns >= end_ns:
                return
            if stages is not None:
                elapsed_s = (now_ns - self.start_ns) / 1e9
                resume_s = stages.resume_s(user, elapsed_s)
                if resume_s > elapsed_s:  # parked: look again at least every 0.1 s (stop())
                    wait_s = min(resume_s - elapsed_s, (end_ns - now_ns) / 1e9, 0.1)
                    await asyncio.sleep(wait_s)
                    continue
            if self.limit is not None and self.seq >= self.limit:
                return
            seq = self.seq
            self.seq += 1
            await self._one(seq, now_ns)
            if self.plan.think_s:
                await asyncio.sleep(self.plan.think_s)
