"""Tests for workers.histogram: algebra, accuracy, wire format and hdrh compatibility."""

from __future__ import annotations

import base64
import math
import pickle
import struct
import zlib
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.helpers import present
from workers import histogram as hmod
from workers.histogram import (
    COUNTS_LEN,
    HIGHEST_NS,
    Histogram,
    highest_equivalent,
    index_of,
    lowest_equivalent,
)

FAST = settings(max_examples=100, deadline=None)
SLOW = settings(max_examples=25, deadline=None)
MS = 1_000_000

values_ns = st.lists(st.integers(0, HIGHEST_NS), max_size=200)
raw_values = st.lists(st.integers(-(10**12), 10 * HIGHEST_NS), max_size=100)  # out of range too
percents = st.floats(0, 100, allow_nan=False)


def hdrh_new() -> HdrHistogram:
    """Returns an empty hdrh histogram with our layout."""
    return HdrHistogram(1, HIGHEST_NS, 3)


def hdrh_of(values: list[int]) -> HdrHistogram:
    """Returns an hdrh histogram holding values, recorded one by one."""
    h = hdrh_new()
    for v in values:
        assert h.record_value(int(v))
    return h


def exact_rank(q: float, n: int) -> int:
    """Returns the inverted-CDF rank max(1, ceil(q/100 * n)) computed in exact arithmetic."""
    return max(1, math.ceil(Fraction(repr(float(q))) * n / 100))


