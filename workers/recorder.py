"""Recording of request results into windows of histograms, with no I/O and no clock of its own.

The hot path, :meth:`Recorder.record`, appends four integers to flat 64-bit ``array`` buffers:
an outcome code and the intended, sent and done times (ns from the worker's start); three once
an engine declares every request sent when intended (:meth:`Recorder.sent_when_intended`).
Nothing is bucketed per request. :meth:`Recorder.flush` (called often) buckets the buffered
rows into the open windows' histograms in a few vectorized numpy calls and empties the buffers;
:meth:`Recorder.drain` hands over the windows that can no longer change, compacted. Memory is
bounded by the windows still open, whatever the request count.

Outcome codes: ``endpoint * CODE_SPAN + outcome`` where ``outcome`` is the HTTP status (100-599)
or a transport failure (:data:`CONNECT` ...), or a code interned for any other outcome string.

Coordinated omission: ``latency`` is measured from the request's *intended* send time (wrk2's
correction); ``service`` from when it was really sent. In the closed model the two are equal.
A request belongs to the window of its intended send time, counted from the end of the excluded
lead-in (ramp and warm-up); requests intended before that are counted as warm-up only.
"""

from __future__ import annotations

from array import array
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from workers.histogram import Histogram, index_of
from workers.transport import CONNECT, RESET, TIMEOUT, TLS

Key = tuple[str, str]  # (endpoint label, outcome)

