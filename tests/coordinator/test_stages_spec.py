"""Load stages in the spec and the plan: what is accepted, what is refused with one line, and
the steps each worker's pacer gets, or for stages of users each worker's users
(coordinator.spec.StageSpec, coordinator.split)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.errors import SpecError
from coordinator.spec import parse_spec
from coordinator.split import worker_plans


def spec_with(load: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Return a spec with ``load``."""
    return {"name": "t", "target": "http://127.0.0.1:9", "load": load, **extra}


STAGES = [{"rate": 100, "duration": "2s"}, {"rate": 300, "duration": 3, "name": "peak"}]


def test_stages_set_the_peak_rate_and_the_total_duration() -> None:
    """rate is the highest stage's (for sizing), duration the sum; a saved spec validates again
    to itself, and a spec without stages saves as before (no stages key)."""
    spec = parse_spec(spec_with({"stages": STAGES}))
    assert (spec.load.rate, spec.load.duration) == (300.0, 5.0)
    dumped = spec.model_dump(mode="json", by_alias=True)
    assert parse_spec(dumped) == spec
    plain = parse_spec(spec_with({"rate": 5, "duration": 1})).model_dump(mode="json",
                                                                        by_alias=True)
    assert "stages" not in plain["load"]


def test_each_worker_gets_the_global_steps_with_the_warmup_in_the_first() -> None:
    """Two workers, two versions: every plan carries the global rates (per version x2) and the
    warm-up runs at the first stage's rate."""
    spec = parse_spec(spec_with({"stages": STAGES, "warmup": 1, "workers": 2},
                                baseline="http://127.0.0.1:8"))
    plans = worker_plans(spec)
    assert [p.stages for p in plans] == [((200.0, 3.0), (600.0, 3.0))] * 2


@pytest.mark.parametrize(("load", "message"), [
    pytest.param({"stages": [{"rate": 10, "duration": "1.5s"}]},
                 r"load.stages\[0\].duration: 1.5 s is not a whole number of windows", id="window"),
    pytest.param({"rate": 50, "stages": STAGES}, r"load.rate: set by stages \(300\); remove it",
                 id="rate-too"),
    pytest.param({"stages": STAGES, "ramp": {"duration": 1}}, "stages: not with ramp",
                 id="ramp"),
    pytest.param({"stages": STAGES, "requests": 10}, "stages: not with ramp, Poisson arrivals or "
                 "requests", id="requests"),
    pytest.param({"stages": [{"rate": 0, "duration": 1}]}, r"load.stages\[0\].rate",
                 id="zero-rate"),
    pytest.param({"stages": []}, r"load.stages", id="empty"),
])
def test_bad_stages_are_one_line_spec_errors(load: dict[str, Any], message: str) -> None:
    """A stage plan the pacer could not run is refused at the spec, naming the field."""
    with pytest.raises(SpecError, match=message) as caught:
        parse_spec(spec_with(load))
    assert "\n" not in str(caught.value)


USERS = [{"users": 4, "duration": "2s"}, {"users": 7, "duration": 1, "name": "peak"},
         {"users": 1, "duration": 1}]


def test_stages_of_users_set_the_peak_concurrency_and_the_total_duration() -> None:
    """Stages of users run the closed model: concurrency is the highest stage's, duration the
    sum; a saved spec validates again to itself and writes no rate."""
    spec = parse_spec(spec_with({"stages": USERS, "thinkTime": "5ms"}))
    assert (spec.load.model, spec.load.concurrency, spec.load.duration) == ("closed", 7, 4.0)
    dumped = spec.model_dump(mode="json", by_alias=True)
    assert "rate" not in dumped["load"]["stages"][0]
    assert parse_spec(dumped) == spec


