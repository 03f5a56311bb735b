"""Recording of request results into windows of histograms, with no I/O and no clock of its own.

The hot path, :meth:`Recorder.record`, appends four integers to flat ``array('q')`` buffers:
an outcome code and the intended, sent and done times (ns from the worker's start). Nothing is
bucketed per request. :meth:`Recorder.drain` later turns the rows of every finished window into
histograms in a few vectorized numpy calls, and forgets them, so memory stays bounded by the
windows still open, whatever the request count.

Outcome codes: ``endpoint * CODE_SPAN + outcome`` where ``outcome`` is the HTTP status (100-599)
or a transport failure (:data:`CONNECT` ...), or a code interned for any other outcome string.

Coordinated omission: ``latency`` is measured from the request's *intended* send time (wrk2's
correction); ``service`` from when it was really sent. In the closed model the two are equal.
A request belongs to the window of its intended send time, counted from the end of the excluded
lead-in (ramp and warm-up); requests intended before that are counted as warm-up only.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from workers.histogram import Histogram
from workers.transport import CONNECT, RESET, TIMEOUT, TLS

Key = tuple[str, str]  # (endpoint label, outcome)

CODE_SPAN = 1024
CONNECT_CODE, TIMEOUT_CODE, RESET_CODE, TLS_CODE = 0, 1, 2, 3
_FIXED_OUTCOMES = {CONNECT_CODE: CONNECT, TIMEOUT_CODE: TIMEOUT, RESET_CODE: RESET, TLS_CODE: TLS}
_FIRST_INTERNED = 600


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

    @property
    def requests(self) -> int:
        """Return how many requests of this window finished (any outcome)."""
        return sum(h.total for h in self.latency.values())


class Recorder:
    """Buffers per-request rows and turns finished windows into :class:`Window` values.

    Example::

        rec = Recorder(labels=["GET /hello"], window_s=1.0)
        rec.record(0 * CODE_SPAN + 200, 0, 5_000, 2_000_000)
        [window] = rec.close()
    """

    def __init__(self, *, labels: Sequence[str], window_s: float, excluded_ns: int = 0) -> None:
        self._labels = list(labels)
        self._window_ns = int(window_s * 1e9)
        self._excluded_ns = excluded_ns
        self._interned: dict[str, int] = {}
        self._outcomes: dict[int, str] = dict(_FIXED_OUTCOMES)
        self._reset_buffers()
        self._unsent = array("q")
        self.warmup_count = 0

    def _reset_buffers(self) -> None:
        self.codes, self.intended, self.sent, self.done = (array("q") for _ in range(4))

    def code_of(self, endpoint: int, outcome: str) -> int:
        """Return the code of an outcome string (``status:503``, ``timeout``, ``error:X``...)."""
        if outcome.startswith("status:"):
            return endpoint * CODE_SPAN + int(outcome[7:])
        for code, name in _FIXED_OUTCOMES.items():
            if name == outcome:
                return endpoint * CODE_SPAN + code
        code = self._interned.get(outcome)
        if code is None:
            code = self._interned[outcome] = _FIRST_INTERNED + len(self._interned)
            self._outcomes[code] = outcome
        return endpoint * CODE_SPAN + code

    def record(self, code: int, intended_ns: int, sent_ns: int, done_ns: int) -> None:
        """Record one finished request (times in ns from the worker's start)."""
        self.codes.append(code)
        self.intended.append(intended_ns)
        self.sent.append(sent_ns)
        self.done.append(done_ns)

    def unsent(self, intended_ns: int) -> None:
        """Count a request that was due but never sent (the run stopped first)."""
        self._unsent.append(intended_ns)

    def _outcome(self, code: int) -> str:
        return f"status:{code}" if 100 <= code < 600 else self._outcomes.get(code, f"code:{code}")

    def drain(self, before_ns: int) -> list[Window]:
        """Return and forget the windows that end at or before ``before_ns`` (worker time)."""
        last = (before_ns - self._excluded_ns) // self._window_ns - 1
        return self._take(last)

    def close(self) -> list[Window]:
        """Return every remaining window, in order, and forget them."""
        return self._take(None)

    def _take(self, last: int | None) -> list[Window]:
        codes = np.array(self.codes, dtype=np.int64)
        intended = np.array(self.intended, dtype=np.int64)
        sent = np.array(self.sent, dtype=np.int64)
        done = np.array(self.done, dtype=np.int64)
        unsent = np.array(self._unsent, dtype=np.int64)
        win = (intended - self._excluded_ns) // self._window_ns
        unsent_win = (unsent - self._excluded_ns) // self._window_ns
        warm = win < 0
        self.warmup_count += int(warm.sum())
        take = ~warm if last is None else (~warm & (win <= last))
        keep = ~warm & ~take
        unsent_take = unsent_win >= 0 if last is None else (unsent_win >= 0) & (unsent_win <= last)
        self._reset_buffers()
        for buffer, column in zip((self.codes, self.intended, self.sent, self.done),
                                  (codes, intended, sent, done)):
            buffer.frombytes(column[keep].tobytes())
        self._unsent = array("q", unsent[(unsent_win >= 0) & ~unsent_take].tobytes())
        return self._windows(win[take], codes[take], intended[take], sent[take], done[take],
                             unsent_win[unsent_take])

    def _windows(self, win: np.ndarray, codes: np.ndarray, intended: np.ndarray,
                 sent: np.ndarray, done: np.ndarray, unsent_win: np.ndarray) -> list[Window]:
        out = []
        indices = np.union1d(np.unique(win), np.unique(unsent_win))
        order = np.lexsort((codes, win))
        win, codes = win[order], codes[order]
        latency, service, lag = (done - intended)[order], (done - sent)[order], (sent - intended)[order]
        for index in indices.tolist():
            lo, hi = np.searchsorted(win, index), np.searchsorted(win, index, side="right")
            out.append(self._window(int(index), codes[lo:hi], latency[lo:hi], service[lo:hi],
                                    lag[lo:hi], int((unsent_win == index).sum())))
        return out

    def _window(self, index: int, codes: np.ndarray, latency: np.ndarray, service: np.ndarray,
                lag: np.ndarray, unsent: int) -> Window:
        lat: dict[Key, Histogram] = {}
        svc: dict[Key, Histogram] = {}
        bounds = np.flatnonzero(np.diff(codes)) + 1
        for lo, hi in zip([0, *bounds.tolist()], [*bounds.tolist(), len(codes)]):
            if lo == hi:
                continue
            endpoint, outcome = divmod(int(codes[lo]), CODE_SPAN)
            key = (self._labels[endpoint], self._outcome(outcome))
            lat[key] = Histogram.from_values(latency[lo:hi]).compact()
            svc[key] = Histogram.from_values(service[lo:hi]).compact()
        return Window(index=index, start_s=index * self._window_ns / 1e9, latency=lat,
                      service=svc, lag=Histogram.from_values(np.maximum(lag, 0)).compact(),
                      scheduled=len(codes) + unsent, sent=len(codes))
