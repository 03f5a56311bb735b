"""Tests for the load shapes of workers.pacer: the linear ramp and Poisson arrivals (pure)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from workers.pacer import Pacer, PoissonPacer, RampPacer, make_pacer

FAST = settings(max_examples=200, deadline=None)


def floor_slots(x: float) -> int:
    """Return floor(x) with the pacers' documented tolerance (a slot within 1e-9 below counts)."""
    return math.floor(x + max(1e-9, abs(x) * 1e-12))


@st.composite
def ramps(draw: st.DrawFn, max_slots: float = 5e4, worker_count: int = 1,
          worker_index: int = 0) -> RampPacer:
    """Draw a RampPacer the spec allows: from >= 0, to > 0, up or down, steep or nearly flat."""
    from_rps = draw(st.floats(min_value=0.0, max_value=5e3))
    if from_rps > 1 and draw(st.booleans()):  # nearly flat: to within 1e-6 (relative) of from
        to_rps = from_rps * (1 + draw(st.floats(min_value=-1e-6, max_value=1e-6)))
    else:
        to_rps = draw(st.floats(min_value=1e-2, max_value=5e3))
    ramp_s = draw(st.floats(min_value=0.05, max_value=120.0))
    ramp_s = min(ramp_s, max_slots / ((from_rps + to_rps) / 2))
    return RampPacer(rate_rps=draw(st.floats(min_value=1e-2, max_value=5e3)), from_rps=from_rps,
                     to_rps=to_rps, ramp_s=ramp_s, worker_index=worker_index,
                     worker_count=worker_count)


def area(p: RampPacer) -> float:
    """Return the expected arrivals during the ramp: the area under the rate, (from + to) T / 2."""
    return (p.from_rps + p.to_rps) / 2 * p.ramp_s


# --- RampPacer ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("from_rps", "to_rps", "ramp_s", "rate_rps", "n", "seconds"),
    [
        # Slot n at the t where from*t + (to - from) t^2 / (2T) = n, solved by hand.
        pytest.param(0, 100, 10, 100, 0, 0.0, id="first-slot-at-start-from-zero"),
        pytest.param(0, 100, 10, 100, 5, 1.0, id="from-zero-slot5-at-1s"),  # 5 t^2 = 5
        pytest.param(0, 100, 10, 100, 20, 2.0, id="from-zero-slot20-at-2s"),  # 5 t^2 = 20
        pytest.param(10, 30, 4, 30, 30, 2.0, id="from-ten-slot30-at-2s"),  # 10 t + 2.5 t^2 = 30
        pytest.param(50, 50, 2, 50, 25, 0.5, id="flat-ramp-is-constant"),
        pytest.param(0, 100, 10, 100, 500, 10.0, id="last-ramp-slot-at-ramp-end"),
        pytest.param(0, 100, 10, 200, 502, 10.01, id="after-ramp-spacing-is-1-over-rate"),
        pytest.param(100, 20, 2, 20, 120, 2.0, id="ramp-down-ends-on-its-area"),  # 100 t - 20 t^2
        pytest.param(100, 20, 2, 20, 80, 1.0, id="ramp-down-slot80-at-1s"),
    ],
)
def test_ramp_slot_times_table(
    from_rps: float, to_rps: float, ramp_s: float, rate_rps: float, n: int, seconds: float
) -> None:
    """Slot n is intended when the integral of the rate reaches n (hand-solved cases)."""
    pacer = RampPacer(rate_rps=rate_rps, from_rps=from_rps, to_rps=to_rps, ramp_s=ramp_s)
    assert pacer.intended_s(n) == pytest.approx(seconds, rel=1e-12, abs=1e-12)


@FAST
@given(ramps(), st.lists(st.floats(min_value=-1.0, max_value=300.0), min_size=2, max_size=30))
def test_ramp_due_is_monotone(pacer: RampPacer, ts: list[float]) -> None:
    """due(t) never decreases as t grows, through the ramp and after it."""
    counts = [pacer.due(t) for t in sorted(ts)]
    assert counts == sorted(counts)


@FAST
@given(ramps(), st.data())
def test_ramp_due_at_intended_time_counts_that_request(pacer: RampPacer,
                                                       data: st.DataObject) -> None:
    """At its intended time slot k is due (k + 1 in all); halfway after slot k - 1 it is not.

    Slots are drawn around the start, around the ramp's end and after it. Holds for nearly flat
    ramps too, where solving the quadratic naively loses digits to cancellation.
    """
    end = floor_slots(area(pacer))
    k = data.draw(st.one_of(st.integers(0, 50), st.integers(max(0, end - 50), end + 50),
                            st.integers(0, end + 1000)))
    t = pacer.intended_s(k)
    assert pacer.due(t) == k + 1
    if k > 0:
        before = pacer.intended_s(k - 1)
        assert before < t
        assert pacer.due((before + t) / 2) == k


