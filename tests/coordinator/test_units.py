"""Tests for coordinator.units: quantities with units, as written in experiment specs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.units import (
    parse_count,
    parse_duration_s,
    parse_latency_ms,
    parse_ratio,
    parse_throughput_rps,
)

FAST = settings(max_examples=200, deadline=None)

# Expected values are float literals: Python rounds each literal to the nearest double, which is
# what a correctly rounded parse of the same decimal must return, so the comparisons are exact.


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("500ms", 0.5, id="ms"),
        pytest.param("2s", 2.0, id="s"),
        pytest.param("1m30s", 90.0, id="m-and-s"),
        pytest.param("1h", 3600.0, id="h"),
        pytest.param("1h30m", 5400.0, id="h-and-m"),
        pytest.param("150us", 0.00015, id="us"),
        pytest.param("150µs", 0.00015, id="micro-sign"),
        pytest.param("10ns", 1e-08, id="ns"),
        pytest.param("9ms", 0.009, id="9ms-no-ulp-error"),
        pytest.param("1.5s", 1.5, id="decimal"),
        pytest.param(".5s", 0.5, id="leading-dot"),
        pytest.param("1.s", 1.0, id="trailing-dot"),
        pytest.param("1m30.5s", 90.5, id="decimal-last-part"),
        pytest.param("1 s", 1.0, id="space-before-unit"),
        pytest.param("  2s  ", 2.0, id="surrounding-space"),
        pytest.param("0s", 0.0, id="zero"),
        pytest.param(5, 5.0, id="bare-int-is-seconds"),
        pytest.param(2.5, 2.5, id="bare-float-is-seconds"),
        pytest.param("2.5", 2.5, id="numeric-string-is-seconds"),
    ],
)
def test_parse_duration_s_valid(text: object, seconds: float) -> None:
    """A duration with ns/us/ms/s/m/h parts, or a bare number of seconds, parses to seconds."""
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("10x", id="unknown-unit"),
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("-1s", id="negative-with-unit"),
        pytest.param("1m30", id="last-part-without-unit"),
        pytest.param("s", id="unit-without-number"),
        pytest.param("1m 30s", id="space-between-parts"),
        pytest.param("2S", id="upper-case-unit"),
        pytest.param("1e3s", id="exponent"),
        pytest.param("fast", id="word"),
        pytest.param("inf", id="infinite"),
        pytest.param("nan", id="nan"),
        pytest.param("9" * 400 + "s", id="overflows-float"),
        pytest.param(None, id="none"),
        pytest.param(True, id="bool"),
        pytest.param([1], id="list"),
    ],
)
def test_parse_duration_s_invalid(text: object) -> None:
    """An unparseable or non-finite duration raises ValueError quoting the input."""
    with pytest.raises(ValueError) as info:
        parse_duration_s(text)
    assert repr(text) in str(info.value)


def test_parse_duration_s_bare_unit() -> None:
    """A bare number counts bare_unit_s seconds, while suffixed values ignore bare_unit_s."""
    assert parse_duration_s(250, bare_unit_s=1e-3) == 0.25
    assert parse_duration_s("250ms", bare_unit_s=60.0) == 0.25


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        pytest.param("200ms", 200.0, id="ms"),
        pytest.param("0.5s", 500.0, id="seconds"),
        pytest.param("1m", 60000.0, id="minutes"),
        pytest.param("150us", 0.15, id="us"),
        pytest.param("9ms", 9.0, id="9ms-no-ulp-error"),
        pytest.param(200, 200.0, id="bare-int-is-ms"),
        pytest.param(0.1, 0.1, id="bare-float-is-ms-unchanged"),
        pytest.param("250", 250.0, id="numeric-string-is-ms"),
        pytest.param(0, 0.0, id="zero"),
    ],
)
def test_parse_latency_ms_valid(text: object, ms: float) -> None:
    """A latency with a time unit parses to milliseconds, and a bare number is already ms."""
    assert parse_latency_ms(text) == ms


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("10x", id="unknown-unit"),
        pytest.param("1%", id="percent"),
        pytest.param("fast", id="word"),
        pytest.param("", id="empty"),
        pytest.param(None, id="none"),
        pytest.param(float("inf"), id="infinite"),
    ],
)
def test_parse_latency_ms_invalid(text: object) -> None:
    """A value that is not a latency raises ValueError quoting the input."""
    with pytest.raises(ValueError) as info:
        parse_latency_ms(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize(
    ("text", "fraction"),
    [
        pytest.param("1%", 0.01, id="percent"),
        pytest.param("0.5%", 0.005, id="fractional-percent"),
        pytest.param("0.7%", 0.007, id="0.7-percent-no-ulp-error"),
        pytest.param(" 5 % ", 0.05, id="spaces"),
        pytest.param("100%", 1.0, id="hundred-percent"),
        pytest.param("0%", 0.0, id="zero-percent"),
        pytest.param("0.01", 0.01, id="numeric-string"),
        pytest.param(0.01, 0.01, id="float"),
        pytest.param(1, 1.0, id="one"),
        pytest.param(0, 0.0, id="zero"),
    ],
)
def test_parse_ratio_valid(text: object, fraction: float) -> None:
    """A percentage or a plain number in [0, 1] parses to a fraction."""
    assert parse_ratio(text) == fraction


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("150%", id="over-100-percent"),
        pytest.param("-1%", id="negative-percent"),
        pytest.param(1.5, id="over-one"),
        pytest.param(-0.1, id="negative"),
        pytest.param("%", id="bare-percent-sign"),
        pytest.param("1%%", id="double-percent"),
        pytest.param("10ms", id="duration"),
        pytest.param("abc", id="word"),
        pytest.param("nan", id="nan"),
        pytest.param("inf%", id="infinite-percent"),
        pytest.param(None, id="none"),
        pytest.param(True, id="bool"),
    ],
)
def test_parse_ratio_invalid(text: object) -> None:
    """A value that is not a fraction in [0, 1] raises ValueError quoting the input."""
    with pytest.raises(ValueError) as info:
        parse_ratio(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize(
    ("text", "count"),
    [
        pytest.param(100, 100.0, id="int"),
        pytest.param("100", 100.0, id="numeric-string"),
        pytest.param(0, 0.0, id="zero"),
        pytest.param(100.0, 100.0, id="whole-float"),
        pytest.param("1e3", 1000.0, id="exponent-string"),
    ],
)
def test_parse_count_valid(text: object, count: float) -> None:
    """A whole, non-negative number parses to that count."""
    assert parse_count(text) == count


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(-1, id="negative"),
        pytest.param(1.5, id="fraction"),
        pytest.param("abc", id="word"),
        pytest.param("nan", id="nan"),
        pytest.param("inf", id="infinite"),
        pytest.param(True, id="bool"),
        pytest.param(None, id="none"),
    ],
)
def test_parse_count_invalid(text: object) -> None:
    """A negative, fractional or non-numeric count raises ValueError quoting the input."""
    with pytest.raises(ValueError) as info:
        parse_count(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize(
    ("text", "rps"),
    [
        pytest.param(100, 100.0, id="int"),
        pytest.param("100", 100.0, id="numeric-string"),
        pytest.param("100/s", 100.0, id="per-second"),
        pytest.param("100rps", 100.0, id="rps"),
        pytest.param("100.5/s", 100.5, id="decimal"),
        pytest.param(" 100/s ", 100.0, id="spaces"),
        pytest.param(0, 0.0, id="zero"),
    ],
)
def test_parse_throughput_rps_valid(text: object, rps: float) -> None:
    """A bare number, N/s or Nrps parses to requests per second."""
    assert parse_throughput_rps(text) == rps


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("-5/s", id="negative"),
        pytest.param("fast", id="word"),
        pytest.param("10ms", id="duration"),
        pytest.param("100/min", id="per-minute"),
        pytest.param("inf/s", id="infinite"),
        pytest.param("nan", id="nan"),
        pytest.param(None, id="none"),
        pytest.param(True, id="bool"),
    ],
)
def test_parse_throughput_rps_invalid(text: object) -> None:
    """A value that is not a non-negative finite rate raises ValueError quoting the input."""
    with pytest.raises(ValueError) as info:
        parse_throughput_rps(text)
    assert repr(text) in str(info.value)


@FAST
@given(st.integers(min_value=0, max_value=10**15))
def test_whole_milliseconds_round_trip(n: int) -> None:
    """f"{n}ms" parses to the double nearest n/1000 s, and to exactly n as a latency in ms."""
    assert parse_duration_s(f"{n}ms") == n / 1000
    assert parse_latency_ms(f"{n}ms") == n


@FAST
@given(st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_bare_numbers_are_unchanged(x: float) -> None:
    """A bare number is returned unchanged as seconds (durations) and as ms (latencies)."""
    assert parse_duration_s(x) == x
    assert parse_latency_ms(x) == x


@FAST
@given(st.integers(0, 10**6), st.integers(0, 59), st.integers(0, 999))
def test_duration_parts_add_up(minutes: int, seconds: int, ms: int) -> None:
    """The parts of "XmYsZms" add up exactly, rounded to a float once at the end."""
    total_ms = (minutes * 60 + seconds) * 1000 + ms
    assert parse_duration_s(f"{minutes}m{seconds}s{ms}ms") == total_ms / 1000
    assert parse_latency_ms(f"{minutes}m{seconds}s{ms}ms") == total_ms
