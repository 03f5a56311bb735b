"""Baseline against candidate: relative evidence from two versions loaded side by side.

Both versions were loaded by the same workers, interleaved request by request, so noise hits
both alike. The effect size is reported with a confidence interval, not just a p-value:

- latency percentiles and mean: the ratio candidate / baseline, with the interval
  ``[C_low / B_high, C_high / B_low]`` built from each side's own interval;
- error-rate: the difference candidate - baseline, ``[C_low - B_high, C_high - B_low]``;
- throughput and counts: the plain ratio.

Each side's interval is taken at ``1 - (1 - c) / 2`` so that both hold together with probability
at least ``c`` (Bonferroni), which makes the combined interval conservative.
"""

from __future__ import annotations

from collections.abc import Mapping

from analysis.catalog import VERSION_SEPARATOR, split_version
from analysis.evidence import Evidence, Scope, evidence_for
from analysis.metrics import Measured

COMPARED = ("latency-p50", "latency-p90", "latency-p99", "latency-mean", "error-rate",
            "throughput")


def split_versions(measured: Measured) -> dict[str | None, Measured]:
    """Return the measured histograms per version (labels stripped of their version)."""
    parts: dict[str | None, dict[tuple[str, str], object]] = {}
    for (label, outcome), hist in measured.latency.items():
        version, endpoint = split_version(label)
        parts.setdefault(version, {})[(endpoint, outcome)] = hist
    return {v: Measured(latency=h, duration_s=measured.duration_s,  # type: ignore[arg-type]
                        error_ranges=measured.error_ranges, ok_outcomes=measured.ok_outcomes)
            for v, h in parts.items()}


def relative_evidence(metric: str, candidate: Scope | None, baseline: Scope | None,
                      candidate_row: Mapping[str, float | None],
                      baseline_row: Mapping[str, float | None], confidence: float) -> Evidence:
    """Return the evidence for candidate relative to baseline on ``metric`` (see module doc)."""
    each = 1.0 - (1.0 - confidence) / 2
    c = evidence_for(metric, candidate, candidate_row, each)
    b = evidence_for(metric, baseline, baseline_row, each)
    if c.value is None or b.value is None:
        return Evidence(value=None, interval=None, n=0, confidence=confidence, inferential=True)
    n = min(c.n, b.n)
    if c.interval is None or b.interval is None:
        note = c.note or b.note or "no interval"
        return Evidence(value=_combine(metric, c.value, b.value), interval=None, n=n,
                        confidence=confidence, inferential=True, note=note,
                        needed_n=max(c.needed_n or 0, b.needed_n or 0) or None)
    (cl, ch), (bl, bh) = c.interval, b.interval
    if metric == "error-rate":
        return Evidence(value=_combine(metric, c.value, b.value), interval=(cl - bh, ch - bl),
                        n=n, confidence=confidence, inferential=True, counts=c.counts + b.counts)
    if bl <= 0:
        return Evidence(value=None, interval=None, n=n, confidence=confidence, inferential=True,
                        note="baseline value is 0: no ratio")
    else:
        interval = (cl / bh, ch / bl)
    return Evidence(value=_combine(metric, c.value, b.value), interval=interval, n=n,
                    confidence=confidence, inferential=c.inferential)


def _combine(metric: str, candidate: float, baseline: float) -> float | None:
    if metric == "error-rate":
        return candidate - baseline
    return candidate / baseline if baseline else None


def label_prefix(version: str) -> str:
    """Return the recorded-label prefix of a version."""
    return version + VERSION_SEPARATOR
