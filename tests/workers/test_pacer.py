"""Tests for workers.pacer: the constant-rate schedule and smooth weighted round-robin."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.pacer import ConstantPacer, InterleavedPicker, WeightedPicker, make_picker

FAST = settings(max_examples=200, deadline=None)

rates = st.floats(min_value=1e-3, max_value=1e5, allow_nan=False, allow_infinity=False)
worker_counts = st.integers(min_value=1, max_value=64)

# --- ConstantPacer ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "index", "count", "elapsed", "due"),
    [
        pytest.param(100, 0, 2, 0.0, 1, id="w0-slot0-due-at-start"),
        pytest.param(100, 1, 2, 0.0, 0, id="w1-nothing-at-start"),
        pytest.param(100, 0, 2, 0.0099, 1, id="w0-before-slot2"),
        pytest.param(100, 1, 2, 0.0099, 0, id="w1-just-before-slot1"),
        pytest.param(100, 1, 2, 0.01, 1, id="w1-slot1-exactly"),
        pytest.param(100, 0, 2, 0.02, 2, id="w0-slot2-exactly"),
        pytest.param(100, 1, 2, 0.03, 2, id="w1-slot3-exactly"),
        pytest.param(100, 0, 2, 1.0, 51, id="w0-slots-0-to-100-even"),
        pytest.param(100, 1, 2, 1.0, 50, id="w1-slots-1-to-99-odd"),
        pytest.param(100, 0, 2, -1.0, 0, id="negative-elapsed"),
        pytest.param(10, 0, 1, 0.05, 1, id="single-worker-between-slots"),
        pytest.param(10, 0, 1, 0.1, 2, id="single-worker-on-slot"),
        pytest.param(0.5, 0, 1, 3.9, 2, id="slow-rate"),
        pytest.param(100, 2, 3, 0.02, 1, id="w2-of-3-first-slot"),
        pytest.param(100, 2, 3, 0.0499, 1, id="w2-of-3-before-second-slot"),
        pytest.param(100, 2, 3, 0.05, 2, id="w2-of-3-second-slot"),
        # The 1e-9 epsilon (in this worker's slots) counts a request due up to 1e-9 * W / rate s
        # early: slot 2 of a 100 req/s, 2-worker schedule is due 1 ps before 0.02 s.
        pytest.param(100, 0, 2, 0.02 - 1e-12, 2, id="epsilon-counts-slightly-early"),
        # The same tolerance applies to a worker's first slot as to every other slot.
        pytest.param(100, 1, 2, 0.01 - 1e-12, 1, id="epsilon-applies-to-first-slot"),
    ],
)
def test_due_table(rate: float, index: int, count: int, elapsed: float, due: int) -> None:
    """due(t) counts this worker's slots n = i + kW of the global schedule n / rate up to t."""
    pacer = ConstantPacer(rate_rps=rate, worker_index=index, worker_count=count)
    assert pacer.due(elapsed) == due


@pytest.mark.parametrize(
    ("rate", "index", "count", "k", "seconds"),
    [
        pytest.param(100, 0, 2, 0, 0.0, id="w0-first"),
        pytest.param(100, 0, 2, 1, 0.02, id="w0-second"),
        pytest.param(100, 1, 2, 0, 0.01, id="w1-first"),
        pytest.param(100, 1, 2, 1, 0.03, id="w1-second"),
        pytest.param(100, 1, 2, 2, 0.05, id="w1-third"),
        pytest.param(10, 0, 1, 7, 0.7, id="single-worker"),
        pytest.param(200, 3, 4, 10, 0.215, id="w3-of-4"),
    ],
)
def test_intended_s_table(rate: float, index: int, count: int, k: int, seconds: float) -> None:
    """intended_s(k) is (i + kW) / rate: worker i's k-th slot of the global schedule."""
    pacer = ConstantPacer(rate_rps=rate, worker_index=index, worker_count=count)
    assert pacer.intended_s(k) == seconds


@FAST
@given(rates, worker_counts, st.floats(min_value=0, max_value=1e4, allow_nan=False))
def test_workers_together_follow_the_global_schedule(rate: float, workers: int, t: float) -> None:
    """Summed over the workers, due(t) is the number of global slots n <= t * rate.

    Every worker applies the same float tolerance (a slot within ~1e-9 below t * rate counts as
    reached), so the sum is exactly floor(t * rate + tolerance) + 1 for any worker count.
    """
    x = t * rate  # the float product, as due() computes it
    total = sum(ConstantPacer(rate_rps=rate, worker_index=i, worker_count=workers).due(t)
                for i in range(workers))
    assert total == math.floor(x + max(1e-9, abs(x) * 1e-12)) + 1
    assert total in (math.floor(x) + 1, math.floor(x) + 2)


