"""Likely mistakes in a valid spec, for ``slogate check`` (pure: values in, findings out).

A spec that validates can still say something its author did not mean. The checks here look at
the validated spec and at how its values were written (the YAML document) and return warnings,
each pointing at a field:

- a latency limit under 1 ms: a bare number is milliseconds, so ``upperLimit: 0.5`` meant for
  half a second is half a millisecond;
- a duration written as a large bare number: a bare number is seconds, so ``timeout: 60`` or
  ``duration: 5000`` may have meant milliseconds;
- an error-rate limit written as a bare number of half or more (``upperLimit: 1`` is 100 %,
  where ``1%`` was likely meant);
- a throughput floor the load can never reach (above the rate sent to that endpoint);
- a latency limit at or above ``load.timeout``: slower requests are timeouts (errors), never
  latencies, so the limit can never be exceeded;
- no objectives at all: nothing is judged, so every run is INCONCLUSIVE (exit 3).

Nothing here sends a request, starts Ray or reads a file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from analysis.catalog import MetricKind, kind_of
from coordinator.spec import ExperimentSpec, Objective, value_at

# Bare-number durations at or above these many seconds draw a warning: a minute for what is
# usually seconds long, 1,000 s for the phases of a run. In the order of the spec's fields.
SHORT_BARE_S = 60
LONG_BARE_S = 1000
_DURATIONS: tuple[tuple[tuple[str, ...], int], ...] = (
    (("load", "duration"), LONG_BARE_S), (("load", "warmup"), LONG_BARE_S),
    (("load", "timeout"), SHORT_BARE_S), (("load", "window"), SHORT_BARE_S),
    (("load", "ramp", "duration"), LONG_BARE_S), (("load", "thinkTime"), SHORT_BARE_S),
    (("load", "maxDuration"), LONG_BARE_S))


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """A warning about one field: where (``("load", "timeout")``) and what is likely wrong."""

    loc: tuple[str | int, ...]
    message: str


def check_spec(spec: ExperimentSpec, document: Any) -> list[Finding]:
    """Return the likely mistakes in a validated spec; ``document`` is the spec as written
    (parsed YAML), which tells a bare number from a number with a unit."""
    return [*_bare_durations(document), *_objective_findings(spec, document),
            *_no_objectives(spec)]


def _no_objectives(spec: ExperimentSpec) -> Iterator[Finding]:
    if not spec.objectives:
        yield Finding(loc=("objectives",), message=(
            "none given: the run measures but judges nothing, so its verdict is INCONCLUSIVE "
            "(exit 3); add one such as 'p(95)<200ms' or 'rate<1%'"))


def _is_bare(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bare_durations(document: Any) -> Iterator[Finding]:
    for loc, least in _DURATIONS:
        raw = value_at(document, loc)
        if _is_bare(raw) and raw >= least:
            yield Finding(loc=loc, message=(
                f"{raw:g} without a unit is {raw:g} s ({_human_s(float(raw))}); write "
                f"{raw:g}ms if you meant milliseconds, or {raw:g}s to keep seconds"))


def _human_s(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 60:.3g} min"


def _objective_findings(spec: ExperimentSpec, document: Any) -> Iterator[Finding]:
    for index, objective in enumerate(spec.objectives):
        if objective.vs is not None:
            continue  # limits are ratios or differences of the baseline's
        written = value_at(document, ("objectives", index))
        kind = kind_of(objective.metric)
        for key, limit in (("upperLimit", objective.upper_limit),
                           ("lowerLimit", objective.lower_limit)):
            if limit is None:
                continue
            raw = written.get(key) if isinstance(written, dict) else written
            loc: tuple[str | int, ...] = ("objectives", index) + \
                ((key,) if isinstance(written, dict) else ())
            message = _limit_problem(spec, objective, kind, key, limit, raw)
            if message:
                yield Finding(loc=loc, message=message)


def _limit_problem(spec: ExperimentSpec, objective: Objective, kind: MetricKind | None, key: str,
                   limit: float, raw: Any) -> str | None:
    """Return what is likely wrong with one limit, or None."""
    if kind is MetricKind.LATENCY and limit < 1.0:
        hint = (f" (did you mean {raw:g}s?)" if _is_bare(raw) else
                f" (did you mean {raw.strip()}s?)" if isinstance(raw, str)
                and raw.strip()[-1:].isdigit() else "")
        return f"{limit:g} ms is under 1 ms: a latency limit without a unit is milliseconds{hint}"
    if kind is MetricKind.LATENCY and key == "upperLimit" and limit >= spec.load.timeout * 1000:
        return (f"{limit:g} ms is not under load.timeout ({spec.load.timeout:g} s): a request "
                "slower than the timeout counts as a timeout error, never as a latency, so this "
                "limit cannot be exceeded; judge error-rate, or lower the limit")
    if kind is MetricKind.RATIO and _is_bare(raw) and raw >= 0.5:
        return (f"{raw:g} is {raw * 100:g} % of requests; a bare number is a fraction (did you "
                f"mean {raw:g}%?)")
    if kind is MetricKind.THROUGHPUT and key == "lowerLimit":
        sent = _rate_sent(spec, objective.endpoint)
        if sent is not None and limit > sent:
            return (f"{limit:g} req/s can never be met: the load sends {sent:g} req/s"
                    + (f" to {objective.endpoint}" if objective.endpoint else ""))
    return None


def _rate_sent(spec: ExperimentSpec, endpoint: str | None) -> float | None:
    """Return the requests per second the open model sends to ``endpoint`` (all: None)."""
    rate = spec.load.rate
    if rate is None:
        return None
    if endpoint is None:
        return rate
    weights = {e.label: e.weight for e in spec.endpoints}
    return rate * weights.get(endpoint, 0.0) / sum(weights.values())
