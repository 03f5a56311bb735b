"""The max-rate search stepped one verdict at a time (coordinator.max_rate.MaxRateSearch), and
the CLI flag that runs it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from coordinator.cli import main
from coordinator.max_rate import MaxRateSearch


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
    """``slogate run --find-max-rate`` on a closed-model spec: exit 2 with one line, before
    Ray starts."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: t\ntarget: http://127.0.0.1:9\nload: {concurrency: 2, duration: 1s}\n")
    result = CliRunner().invoke(main, ["run", str(spec), "--find-max-rate"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].endswith(
        "--find-max-rate: the spec needs load.rate (the open model, no stages): the search "
        "starts there")
