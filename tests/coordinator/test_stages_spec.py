"""Load stages in the spec and the plan: what is accepted, what is refused with one line, and
the steps each worker's pacer gets (coordinator.spec.StageSpec, coordinator.split)."""

from __future__ import annotations

from typing import Any

import pytest

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


def test_a_worst_window_objective_cannot_compare_with_the_baseline() -> None:
    """window: worst judges the candidate alone: with vs it is refused."""
    with pytest.raises(SpecError, match="window: worst judges the candidate alone"):
        parse_spec(spec_with({"rate": 5, "duration": 1}, baseline="http://127.0.0.1:8",
                             objectives=[{"metric": "latency-p99", "upperLimit": 1.2,
                                          "vs": "baseline", "window": "worst"}]))
