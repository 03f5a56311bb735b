"""A worker's snapshot as it travels from a Ray actor to the coordinator: packed flat.

A :class:`~workers.load_worker.Snapshot` pickled as it is costs the coordinator one numpy array per
histogram bucket list and counts list (two per histogram, eight histograms in a window of three
keys) and a dataclass restore per window, a large share of its CPU per worker-window at
scale. :func:`pack` (run in the actor) lays every histogram's non-empty buckets end to end in
two arrays (indices and counts) beside plain tuples; :func:`unpack` (in the coordinator) rebuilds
the snapshot with compact histograms that are views into those two arrays: one decode, no copy.

Invariant: ``unpack(pack(s))`` equals ``s`` (same windows, keys in the same order, equal
histograms, same progress and final report). Pure module: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from workers.histogram import Histogram
from workers.load_worker import Snapshot
from workers.recorder import Progress, Window

WIRE_VERSION = 1
Packed = tuple[Any, ...]


def pack(snapshot: Snapshot) -> Packed:
    """Return the snapshot as plain tuples plus two arrays (see the module docstring)."""
    hists: list[Histogram] = []
    windows = []
    for w in snapshot.windows:
        latency, service = tuple(w.latency), tuple(w.service)
        hists += [*(w.latency[k] for k in latency), *(w.service[k] for k in service), w.lag]
        windows.append((w.index, w.start_s, w.scheduled, w.sent, w.cpu_s, w.in_flight_max,
                        latency, service))
    p = snapshot.progress
    progress = None
    if p is not None:
        progress = (p.elapsed_s, p.requests, p.errors, p.in_flight, dict(p.by_label))
        hists.append(p.latency)
    states = [h.__getstate__() for h in hists]
    indices = (np.concatenate([i for i, _ in states]).astype(np.int32, copy=False) if states
               else np.zeros(0, dtype=np.int32))
    counts = (np.concatenate([c for _, c in states]).astype(np.int64, copy=False) if states
              else np.zeros(0, dtype=np.int64))
    return (WIRE_VERSION, tuple(windows), progress, snapshot.final,
            tuple(len(i) for i, _ in states), indices, counts)


def _histograms(sizes: tuple[int, ...], indices: np.ndarray,
                counts: np.ndarray) -> Iterator[Histogram]:
    at = 0
    for size in sizes:
        hist = Histogram.__new__(Histogram)
        hist.__setstate__((indices[at:at + size], counts[at:at + size]))
        at += size
        yield hist


def unpack(packed: Packed) -> Snapshot:
    """Return the snapshot :func:`pack` packed; ValueError when it is not one."""
    if not isinstance(packed, tuple) or len(packed) != 7 or packed[0] != WIRE_VERSION:
        raise ValueError("not a packed snapshot of this slogate version")
    _, windows, progress, final, sizes, indices, counts = packed
    hists = _histograms(sizes, indices, counts)
    out = []
    for index, start_s, scheduled, sent, cpu_s, in_flight_max, latency, service in windows:
        out.append(Window(
            index=index, start_s=start_s, scheduled=scheduled, sent=sent, cpu_s=cpu_s,
            in_flight_max=in_flight_max, latency={k: next(hists) for k in latency},
            service={k: next(hists) for k in service}, lag=next(hists)))
    live = None
    if progress is not None:
        elapsed_s, requests, errors, in_flight, by_label = progress
        live = Progress(elapsed_s=elapsed_s, requests=requests, errors=errors,
                        in_flight=in_flight, latency=next(hists), by_label=by_label)
    return Snapshot(windows=tuple(out), progress=live, final=final)
