"""Merging workers' windows into one run: counts are summed, percentiles are never averaged.

``merge_windows`` sums the windows of every worker that share an index (the common start time makes
window ``k`` of every worker the same span of wall time); ``totals`` sums windows into one
histogram per (endpoint, outcome). Both are exact integer sums, so the merged request count is the
sum of the workers' counts and the order of merging never matters.

``WindowMerge`` is the same sum done as windows arrive, which is how a run is merged: each
worker's window joins the run-level window of its index (kept as the worker sent it: compact),
and a run-level window that can no longer change (:meth:`WindowMerge.finalise_before`) is summed
(one exact ``np.add.at`` per key over every worker's buckets), encoded once, and its counts added
to the run's totals. Memory is then the open windows (the workers' compact histograms of a few
windows) plus the finished ones, encoded. A worker's window that arrives after its index was
finished (a late one) is added into the encoded window and the totals, so nothing measured is
lost and the result equals ``merge_windows`` over the same windows in any arrival order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from workers.histogram import Histogram
from workers.recorder import Key, Window

EncodedSeries = tuple[Key, int, str]  # (endpoint, outcome), count, HdrHistogram V2 base64


def _sum_maps(maps: Iterable[Mapping[Key, Histogram]]) -> dict[Key, Histogram]:
    out: dict[Key, Histogram] = {}
    for mapping in maps:
        for key, hist in mapping.items():
            if key in out:
                out[key].add(hist)
            else:
                out[key] = hist.copy()
    return out


def merge_windows(per_worker: Iterable[Iterable[Window]]) -> list[Window]:
    """Return one window per index: the sum of every worker's window with that index."""
    groups: dict[int, list[Window]] = defaultdict(list)
    for windows in per_worker:
        for window in windows:
            groups[window.index].append(window)
    merged = []
    for index in sorted(groups):
        group = groups[index]
        merged.append(Window(
            index=index,
            start_s=group[0].start_s,
            latency=_sum_maps(w.latency for w in group),
            service=_sum_maps(w.service for w in group),
            lag=Histogram.sum(w.lag for w in group),
            scheduled=sum(w.scheduled for w in group),
            sent=sum(w.sent for w in group),
            cpu_s=max(w.cpu_s for w in group),  # the busiest worker: the one that saturates
            in_flight_max=sum(w.in_flight_max for w in group),
        ))
    return merged


def totals(windows: Iterable[Window], *, corrected: bool = True) -> dict[Key, Histogram]:
    """Return one histogram per (endpoint, outcome) over all windows (corrected or service time)."""
    windows = list(windows)
    return _sum_maps(w.latency if corrected else w.service for w in windows)


@dataclass(frozen=True, slots=True, kw_only=True)
class FinalWindow:
    """A finished run-level window: health figures, and its histograms encoded once.

    ``lag`` is kept as a (compact) histogram too, since judging sums it over the run.
    """

    index: int
    start_s: float
    scheduled: int
    sent: int
    cpu_s: float
    in_flight_max: int
    lag: Histogram
    lag_hdr: str
    latency: tuple[EncodedSeries, ...]
    service: tuple[EncodedSeries, ...]

    @property
    def requests(self) -> int:
        """Return how many requests of this window finished (any outcome)."""
        return sum(count for _, count, _ in self.latency)


class _Open:
    """A run-level window still receiving workers' windows: their histograms by key, summed
    when the window is finished (one exact ``np.add.at`` per key over all of them)."""

    __slots__ = ("start_s", "latency", "service", "lag", "scheduled", "sent", "cpu_s",
                 "in_flight_max")

    def __init__(self, start_s: float) -> None:
        self.start_s = start_s
        self.latency: dict[Key, list[Histogram]] = {}
        self.service: dict[Key, list[Histogram]] = {}
        self.lag: list[Histogram] = []
        self.scheduled = self.sent = self.in_flight_max = 0
        self.cpu_s = 0.0

    def add(self, window: Window) -> None:
        for into, hists in ((self.latency, window.latency), (self.service, window.service)):
            for key, hist in hists.items():
                into.setdefault(key, []).append(hist)
        self.lag.append(window.lag)
        self.scheduled += window.scheduled
        self.sent += window.sent
        self.cpu_s = max(self.cpu_s, window.cpu_s)  # the busiest worker: the one that saturates
        self.in_flight_max += window.in_flight_max