@FAST
@given(ramps())
def test_ramp_holds_its_area_in_slots(pacer: RampPacer) -> None:
    """By the ramp's end floor((from + to) / 2 * T) + 1 slots are due: slots 0..floor(area)."""
    assert pacer.due(pacer.ramp_s) == floor_slots(area(pacer)) + 1


@FAST
@given(ramps(), st.integers(1, 10_000))
def test_after_the_ramp_spacing_is_one_over_rate(pacer: RampPacer, j: int) -> None:
    """Past the ramp, consecutive slots are 1/rate apart (float error: a few ulps of the time)."""
    first = math.ceil(area(pacer)) + j
    gap = pacer.intended_s(first + 1) - pacer.intended_s(first)
    assert gap == pytest.approx(1 / pacer.rate_rps, rel=1e-6)


@FAST
@given(st.integers(1, 6), st.data())
def test_ramp_workers_cover_every_global_slot_once(workers: int, data: st.DataObject) -> None:
    """Worker i of W intends exactly global slots i, i + W, ...; together they make the schedule."""
    whole = data.draw(ramps(max_slots=2000))
    share = [RampPacer(rate_rps=whole.rate_rps, from_rps=whole.from_rps, to_rps=whole.to_rps,
                       ramp_s=whole.ramp_s, worker_index=i, worker_count=workers)
             for i in range(workers)]
    n = floor_slots(area(whole)) + 50
    for i, pacer in enumerate(share):
        slots = range(i, n, workers)
        assert [pacer.intended_s(k) for k in range(len(slots))] == \
            [whole.intended_s(s) for s in slots]
    for t in data.draw(st.lists(st.floats(min_value=0, max_value=whole.ramp_s * 1.5), max_size=10)):
        assert sum(p.due(t) for p in share) == whole.due(t)


def test_make_pacer_ramps_to_the_rate_by_default() -> None:
    """make_pacer with a ramp and no end rate ramps to the run's rate, for each worker's share."""
    pacer = make_pacer(rate_rps=200, worker_index=1, worker_count=2, ramp_s=5, ramp_from_rps=10)
    assert pacer == RampPacer(rate_rps=200, from_rps=10, to_rps=200, ramp_s=5,
                              worker_index=1, worker_count=2)


# --- PoissonPacer -------------------------------------------------------------------------------


def arrivals(pacer: Pacer, n: int) -> np.ndarray:
    """Return the first n intended times of a pacer."""
    return np.array([pacer.intended_s(k) for k in range(n)])


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        pytest.param((7, 0), (7, 0), True, id="same-seed-same-worker"),
        pytest.param((7, 0), (7, 1), False, id="same-seed-other-worker"),
        pytest.param((7, 0), (8, 0), False, id="other-seed"),
    ],
)
def test_poisson_is_reproducible_per_seed_and_worker(
    a: tuple[int, int], b: tuple[int, int], same: bool
) -> None:
    """A seed fixes each worker's arrivals; workers of one seed draw different arrivals."""
    first, second = (arrivals(PoissonPacer(rate_rps=100, seed=s, worker_index=i), 1000)
                     for s, i in (a, b))
    assert np.array_equal(first, second) == same


def test_poisson_without_seed_differs_between_runs() -> None:
    """Without a seed two pacers draw different arrivals (equal 64-bit floats: probability ~0)."""
    assert not np.array_equal(arrivals(PoissonPacer(rate_rps=100), 10),
                              arrivals(PoissonPacer(rate_rps=100), 10))


