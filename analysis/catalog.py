"""The catalogue of built-in metric names (Iter8 v0.13 names plus ``throughput``) and their kinds.

Light on purpose (no numpy, no pandas): the spec validator imports it.

Canonical units, used in tables, objectives and results: latency in milliseconds, error-rate as a
fraction in [0, 1], throughput in successful requests per second, counts as integers.
"""

from __future__ import annotations

import enum
import re

ALL_ENDPOINTS = "*"
VERSION_SEPARATOR = ": "  # two-version runs label endpoints "baseline: GET /hello"
VERSIONS = ("baseline", "candidate")


def split_version(label: str) -> tuple[str | None, str]:
    """Return (version, endpoint label) of a recorded label; version None in one-version runs."""
    for version in VERSIONS:
        prefix = version + VERSION_SEPARATOR
        if label.startswith(prefix):
            return version, label[len(prefix):]
    return None, label
DEFAULT_ERROR_RANGES: tuple[tuple[int, int], ...] = ((400, 599),)

# gRPC status code names (grpc.StatusCode), for outcomes "grpc:<CODE>"
GRPC_STATUS_CODES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
    "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
)
DEFAULT_OK_OUTCOMES: tuple[str, ...] = ("grpc:OK",)
# gRPC codes that say the call got no answer from the service (as connect, timeout and reset for
# HTTP): like those, they are left out of the latency metrics
GRPC_NO_ANSWER = frozenset({"grpc:UNAVAILABLE", "grpc:DEADLINE_EXCEEDED", "grpc:CANCELLED"})


def ok_outcomes(error_codes: object) -> tuple[str, ...]:
    """Return the gRPC outcomes that are no error, given the spec's ``grpc.errorCodes`` (a list
    of code names; None: every code but OK is an error, as ghz and k6 count them)."""
    if not isinstance(error_codes, (list, tuple)):
        return DEFAULT_OK_OUTCOMES
    return tuple(f"grpc:{c}" for c in GRPC_STATUS_CODES if c not in error_codes)


class MetricKind(enum.Enum):
    """What a metric measures, which decides its unit and which limits make sense."""

    COUNT = "count"
    RATIO = "ratio"
    LATENCY = "latency"
    THROUGHPUT = "throughput"


UNITS: dict[MetricKind, str] = {
    MetricKind.COUNT: "",
    MetricKind.RATIO: "",
    MetricKind.LATENCY: "ms",
    MetricKind.THROUGHPUT: "req/s",
}

_FIXED: dict[str, MetricKind] = {
    "request-count": MetricKind.COUNT,
    "error-count": MetricKind.COUNT,
    "error-rate": MetricKind.RATIO,
    "check-count": MetricKind.COUNT,
    "check-rate": MetricKind.RATIO,
    "latency-mean": MetricKind.LATENCY,
    "latency-stddev": MetricKind.LATENCY,
    "latency-min": MetricKind.LATENCY,
    "latency-max": MetricKind.LATENCY,
    "throughput": MetricKind.THROUGHPUT,
}
_PERCENTILE = re.compile(r"^latency-p(\d{1,3}(?:\.\d+)?)$")

DEFAULT_PERCENTILES: tuple[float, ...] = (50.0, 75.0, 90.0, 95.0, 99.0, 99.9)


def percentile_of(name: str) -> float | None:
    """Return XX for ``latency-pXX`` (a float in (0, 100]), else None."""
    match = _PERCENTILE.match(name)
    if not match:
        return None
    q = float(match.group(1))
    return q if 0.0 < q <= 100.0 else None


def kind_of(name: str) -> MetricKind | None:
    """Return the kind of a built-in metric name, or None when the name is unknown."""
    if name in _FIXED:
        return _FIXED[name]
    if percentile_of(name) is not None:
        return MetricKind.LATENCY
    return None


# Which way a metric goes bad: counts describe the run's size and have no bad direction.
_HIGHER_IS_WORSE: dict[MetricKind, bool | None] = {
    MetricKind.LATENCY: True,
    MetricKind.RATIO: True,
    MetricKind.THROUGHPUT: False,
    MetricKind.COUNT: None,
}


def higher_is_worse(name: str) -> bool | None:
    """Return True when a larger value of the metric is worse (latency, error-rate), False when a
    smaller one is (throughput), None for counts and unknown names (no bad direction)."""
    kind = kind_of(name)
    return None if kind is None else _HIGHER_IS_WORSE[kind]


def canonical_metric(name: str) -> str:
    """Return the built-in name of an Iter8 gRPC metric name, any other name unchanged:
    ``grpc/error-rate`` -> ``error-rate``, ``grpc/latency/p99`` -> ``latency-p99``."""
    if not name.startswith("grpc/"):
        return name
    rest = name[len("grpc/"):]
    if rest.startswith("latency/"):
        rest = "latency-" + rest[len("latency/"):]
    return rest if kind_of(rest) is not None and rest != "throughput" else name


def known_metric_names() -> list[str]:
    """Return the fixed metric names plus the pattern for percentiles, for error messages."""
    return [*_FIXED, "latency-pXX"]


def percentile_name(q: float) -> str:
    """Return the metric name of percentile q: 99.0 -> ``latency-p99``, 99.9 -> ``latency-p99.9``."""
    return f"latency-p{q:g}"


def format_value(metric: str, value: float | int | None) -> str:
    """Return a metric value with its unit: ``12.3 ms``, ``0.52%``, ``1,204``, ``200.0 req/s``."""
    if value is None:
        return "no data"
    kind = kind_of(metric)
    if kind is None or metric.endswith("-count"):
        return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"
    if metric in ("error-rate", "check-rate"):
        return f"{value * 100:.3g}%"
    unit = UNITS[kind]
    return f"{value:.4g} {unit}".strip() if unit == "ms" else f"{value:.1f} {unit}"