def lognormal_ns(seed: int, n: int) -> np.ndarray:
    """Returns n lognormal latencies in ns within [1 µs, 60 s] (median ~ 5 ms)."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(np.log(5 * MS), 2.0, n), 1_000, 60_000 * MS).astype(np.int64)


def counts_histogram(pairs: dict[int, int]) -> Histogram:
    """Returns a histogram with count c at index_of(value) for each value: c pair."""
    h = Histogram()
    for value, count in pairs.items():
        h.counts[index_of([value])[0]] += count
    return h


# --- layout -----------------------------------------------------------------------------------


def test_layout_constants_match_hdrh() -> None:
    """The module's layout constants equal hdrh's for lowest=1, highest=100 s, 3 digits."""
    ref = hdrh_new()
    assert COUNTS_LEN == ref.counts_len == 28_672
    assert ref.bucket_count == hmod.BUCKET_COUNT
    assert ref.sub_bucket_count == hmod.SUB_BUCKET_COUNT
    assert ref.sub_bucket_half_count == hmod.SUB_BUCKET_HALF_COUNT
    assert ref.sub_bucket_half_count_magnitude == hmod.SUB_BUCKET_HALF_COUNT_MAGNITUDE
    assert ref.sub_bucket_mask == hmod.SUB_BUCKET_MASK
    assert ref.unit_magnitude == 0


@FAST
@given(st.lists(st.integers(0, HIGHEST_NS), min_size=1, max_size=50))
def test_index_and_equivalents_match_hdrh(values: list[int]) -> None:
    """index_of, lowest_equivalent and highest_equivalent agree with hdrh value by value."""
    ref = hdrh_new()
    idx = index_of(values)
    assert idx.tolist() == [ref.get_counts_array_index(v) for v in values]
    assert lowest_equivalent(idx).tolist() == [ref.get_lowest_equivalent_value(v) for v in values]
    assert highest_equivalent(idx).tolist() == [ref.get_highest_equivalent_value(v) for v in values]


def test_index_at_powers_of_two_matches_hdrh() -> None:
    """Bucket boundaries (2**k - 1, 2**k, 2**k + 1) and HIGHEST_NS index as in hdrh."""
    ref = hdrh_new()
    values = sorted({max(0, (1 << k) + d) for k in range(37) for d in (-1, 0, 1)} | {HIGHEST_NS})
    assert index_of(values).tolist() == [ref.get_counts_array_index(v) for v in values]


# --- merge algebra ------------------------------------------------------------------------------


@FAST
@given(values_ns, values_ns)
def test_merge_is_commutative(a: list[int], b: list[int]) -> None:
    """a + b equals b + a."""
    ha, hb = Histogram.from_values(a), Histogram.from_values(b)
    assert ha + hb == hb + ha


@FAST
@given(values_ns, values_ns, values_ns)
def test_merge_is_associative_and_conserves_counts(a: list[int], b: list[int], c: list[int]):
    """(a + b) + c equals a + (b + c), equals recording everything at once, and keeps the total."""
    ha, hb, hc = (Histogram.from_values(x) for x in (a, b, c))
    left, right = (ha + hb) + hc, ha + (hb + hc)
    assert left == right == Histogram.from_values(a + b + c) == Histogram.sum([ha, hb, hc])
    assert left.total == len(a) + len(b) + len(c)


def test_add_mutates_only_the_receiver() -> None:
    """add() merges in place, __add__ and copy() leave their operands untouched."""
    a, b = Histogram.from_values([1, 2]), Histogram.from_values([3])
    c = a + b
    assert (a.total, b.total, c.total) == (2, 1, 3)
    d = a.copy()
    d.add(b)
    assert d == c and a.total == 2
    a += b
    assert a == c
    assert Histogram.sum([]) == Histogram()


# --- recording ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, expected",
    [
        pytest.param([-5, -(10**15)], [0, 0], id="negative-to-zero"),
        pytest.param([HIGHEST_NS + 1, 10**15], [HIGHEST_NS, HIGHEST_NS], id="above-highest-clamps"),
        pytest.param(np.array([2**64 - 1], dtype=np.uint64), [HIGHEST_NS], id="uint64-max-clamps"),
        pytest.param([1e20, -1e20, 1500.7], [HIGHEST_NS, 0, 1500], id="floats-clamp-and-truncate"),
    ],
)
def test_record_clamps_out_of_range(values: list, expected: list[int]) -> None:
    """Negative values record as 0 ns, values above HIGHEST_NS as HIGHEST_NS, floats truncate."""
    assert Histogram.from_values(values) == Histogram.from_values(expected)


def test_record_rejects_nan() -> None:
    """A NaN latency raises ValueError instead of landing in an arbitrary bucket."""
    with pytest.raises(ValueError, match="NaN"):
        Histogram().record([1.0, float("nan")])  # type: ignore[list-item]  # refused on purpose


def test_values_below_2048_are_exact() -> None:
    """Every value 0..2047 has its own bucket, so min, max and percentiles are exact."""
    values = np.arange(1, 2048)
    h = Histogram.from_values(values)
    low, high, counts = h.nonzero()
    assert low.tolist() == high.tolist() == values.tolist() and set(counts.tolist()) == {1}
    assert (h.min_ns, h.max_ns, h.total) == (1, 2047, 2047)
    qs = [0, 0.05, 10, 50, 99, 99.9, 100]
    assert present(h.percentiles_ns(qs)).tolist() == [values[exact_rank(q, 2047) - 1] for q in qs]


def test_batch_record_equals_one_by_one() -> None:
    """Recording a batch gives the same counts as recording each value separately."""
    values = lognormal_ns(7, 500)
    one_by_one = Histogram()
    for v in values:
        one_by_one.record([int(v)])
    assert one_by_one == Histogram.from_values(values)


# --- statistics ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, q, expected",
    [
        pytest.param(list(range(1, 1001)), 99.9, 999, id="p99.9-of-1000-is-rank-999"),
        pytest.param(list(range(1, 1001)), 0.1, 1, id="p0.1-of-1000-is-rank-1"),
        pytest.param(list(range(1, 1001)), 0, 1, id="p0-is-the-minimum"),
        pytest.param(list(range(1, 1001)), 50, 500, id="p50-of-1000-is-rank-500"),
        pytest.param(list(range(1, 1001)), 100, 1000, id="p100-is-the-maximum"),
        pytest.param(list(range(1, 11)), 30, 3, id="p30-of-10-is-rank-3"),
        pytest.param([7], 0.0001, 7, id="single-value"),
    ],
)
def test_percentile_known_values(values: list[int], q: float, expected: int) -> None:
    """Percentiles of small exact-range samples hit the inverted-CDF order statistic exactly."""
    assert Histogram.from_values(values).percentile_ns(q) == expected


def test_percentile_rank_is_exact_for_large_totals() -> None:
    """p99.9 of 9,990,000 x 1000 ns + 10,000 x 2000 ns is 1000 ns (float noise would give 2000)."""
    h = counts_histogram({1000: 9_990_000, 2000: 10_000})
    assert h.percentile_ns(99.9) == 1000
    assert h.percentile_ns(99.90001) == 2000


def test_percentile_differs_from_numpy_float_noise() -> None:
    """Tests use an exact rank because numpy's inverted_cdf gives rank 1000 for p99.9 of 1000."""
    v = np.arange(1, 1001)
    assert np.percentile(v, 99.9, method="inverted_cdf") == 1000
    assert Histogram.from_values(v).percentile_ns(99.9) == 999


