"""Load stages in the pacer (workers.pacer.StepPacer): steps of constant rates, split exactly
between workers like every schedule."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from workers.pacer import StepPacer, make_pacer

STAGES = st.lists(st.tuples(st.integers(1, 500).map(float), st.integers(1, 5).map(float)),
                  min_size=1, max_size=4)


@given(STAGES)
def test_each_stage_holds_rate_times_duration_slots(stages: list[tuple[float, float]]) -> None:
    """By the end of stage j exactly sum(rate * duration) slots are due, no more, no fewer."""
    pacer = StepPacer(rates_rps=tuple(r for r, _ in stages),
                      durations_s=tuple(d for _, d in stages))
    end, slots = 0.0, 0.0
    for rate, duration in stages:
        end += duration
        slots += rate * duration
        assert pacer.due(end - 1e-6) <= slots <= pacer.due(end + 1e-9)


@given(STAGES, st.integers(1, 5))
def test_workers_together_send_the_one_global_schedule(stages: list[tuple[float, float]],
                                                       workers: int) -> None:
    """Worker i owns slots i, i + W, ...: the workers' intended times together are the global
    schedule's, each once."""
    total = sum(r * d for r, d in stages)
    one = make_pacer(rate_rps=0, worker_index=0, worker_count=1, stages=tuple(stages))
    glob = [one.intended_s(n) for n in range(int(total))]
    split = sorted(make_pacer(rate_rps=0, worker_index=i, worker_count=workers,
                              stages=tuple(stages)).intended_s(k)
                   for i in range(workers) for k in range(len(range(i, int(total), workers))))
    assert split == sorted(glob)
    assert glob == sorted(glob)


def test_a_step_changes_the_spacing_at_its_start() -> None:
    """100 req/s for 1 s then 200 req/s: slot 99 at 0.99 s, slot 100 at 1 s, slot 101 at
    1.005 s; after the last stage its rate continues."""
    pacer = StepPacer(rates_rps=(100.0, 200.0), durations_s=(1.0, 1.0))
    assert [pacer.intended_s(n) for n in (99, 100, 101)] == [0.99, 1.0, 1.005]
    assert pacer.intended_s(300) == 2.0 and pacer.intended_s(302) == 2.01
