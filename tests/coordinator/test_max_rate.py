"""The max-rate search stepped one verdict at a time (coordinator.max_rate.MaxRateSearch), and
the CLI flag that runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from analysis.results import Results
from coordinator.cli import main
from coordinator.max_rate import MaxRateSearch, find_max_rate, summary_lines
from coordinator.spec import ExperimentSpec, parse_spec


def search_against(capacity: float, start: float, **options: float) -> MaxRateSearch:
    """Run the search against a target that passes exactly at rates up to ``capacity``."""
    search = MaxRateSearch(start_rps=start, **options)  # type: ignore[arg-type]
    while (rate := search.next_rate()) is not None:
        search.observe(rate, "PASS" if rate <= capacity else "FAIL")
    return search


def test_doubles_then_bisects_to_within_the_tolerance() -> None:
    """From 100 req/s against a 700 req/s capacity: 100, 200, 400, 800, then bisection."""
    search = search_against(700, 100)
    rates = [rate for rate, _ in search.steps]
    assert rates[:5] == [100, 200, 400, 800, 600]
    assert search.best_rps is not None and search.lowest_failed_rps is not None
    assert search.lowest_failed_rps - search.best_rps <= 0.05 * search.best_rps
    assert search.best_rps <= 700 < search.lowest_failed_rps


def test_halves_when_the_first_rate_does_not_pass() -> None:
    """Starting above capacity, the search halves until a rate passes, then bisects."""
    search = search_against(30, 1000)
    assert [r for r, _ in search.steps][:6] == [1000, 500, 250, 125, 62.5, 31.25]
    assert search.best_rps is not None and 30 * 0.95 <= search.best_rps <= 30


def test_nothing_passes_ends_without_a_rate() -> None:
    """A target that never passes ends the search below min_rps with no answer."""
    search = search_against(-1, 10, min_rps=1.0)
    assert search.best_rps is None and [r for r, _ in search.steps] == [10, 5, 2.5, 1.25]


def test_an_inconclusive_run_counts_as_not_passing() -> None:
    """Only PASS raises the floor: INCONCLUSIVE (the generator lagged, too few requests)
    bounds the search from above like a FAIL."""
    search = MaxRateSearch(start_rps=100)
    search.observe(100, "PASS")
    search.observe(200, "INCONCLUSIVE")
    assert (search.best_rps, search.lowest_failed_rps, search.next_rate()) == (100, 200, 150)


@given(st.floats(1, 1e5), st.floats(1, 1e5))
def test_the_answer_is_within_tolerance_below_the_capacity(capacity: float, start: float) -> None:
    """For any capacity and start, the answer is a rate that passed, within 5 % of the
    boundary (or the step budget ran out first)."""
    search = search_against(capacity, start, max_steps=40)
    assert search.best_rps is not None and search.best_rps <= capacity
    assert search.best_rps >= capacity / 1.05 - 1e-9


@pytest.mark.parametrize("steps", [1, 3])
def test_the_step_budget_bounds_the_runs(steps: int) -> None:
    """No more runs than max_steps, whatever the target."""
    assert len(search_against(1e9, 1, max_steps=steps).steps) == steps


def test_the_cli_refuses_a_spec_the_search_cannot_start_from(tmp_path: Path) -> None:
    """``slogate run --find-max-rate`` on a staged spec: exit 2 with one line, before Ray
    starts."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: t\ntarget: http://127.0.0.1:9\nload:\n  stages:\n"
                    "    - {users: 2, duration: 1s}\n")
    result = CliRunner().invoke(main, ["run", str(spec), "--find-max-rate"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].endswith(
        "--find-max-rate: the spec needs load.rate (the open model) or load.concurrency (the "
        "closed model), without stages: the search starts there")


def users_against(capacity: int, start: int, workers: int = 1) -> MaxRateSearch:
    """Run the whole-number search against a target that passes up to ``capacity`` users."""
    search = MaxRateSearch(start_rps=start, min_rps=workers, whole=True, max_rps=100_000,
                           max_steps=40)
    while (users := search.next_rate()) is not None:
        search.observe(users, "PASS" if users <= capacity else "FAIL")
    return search


def test_users_double_then_bisect_in_whole_numbers_to_the_capacity() -> None:
    """From 4 users against a capacity of 19: 4, 8, 16, 32, then whole-number bisection down
    to 19 exactly (one user apart from the lowest failure)."""
    search = users_against(19, 4)
    users = [u for u, _ in search.steps]
    assert users == [4, 8, 16, 32, 24, 20, 18, 19]
    assert all(float(u).is_integer() for u in users)
    assert (search.best_rps, search.lowest_failed_rps) == (19, 20)


@given(st.integers(1, 5000), st.integers(1, 5000), st.integers(1, 4))
def test_the_users_found_are_within_tolerance_and_never_below_the_workers(
        capacity: int, start: int, workers: int) -> None:
    """For any capacity, start and worker count: every load tried is a whole number of users,
    at least one per worker; the answer passed and is within 5 % (or one user) of the
    capacity, or none passed when even one user per worker is too many."""
    start = max(start, workers)
    search = users_against(capacity, start, workers)
    assert all(float(u).is_integer() and u >= workers for u, _ in search.steps)
    if capacity < workers:
        assert search.best_rps is None
        return
    assert search.best_rps is not None and search.best_rps <= capacity
    assert search.best_rps >= min(capacity / 1.05, capacity - 1)


def test_find_max_rate_over_users_runs_each_whole_number_and_keeps_the_evidence() -> None:
    """A closed-model spec: each run the search asks for has that many users (and no rate),
    the answer's unit is users, and the summary says so."""
    spec = parse_spec({"name": "t", "target": "http://127.0.0.1:9",
                       "load": {"concurrency": 4, "duration": "1s", "workers": 2}})
    asked: list[tuple[object, object]] = []

    def run_at(at: ExperimentSpec) -> Results:
        asked.append((at.load.concurrency, at.load.rate))
        verdict = "PASS" if (at.load.concurrency or 0) <= 11 else "FAIL"
        return cast(Any, Results).model_construct(verdict=verdict, reasons=[], aborted=False)

    found = find_max_rate(spec, run_at)
    assert [users for users, _ in asked] == [4, 8, 16, 12, 10, 11]
    assert {rate for _, rate in asked} == {None}
    assert (found.rate_rps, found.bracket, found.unit) == (11, (11, 12), "users")
    assert summary_lines(found)[0] == ("find-max-rate: 11 users is the highest number of users "
                                       "that passed every objective, 12 users did not")