@pytest.mark.parametrize(
    "value_ns",
    [
        pytest.param(10 * MS, id="10ms"),
        pytest.param(HIGHEST_NS, id="100s"),
        pytest.param(2049, id="2049ns"),
    ],
)
def test_percentile_of_constant_never_underestimates(value_ns: int) -> None:
    """Every percentile of 100 equal values is >= the value and within 0.1 % of it."""
    h = Histogram.from_values([value_ns] * 100)
    for q in (0, 50, 99, 100):
        got = present(h.percentile_ns(q))
        assert value_ns <= got <= value_ns * 1.001
    assert present(h.min_ns) <= value_ns <= present(h.max_ns)


@FAST
@given(
    st.lists(st.integers(0, HIGHEST_NS), min_size=1, max_size=200),
    st.lists(percents, min_size=2, max_size=10),
)
def test_percentile_is_monotone_in_q(values: list[int], qs: list[float]) -> None:
    """percentiles_ns of sorted q is non-decreasing and bounded by min_ns and max_ns."""
    h = Histogram.from_values(values)
    got = present(h.percentiles_ns(sorted(qs)))
    assert np.all(np.diff(got) >= 0)
    assert present(h.min_ns) <= got[0] and got[-1] <= present(h.max_ns)
    assert got.tolist() == [present(h.percentile_ns(q)) for q in sorted(qs)]


@FAST
@given(st.integers(0, 2**32), st.integers(1, 3000), percents)
def test_percentile_within_0_1_percent_of_exact(seed: int, n: int, q: float) -> None:
    """percentile_ns is >= the inverted-CDF order statistic and exceeds it by < 0.1 %."""
    values = lognormal_ns(seed, n)
    exact = int(np.sort(values)[exact_rank(q, n) - 1])
    got = present(Histogram.from_values(values).percentile_ns(q))
    assert exact <= got <= exact + exact / 1000


@SLOW
@given(st.integers(0, 2**32), st.sampled_from([1, 2, 3, 10, 999, 1000, 5000]))
def test_percentile_matches_numpy_off_integer_ranks(seed: int, n: int) -> None:
    """Where q/100*n is not an integer, the bound also holds against np.percentile(inverted_cdf)."""
    values = lognormal_ns(seed, n)
    h = Histogram.from_values(values)
    for q in (0.5, 25.3, 50.01, 90.7, 99.37, 99.993):
        if (Fraction(repr(q)) * n / 100).denominator == 1:
            continue
        exact = float(np.percentile(values, q, method="inverted_cdf"))
        assert exact <= present(h.percentile_ns(q)) <= exact * 1.001


