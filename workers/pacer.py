"""Pacing without I/O: when requests are due, and which endpoint each one goes to.

``ConstantPacer`` answers "how many requests are due by ``elapsed_s``" and "when is request ``k``
intended", for worker ``i`` of ``W`` on the global schedule ``t_n = n / rate``: this worker owns
``n = i + k W``. Intended times never drift with the event loop: they are computed, not accumulated.

``WeightedPicker`` is smooth weighted round-robin (as in nginx): after any N picks no endpoint is
a whole request or more ahead of its share ``N w / sum(w)`` (with two endpoints, none is a request
behind either; with more it can be, by under n - 1), and whole cycles of ``sum(w)`` picks of
integer weights match the weights exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


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
        # n = i + kW <= elapsed * rate  <=>  k <= (elapsed * rate - i) / W
        slots = elapsed_s * self.rate_rps - self.worker_index
        if slots < 0:
            return 0
        # A tiny epsilon absorbs float error so that elapsed == intended_s(k) counts k as due.
        return math.floor(slots / self.worker_count + 1e-9) + 1


class WeightedPicker:
    """Smooth weighted round-robin over endpoint indices; deterministic, O(endpoints) per pick."""

    __slots__ = ("_weights", "_current", "_total", "_single")

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
