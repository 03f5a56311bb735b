"""Request data rows in a worker: the order each endpoint sends its rows in (workers.rows)."""

from __future__ import annotations

import collections

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.plan import RequestTemplate
from workers.rows import per_endpoint, row_stream


def take(items: list[int], order: str, n: int, stream: str = "0/0/0") -> list[int]:
    """Return the first ``n`` items a row stream gives."""
    draw = row_stream(items, order, stream)
    return [draw() for _ in range(n)]


def test_sequential_loops_over_the_rows_in_file_order() -> None:
    """Sequential order sends the rows as given, from the first again after the last."""
    assert take([1, 2, 3], "sequential", 7) == [1, 2, 3, 1, 2, 3, 1]


@given(st.lists(st.integers(), min_size=1, max_size=40, unique=True), st.integers(1, 4),
       st.text(max_size=8))
def test_shuffle_sends_every_row_once_per_pass(items: list[int], passes: int, stream: str) -> None:
    """Each pass of a shuffled stream is a permutation of the rows."""
    got = take(items, "shuffle", len(items) * passes, stream)
    for p in range(passes):
        assert sorted(got[p * len(items):(p + 1) * len(items)]) == sorted(items)


@pytest.mark.parametrize("order", ["shuffle", "random"])
def test_seeded_orders_repeat_for_the_same_stream_and_differ_between_streams(order: str) -> None:
    """The same stream key gives the same rows (a rerun, or baseline and candidate); another
    worker's or endpoint's key another sequence."""
    items = list(range(50))
    assert take(items, order, 200, "7/0/0") == take(items, order, 200, "7/0/0")
    assert take(items, order, 200, "7/0/0") != take(items, order, 200, "7/1/0")


def test_random_draws_every_row_about_equally_often() -> None:
    """Random order draws with replacement, uniformly: 10 rows over 20,000 draws each come
    2,000 +- 5 standard deviations (sd = sqrt(20000 * 0.1 * 0.9) = 42)."""
    counts = collections.Counter(take(list(range(10)), "random", 20_000))
    assert set(counts) == set(range(10))
    assert all(abs(c - 2000) < 5 * 42.5 for c in counts.values()), counts


def test_a_stream_refuses_no_rows_and_an_unknown_order() -> None:
    """An empty slice or an unknown order is a ValueError, not an endless empty loop."""
    with pytest.raises(ValueError, match="at least one row"):
        row_stream([], "sequential", "")
    with pytest.raises(ValueError, match="unknown row order"):
        row_stream([1], "backwards", "")


def template(label: str, rows: tuple[RequestTemplate, ...] = ()) -> RequestTemplate:
    """Return a GET template of ``label`` (its url), with request data ``rows``."""
    return RequestTemplate(label=label, method="GET", url=f"http://h/{label}", rows=rows)


def test_per_endpoint_cycles_rows_and_repeats_fixed_endpoints() -> None:
    """``[e]()`` is endpoint e's next request: its rows in order, or its one fixed request
    again; each row is built once, whatever the number of requests."""
    calls: list[str] = []

    def build(t: RequestTemplate) -> str:
        calls.append(t.url)
        return t.url

    rows = (template("r1"), template("r2"))
    nexts = per_endpoint([template("a", rows), template("b")], build)
    assert [nexts[0]() for _ in range(5)] == ["http://h/r1", "http://h/r2"] * 2 + ["http://h/r1"]
    assert [nexts[1]() for _ in range(3)] == ["http://h/b"] * 3
    assert sorted(calls) == ["http://h/b", "http://h/r1", "http://h/r2"]
