"""Stages of users (the closed model's load stages): how many of a worker's virtual users run at
each moment (pure).

A worker starts its peak number of users (``WorkerPlan.concurrency``); during stage ``j`` only
``users[j]`` of them send. A user beyond the count parks: it does not start its next request
until a stage lets it run again, and a request it has in flight finishes as usual. Time is in
seconds from the common start; the first stage includes the warm-up; after the last stage its
count holds (the schedule's end stops every user anyway).

Example: ``UserStages(users=(2, 6), durations_s=(1.0, 2.0))`` runs users 0-1 in [0, 1) s and
users 0-5 from 1 s.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from itertools import accumulate

NEVER = float("inf")


@dataclass(frozen=True, slots=True, kw_only=True)
class UserStages:
    """A worker's users per stage (``users[j]`` for ``durations_s[j]``), stage after stage."""

    users: tuple[int, ...]
    durations_s: tuple[float, ...]
    _starts_s: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.users) != len(self.durations_s) or not self.users:
            raise ValueError("give one duration per stage, at least one stage")
        starts = (0.0, *accumulate(self.durations_s))[:-1]
        object.__setattr__(self, "_starts_s", tuple(starts))

    @classmethod
    def of(cls, steps: tuple[tuple[int, float], ...]) -> UserStages | None:
        """Return the stages of a plan's ``user_stages`` steps, or None when it has none."""
        if not steps:
            return None
        return cls(users=tuple(u for u, _ in steps), durations_s=tuple(d for _, d in steps))

    def _stage(self, t_s: float) -> int:
        return max(0, bisect.bisect_right(self._starts_s, t_s) - 1)

    def users_at(self, t_s: float) -> int:
        """Return how many users run at ``t_s``."""
        return self.users[self._stage(t_s)]

    def next_change_s(self, t_s: float) -> float:
        """Return when the count next differs from the one at ``t_s`` (:data:`NEVER`: never)."""
        stage = self._stage(t_s)
        for j in range(stage + 1, len(self.users)):
            if self.users[j] != self.users[stage]:
                return self._starts_s[j]
        return NEVER

    def resume_s(self, user: int, t_s: float) -> float:
        """Return the earliest time from ``t_s`` at which user ``user`` (from 0) runs:
        ``t_s`` itself when it runs now, :data:`NEVER` when no later stage has room for it."""
        stage = self._stage(t_s)
        if user < self.users[stage]:
            return t_s
        for j in range(stage + 1, len(self.users)):
            if user < self.users[j]:
                return self._starts_s[j]
        return NEVER
