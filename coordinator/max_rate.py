"""``slogate run --find-max-rate``: the highest rate at which every objective still PASSes.

A stepped search, as a plain state machine (:class:`MaxRateSearch`, fed one verdict at a time)
and a loop that runs the spec at each rate it asks for (:func:`find_max_rate`, the runs
injected). From the spec's ``load.rate``: double while the run PASSes, halve while it does not,
then bisect between the highest PASS and the lowest other verdict until they are within
``tolerance`` of each other (5 %: the answer is within 5 % of the boundary the runs saw) or
``max_steps`` runs were made. Any verdict but PASS (FAIL, INCONCLUSIVE: the generator could not
keep up, or too few requests to decide; INVALID) counts as "not at this rate". The evidence is
the results of the run at the rate found, saved as a normal results document.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from analysis.results import Results
from coordinator.errors import SpecError
from coordinator.spec import ExperimentSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One run of the search: its rate, verdict and reasons."""

    rate_rps: float
    verdict: str
    reasons: tuple[str, ...]


@dataclass(slots=True, kw_only=True)
class MaxRateSearch:
    """Which rate to try next, from the verdicts so far (pure; no clock, no I/O).

    Example::

        search = MaxRateSearch(start_rps=100)
        while (rate := search.next_rate()) is not None:
            search.observe(rate, verdict_at(rate))
        search.best_rps  # the highest rate that passed, or None
    """

    start_rps: float
    max_rps: float = 1_000_000.0
    min_rps: float = 0.1
    tolerance: float = 0.05
    max_steps: int = 12
    best_rps: float | None = None  # highest PASS
    lowest_failed_rps: float | None = None  # lowest rate that did not pass
    steps: list[tuple[float, str]] = field(default_factory=list)

    def next_rate(self) -> float | None:
        """Return the next rate to run at, or None when the search is over."""
        if len(self.steps) >= self.max_steps:
            return None
        passed, failed = self.best_rps, self.lowest_failed_rps
        if passed is None and failed is None:
            return self.start_rps
        if failed is None:
            assert passed is not None
            return None if passed >= self.max_rps else min(passed * 2, self.max_rps)
        if passed is None:
            return None if failed / 2 < self.min_rps else failed / 2
        if failed - passed <= self.tolerance * passed:
            return None
        return (passed + failed) / 2

    def observe(self, rate_rps: float, verdict: str) -> None:
        """Record the verdict of the run at ``rate_rps``."""
        self.steps.append((rate_rps, verdict))
        if verdict == "PASS":
            self.best_rps = max(self.best_rps or 0.0, rate_rps)
        else:
            self.lowest_failed_rps = min(self.lowest_failed_rps or float("inf"), rate_rps)


@dataclass(frozen=True, slots=True, kw_only=True)
class MaxRate:
    """The search's answer: the highest passing rate (None: none passed), every step, and the
    results of the run at that rate (its evidence)."""

    rate_rps: float | None
    steps: tuple[Step, ...]
    evidence: Results | None
    bracket: tuple[float | None, float | None]  # (highest PASS, lowest not PASS)


def at_rate(spec: ExperimentSpec, rate_rps: float) -> ExperimentSpec:
    """Return ``spec`` loading at ``rate_rps`` (open model), everything else as written."""
    if spec.load.rate is None or spec.load.stages:
        raise SpecError("--find-max-rate: the spec needs load.rate (the open model, no "
                        "stages): the search starts there")
    return spec.model_copy(update={"load": spec.load.model_copy(update={"rate": rate_rps})})


def find_max_rate(spec: ExperimentSpec, run_at: Callable[[ExperimentSpec], Results], *,
                  log: Callable[[str], None] = lambda _m: None, tolerance: float = 0.05,
                  max_steps: int = 12) -> MaxRate:
    """Return the highest rate at which ``run_at(spec at that rate)`` PASSes (see module)."""
    start = at_rate(spec, spec.load.rate or 0.0).load.rate or 0.0
    search = MaxRateSearch(start_rps=start, tolerance=tolerance, max_steps=max_steps)
    steps: list[Step] = []
    best: Results | None = None
    while (rate := search.next_rate()) is not None:
        results = run_at(at_rate(spec, rate))
        log(f"find-max-rate: {rate:g} req/s: {results.verdict}")
        steps.append(Step(rate_rps=rate, verdict=results.verdict,
                          reasons=tuple(results.reasons)))
        search.observe(rate, results.verdict)
        if results.aborted:  # Ctrl-C, or the target refused every connection: no more runs
            break
        if results.verdict == "PASS" and search.best_rps == rate:
            best = results
    return MaxRate(rate_rps=search.best_rps, steps=tuple(steps), evidence=best,
                   bracket=(search.best_rps, search.lowest_failed_rps))


def summary_lines(found: MaxRate) -> list[str]:
    """Return the search in words: the answer, its bracket, then one line per run."""
    failed = found.bracket[1]
    if found.rate_rps is None:
        head = "find-max-rate: no rate tried passed every objective"
    else:
        above = f", {failed:g} req/s did not" if failed is not None else ""
        head = (f"find-max-rate: {found.rate_rps:g} req/s is the highest rate that passed "
                f"every objective{above}")
    lines = [head]
    for step in found.steps:
        why = "" if step.verdict == "PASS" or not step.reasons else f": {step.reasons[0]}"
        lines.append(f"  {step.rate_rps:10g} req/s  {step.verdict}{why}")
    return lines