@FAST
@given(st.integers(0, 2**32), st.integers(1, 3000))
def test_mean_and_stddev_within_0_1_percent(seed: int, n: int) -> None:
    """mean_ns is within 0.1 % of numpy's mean; stddev_ns within 0.1 % of the RMS value."""
    values = lognormal_ns(seed, n)
    h = Histogram.from_values(values)
    assert h.mean_ns == pytest.approx(values.mean(), rel=1e-3)
    rms = float(np.sqrt(np.mean(values.astype(np.float64) ** 2)))
    assert abs(h.stddev_ns - values.std()) <= 1e-3 * rms


def test_empty_histogram_stats_are_none() -> None:
    """Every statistic of an empty histogram is None, never NaN or 0."""
    h = Histogram()
    assert h.is_empty and h.total == 0
    assert (h.min_ns, h.max_ns, h.mean_ns, h.stddev_ns) == (None, None, None, None)
    assert h.percentile_ns(50) is None and h.percentiles_ns([50, 99]) is None
    assert h.count_between(0, HIGHEST_NS) == 0
    assert all(a.size == 0 for a in (*h.nonzero(), *h.bucket_edges()))


@pytest.mark.parametrize(
    "q",
    [
        pytest.param(-0.1, id="negative"),
        pytest.param(100.01, id="above-100"),
        pytest.param(float("nan"), id="nan"),
    ],
)
def test_percentile_rejects_out_of_range_q(q: float) -> None:
    """A percentile outside [0, 100] raises ValueError, even on an empty histogram."""
    for h in (Histogram(), Histogram.from_values([1])):
        with pytest.raises(ValueError, match="percentile"):
            h.percentile_ns(q)


def test_single_value_zero() -> None:
    """A lone 0 ns gives min, max, mean and every percentile 0."""
    h = Histogram.from_values([0])
    assert (h.min_ns, h.max_ns, h.mean_ns, h.stddev_ns, h.percentile_ns(99)) == (0, 0, 0.0, 0.0, 0)


def test_nonzero_and_bucket_edges_describe_the_buckets() -> None:
    """nonzero() and bucket_edges() list the non-empty buckets consistently and in order."""
    values = lognormal_ns(3, 2000)
    h = Histogram.from_values(values)
    low, high, counts = h.nonzero()
    edges, sizes = h.bucket_edges()
    assert np.array_equal(low, edges) and np.array_equal(high - low + 1, sizes)
    assert counts.sum() == 2000 and np.all(np.diff(low) > 0) and np.all(counts > 0)
    for v in values[:100]:
        i = np.searchsorted(low, v, side="right") - 1
        assert low[i] <= v <= high[i]


@pytest.mark.parametrize(
    "lo, hi, expected",
    [
        pytest.param(0, HIGHEST_NS, 6, id="everything"),
        pytest.param(10, 1000, 3, id="exact-range-inclusive"),
        pytest.param(11, 999, 1, id="exact-range-excludes-ends"),
        pytest.param(5 * MS, 5 * MS, 1, id="same-bucket"),
        pytest.param(1001, 9, 0, id="empty-interval"),
    ],
)
def test_count_between(lo: int, hi: int, expected: int) -> None:
    """count_between counts the buckets from index_of(lo) through index_of(hi)."""
    h = Histogram.from_values([1, 10, 500, 1000, 5 * MS + 1, 50 * MS])
    assert h.count_between(lo, hi) == expected


# --- wire format --------------------------------------------------------------------------------


@FAST
@given(raw_values)
def test_encode_decode_round_trips(values: list[int]) -> None:
    """decode(encode(h)) == h for any recorded values, out-of-range ones included."""
    h = Histogram.from_values(values)
    assert Histogram.decode(h.encode()) == h


@pytest.mark.parametrize(
    "values",
    [
        pytest.param([], id="empty"),
        pytest.param([0], id="single-zero"),
        pytest.param([HIGHEST_NS], id="max-value"),
        pytest.param([HIGHEST_NS * 5, -1], id="clamped"),
        pytest.param(list(range(0, 3000)), id="dense-run"),
    ],
)
def test_encode_decode_round_trips_edge_cases(values: list[int]) -> None:
    """Edge-case histograms round-trip exactly, through str and bytes input."""
    h = Histogram.from_values(values)
    text = h.encode()
    assert isinstance(text, str)
    assert Histogram.decode(text) == h == Histogram.decode(text.encode())


