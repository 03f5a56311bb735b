"""Recording of request results into windows of histograms, with no I/O and no clock of its own.

The engine calls :meth:`Recorder.record` once per finished request with times it measured
(nanoseconds from the worker's start) and later :meth:`Recorder.close` (or ``drain`` for the
windows that can no longer change). Raw latencies are buffered in ``array('q')`` per window and
(endpoint, outcome) and bucketed in one numpy call per buffer when a window closes, so recording
costs a list lookup and an append per request, not a histogram update.

Coordinated omission: ``latency`` is measured from the request's *intended* send time (wrk2's
correction); ``service`` from when it was really sent. In the closed model the two are equal.
A request belongs to the window of its intended send time, counted from the end of the warm-up.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from collections.abc import Mapping

from workers.histogram import Histogram

Key = tuple[str, str]  # (endpoint label, outcome)


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """One window of one worker (or of a merged run): histograms and generator health.

    ``scheduled`` counts requests intended in the window, ``sent`` those actually sent (late or
    not); ``lag`` is the histogram of send time minus intended time.
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


@dataclass(slots=True)
class _Buffer:
    latency: dict[Key, array] = field(default_factory=dict)
    service: dict[Key, array] = field(default_factory=dict)
    lag: array = field(default_factory=lambda: array("q"))
    scheduled: int = 0
    sent: int = 0


class Recorder:
    """Buffers per-request results and turns them into :class:`Window` values.

    Example::

        rec = Recorder(window_s=1.0, warmup_ns=0)
        rec.record("GET /hello", "status:200", intended_ns=0, sent_ns=5_000, done_ns=2_000_000)
        [window] = rec.close()
    """

    def __init__(self, *, window_s: float, warmup_ns: int = 0) -> None:
        self._window_ns = int(window_s * 1e9)
        self._warmup_ns = warmup_ns
        self._buffers: dict[int, _Buffer] = {}
        self.warmup_count = 0

    def _buffer(self, intended_ns: int) -> _Buffer | None:
        offset = intended_ns - self._warmup_ns
        if offset < 0:
            return None
        index = offset // self._window_ns
        buffer = self._buffers.get(index)
        if buffer is None:
            buffer = self._buffers[index] = _Buffer()
        return buffer

    def scheduled(self, intended_ns: int, sent_ns: int, *, warmup: bool = False) -> None:
        """Count a request as scheduled and sent, with its schedule lag, unless it is warm-up."""
        buffer = None if warmup else self._buffer(intended_ns)
        if buffer is None:
            return
        buffer.scheduled += 1
        buffer.sent += 1
        buffer.lag.append(max(0, sent_ns - intended_ns))

    def unsent(self, intended_ns: int) -> None:
        """Count a request that was due but never sent (the run stopped first)."""
        buffer = self._buffer(intended_ns)
        if buffer is not None:
            buffer.scheduled += 1

    def record(
        self, endpoint: str, outcome: str, *, intended_ns: int, sent_ns: int, done_ns: int,
        warmup: bool = False,
    ) -> None:
        """Record one finished request; warm-up requests (by flag or by time) are only counted."""
        buffer = None if warmup else self._buffer(intended_ns)
        if buffer is None:
            self.warmup_count += 1
            return
        key = (endpoint, outcome)
        values = buffer.latency.get(key)
        if values is None:
            values = buffer.latency[key] = array("q")
            buffer.service[key] = array("q")
        values.append(done_ns - intended_ns)
        buffer.service[key].append(done_ns - sent_ns)

    def drain(self, before_ns: int) -> list[Window]:
        """Return and forget the windows that end at or before ``before_ns`` (worker time)."""
        ready = [i for i in self._buffers
                 if self._warmup_ns + (i + 1) * self._window_ns <= before_ns]
        return [self._window(i, self._buffers.pop(i)) for i in sorted(ready)]

    def close(self) -> list[Window]:
        """Return every remaining window, in order, and forget them."""
        windows = [self._window(i, self._buffers[i]) for i in sorted(self._buffers)]
        self._buffers.clear()
        return windows

    def _window(self, index: int, buffer: _Buffer) -> Window:
        return Window(
            index=index,
            start_s=index * self._window_ns / 1e9,
            latency={k: Histogram.from_values(v) for k, v in buffer.latency.items()},
            service={k: Histogram.from_values(v) for k, v in buffer.service.items()},
            lag=Histogram.from_values(buffer.lag),
            scheduled=buffer.scheduled,
            sent=buffer.sent,
        )
