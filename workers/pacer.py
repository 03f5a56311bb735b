"""Pacing without I/O: when requests are due, and which endpoint each one goes to.

Four schedules share one interface, ``intended_s(k)`` and ``due(elapsed_s)``: constant rate,
a linear ramp followed by a constant rate, steps of constant rates (load stages), and Poisson
arrivals.

``ConstantPacer`` answers "how many requests are due by ``elapsed_s``" and "when is request ``k``
intended", for worker ``i`` of ``W`` on the global schedule ``t_n = n / rate``: this worker owns
``n = i + k W``. Intended times never drift with the event loop: they are computed, not accumulated.

``WeightedPicker`` is smooth weighted round-robin (as in nginx): after any N picks no endpoint is
a whole request or more ahead of its share ``N w / sum(w)`` (with two endpoints, none is a request
behind either; with more it can be, by under n - 1), and whole cycles of ``sum(w)`` picks of
integer weights match the weights exactly.

``InterleavedPicker`` serves several versions of the same endpoints (baseline and candidate):
the requests are laid out version by version, ``[v0 e0 .. v0 eN, v1 e0 .. v1 eN]``; the weighted
round-robin picks an endpoint over the endpoints' weights, and every version then gets that
endpoint in turn, so the versions strictly alternate (B, C, B, C...) with the same endpoint
sequence each. Picking over all ``V x N`` requests at once would not: with weights 3:1 it gives
B, C, B, B, C, C, B, C, and the candidate's ``list`` always follows the baseline's.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def _floor_slots(x: float) -> int:
    """Return floor(x), forgiving float error just below a whole number (relative 1e-12)."""
    return math.floor(x + max(1e-9, abs(x) * 1e-12))


def _owned_due(n_max: int, worker_index: int, worker_count: int) -> int:
    """Return how many global slots ``0..n_max`` belong to worker ``i`` (slots ``i + kW``)."""
    if n_max < worker_index:
        return 0
    return (n_max - worker_index) // worker_count + 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ConstantPacer:
    """Constant-rate schedule of one worker's share of a global rate.

    Example: ``ConstantPacer(rate_rps=100, worker_index=1, worker_count=2)`` intends its requests
    at 0.01 s, 0.03 s, 0.05 s... (the odd slots of a 100 req/s schedule).
    """

    rate_rps: float
    worker_index: int = 0
    worker_count: int = 1

    def intended_s(self, k: int) -> float:
        """Return the intended send time (s from start) of this worker's k-th request."""
        return (self.worker_index + k * self.worker_count) / self.rate_rps

    def due(self, elapsed_s: float) -> int:
        """Return how many of this worker's requests are intended at or before ``elapsed_s``."""
        if elapsed_s < 0:
            return 0
        return _owned_due(_floor_slots(elapsed_s * self.rate_rps), self.worker_index,
                          self.worker_count)


class _ByArrivals:
    """A schedule given by its expected arrivals (``_cumulative``) and their inverse
    (``_time_of_slot``); worker ``i`` of ``W`` owns global slots ``i + kW``."""

    __slots__ = ()
    worker_index: int
    worker_count: int

    def _cumulative(self, t: float) -> float:
        raise NotImplementedError

    def _time_of_slot(self, n: int) -> float:
        raise NotImplementedError

    def intended_s(self, k: int) -> float:
        """Return the intended send time (s from start) of this worker's k-th request."""
        return self._time_of_slot(self.worker_index + k * self.worker_count)

    def due(self, elapsed_s: float) -> int:
        """Return how many of this worker's requests are intended at or before ``elapsed_s``."""
        if elapsed_s < 0:
            return 0
        return _owned_due(_floor_slots(self._cumulative(elapsed_s)), self.worker_index,
                          self.worker_count)