def test_poisson_gaps_are_exponential_at_the_rate() -> None:
    """Over 100k arrivals the gaps have mean 1/rate and variance 1/rate^2, and pass a KS test.

    Gaps of a Poisson process are i.i.d. Exp(rate): standard deviation 1/rate, so the mean of n
    gaps has a relative standard error of 1/sqrt(n) (0.32 % at n = 100k); its variance estimate
    has a relative standard error of sqrt((mu4 - sigma^4) / n) / sigma^2 = sqrt(8/n) (0.89 %),
    since the 4th central moment of an exponential is 9 sigma^4. Both are checked to within 5
    standard errors, which a correct pacer misses with probability < 1e-6 for any seed; constant
    or uniform gaps (variance 0 or 1/3) fail by far. 100k spans two of the pacer's 65536-chunks.
    """
    n, rate = 100_000, 250.0
    times = arrivals(PoissonPacer(rate_rps=rate, seed=42), n)
    gaps = np.diff(np.concatenate([[0.0], times]))
    assert abs(gaps.mean() * rate - 1) <= 5 / math.sqrt(n)
    assert abs(gaps.var() * rate**2 - 1) <= 5 * math.sqrt(8 / n)
    assert stats.kstest(gaps, "expon", args=(0, 1 / rate)).pvalue > 1e-3


def test_poisson_chunking_does_not_change_the_schedule() -> None:
    """Drawing arrivals in chunks of 16 or 65536 gives the same times (one stream of draws).

    Only the order of float additions differs (last + cumsum per chunk), hence rel=1e-12.
    """
    small = arrivals(PoissonPacer(rate_rps=50, seed=3, chunk=16), 2000)
    large = arrivals(PoissonPacer(rate_rps=50, seed=3), 2000)
    np.testing.assert_allclose(small, large, rtol=1e-12)


@pytest.mark.parametrize("chunk", [pytest.param(c, id=f"chunk-{c}") for c in (1, 16, 65536)])
def test_poisson_due_agrees_with_intended_times(chunk: int) -> None:
    """Intended times strictly increase; due(t_k) = k + 1 and just before t_k due is k."""
    pacer = PoissonPacer(rate_rps=1000, seed=9, chunk=chunk)
    times = arrivals(pacer, 3000)
    assert np.all(np.diff(times) > 0) and times[0] > 0
    fresh = PoissonPacer(rate_rps=1000, seed=9, chunk=chunk)
    assert fresh.due(-1.0) == 0 and fresh.due(0.0) == 0
    for k in range(0, 3000, 7):
        assert fresh.due(times[k]) == k + 1
        assert fresh.due(np.nextafter(times[k], 0)) == k


@pytest.mark.parametrize(
    ("ahead", "back"),
    [
        pytest.param(1000, 1, id="one-back"),
        pytest.param(1000, 16, id="a-whole-chunk-back"),
        pytest.param(17, 16, id="back-to-the-start"),
        pytest.param(40, 0, id="same-slot-again"),
    ],
)
def test_poisson_can_look_back_within_one_chunk(ahead: int, back: int) -> None:
    """After asking far ahead, asking up to one chunk back gives the same time as a fresh pacer."""
    reference = arrivals(PoissonPacer(rate_rps=100, seed=1, chunk=16), ahead + 1)  # in order
    pacer = PoissonPacer(rate_rps=100, seed=1, chunk=16)
    assert pacer.intended_s(ahead) == reference[ahead]
    assert [pacer.intended_s(k) for k in range(ahead - back, ahead + 1)] == \
        list(reference[ahead - back:])


def test_poisson_due_far_ahead_then_intended_back() -> None:
    """due() far ahead moves the pacer on; the slots it just counted can still be looked up."""
    reference = arrivals(PoissonPacer(rate_rps=100, seed=2, chunk=16), 1000)  # in order
    pacer = PoissonPacer(rate_rps=100, seed=2, chunk=16)
    assert pacer.due(reference[999]) == 1000
    assert [pacer.intended_s(k) for k in range(999 - 16, 1000)] == list(reference[999 - 16:])


def test_make_pacer_splits_a_poisson_rate_between_workers() -> None:
    """Each of W workers draws Poisson arrivals at rate/W, from its own stream of the seed.

    The superposition of W independent Poisson processes at rate/W is Poisson at the rate, so
    the merged gaps have mean 1/rate: 3 x 20k arrivals at 100/s each, mean within 5 standard
    errors (5/sqrt(n) relative) over the merged span.
    """
    shares = [make_pacer(rate_rps=300, worker_index=i, worker_count=3, arrival="poisson", seed=4)
              for i in range(3)]
    assert all(isinstance(p, PoissonPacer) and p.rate_rps == 100 for p in shares)
    horizon = 150.0  # s; each worker has about 15k arrivals by then
    merged = np.sort(np.concatenate([arrivals(p, p.due(horizon)) for p in shares]))
    n = len(merged)
    assert abs(n / (300 * horizon) - 1) <= 5 / math.sqrt(300 * horizon)
    assert len(np.unique(merged)) == n
