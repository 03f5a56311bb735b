"""Stages of users (the closed model's load stages): how many users run when
(workers.user_stages), and what a real server on 127.0.0.1 sees of them from every engine."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.spec import parse_spec
from coordinator.split import worker_plans
from tests.support.servers import concurrency_server
from tests.workers.conftest import PURE, spec_transport
from workers.load_worker import LoadWorker
from workers.user_stages import NEVER, UserStages

STAGES = UserStages(users=(2, 6, 6, 3, 0), durations_s=(1.0, 2.0, 1.0, 1.0, 1.0))


@pytest.mark.parametrize(("t_s", "users", "change_s"), [
    pytest.param(0.0, 2, 1.0, id="start"),
    pytest.param(0.999, 2, 1.0, id="before-step"),
    pytest.param(1.0, 6, 4.0, id="step-up"),
    pytest.param(3.5, 6, 4.0, id="same-count-next-stage"),
    pytest.param(4.0, 3, 5.0, id="step-down"),
    pytest.param(5.5, 0, NEVER, id="last"),
    pytest.param(99.0, 0, NEVER, id="after-the-last"),
])
def test_users_and_the_next_change(t_s: float, users: int, change_s: float) -> None:
    """The count at a time is its stage's, and the next change skips a stage of the same count."""
    assert (STAGES.users_at(t_s), STAGES.next_change_s(t_s)) == (users, change_s)


@pytest.mark.parametrize(("user", "t_s", "resume_s"), [
    pytest.param(0, 0.5, 0.5, id="runs-now"),
    pytest.param(2, 0.5, 1.0, id="waits-for-the-step-up"),
    pytest.param(4, 4.5, NEVER, id="parked-for-good"),
    pytest.param(5, 0.0, 1.0, id="peak-user"),
])
def test_a_user_resumes_at_the_first_stage_with_room(user: int, t_s: float,
                                                     resume_s: float) -> None:
    """A user beyond its stage's count waits for the next stage that has room for it."""
    assert STAGES.resume_s(user, t_s) == resume_s


@given(st.lists(st.integers(0, 20), min_size=1, max_size=6), st.floats(0.0, 10.0))
def test_exactly_the_stage_count_of_users_runs(users: list[int], t_s: float) -> None:
    """At any time, the users that run now are exactly users 0 .. count-1 of the stage."""
    stages = UserStages(users=tuple(users), durations_s=(1.5,) * len(users))
    running = [u for u in range(max(users) + 1) if stages.resume_s(u, t_s) == t_s]
    assert running == list(range(stages.users_at(t_s)))


STEP_S = 0.4  # each stage; its first and last 0.1 s are left out of the check
SERVICE_S = 0.010


@pytest.mark.parametrize(("transport", "extra"), [
    pytest.param("fast", {}, id="fast"),
    pytest.param(PURE, {}, id=PURE),
    pytest.param("fast", {"thinkTime": "1ms"}, id="fast-think"),
    pytest.param("aiohttp", {}, id="aiohttp"),
])
def test_the_server_sees_the_users_of_each_stage(transport: str, extra: dict[str, Any]) -> None:
    """Stages of 2, 6 then 3 users: inside each stage the most requests the server holds at
    once is that stage's users, on the raw engine's compiled and Python pumps, the protocol
    connections (think time) and aiohttp."""
    counts = (2, 6, 3)
    with concurrency_server(SERVICE_S) as served:
        spec = parse_spec({
            "name": "t", "target": served.url, "endpoints": [{"path": "/"}],
            "http": {"transport": spec_transport(transport)},
            "load": {"window": 0.2, **extra,
                     "stages": [{"users": n, "duration": STEP_S} for n in counts]}})
        [plan] = worker_plans(spec)
        start_at = time.time() + 0.2
        report = LoadWorker(plan).run(start_at=start_at)
        seen = list(served.requests)
    held = []
    for j in range(len(counts)):
        begin, end = start_at + j * STEP_S + 0.1, start_at + (j + 1) * STEP_S - 0.1
        held.append(max(int(r["in_flight"]) for r in seen  # type: ignore[call-overload]
                        if begin <= r["at"] < end))  # type: ignore[operator]
    assert tuple(held) == counts
    assert report.unsent == 0 and not report.stopped_early