def test_huge_counts_round_trip() -> None:
    """Counts needing 8 and 9 varint bytes (up to 2**63 - 1) round-trip."""
    h = counts_histogram({5: 2**62, 7: 2**55 + 3, 9000: 2**63 - 1})
    assert Histogram.decode(h.encode()) == h


def test_decode_accepts_single_zero_token() -> None:
    """A Java-style stream that writes a lone empty bucket as 0 (not -1) decodes."""
    varints = bytes([6, 0, 4])  # counts 3, 0, 2 as zigzag 6, 0, 4
    payload = struct.pack(">IIIIQQd", 0x1C849313, len(varints), 0, 3, 1, HIGHEST_NS, 1.0) + varints
    body = zlib.compress(payload)
    text = base64.b64encode(struct.pack(">II", 0x1C849314, len(body)) + body)
    assert Histogram.decode(text) == Histogram.from_values([0, 0, 0, 2, 2])


def test_pickle_round_trips() -> None:
    """pickle keeps the counts exactly and ships far less than the dense array."""
    h = Histogram.from_values(lognormal_ns(11, 5000))
    blob = pickle.dumps(h)
    assert pickle.loads(blob) == h and len(blob) < 50_000
    assert pickle.loads(pickle.dumps(Histogram())) == Histogram()


def _rewrap(text: str, payload_edit: Callable[[bytes], bytes]) -> str:
    """Returns text with its decompressed payload passed through payload_edit and re-wrapped."""
    raw = base64.b64decode(text)
    body = zlib.compress(payload_edit(zlib.decompress(raw[8:])))
    return base64.b64encode(struct.pack(">II", 0x1C849314, len(body)) + body).decode()


GOOD = Histogram.from_values([1, 5000, 10 * MS]).encode()
GOOD_RAW = base64.b64decode(GOOD)
NOT_ZLIB = base64.b64encode(struct.pack(">II", 0x1C849314, 4) + b"abcd")


def _cut_varint(payload: bytes) -> bytes:
    """Returns payload with a dangling continuation byte counted in its varint length."""
    length = struct.pack(">I", len(payload) - 40 + 1)
    return payload[:4] + length + payload[8:] + b"\x80"



@pytest.mark.parametrize(
    "encoded, message",
    [
        pytest.param("not*base64!", "bad base64", id="bad-base64"),
        pytest.param(base64.b64encode(b"\x00" * 16).decode(), "bad cookie", id="bad-outer-cookie"),
        pytest.param(base64.b64encode(b"\x1c\x84"), "truncated", id="short-outer-header"),
        pytest.param(base64.b64encode(GOOD_RAW[:-3]), "truncated", id="cut-payload"),
        pytest.param(base64.b64encode(GOOD_RAW + b"x"), "length mismatch", id="trailing"),
        pytest.param(NOT_ZLIB, "zlib", id="corrupt-zlib"),
        pytest.param(
            _rewrap(GOOD, lambda p: b"\x00" * 4 + p[4:]), "bad payload cookie", id="inner-cookie"
        ),
        pytest.param(_rewrap(GOOD, lambda p: p[:20]), "truncated", id="short-payload-header"),
        pytest.param(_rewrap(GOOD, lambda p: p[:-1]), "truncated", id="short-varint-stream"),
        pytest.param(_rewrap(GOOD, _cut_varint), "truncated varint", id="cut-varint"),
        pytest.param(HdrHistogram(1, HIGHEST_NS, 2).encode(), "unsupported layout", id="2-digits"),
        pytest.param(HdrHistogram(1000, 10**11, 3).encode(), "unsupported layout", id="lowest-1k"),
    ],
)
def test_decode_rejects_malformed_input(encoded: str | bytes, message: str) -> None:
    """decode raises a one-line ValueError naming what is wrong with the input."""
    with pytest.raises(ValueError, match=message) as info:
        Histogram.decode(encoded)
    assert "\n" not in str(info.value)


