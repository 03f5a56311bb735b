"""Merging workers' windows into one run: counts are summed, percentiles are never averaged.

``merge_windows`` sums the windows of every worker that share an index (the common start time makes
window ``k`` of every worker the same span of wall time); ``totals`` sums windows into one
histogram per (endpoint, outcome). Both are exact integer sums, so the merged request count is the
sum of the workers' counts and the order of merging never matters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from workers.histogram import Histogram
from workers.recorder import Key, Window


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
