"""Built-in metrics (Iter8 names) and the pandas table they are read from.

Names follow Iter8 v0.13: ``request-count``, ``error-count``, ``error-rate``, ``latency-mean``,
``latency-stddev``, ``latency-min``, ``latency-max``, ``latency-pXX`` (any XX in (0, 100], e.g.
``latency-p99.9``) plus ``throughput``, which Iter8 lacks.

Canonical units, used in tables, objectives and results: latency in milliseconds, error-rate as a
fraction in [0, 1], throughput in requests per second, counts as integers.

Which requests count where (the same rule for every endpoint and for the ``*`` row):
- ``request-count``: every measured request (warm-up excluded), whatever its outcome;
- ``error-count``: requests whose outcome is an error (an HTTP status in the error ranges or a
  transport failure such as ``connect``, ``timeout``, ``reset``);
- ``throughput``: successful requests (those not in ``error-count``) per second of the measured
  duration, so an objective on throughput is met by answers, never by failures: a run whose every
  request failed has throughput 0;
- latency metrics: requests that got an HTTP response, of any status (a failed check included).
  A transport failure has no response time, so it counts as an error but never shortens or
  lengthens the latency distribution;
- ``check-count``, ``check-rate``: responses that failed one of their endpoint's checks
  (outcome ``check:<name>``); each is an error as well.

gRPC calls (outcomes ``grpc:<CODE>``) follow the same rules: an error is a code outside
``ok_outcomes`` (default: every code but OK); latency counts every call the service answered,
that is every code but UNAVAILABLE, DEADLINE_EXCEEDED and CANCELLED (no answer, as a transport
failure). The ``grpc/...`` metric names of Iter8 are aliases of these (:mod:`analysis.catalog`).

Invariant: a metric with no data is ``None``, never 0; the verdict turns it into INCONCLUSIVE.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import SupportsFloat, cast

import pandas as pd

from analysis.catalog import (
    ALL_ENDPOINTS,
    DEFAULT_ERROR_RANGES,
    DEFAULT_OK_OUTCOMES,
    DEFAULT_PERCENTILES,
    GRPC_NO_ANSWER,
    percentile_name,
)
from workers.histogram import Histogram


@dataclass(frozen=True, slots=True, kw_only=True)
class Measured:
    """The merged histograms of a run, by (endpoint, outcome), plus the measured duration.

    ``latency`` holds coordinated-omission-corrected latencies (from the intended send time);
    ``outcome`` is ``"status:NNN"`` for a response or a transport failure kind (``"connect"``,
    ``"timeout"``, ``"reset"``...). Which statuses are errors is decided here, from
    ``error_ranges``, so a saved run can be re-judged with other ranges.
    """

    latency: Mapping[tuple[str, str], Histogram]
    duration_s: float
    error_ranges: tuple[tuple[int, int], ...] = DEFAULT_ERROR_RANGES
    ok_outcomes: tuple[str, ...] = DEFAULT_OK_OUTCOMES  # gRPC codes that are no error

    def is_error(self, outcome: str) -> bool:
        """Return True when the outcome counts as an error under this run's error ranges (and,
        for a gRPC call, its codes that are no error)."""
        if outcome.startswith("grpc:"):
            return outcome not in self.ok_outcomes
        status = status_of(outcome)
        if status is None:
            return True
        return any(lo <= status <= hi for lo, hi in self.error_ranges)


def is_check(outcome: str) -> bool:
    """Return True for a response that failed one of its endpoint's checks (``check:<name>``)."""
    return outcome.startswith("check:")


def responded(outcome: str) -> bool:
    """Return True when the outcome has a response time: an HTTP response of any status (a
    failed check included), or a gRPC call the service answered (any code but UNAVAILABLE,
    DEADLINE_EXCEEDED, CANCELLED)."""
    if outcome.startswith("grpc:"):
        return outcome not in GRPC_NO_ANSWER
    return outcome.startswith("status:") or is_check(outcome)


def status_of(outcome: str) -> int | None:
    """Return the HTTP status of a ``status:NNN`` outcome, None for a transport failure."""
    if outcome.startswith("status:"):
        return int(outcome[7:])
    return None


def _scope_stats(
    hists: Iterable[tuple[str, Histogram]], measured: Measured, percentiles: Iterable[float],
) -> dict[str, float | int | None]:
    """Return every built-in metric for one scope (an endpoint, or all of them)."""
    requests = 0
    error_count = check_count = 0
    answered = Histogram()
    for outcome, hist in hists:
        requests += hist.total
        if measured.is_error(outcome):
            error_count += hist.total
        if is_check(outcome):
            check_count += hist.total
        if responded(outcome):
            answered.add(hist)
    duration_s = measured.duration_s
    row: dict[str, float | int | None] = {
        "request-count": requests,
        "error-count": error_count,
        "error-rate": (error_count / requests) if requests else None,
        "check-count": check_count,
        "check-rate": (check_count / requests) if requests else None,
        "throughput": ((requests - error_count) / duration_s) if duration_s > 0 and requests
        else None,
        "latency-mean": _ms(answered.mean_ns),
        "latency-stddev": _ms(answered.stddev_ns),
        "latency-min": _ms(answered.min_ns),
        "latency-max": _ms(answered.max_ns),
    }
    for q in percentiles:
        row[percentile_name(q)] = _ms(answered.percentile_ns(q) if not answered.is_empty else None)
    return row


def _ms(value_ns: float | int | None) -> float | None:
    return None if value_ns is None else float(value_ns) / 1e6


def metrics_table(measured: Measured, extra_percentiles: Iterable[float] = ()) -> pd.DataFrame:
    """Return the metrics table: one row per endpoint (``*`` for all), one column per metric.

    Columns are the built-in metric names; the default percentiles plus any asked for by
    objectives (``extra_percentiles``). Missing values are ``None``/NaN, never 0.
    """
    qs = sorted(set(DEFAULT_PERCENTILES) | {float(q) for q in extra_percentiles})
    endpoints = sorted({endpoint for endpoint, _ in measured.latency})
    rows = {
        ALL_ENDPOINTS: _scope_stats(((o, h) for (_, o), h in measured.latency.items()), measured, qs)
    }
    for endpoint in endpoints:
        rows[endpoint] = _scope_stats(
            ((o, h) for (e, o), h in measured.latency.items() if e == endpoint), measured, qs
        )
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "endpoint"
    if not any(is_check(outcome) for _, outcome in measured.latency):
        # no response failed a check: tables stay as they were (objectives still get 0, from
        # the scope: analysis.evidence)
        table = table.drop(columns=["check-count", "check-rate"])
    return table


def metric_value(table: pd.DataFrame, name: str, endpoint: str = ALL_ENDPOINTS) -> float | None:
    """Return one metric from the table, or None when there is no data for it."""
    if endpoint not in table.index or name not in table.columns:
        return None
    value = table.at[endpoint, name]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(cast(SupportsFloat, value))  # a number: the table holds only numbers and NaN