CODE_SPAN = 1024
CONNECT_CODE, TIMEOUT_CODE, RESET_CODE, TLS_CODE = 0, 1, 2, 3
_FIXED_OUTCOMES = {CONNECT_CODE: CONNECT, TIMEOUT_CODE: TIMEOUT, RESET_CODE: RESET, TLS_CODE: TLS}
_FIRST_INTERNED = 600
# 'l' where C long is 64-bit (Linux): its append converts an int faster than 'q' does.
_INT64 = "l" if array("l").itemsize == 8 else "q"


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """One window of one worker (or of a merged run): histograms and generator health.

    ``scheduled`` counts requests intended in the window, ``sent`` those actually sent and
    finished (late or not); ``lag`` is the histogram of send time minus intended time.
    """

    index: int
    start_s: float
    latency: Mapping[Key, Histogram]
    service: Mapping[Key, Histogram]
    lag: Histogram
    scheduled: int
    sent: int
    cpu_s: float = 0.0  # CPU time the worker's load thread used during the window
    in_flight_max: int = 0  # most requests outstanding at a sample (every 100 ms)

    @property
    def requests(self) -> int:
        """Return how many requests of this window finished (any outcome)."""
        return sum(h.total for h in self.latency.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """Running totals of one worker since its start (warm-up excluded), for a live display."""

    elapsed_s: float
    requests: int
    errors: int
    in_flight: int
    latency: Histogram  # every measured request so far, finished windows and open ones
    by_label: Mapping[str, int] = field(default_factory=dict)  # requests per endpoint label


class Recorder:
    """Buffers per-request rows and turns finished windows into :class:`Window` values.

    Example::

        rec = Recorder(labels=["GET /hello"], window_s=1.0)
        rec.record(0 * CODE_SPAN + 200, 0, 5_000, 2_000_000)
        [window] = rec.close()
    """

    def __init__(self, *, labels: Sequence[str], window_s: float, excluded_ns: int = 0,
                 error_ranges: Sequence[tuple[int, int]] = ((400, 599),),
                 ok_outcomes: Collection[str] = ("grpc:OK",)) -> None:
        self._labels = list(labels)
        self._window_ns = int(window_s * 1e9)
        self._excluded_ns = excluded_ns
        self._interned: dict[str, int] = {}
        self._outcomes: dict[int, str] = dict(_FIXED_OUTCOMES)
        self.codes, self.intended, self.sent, self.done = (array(_INT64) for _ in range(4))
        self._intended_is_sent = False  # see sent_when_intended
        self._unsent = array(_INT64)
        self._open: dict[int, _Open] = {}
        self.warmup_count = 0
        self._error_ranges = tuple(error_ranges)
        self._ok_outcomes = frozenset(ok_outcomes)  # interned outcomes that are no error (gRPC)
        self._ok_codes: list[int] = []
        self._live_requests = self._live_errors = 0
        self._live_by_endpoint = np.zeros(len(self._labels), dtype=np.int64)
        self._live_latency = Histogram()  # every measured request so far, for progress displays
        # The first numpy calls of a process are slow (~10 ms); pay them here, before the start
        # time, not in the first flush of the run, where the pause would show up as lag.
        np.unique(Histogram.from_values(np.zeros(1, dtype=np.int64)).counts[:1])

    def code_of(self, endpoint: int, outcome: str) -> int:
        """Return the code of an outcome string (``status:503``, ``timeout``, ``error:X``...)."""
        if outcome.startswith("status:"):
            return endpoint * CODE_SPAN + int(outcome[7:])
        for fixed, name in _FIXED_OUTCOMES.items():
            if name == outcome:
                return endpoint * CODE_SPAN + fixed
        code = self._interned.get(outcome)
        if code is None and len(self._interned) >= CODE_SPAN - _FIRST_INTERNED - 1:
            outcome = "error:other"  # codes must stay below CODE_SPAN; lump the rare rest
            code = self._interned.get(outcome)
        if code is None:
            code = self._interned[outcome] = _FIRST_INTERNED + len(self._interned)
            self._outcomes[code] = outcome
            if outcome in self._ok_outcomes:
                self._ok_codes.append(code)
        return endpoint * CODE_SPAN + code

    def sent_when_intended(self) -> None:
        """Declare that every request is sent when it is intended (the closed model's users
        sending back to back): rows then keep no intended time, and it reads as the sent time.
        An engine's hot path saves one append per request; call before the first row."""
        if len(self.codes):
            raise RuntimeError("sent_when_intended() must come before the first row")
        self._intended_is_sent = True

    def record(self, code: int, intended_ns: int, sent_ns: int, done_ns: int) -> None:
        """Record one finished request (times in ns from the worker's start)."""
        self.codes.append(code)
        if not self._intended_is_sent:
            self.intended.append(intended_ns)
        self.sent.append(sent_ns)
        self.done.append(done_ns)

    def unsent(self, intended_ns: int) -> None:
        """Count a request that was due but never sent (the run stopped first)."""
        self._unsent.append(intended_ns)

    def _outcome(self, code: int) -> str:
        return f"status:{code}" if 100 <= code < 600 else self._outcomes.get(code, f"code:{code}")

    def flush(self) -> None:
        """Bucket every buffered row into its open window's histograms and empty the buffers.

        Cheap enough to call often (the engine does, every 100 ms): one pass of vectorized
        numpy over the rows since the last flush, no sort, so the event loop never stalls on a
        large backlog.
        """
        if not len(self.codes) and not len(self._unsent):
            return
        buffers = (self.codes, self.intended, self.sent, self.done, self._unsent)
        codes, intended, sent, done, unsent = (np.array(b, dtype=np.int64) for b in buffers)
        for buffer in buffers:
            del buffer[:]  # in place: the engine holds the bound append methods
        if self._intended_is_sent:
            intended = sent
        win = (intended - self._excluded_ns) // self._window_ns
        measured = win >= 0
        self.warmup_count += int(len(win) - measured.sum())
        win, codes = win[measured], codes[measured]
        intended, sent, done = intended[measured], sent[measured], done[measured]
        # Bucket indices are computed once per column: in the closed model every request is
        # sent when intended, so service time is latency and lag is zero.
        latency = index_of(done - intended)
        closed = self._intended_is_sent or np.array_equal(sent, intended)
        service = latency if closed else index_of(done - sent)
        lag = np.zeros_like(latency) if closed else index_of(np.maximum(sent - intended, 0))
        self._count_live(codes, latency)
        for index in _distinct(win):
            acc = self._acc(index)
            in_window = win == index
            acc.lag.record_indices(lag[in_window])
            acc.rows += int(in_window.sum())
            window_codes = codes[in_window]
            for code in _distinct(window_codes):
                rows = in_window.copy()
                rows[in_window] = window_codes == code
                latency_hist, service_hist = acc.histograms(code)
                latency_hist.record_indices(latency[rows])
                service_hist.record_indices(service[rows])
        unsent_win = (unsent - self._excluded_ns) // self._window_ns
        for index in unsent_win[unsent_win >= 0].tolist():
            self._acc(index).unsent += 1

    def _count_live(self, codes: np.ndarray, latency: np.ndarray) -> None:
        """Add to the running totals; ``latency`` holds counts indices (:func:`index_of`)."""
        outcome = codes % CODE_SPAN
        status = ((outcome >= 100) & (outcome < 600)) | np.isin(outcome, self._ok_codes)
        error = ~status
        for lo, hi in self._error_ranges:
            error |= (outcome >= lo) & (outcome <= hi)
        self._live_requests += len(codes)
        self._live_errors += int(error.sum())
        self._live_by_endpoint += np.bincount(codes // CODE_SPAN, minlength=len(self._labels))
        self._live_latency.record_indices(latency[status])

    def progress(self, *, elapsed_s: float, in_flight: int) -> Progress:
        """Return the running totals since the start (call :meth:`flush` first for the latest)."""
        by_label: dict[str, int] = {}
        for label, count in zip(self._labels, self._live_by_endpoint.tolist(), strict=True):
            by_label[label] = by_label.get(label, 0) + count
        return Progress(elapsed_s=elapsed_s, requests=self._live_requests,
                        errors=self._live_errors, in_flight=in_flight,
                        latency=self._live_latency.copy(), by_label=by_label)

    def sample(self, now_ns: int, *, cpu_s: float, in_flight: int) -> None:
        """Attribute generator health sampled at ``now_ns`` (CPU used since the last sample, and
        requests in flight now) to the window that ``now_ns`` falls in."""
        index = (now_ns - self._excluded_ns) // self._window_ns
        if index >= 0:
            acc = self._acc(index)
            acc.cpu_s += cpu_s
            acc.in_flight_max = max(acc.in_flight_max, in_flight)

    def _acc(self, index: int) -> _Open:
        acc = self._open.get(index)
        if acc is None:
            acc = self._open[index] = _Open()
        return acc

    def drain(self, before_ns: int) -> list[Window]:
        """Return and forget the windows that end at or before ``before_ns`` (worker time)."""
        self.flush()
        last = (before_ns - self._excluded_ns) // self._window_ns - 1
        return [self._window(i) for i in sorted(self._open) if i <= last]

    def close(self) -> list[Window]:
        """Return every remaining window, in order, and forget them."""
        self.flush()
        return [self._window(i) for i in sorted(self._open)]

    def _window(self, index: int) -> Window:
        acc = self._open.pop(index)
        lat: dict[Key, Histogram] = {}
        svc: dict[Key, Histogram] = {}
        for code, (latency, service) in sorted(acc.by_code.items()):
            endpoint, outcome = divmod(code, CODE_SPAN)
            key = (self._labels[endpoint], self._outcome(outcome))
            lat[key], svc[key] = latency.compact(), service.compact()
        return Window(index=index, start_s=index * self._window_ns / 1e9, latency=lat,
                      service=svc, lag=acc.lag.compact(), scheduled=acc.rows + acc.unsent,
                      sent=acc.rows, cpu_s=acc.cpu_s, in_flight_max=acc.in_flight_max)


def _distinct(values: np.ndarray) -> list[int]:
    """Return the distinct values in ascending order; one comparison when all are equal (the
    usual case: a flush every 100 ms mostly falls in one window, with one outcome)."""
    if not len(values):
        return []
    low = int(values.min())
    if low == int(values.max()):
        return [low]
    return np.unique(values).tolist()


class _Open:
    """The accumulating histograms of a window that may still receive rows."""

    __slots__ = ("by_code", "cpu_s", "in_flight_max", "lag", "rows", "unsent")

    def __init__(self) -> None:
        self.by_code: dict[int, tuple[Histogram, Histogram]] = {}
        self.lag = Histogram()
        self.rows = 0
        self.unsent = 0
        self.cpu_s = 0.0
        self.in_flight_max = 0

    def histograms(self, code: int) -> tuple[Histogram, Histogram]:
        """Return the (latency, service) histograms of an outcome code, created on first use."""
        pair = self.by_code.get(code)
        if pair is None:
            pair = self.by_code[code] = (Histogram(), Histogram())
        return pair