def test_each_worker_runs_its_share_of_every_stages_users() -> None:
    """Three workers: each stage's users split as concurrency is (larger shares first), the
    shares of a stage summing to its users, a worker's peak share its concurrency, the warm-up
    in the first stage; no rate steps."""
    spec = parse_spec(spec_with({"stages": USERS, "warmup": 1, "workers": 3}))
    plans = worker_plans(spec)
    assert [p.user_stages for p in plans] == [
        ((2, 3.0), (3, 1.0), (1, 1.0)),
        ((1, 3.0), (2, 1.0), (0, 1.0)),
        ((1, 3.0), (2, 1.0), (0, 1.0)),
    ]
    assert [p.concurrency for p in plans] == [3, 2, 2]
    assert {p.stages for p in plans} == {()}


@given(st.lists(st.integers(1, 50), min_size=1, max_size=5), st.integers(1, 8))
def test_stage_shares_sum_to_the_stages_users(users: list[int], workers: int) -> None:
    """Whatever the stages and workers (at most the peak), every stage's shares sum to its
    users and no worker ever runs more users than it starts (its concurrency)."""
    workers = min(workers, max(users))
    spec = parse_spec(spec_with({"workers": workers,
                                 "stages": [{"users": n, "duration": 1} for n in users]}))
    plans = worker_plans(spec)
    for j, n in enumerate(users):
        assert sum(p.user_stages[j][0] for p in plans) == n
    assert all(max(u for u, _ in p.user_stages) == p.concurrency for p in plans)


@pytest.mark.parametrize(("load", "message"), [
    pytest.param({"stages": [*STAGES, {"users": 3, "duration": 1}]},
                 r"^spec: load.stages\[2\]: users in stages of rate; give every stage rate",
                 id="users-after-rates"),
    pytest.param({"stages": [*USERS, {"rate": 3, "duration": 1}]},
                 r"^spec: load.stages\[3\]: rate in stages of users; give every stage users",
                 id="rate-after-users"),
    pytest.param({"stages": [{"users": 0, "duration": 1}]},
                 r"^spec: load.stages\[0\].users: Input should be greater than 0$", id="zero"),
    pytest.param({"stages": [{"users": -2, "duration": 1}]},
                 r"^spec: load.stages\[0\].users: Input should be greater than 0$",
                 id="negative"),
    pytest.param({"stages": [{"users": 2, "rate": 5, "duration": 1}]},
                 r"^spec: load.stages\[0\]: set rate \(requests/s\) or users \(virtual users\), "
                 "not both$", id="users-and-rate"),
    pytest.param({"stages": [{"duration": 1}]},
                 r"^spec: load.stages\[0\]: set rate \(requests/s\) or users", id="neither"),
    pytest.param({"rate": 10, "stages": USERS},
                 r"^spec: load.rate: stages of users run the closed model", id="load-rate"),
    pytest.param({"concurrency": 3, "stages": USERS},
                 r"^spec: load.concurrency: set by stages \(7\); remove it$", id="concurrency"),
    pytest.param({"concurrency": 3, "stages": STAGES},
                 r"^spec: load.concurrency: stages of rates run the open model",
                 id="concurrency-with-rates"),
    pytest.param({"stages": [{"users": 2, "duration": 1}], "workers": 3},
                 r"^load.stages: the peak of 2 users cannot be split over 3 workers", id="workers"),
])
def test_bad_stages_of_users_are_one_line_spec_errors(load: dict[str, Any], message: str) -> None:
    """Mixing rates and users, users of 0 or less, users with a rate: refused at the spec in
    one line naming the stage (or the field) that is wrong."""
    with pytest.raises(SpecError, match=message) as caught:
        worker_plans(parse_spec(spec_with(load)))
    assert "\n" not in str(caught.value)


def test_a_worst_window_objective_cannot_compare_with_the_baseline() -> None:
    """window: worst judges the candidate alone: with vs it is refused."""
    with pytest.raises(SpecError, match="window: worst judges the candidate alone"):
        parse_spec(spec_with({"rate": 5, "duration": 1}, baseline="http://127.0.0.1:8",
                             objectives=[{"metric": "latency-p99", "upperLimit": 1.2,
                                          "vs": "baseline", "window": "worst"}]))