def test_global_schedule_boundary_counts_slot_within_tolerance() -> None:
    """Just below a global slot (within the tolerance) that slot counts as due, once."""
    t = 0.02 - 1e-12  # t * rate = 2 - 1e-10: slot 2 is within the tolerance
    pacers = [ConstantPacer(rate_rps=100, worker_index=i, worker_count=2) for i in range(2)]
    assert [p.due(t) for p in pacers] == [2, 1]


@FAST
@given(rates, worker_counts, st.data(), st.integers(min_value=0, max_value=10**6))
def test_due_at_intended_time_counts_that_request(
    rate: float, workers: int, data: st.DataObject, k: int
) -> None:
    """At its own intended time request k is due (k + 1 in all), and halfway before it, it is not.

    Holds for k up to 10**6: the float error of (n / rate) * rate is about k * 2.2e-16 of a
    slot, well inside the 1e-9 epsilon (beyond ~4e6 requests per worker it no longer is).
    """
    index = data.draw(st.integers(0, workers - 1))
    pacer = ConstantPacer(rate_rps=rate, worker_index=index, worker_count=workers)
    assert pacer.due(pacer.intended_s(k)) == k + 1
    halfway = pacer.intended_s(k) - 0.5 * workers / rate
    assert pacer.due(halfway) == k


@FAST
@given(rates, worker_counts, st.data())
def test_intended_s_is_strictly_increasing(rate: float, workers: int, data: st.DataObject) -> None:
    """Each worker's intended times strictly increase with k."""
    index = data.draw(st.integers(0, workers - 1))
    start = data.draw(st.integers(0, 10**6))
    pacer = ConstantPacer(rate_rps=rate, worker_index=index, worker_count=workers)
    times = [pacer.intended_s(k) for k in range(start, start + 50)]
    assert all(a < b for a, b in pairwise(times))


@FAST
@given(rates, worker_counts, st.data(),
       st.lists(st.floats(min_value=-1, max_value=1e4, allow_nan=False), min_size=2, max_size=20))
def test_due_is_monotone(rate: float, workers: int, data: st.DataObject, ts: list[float]) -> None:
    """due(t) never decreases as t grows."""
    index = data.draw(st.integers(0, workers - 1))
    pacer = ConstantPacer(rate_rps=rate, worker_index=index, worker_count=workers)
    counts = [pacer.due(t) for t in sorted(ts)]
    assert counts == sorted(counts)


# --- WeightedPicker ---------------------------------------------------------------------------


def picks(weights: Sequence[float], n: int) -> list[int]:
    """Returns the first n picks of a fresh picker over weights."""
    picker = WeightedPicker(weights)
    return [picker.pick() for _ in range(n)]


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        pytest.param([5, 1, 1], "aabacaa" * 2, id="nginx-example"),
        pytest.param([1, 1], "abababab", id="equal-alternate"),
        pytest.param([2, 1], "abaaba", id="two-to-one"),
        pytest.param([0.5, 1.5], "babbbabb", id="float-weights"),
        pytest.param([3], "aaaa", id="single"),
    ],
)
def test_picker_sequences(weights: list[float], expected: str) -> None:
    """The picker interleaves endpoints smoothly (nginx's {5, 1, 1} gives a a b a c a a)."""
    assert "".join("abc"[i] for i in picks(weights, len(expected))) == expected


int_weights = st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=8)


@FAST
@given(int_weights, st.integers(min_value=1, max_value=400))
def test_picker_never_gets_a_request_ahead(weights: list[int], n: int) -> None:
    """After any N picks no endpoint has received N*w/sum(w) + 1 requests or more.

    (Exact: integer weights keep the picker's float arithmetic on whole numbers.)
    """
    counts = [0] * len(weights)
    total = sum(weights)
    for done, index in enumerate(picks(weights, n), start=1):
        counts[index] += 1
        for count, weight in zip(counts, weights, strict=True):
            assert count - Fraction(done * weight, total) < 1


@FAST
@given(int_weights, st.integers(min_value=1, max_value=5))
def test_picker_is_exact_over_whole_cycles(weights: list[int], cycles: int) -> None:
    """After m * sum(w) picks each endpoint has received exactly m * w requests."""
    sequence = picks(weights, cycles * sum(weights))
    assert [sequence.count(i) for i in range(len(weights))] == [cycles * w for w in weights]