def _add_map(into: dict[Key, Histogram], hists: Mapping[Key, Histogram]) -> None:
    for key, hist in hists.items():
        acc = into.get(key)
        if acc is None:
            into[key] = hist.copy()  # a dense copy, added into from now on
        else:
            acc.add(hist)


def _encode(parts: Mapping[Key, list[Histogram]], totals_: dict[Key, Histogram]
            ) -> tuple[EncodedSeries, ...]:
    """Return each key's parts summed and encoded, sorted by key, after adding the sums into
    ``totals_``."""
    sums = {key: Histogram.sum(hists) for key, hists in parts.items()}
    _add_map(totals_, sums)
    return tuple((key, sums[key].total, sums[key].encode()) for key in sorted(sums))


class WindowMerge:
    """Run-level windows built as workers' windows arrive (see the module docstring).

    Example::

        merge = WindowMerge()
        for window in snapshot.windows:
            merge.add(window)
        merge.finalise_before(every_live_worker_reported_past)
        windows, latency, service = merge.finish()
    """

    def __init__(self) -> None:
        self._open: dict[int, _Open] = {}
        self._final: dict[int, FinalWindow] = {}
        self._latency: dict[Key, Histogram] = {}  # totals of the finished windows
        self._service: dict[Key, Histogram] = {}
        self.late = 0  # workers' windows that came after their index was finished

    @property
    def open_count(self) -> int:
        """Return how many run-level windows are still open (dense, in memory)."""
        return len(self._open)

    @property
    def final_count(self) -> int:
        """Return how many run-level windows are finished."""
        return len(self._final)

    def add(self, window: Window) -> None:
        """Add one worker's window into the run-level window of its index."""
        if window.index in self._final:
            self._add_late(window)
            return
        acc = self._open.get(window.index)
        if acc is None:
            acc = self._open[window.index] = _Open(window.start_s)
        acc.add(window)

    def finalise_before(self, index: int) -> int:
        """Finish every open window with an index below ``index``; return how many."""
        done = sorted(i for i in self._open if i < index)
        for i in done:
            self._finalise(i)
        return len(done)

    def _finalise(self, index: int) -> None:
        acc = self._open.pop(index)
        lag = Histogram.sum(acc.lag)
        self._final[index] = FinalWindow(
            index=index, start_s=acc.start_s, scheduled=acc.scheduled, sent=acc.sent,
            cpu_s=acc.cpu_s, in_flight_max=acc.in_flight_max, lag_hdr=lag.encode(),
            lag=lag.compact(), latency=_encode(acc.latency, self._latency),
            service=_encode(acc.service, self._service))

    def _add_late(self, window: Window) -> None:
        """Add a window whose index is finished into that window (decoded, re-encoded: rare)
        and into the run's totals."""
        self.late += 1
        final = self._final[window.index]
        _add_map(self._latency, window.latency)
        _add_map(self._service, window.service)
        lag = final.lag.copy()
        lag.add(window.lag)
        self._final[window.index] = FinalWindow(
            index=final.index, start_s=final.start_s, scheduled=final.scheduled + window.scheduled,
            sent=final.sent + window.sent, cpu_s=max(final.cpu_s, window.cpu_s),
            in_flight_max=final.in_flight_max + window.in_flight_max, lag_hdr=lag.encode(),
            lag=lag.compact(), latency=_add_encoded(final.latency, window.latency),
            service=_add_encoded(final.service, window.service))

    def finish(self) -> tuple[list[FinalWindow], dict[Key, Histogram], dict[Key, Histogram]]:
        """Finish every open window; return the windows in index order and the run's totals
        (corrected latency and service time, by key)."""
        self.finalise_before(max(self._open, default=0) + 1)
        windows = [self._final[i] for i in sorted(self._final)]
        return windows, dict(self._latency), dict(self._service)


def _add_encoded(series: tuple[EncodedSeries, ...], hists: Mapping[Key, Histogram]
                 ) -> tuple[EncodedSeries, ...]:
    """Return encoded series with ``hists`` added in (decoding only the keys it has)."""
    decoded = {key: Histogram.decode(hdr) for key, _, hdr in series}
    _add_map(decoded, hists)
    return tuple((key, decoded[key].total, decoded[key].encode()) for key in sorted(decoded))
