"""Confidence intervals that know their sample size (pure; numpy and scipy only).

- Error rate: the exact binomial (Clopper-Pearson) interval.
- Latency percentile: a distribution-free interval from order statistics. With ``n`` samples the
  ranks ``l`` and ``u`` of the interval for quantile ``q`` at confidence ``c`` come from the
  binomial law of how many samples fall below the true quantile; the values at those ranks are
  read from the histogram (the lowest value of rank ``l``'s bucket, the highest of rank ``u``'s),
  so the histogram's 0.1 % resolution only ever widens the interval.
- Mean: a bootstrap percentile interval over the histogram's buckets (no normality assumed,
  which latency rarely is), from 30 samples up.

Every function returns ``None`` for an interval that cannot be computed (no data, too few
samples), never a made-up one.

SciPy is imported on first use (:func:`warm_up`): it is most of slogate's import time (about
0.9 s), and ``slogate run`` imports it while Ray starts rather than before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from workers.histogram import Histogram, highest_equivalent, lowest_equivalent


def _stats() -> Any:
    """Return ``scipy.stats``, imported the first time it is asked for."""
    from scipy import stats

    return stats


def warm_up() -> None:
    """Import SciPy now (about 0.9 s), e.g. while something else waits."""
    _stats()


@dataclass(frozen=True, slots=True)
class Interval:
    """A two-sided confidence interval ``[low, high]`` at ``confidence``, from ``n`` samples."""

    low: float
    high: float
    confidence: float
    n: int


def proportion_interval(successes: int, n: int, confidence: float = 0.95) -> Interval | None:
    """Return the Clopper-Pearson interval for a proportion (e.g. error-rate), None if n == 0."""
    if n <= 0:
        return None
    alpha = 1.0 - confidence
    beta = _stats().beta
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return Interval(low=low, high=high, confidence=confidence, n=n)


def percentile_ranks(n: int, q: float, confidence: float = 0.95) -> tuple[int, int] | None:
    """Return 1-based ranks ``(l, u)`` with ``P(x_(l) <= Q_q <= x_(u)) >= confidence``.

    None when ``n`` is too small for any such ranks within ``1..n`` (e.g. p99.9 of 100 samples).
    """
    if n <= 0:
        return None
    p = q / 100.0
    alpha = 1.0 - confidence
    if _coverage(n, p, 1, n) < confidence:
        return None  # not even the widest pair, x_(1)..x_(n), is enough
    # Number of samples below the true quantile ~ Binomial(n, p). Take the order statistics that
    # bracket its central (1 - alpha) range, within 1..n, then widen until the exact coverage is
    # enough (a clipped upper tail is made up for from the lower one, and vice versa).
    binom = _stats().binom
    low = max(int(binom.ppf(alpha / 2, n, p)), 1)
    high = min(int(binom.ppf(1 - alpha / 2, n, p)) + 1, n)
    while _coverage(n, p, low, high) < confidence:
        if low > 1:
            low -= 1
        else:
            high += 1
    return low, high


def _coverage(n: int, p: float, low: int, high: int) -> float:
    """Return P(x_(low) <= Q_p <= x_(high)) = P(low <= B < high) for B ~ Binomial(n, p)."""
    binom = _stats().binom
    return float(binom.cdf(high - 1, n, p) - binom.cdf(low - 1, n, p))


def value_at_rank(hist: Histogram, rank: int, *, upper: bool) -> float:
    """Return the lowest (or highest) value equivalent to the ``rank``-th smallest sample, ns."""
    cumulative = np.cumsum(hist.counts)
    index = int(np.searchsorted(cumulative, rank, side="left"))
    edge = highest_equivalent([index]) if upper else lowest_equivalent([index])
    return float(edge[0])


def percentile_interval(hist: Histogram, q: float, confidence: float = 0.95) -> Interval | None:
    """Return the distribution-free interval for the q-th percentile, in ns; None if n is short."""
    n = hist.total
    ranks = percentile_ranks(n, q, confidence)
    if ranks is None:
        return None
    low, high = ranks
    return Interval(low=value_at_rank(hist, low, upper=False),
                    high=value_at_rank(hist, high, upper=True), confidence=confidence, n=n)


def min_samples_for_percentile(q: float, confidence: float = 0.95) -> int | None:
    """Return the smallest n for which the q-th percentile has any interval at all; None for
    p0 and p100 (the minimum and maximum), which no number of samples bounds."""
    if not 0.0 < q < 100.0:
        return None
    n = 1
    while percentile_ranks(n, q, confidence) is None:
        n = n * 2
    lo, hi = n // 2, n
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if percentile_ranks(mid, q, confidence) is not None else (mid, hi)
    return hi


BOOTSTRAP_ROUNDS = 2000
MIN_SAMPLES_FOR_MEAN = 30


def mean_interval(hist: Histogram, confidence: float = 0.95) -> Interval | None:
    """Return a bootstrap percentile interval for the mean in ns, None when n < 30.

    Resamples n values from the histogram's buckets (one multinomial draw per round, so the
    cost depends on the number of buckets, not on n) with a fixed seed: re-judging the same
    histogram gives the same interval.
    """
    if hist.total < MIN_SAMPLES_FOR_MEAN:
        return None
    lows, highs, counts = hist.nonzero()
    mids = (lows + highs).astype(np.float64) / 2
    n = int(counts.sum())
    rng = np.random.default_rng(20261129)
    draws = rng.multinomial(n, counts / n, size=BOOTSTRAP_ROUNDS)
    means = draws @ mids / n
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Interval(low=float(low), high=float(high), confidence=confidence, n=n)


def min_samples_for_mean(_hist: Histogram | None = None) -> int:
    """Return the least n for which a mean interval is computed."""
    return MIN_SAMPLES_FOR_MEAN


def samples_to_separate_proportion(rate: float, limit: float, confidence: float = 0.95) -> int | None:
    """Return about how many requests would put the interval of ``rate`` wholly on one side of
    ``limit`` (None when the rate equals the limit: no sample size separates them)."""
    if rate == limit:
        return None

    def decided(n: int) -> bool:
        interval = proportion_interval(round(rate * n), n, confidence)
        return interval is not None and (interval.high < limit or interval.low > limit)

    return _least_n(decided)


def difference_interval(candidate: tuple[int, int], baseline: tuple[int, int],
                        confidence: float = 0.95) -> tuple[float, float] | None:
    """Return the interval of the difference of two proportions, candidate - baseline, each given
    as ``(errors, requests)``: ``[C_low - B_high, C_high - B_low]`` from each side's
    Clopper-Pearson interval at ``1 - (1 - c) / 2``, so that both hold together (Bonferroni)."""
    each = 1.0 - (1.0 - confidence) / 2
    c, b = proportion_interval(*candidate, each), proportion_interval(*baseline, each)
    if c is None or b is None:
        return None
    return c.low - b.high, c.high - b.low


def samples_to_separate_difference(candidate_rate: float, baseline_rate: float, limit: float,
                                   confidence: float = 0.95) -> int | None:
    """Return about how many requests *per version* would put the interval of the difference
    ``candidate_rate - baseline_rate`` (as :func:`difference_interval` builds it) wholly on one
    side of ``limit``; None when the difference equals the limit.

    Both samples count toward the width, so this is the two-sample size: for rates p_c and p_b
    and a gap d to the limit, about ``z^2 (sqrt(p_c q_c) + sqrt(p_b q_b))^2 / d^2`` with z at
    ``1 - (1 - c) / 4``, where one sample of the difference alone would need
    ``z^2 p q / d^2``."""
    if candidate_rate - baseline_rate == limit:
        return None

    def decided(n: int) -> bool:
        low, high = difference_interval(  # type: ignore[misc]
            (round(candidate_rate * n), n), (round(baseline_rate * n), n), confidence)
        return high < limit or low > limit

    return _least_n(decided)


def _least_n(decided: Callable[[int], bool], cap: int = 10**10) -> int | None:
    """Return about the least n with ``decided(n)``: doubling from 16, then halving the last
    step (rounding counts makes ``decided`` only nearly monotone); None beyond ``cap``."""
    n = 16
    while not decided(n):
        n *= 2
        if n > cap:
            return None
    lo, hi = n // 2, n
    while hi - lo > max(1, hi // 1000):
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if decided(mid) else (mid, hi)
    return hi