@FAST
@given(st.integers(1, 1000), st.integers(1, 1000), st.integers(min_value=1, max_value=600))
def test_two_endpoints_stay_within_one_request(a: int, b: int, n: int) -> None:
    """With two endpoints each one's count differs from N*w/sum(w) by less than one request."""
    counts = [0, 0]
    for done, index in enumerate(picks([a, b], n), start=1):
        counts[index] += 1
        assert abs(counts[0] - Fraction(done * a, a + b)) < 1
        assert abs(counts[1] - Fraction(done * b, a + b)) < 1


def test_picker_can_fall_more_than_one_request_behind() -> None:
    """With five endpoints a shortfall can exceed one request, so only the excess is below one.

    Weights 4, 28, 4, 1, 28: after 28 picks endpoint 4 has 11 requests against a share of
    28 * 28 / 65 = 12.06. (Smooth WRR bounds the excess by one; the shortfall by n - 1.)
    """
    sequence = picks([4, 28, 4, 1, 28], 28)
    assert sequence.count(4) == 11
    assert Fraction(28 * 28, 65) - 11 > 1


@FAST
@given(int_weights, st.integers(min_value=1, max_value=300))
def test_picker_shortfall_is_bounded(weights: list[int], n: int) -> None:
    """After any N picks no endpoint is n - 1 or more requests short of N*w/sum(w)."""
    counts = [0] * len(weights)
    total = sum(weights)
    for index in picks(weights, n):
        counts[index] += 1
    for count, weight in zip(counts, weights, strict=True):
        assert Fraction(n * weight, total) - count < max(1, len(weights) - 1)


@FAST
@given(st.lists(st.floats(min_value=0.01, max_value=100), min_size=1, max_size=8))
def test_picker_is_deterministic(weights: list[float]) -> None:
    """Two pickers over the same weights pick the same sequence, every index in range."""
    first, second = picks(weights, 100), picks(weights, 100)
    assert first == second
    assert set(first) <= set(range(len(weights)))


@pytest.mark.parametrize(
    "weights",
    [
        pytest.param([], id="empty"),
        pytest.param([0], id="zero"),
        pytest.param([1, -1], id="negative"),
        pytest.param([1, 0], id="one-zero"),
    ],
)
def test_picker_rejects_bad_weights(weights: list[float]) -> None:
    """An empty list or a weight that is not positive raises ValueError."""
    with pytest.raises(ValueError, match="positive"):
        WeightedPicker(weights)



# --- InterleavedPicker ------------------------------------------------------------------------


def test_two_versions_alternate_with_one_endpoint_sequence() -> None:
    """Baseline list/order and candidate list/order weighted 3:1 come out B list, C list, B list,
    C list, B order, C order, B list, C list (not B, C, B, B, C, C, B, C over all four)."""
    picker = make_picker([3, 1, 3, 1], versions=2)
    names = ["B list", "B order", "C list", "C order"]
    assert [names[picker.pick()] for _ in range(8)] == [
        "B list", "C list", "B list", "C list", "B order", "C order", "B list", "C list"]


@FAST
@given(int_weights, st.integers(min_value=2, max_value=3), st.integers(min_value=1, max_value=300))
def test_versions_strictly_alternate_on_the_plain_endpoint_sequence(
        weights: list[int], versions: int, n: int) -> None:
    """Pick t goes to version t mod V, and each version's endpoints are, in order, exactly the
    weighted round-robin's sequence over one version's weights."""
    picker = InterleavedPicker(weights * versions, versions)
    chosen = [picker.pick() for _ in range(n)]
    count = len(weights)
    assert [index // count for index in chosen] == [t % versions for t in range(n)]
    plain = picks(weights, n)
    for version in range(versions):
        own = [index % count for t, index in enumerate(chosen) if t % versions == version]
        assert own == plain[:len(own)]


def test_one_version_is_the_plain_weighted_picker() -> None:
    """make_picker with one version is the smooth weighted round-robin itself."""
    picker = make_picker([5, 1, 1])
    assert isinstance(picker, WeightedPicker)
    assert [picker.pick() for _ in range(7)] == [0, 0, 1, 0, 2, 0, 0]


@pytest.mark.parametrize(
    ("weights", "versions", "message"),
    [
        pytest.param([1, 1, 1], 2, "not 2 versions", id="not-divisible"),
        pytest.param([3, 1, 1, 3], 2, "alike", id="weights-differ"),
        pytest.param([], 2, "not 2 versions", id="empty"),
    ],
)
def test_interleaved_picker_rejects_requests_that_are_not_versions_of_one_set(
        weights: list[float], versions: int, message: str) -> None:
    """Requests that do not split into equal, equally weighted versions raise ValueError."""
    with pytest.raises(ValueError, match=message):
        InterleavedPicker(weights, versions)
