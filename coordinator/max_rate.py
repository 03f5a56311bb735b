"""``slogate run --find-max-rate``: the highest rate (open model) or the most users (closed
model) at which every objective still PASSes.

A stepped search, as a plain state machine (:class:`MaxRateSearch`, fed one verdict at a time)
and a loop that runs the spec at each load it asks for (:func:`find_max_rate`, the runs
injected). From the spec's ``load.rate`` (or ``load.concurrency``): double while the run
PASSes, halve while it does not, then bisect between the highest PASS and the lowest other
verdict until they are within ``tolerance`` of each other (5 %: the answer is within 5 % of the
boundary the runs saw; users: also when they are one user apart) or ``max_steps`` runs were
made. Users are whole numbers, never fewer than the workers. Any verdict but PASS (FAIL,
INCONCLUSIVE: the generator could not keep up, or too few requests to decide; INVALID) counts
as "not at this load". The evidence is the results of the run at the load found, saved as a
normal results document.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from analysis.results import Results
from coordinator.errors import SpecError
from coordinator.spec import MAX_CONNECTIONS, ExperimentSpec


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
    whole: bool = False  # users: whole numbers, done when one apart
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
            half = failed // 2 if self.whole else failed / 2
            if half >= self.min_rps:
                return half
            return self.min_rps if self.whole and failed > self.min_rps else None
        if failed - passed <= self.tolerance * passed or (self.whole and failed - passed <= 1):
            return None
        return (passed + failed) // 2 if self.whole else (passed + failed) / 2

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
    unit: str = "req/s"  # or "users": what rate_rps, the bracket and the steps count


def search_unit(spec: ExperimentSpec) -> str:
    """Return what the search varies in ``spec``: ``req/s`` (``load.rate``) or ``users``
    (``load.concurrency``); SpecError for a spec it cannot start from (stages, or neither)."""
    load = spec.load
    if load.stages or (load.rate is None and load.concurrency is None):
        raise SpecError("--find-max-rate: the spec needs load.rate (the open model) or "
                        "load.concurrency (the closed model), without stages: the search "
                        "starts there")
    return "req/s" if load.rate is not None else "users"


def at_rate(spec: ExperimentSpec, rate_rps: float) -> ExperimentSpec:
    """Return ``spec`` loading at ``rate_rps`` (open model) or with that many users (closed
    model), everything else as written."""
    field = "rate" if search_unit(spec) == "req/s" else "concurrency"
    value = rate_rps if field == "rate" else int(rate_rps)
    return spec.model_copy(update={"load": spec.load.model_copy(update={field: value})})


def find_max_rate(spec: ExperimentSpec, run_at: Callable[[ExperimentSpec], Results], *,
                  log: Callable[[str], None] = lambda _m: None, tolerance: float = 0.05,
                  max_steps: int = 12) -> MaxRate:
    """Return the highest rate (or the most users) at which ``run_at(spec at that load)``
    PASSes (see module)."""
    unit = search_unit(spec)
    load = spec.load
    if unit == "users":
        search = MaxRateSearch(start_rps=load.concurrency or 1, min_rps=load.workers,
                               max_rps=MAX_CONNECTIONS, tolerance=tolerance,
                               max_steps=max_steps, whole=True)
    else:
        search = MaxRateSearch(start_rps=load.rate or 0.0, tolerance=tolerance,
                               max_steps=max_steps)
    steps: list[Step] = []
    best: Results | None = None
    while (rate := search.next_rate()) is not None:
        results = run_at(at_rate(spec, rate))
        log(f"find-max-rate: {rate:g} {unit}: {results.verdict}")
        steps.append(Step(rate_rps=rate, verdict=results.verdict,
                          reasons=tuple(results.reasons)))
        search.observe(rate, results.verdict)
        if results.aborted:  # Ctrl-C, or the target refused every connection: no more runs
            break
        if results.verdict == "PASS" and search.best_rps == rate:
            best = results
    return MaxRate(rate_rps=search.best_rps, steps=tuple(steps), evidence=best,
                   bracket=(search.best_rps, search.lowest_failed_rps), unit=unit)


def summary_lines(found: MaxRate) -> list[str]:
    """Return the search in words: the answer, its bracket, then one line per run."""
    failed, unit = found.bracket[1], found.unit
    what = "rate" if unit == "req/s" else "number of users"
    if found.rate_rps is None:
        head = f"find-max-rate: no {what} tried passed every objective"
    else:
        above = f", {failed:g} {unit} did not" if failed is not None else ""
        head = (f"find-max-rate: {found.rate_rps:g} {unit} is the highest {what} that passed "
                f"every objective{above}")
    lines = [head]
    for step in found.steps:
        why = "" if step.verdict == "PASS" or not step.reasons else f": {step.reasons[0]}"
        lines.append(f"  {step.rate_rps:10g} {unit}  {step.verdict}{why}")
    return lines
