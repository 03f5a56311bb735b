"""Evidence for one objective: the point value, its confidence interval and the sample size.

A :class:`Scope` is what one endpoint (or all of them, ``*``) measured: the latency histogram of
requests that got a response, the request and error counts and the measured duration. From it,
:func:`evidence_for` computes, for any built-in metric, the value and an interval in the metric's
unit (ms, fraction, req/s, count):

- ``error-rate``, ``check-rate``: Clopper-Pearson interval;
- ``latency-pXX``: distribution-free order-statistic interval (None when n is too small);
- ``latency-mean``: bootstrap interval over the histogram's buckets (None under 30 samples);
- every other metric describes the run itself (counts, min, max, stddev, throughput): its
  interval is the point value, and judging it is a plain comparison.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from analysis import stats
from analysis.catalog import ALL_ENDPOINTS, percentile_of
from analysis.metrics import Measured, is_check
from analysis.metrics import responded as has_response
from workers.histogram import Histogram


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """What one endpoint (or ``*``, all endpoints) measured."""

    responded: Histogram
    requests: int
    errors: int
    duration_s: float
    error_outcomes: tuple[tuple[str, int], ...] = ()  # (outcome, count), most frequent first
    checks: int = 0  # responses that failed a check (check:<name>)


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """A metric's value with its interval (``None`` with ``note`` when there is none)."""

    value: float | None
    interval: tuple[float, float] | None
    n: int
    confidence: float
    inferential: bool  # True when the interval is a statistical one (rate, percentile, mean)
    note: str | None = None
    needed_n: int | None = None  # the least n for which an interval exists at all
    counts: tuple[tuple[int, int], ...] = ()  # error-rate: (errors, requests) of each sample


def scopes(measured: Measured) -> dict[str, Scope]:
    """Return the scope of every endpoint and of ``*`` (all endpoints)."""
    grouped: dict[str, list[tuple[str, Histogram]]] = {ALL_ENDPOINTS: []}
    for (endpoint, outcome), hist in measured.latency.items():
        grouped.setdefault(endpoint, []).append((outcome, hist))
        grouped[ALL_ENDPOINTS].append((outcome, hist))
    out = {}
    for name, items in grouped.items():
        responded = Histogram.sum(h for o, h in items if has_response(o))
        errors: dict[str, int] = {}
        for outcome, hist in items:
            if measured.is_error(outcome) and hist.total:
                errors[outcome] = errors.get(outcome, 0) + hist.total
        out[name] = Scope(
            responded=responded, requests=sum(h.total for _, h in items),
            errors=sum(errors.values()), duration_s=measured.duration_s,
            checks=sum(h.total for o, h in items if is_check(o)),
            error_outcomes=tuple(sorted(errors.items(), key=lambda item: (-item[1], item[0]))))
    return out


def _ms(ns: float | None) -> float | None:
    return None if ns is None else ns / 1e6


def evidence_for(metric: str, scope: Scope | None, point: Mapping[str, float | None],
                 confidence: float = 0.95) -> Evidence:
    """Return the evidence for ``metric`` in ``scope``; ``point`` is the scope's metrics row."""
    if metric in ("check-count", "check-rate") and scope is not None and scope.requests:
        return _checks(metric, scope, confidence)  # shown in tables only when a check failed
    value = point.get(metric)
    if scope is None or value is None:
        return Evidence(value=None, interval=None, n=0, confidence=confidence, inferential=False)
    if metric == "error-rate":
        interval = stats.proportion_interval(scope.errors, scope.requests, confidence)
        return Evidence(value=value, interval=(interval.low, interval.high) if interval else None,
                        n=scope.requests, confidence=confidence, inferential=True,
                        counts=((scope.errors, scope.requests),))
    q = percentile_of(metric)
    if q is not None:
        return _percentile(value, q, scope.responded, confidence)
    if metric == "latency-mean":
        return _mean(value, scope.responded, confidence)
    n = scope.requests if metric in ("request-count", "error-count", "throughput") \
        else scope.responded.total
    return Evidence(value=value, interval=(value, value), n=n, confidence=confidence,
                    inferential=False)


def _checks(metric: str, scope: Scope, confidence: float) -> Evidence:
    """Return check-count (a plain count) or check-rate (Clopper-Pearson, as error-rate)."""
    if metric == "check-count":
        return Evidence(value=scope.checks, interval=(scope.checks, scope.checks),
                        n=scope.requests, confidence=confidence, inferential=False)
    interval = stats.proportion_interval(scope.checks, scope.requests, confidence)
    return Evidence(value=scope.checks / scope.requests,
                    interval=(interval.low, interval.high) if interval else None,
                    n=scope.requests, confidence=confidence, inferential=True,
                    counts=((scope.checks, scope.requests),))


def _percentile(value: float, q: float, hist: Histogram, confidence: float) -> Evidence:
    interval = stats.percentile_interval(hist, q, confidence)
    if interval is None:
        needed = stats.min_samples_for_percentile(q, confidence)
        note = (f"{hist.total} responses are too few for a {confidence:.0%} interval on p{q:g} "
                f"(needs at least {needed})" if needed is not None else
                f"no number of responses gives a distribution-free interval on p{q:g}; "
                f"judge latency-max instead")
        return Evidence(value=value, interval=None, n=hist.total, confidence=confidence,
                        inferential=True, needed_n=needed, note=note)
    return Evidence(value=value, interval=(interval.low / 1e6, interval.high / 1e6),
                    n=hist.total, confidence=confidence, inferential=True)


def _mean(value: float, hist: Histogram, confidence: float) -> Evidence:
    interval = stats.mean_interval(hist, confidence)
    if interval is None:
        needed = stats.min_samples_for_mean(hist)
        return Evidence(value=value, interval=None, n=hist.total, confidence=confidence,
                        inferential=True, needed_n=needed,
                        note=f"{hist.total} responses are too few for a mean interval "
                             f"(needs at least {needed})")
    return Evidence(value=value, interval=(interval.low / 1e6, interval.high / 1e6),
                    n=hist.total, confidence=confidence, inferential=True)
