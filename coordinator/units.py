"""Parsing of quantities with units, as written in experiment specs.

Durations: ``500ms``, ``2s``, ``1m30s``, ``1h``, ``150us``; a bare number is seconds.
Latency limits: the same suffixes; a bare number is milliseconds (Iter8's convention).
Ratios: ``1%`` or ``0.01``. Counts: integers. Throughput: ``100``, ``100/s`` or ``100rps``.

Every parser returns the value in its canonical unit (seconds for durations, milliseconds for
latency, a fraction for ratios, requests/s for throughput) or raises ``ValueError`` with a message
that quotes the input and says what was expected.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|µs|ms|s|m|h)")
# Exact factors: sums are formed in rational arithmetic and rounded to a float once, so "9ms" is
# exactly the float 9/1000 s and 9 ms, not 9 * 1e-3 (which is one ulp off).
_SECONDS = {"ns": Fraction(1, 10**9), "us": Fraction(1, 10**6), "µs": Fraction(1, 10**6),
            "ms": Fraction(1, 1000), "s": Fraction(1), "m": Fraction(60), "h": Fraction(3600)}


def _number(value: object) -> float | None:
    """Return value as a float when it is a plain number (or numeric string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _finite(value: float, text: object) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def _exact(number: float) -> Fraction:
    """Return the decimal a finite float was written as (its shortest repr), exactly."""
    return Fraction(repr(number))


def _duration(value: object, unit: Fraction, bare_unit: Fraction) -> float:
    """Return ``value`` in units of ``unit`` seconds; a bare number counts ``bare_unit`` seconds."""
    number = _number(value)
    if number is not None:
        total = _exact(_finite(number, value)) * bare_unit
    elif isinstance(value, str) and (text := value.strip()):
        total = Fraction(0)
        position = 0
        for match in _DURATION_PART.finditer(text):
            if match.start() != position:
                break
            total += Fraction(match.group(1)) * _SECONDS[match.group(2)]
            position = match.end()
        if position != len(text):
            raise ValueError(f"{value!r} is not a duration (use e.g. 500ms, 10s, 1m30s)")
    else:
        raise ValueError(f"{value!r} is not a duration (use e.g. 500ms, 10s, 1m30s)")
    try:
        return float(total / unit)
    except OverflowError:
        raise ValueError(f"{value!r} is not a finite number") from None


def parse_duration_s(value: object, *, bare_unit_s: float = 1.0) -> float:
    """Return a duration in seconds from ``"1m30s"``, ``"250ms"`` or a bare number of units."""
    return _duration(value, Fraction(1), _exact(bare_unit_s))


def parse_latency_ms(value: object) -> float:
    """Return a latency in milliseconds from ``"200ms"``, ``"0.5s"`` or a bare number of ms."""
    return _duration(value, _SECONDS["ms"], _SECONDS["ms"])


def parse_ratio(value: object) -> float:
    """Return a fraction in [0, 1] from ``"1%"``, ``"0.01"`` or ``0.01``."""
    number = _number(value)
    if number is None and isinstance(value, str) and value.strip().endswith("%"):
        inner = _number(value.strip()[:-1])
        if inner is not None and math.isfinite(inner):
            inner = float(_exact(inner) / 100)
        number = inner  # a non-finite inner is reported below
    if number is None:
        raise ValueError(f"{value!r} is not a ratio (use e.g. 1% or 0.01)")
    if not 0.0 <= _finite(number, value) <= 1.0:
        raise ValueError(f"{value!r} is not a ratio between 0 and 1 (0% and 100%)")
    return number


def parse_count(value: object) -> float:
    """Return a non-negative whole count."""
    number = _number(value)
    if number is None or number < 0 or not float(number).is_integer():
        raise ValueError(f"{value!r} is not a whole, non-negative count")
    return number


def parse_throughput_rps(value: object) -> float:
    """Return a rate in requests per second from ``100``, ``"100/s"`` or ``"100rps"``."""
    text = value.strip().removesuffix("/s").removesuffix("rps") if isinstance(value, str) else value
    number = _number(text)
    if number is None or number < 0:
        raise ValueError(f"{value!r} is not a rate in requests per second (use e.g. 100 or 100/s)")
    return _finite(number, value)


def format_duration(seconds: float) -> str:
    """Return a short human form of a duration: ``850ms``, ``12.5s``, ``3m20s``."""
    if seconds < 1:
        return f"{seconds * 1e3:.0f}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.0f}s"