@dataclass(frozen=True, slots=True, kw_only=True)
class RampPacer(_ByArrivals):
    """A linear ramp of the global rate from ``from_rps`` to ``to_rps`` over ``ramp_s``, then
    ``rate_rps`` for ever; worker ``i`` of ``W`` owns global slots ``i + kW``.

    Slot ``n`` is intended when the expected number of arrivals, the integral of the rate,
    reaches ``n``: ``from*t + (to - from)*t^2 / (2*ramp_s)`` during the ramp.
    """

    rate_rps: float
    from_rps: float
    to_rps: float
    ramp_s: float
    worker_index: int = 0
    worker_count: int = 1

    @property
    def _ramp_slots(self) -> float:
        return (self.from_rps + self.to_rps) / 2 * self.ramp_s

    def _cumulative(self, t: float) -> float:
        if t <= self.ramp_s:
            slope = (self.to_rps - self.from_rps) / self.ramp_s
            return self.from_rps * t + slope * t * t / 2
        return self._ramp_slots + (t - self.ramp_s) * self.rate_rps

    def _time_of_slot(self, n: int) -> float:
        if n >= self._ramp_slots:
            return self.ramp_s + (n - self._ramp_slots) / self.rate_rps
        if n == 0:
            return 0.0
        slope = (self.to_rps - self.from_rps) / self.ramp_s
        # Solve from*t + slope*t^2/2 = n for the non-negative root, in the form without
        # cancellation: (-from + sqrt(D)) / slope loses digits when the ramp is nearly flat.
        return 2 * n / (self.from_rps + math.sqrt(self.from_rps ** 2 + 2 * slope * n))


@dataclass(frozen=True, slots=True, kw_only=True)
class StepPacer(_ByArrivals):
    """Load stages: the global rate holds ``rates_rps[j]`` for ``durations_s[j]``, stage after
    stage, then the last rate for ever; worker ``i`` of ``W`` owns global slots ``i + kW``.

    Slot ``n`` is intended when the expected number of arrivals (the integral of the rate)
    reaches ``n``, as in :class:`RampPacer`, so a stage's share of the schedule is exactly
    ``rate * duration`` slots and no slot is lost or doubled at a step.

    Example: ``StepPacer(rates_rps=(100, 200), durations_s=(1, 1))`` intends slot 150 at 1.25 s.
    """

    rates_rps: tuple[float, ...]
    durations_s: tuple[float, ...]
    worker_index: int = 0
    worker_count: int = 1
    _starts_s: tuple[float, ...] = field(init=False, repr=False)  # each stage's start time
    _slots_before: tuple[float, ...] = field(init=False, repr=False)  # slots before it

    def __post_init__(self) -> None:
        times, slots = [0.0], [0.0]
        for rate, duration in zip(self.rates_rps[:-1], self.durations_s[:-1], strict=True):
            times.append(times[-1] + duration)
            slots.append(slots[-1] + rate * duration)
        object.__setattr__(self, "_starts_s", tuple(times))
        object.__setattr__(self, "_slots_before", tuple(slots))

    def _time_of_slot(self, n: int) -> float:
        stage = bisect.bisect_right(self._slots_before, n) - 1
        return self._starts_s[stage] + (n - self._slots_before[stage]) / self.rates_rps[stage]

    def _cumulative(self, t: float) -> float:
        stage = bisect.bisect_right(self._starts_s, t) - 1
        return self._slots_before[stage] + (t - self._starts_s[stage]) * self.rates_rps[stage]


class PoissonPacer:
    """Poisson arrivals at ``rate_rps`` for one worker (its share of the global rate).

    The superposition of the workers' independent Poisson processes is a Poisson process at the
    global rate. Arrival times are drawn in chunks from a seeded generator, so a run with a
    seed is reproducible; memory holds one chunk at a time beyond what has been asked for.
    """

    __slots__ = ("_chunk", "_offset", "_rng", "_times", "rate_rps")

    def __init__(self, *, rate_rps: float, seed: int | None = None, worker_index: int = 0,
                 chunk: int = 65536) -> None:
        self.rate_rps = rate_rps
        self._rng = np.random.default_rng(None if seed is None else [seed, worker_index])
        self._times = np.empty(0)
        self._offset = 0  # index of self._times[0] in the whole sequence
        self._chunk = chunk

    def _extend_to(self, k: int) -> None:
        while self._offset + len(self._times) <= k:
            last = self._times[-1] if len(self._times) else 0.0
            gaps = self._rng.exponential(1.0 / self.rate_rps, self._chunk)
            fresh = last + np.cumsum(gaps)
            keep = self._times[-self._chunk:]  # keep a chunk of history for due() lookups
            self._offset += len(self._times) - len(keep)
            self._times = np.concatenate([keep, fresh])

    def intended_s(self, k: int) -> float:
        """Return the intended send time of this worker's k-th request (k must not go back more
        than one chunk behind the furthest k asked for)."""
        self._extend_to(k)
        if k < self._offset:
            raise ValueError(f"arrival {k} is more than one chunk behind the furthest asked for")
        return float(self._times[k - self._offset])

    def due(self, elapsed_s: float) -> int:
        """Return how many arrivals are at or before ``elapsed_s``."""
        if elapsed_s < 0:
            return 0
        while not len(self._times) or self._times[-1] <= elapsed_s:
            self._extend_to(self._offset + len(self._times))
        return self._offset + int(np.searchsorted(self._times, elapsed_s, side="right"))