def test_decode_rejects_counts_beyond_layout() -> None:
    """An hdrh histogram with a wider range decodes if it fits and is refused if it does not."""
    wide = HdrHistogram(1, 3_600 * 10**9, 3)
    wide.record_value(5 * MS)
    assert Histogram.decode(wide.encode()) == Histogram.from_values([5 * MS])
    wide.record_value(3_000 * 10**9)
    with pytest.raises(ValueError, match="beyond"):
        Histogram.decode(wide.encode())


# --- hdrh compatibility -------------------------------------------------------------------------


@SLOW
@given(st.lists(st.integers(0, HIGHEST_NS), max_size=300), st.integers(0, 2**32))
def test_encoding_is_byte_identical_to_hdrh(values: list[int], seed: int) -> None:
    """encode() produces the same base64 text as hdrh's encode() for the same values."""
    values = values + lognormal_ns(seed, 100).tolist()
    assert Histogram.from_values(values).encode() == hdrh_of(values).encode().decode()


@SLOW
@given(st.lists(st.integers(0, HIGHEST_NS), max_size=300))
def test_hdrh_encoding_decodes_to_identical_counts(values: list[int]) -> None:
    """hdrh's encode() of record_value'd values decodes to the counts we record."""
    assert Histogram.decode(hdrh_of(values).encode()) == Histogram.from_values(values)


def test_our_encoding_decodes_in_hdrh() -> None:
    """hdrh decodes our encoding to the same total, min, max, mean, stddev and percentiles.

    hdrh rounds the target rank half-up (ours takes the ceiling) and returns the lowest
    equivalent at q=0, so: equal whenever q/100*total is an integer, hdrh <= ours otherwise,
    and hdrh's p0 is our min_ns.
    """
    values = lognormal_ns(5, 1000)
    ours = Histogram.from_values(values)
    ref = HdrHistogram.decode(ours.encode())
    assert ref.get_total_count() == ours.total == 1000
    assert (ref.get_min_value(), ref.get_max_value()) == (ours.min_ns, ours.max_ns)
    assert ref.get_mean_value() == pytest.approx(ours.mean_ns, rel=1e-12)
    assert ref.get_stddev() == pytest.approx(ours.stddev_ns, rel=1e-9)
    for q in (10, 50, 90, 99, 99.9, 100):
        assert ref.get_value_at_percentile(q) == ours.percentile_ns(q)
    for q in (12.34, 50.05, 99.95, 99.99):
        assert ref.get_value_at_percentile(q) <= ours.percentile_ns(q)
    assert ref.get_value_at_percentile(0) == ours.min_ns


@given(st.lists(st.integers(min_value=0, max_value=10**10), max_size=300),
       st.lists(st.integers(min_value=0, max_value=10**10), max_size=300))
@settings(max_examples=100, deadline=None)
def test_compact_storage_reads_merges_and_writes_like_dense(a: list[int], b: list[int]) -> None:
    """A compacted histogram equals its dense self in every statistic, merges alike, and densifies
    on write."""
    dense = Histogram.from_values(a)
    compact = Histogram.from_values(a).compact()
    assert compact == dense
    assert (compact.total, compact.is_empty, compact.min_ns, compact.max_ns, compact.mean_ns) == (
        dense.total, dense.is_empty, dense.min_ns, dense.max_ns, dense.mean_ns)
    assert compact.encode() == dense.encode()
    other = Histogram.from_values(b)
    assert Histogram.sum([other, compact]) == other + dense
    compact.record(b)
    assert compact == Histogram.from_values(a + b)
    assert pickle.loads(pickle.dumps(dense)) == dense