Pacer = ConstantPacer | RampPacer | StepPacer | PoissonPacer


def make_pacer(*, rate_rps: float, worker_index: int, worker_count: int,
               arrival: str = "constant", seed: int | None = None, ramp_s: float = 0.0,
               ramp_from_rps: float = 0.0, ramp_to_rps: float | None = None,
               stages: tuple[tuple[float, float], ...] = ()) -> Pacer:
    """Return the pacer for one worker's share of a global schedule (see the classes);
    ``stages``: (global rate, duration) steps (:class:`StepPacer`)."""
    if stages:
        return StepPacer(rates_rps=tuple(r for r, _ in stages),
                         durations_s=tuple(d for _, d in stages), worker_index=worker_index,
                         worker_count=worker_count)
    if arrival == "poisson":
        return PoissonPacer(rate_rps=rate_rps / worker_count, seed=seed, worker_index=worker_index)
    if ramp_s > 0:
        return RampPacer(rate_rps=rate_rps, from_rps=ramp_from_rps,
                         to_rps=ramp_to_rps if ramp_to_rps is not None else rate_rps,
                         ramp_s=ramp_s, worker_index=worker_index, worker_count=worker_count)
    return ConstantPacer(rate_rps=rate_rps, worker_index=worker_index, worker_count=worker_count)


class WeightedPicker:
    """Smooth weighted round-robin over endpoint indices; deterministic, O(endpoints) per pick."""

    __slots__ = ("_current", "_single", "_total", "_weights")

    def __init__(self, weights: Sequence[float]) -> None:
        if not weights or any(w <= 0 for w in weights):
            raise ValueError("weights must be a non-empty list of positive numbers")
        self._weights = list(weights)
        self._current = [0.0] * len(weights)
        self._total = float(sum(weights))
        self._single = len(weights) == 1

    def pick(self) -> int:
        """Return the index of the next endpoint."""
        if self._single:
            return 0
        current = self._current
        best = 0
        for index, weight in enumerate(self._weights):
            current[index] += weight
            if current[index] > current[best]:
                best = index
        current[best] -= self._total
        return best


class InterleavedPicker:
    """Strict alternation of ``versions`` versions over one weighted endpoint sequence.

    Example: ``InterleavedPicker([3, 1, 3, 1], versions=2)`` picks 0, 2, 0, 2, 1, 3, 0, 2: the
    baseline's and then the candidate's ``list``, twice, then both ``order``s, and so on.
    """

    __slots__ = ("_count", "_endpoint", "_endpoints", "_turn", "_versions")

    def __init__(self, weights: Sequence[float], versions: int) -> None:
        count, left = divmod(len(weights), versions) if versions > 0 else (0, 1)
        if left or not count:
            raise ValueError(f"{len(weights)} requests are not {versions} versions of the "
                             "same endpoints")
        own = list(weights[:count])
        if any(list(weights[v * count:(v + 1) * count]) != own for v in range(versions)):
            raise ValueError("each version must weight its endpoints alike")
        self._endpoints = WeightedPicker(own)
        self._count = count
        self._versions = versions
        self._turn = 0
        self._endpoint = 0

    def pick(self) -> int:
        """Return the index of the next request: the next version's copy of the endpoint."""
        if self._turn == 0:
            self._endpoint = self._endpoints.pick()
        index = self._turn * self._count + self._endpoint
        self._turn = (self._turn + 1) % self._versions
        return index


class OnePicker:
    """The picker of a single endpoint: ``pick`` is a C call that returns 0 (the engines' hot
    path calls it for every request of an endpoint with request data)."""

    __slots__ = ("pick",)

    def __init__(self) -> None:
        self.pick = itertools.repeat(0).__next__


def make_picker(weights: Sequence[float], versions: int = 1
                ) -> WeightedPicker | InterleavedPicker | OnePicker:
    """Return the picker of one worker: weighted round-robin, interleaved when there are
    several versions (see the module docstring)."""
    if versions == 1 and len(weights) == 1 and weights[0] > 0:
        return OnePicker()
    return WeightedPicker(weights) if versions == 1 else InterleavedPicker(weights, versions)
