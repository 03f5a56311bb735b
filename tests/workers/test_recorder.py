"""Tests for workers.recorder: flat rows in, windows of histograms out (pure, no clock)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.histogram import Histogram
from workers.recorder import CODE_SPAN, Recorder, Window

FAST = settings(max_examples=200, deadline=None)

S = 1_000_000_000  # one second in ns
MS = 1_000_000
LABELS = ["GET /a", "POST /b"]


def ok(endpoint: int = 0) -> int:
    """Return the code of an HTTP 200 on ``endpoint``."""
    return endpoint * CODE_SPAN + 200


def by_index(windows: list[Window]) -> dict[int, Window]:
    """Return windows keyed by their index (checking no index appears twice)."""
    out = {w.index: w for w in windows}
    assert len(out) == len(windows)
    return out


def count(windows: list[Window]) -> int:
    """Return how many finished requests the windows hold."""
    return sum(w.requests for w in windows)


# --- which window a row lands in ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("window_s", "excluded_ns", "intended_ns", "index"),
    [
        pytest.param(1.0, 0, 0, 0, id="start-of-first-window"),
        pytest.param(1.0, 0, S - 1, 0, id="last-ns-of-first-window"),
        pytest.param(1.0, 0, S, 1, id="window-end-belongs-to-the-next"),
        pytest.param(1.0, 0, 7 * S + 5, 7, id="eighth-window"),
        pytest.param(0.25, 0, 600 * MS, 2, id="quarter-second-windows"),
        pytest.param(1.0, 500 * MS, 500 * MS, 0, id="windows-start-after-exclusion"),
        pytest.param(1.0, 500 * MS, S + 499 * MS, 0, id="exclusion-shifts-window-edges"),
        pytest.param(1.0, 500 * MS, S + 500 * MS, 1, id="second-window-after-exclusion"),
    ],
)
def test_row_lands_in_window_of_its_intended_time(
    window_s: float, excluded_ns: int, intended_ns: int, index: int
) -> None:
    """A row belongs to the window of (intended - excluded) // window, whenever it was done."""
    rec = Recorder(labels=LABELS, window_s=window_s, excluded_ns=excluded_ns)
    rec.record(ok(), intended_ns, intended_ns + 10 * S, intended_ns + 30 * S)  # done 30 s later
    [window] = rec.close()
    assert window.index == index
    assert window.start_s == pytest.approx(index * window_s)
    assert (window.requests, window.scheduled, window.sent) == (1, 1, 1)


def test_rows_before_exclusion_count_as_warmup_only() -> None:
    """Rows intended before ``excluded_ns`` are counted in ``warmup_count`` and in no window."""
    rec = Recorder(labels=LABELS, window_s=1.0, excluded_ns=2 * S)
    for intended in (0, S, 2 * S - 1):
        rec.record(ok(), intended, intended, intended + MS)
    rec.record(ok(), 2 * S, 2 * S, 2 * S + MS)
    assert rec.drain(10 * S) != []
    assert rec.warmup_count == 3
    assert rec.close() == []
    assert rec.warmup_count == 3  # not counted again


def test_warmup_count_adds_to_what_the_engine_counted() -> None:
    """Rows dropped as warm-up add to a count the engine raised itself (warm-up requests)."""
    rec = Recorder(labels=LABELS, window_s=1.0, excluded_ns=S)
    rec.warmup_count = 5  # as RunState.finish does for the first warmupRequests
    rec.record(ok(), 0, 0, MS)
    rec.close()
    assert rec.warmup_count == 6


# --- drain and close ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("excluded_ns", "before_ns", "drained"),
    [
        pytest.param(0, 0, [], id="nothing-has-ended-at-start"),
        pytest.param(0, S - 1, [], id="first-window-not-quite-over"),
        pytest.param(0, S, [0], id="first-window-ends-exactly-at-before"),
        pytest.param(0, 2 * S + 1, [0, 1], id="two-windows-over"),
        pytest.param(0, 100 * S, [0, 1, 2], id="all-over"),
        pytest.param(500 * MS, S + 499 * MS, [], id="exclusion-delays-the-first-end"),
        pytest.param(500 * MS, S + 500 * MS, [0], id="first-window-ends-at-excluded-plus-window"),
        pytest.param(0, -S, [], id="negative-before"),
    ],
)
def test_drain_returns_only_windows_that_have_ended(
    excluded_ns: int, before_ns: int, drained: list[int]
) -> None:
    """drain(t) returns the windows ending at or before t, in order; close() returns the rest."""
    rec = Recorder(labels=LABELS, window_s=1.0, excluded_ns=excluded_ns)
    for index in (0, 1, 2):
        for k in range(index + 1):  # window i holds i + 1 rows, to tell them apart
            intended = excluded_ns + index * S + k * MS
            rec.record(ok(), intended, intended, intended + MS)
    first = rec.drain(before_ns)
    rest = rec.close()
    assert [w.index for w in first] == drained
    assert [w.index for w in rest] == [i for i in (0, 1, 2) if i not in drained]
    assert [w.requests for w in first + rest] == [w.index + 1 for w in first + rest]
    assert rec.close() == []


def test_unsent_lands_in_scheduled_but_not_sent() -> None:
    """An unsent request counts in its window's ``scheduled``, not in ``sent`` or a histogram."""
    rec = Recorder(labels=LABELS, window_s=1.0)
    rec.record(ok(), 100 * MS, 100 * MS, 110 * MS)
    rec.unsent(200 * MS)
    rec.unsent(300 * MS)
    rec.unsent(S + 1)  # alone in window 1: the window exists with nothing sent
    windows = by_index(rec.close())
    assert (windows[0].scheduled, windows[0].sent, windows[0].requests) == (3, 1, 1)
    assert (windows[1].scheduled, windows[1].sent, windows[1].requests) == (1, 0, 0)
    assert windows[1].latency == {} and windows[1].service == {}
    assert windows[1].lag.total == 0


def test_unsent_is_drained_with_its_window() -> None:
    """An unsent request leaves with its own window's drain, not an earlier one."""
    rec = Recorder(labels=LABELS, window_s=1.0)
    rec.unsent(500 * MS)
    rec.unsent(S + 500 * MS)
    [early] = rec.drain(S)
    [late] = rec.close()
    assert (early.index, early.scheduled, late.index, late.scheduled) == (0, 1, 1, 1)


# Rows: (endpoint, intended_ns, send delay, service time); intended may fall in the exclusion.
rows_strategy = st.lists(
    st.tuples(st.integers(0, 1), st.integers(0, 6 * S), st.integers(0, S), st.integers(0, 3 * S)),
    max_size=60,
)


@FAST
@given(
    rows=rows_strategy,
    unsent=st.lists(st.integers(0, 6 * S), max_size=20),
    drains=st.lists(st.integers(-S, 8 * S), max_size=6),
    excluded_ns=st.sampled_from([0, 300 * MS, S]),
    window_s=st.sampled_from([0.25, 1.0, 2.0]),
)
def test_counts_are_conserved_across_drains(
    rows: list[tuple[int, int, int, int]], unsent: list[int], drains: list[int],
    excluded_ns: int, window_s: float,
) -> None:
    """Over any sequence of drains then close, every row is in exactly one window or in warm-up.

    Also: each window's ``scheduled`` is its rows plus its unsent, drains come out in index order,
    and no window index is returned twice (all rows were recorded before the first drain).
    """
    rec = Recorder(labels=LABELS, window_s=window_s, excluded_ns=excluded_ns)
    for endpoint, intended, delay, service in rows:
        rec.record(ok(endpoint), intended, intended + delay, intended + delay + service)
    for intended in unsent:
        rec.unsent(intended)
    batches = [rec.drain(before) for before in sorted(drains)] + [rec.close()]
    windows = [w for batch in batches for w in batch]
    for batch in batches:
        assert [w.index for w in batch] == sorted({w.index for w in batch})
    by_index(windows)
    measured_rows = sum(1 for _, intended, _, _ in rows if intended >= excluded_ns)
    measured_unsent = sum(1 for intended in unsent if intended >= excluded_ns)
    assert count(windows) == sum(w.sent for w in windows) == measured_rows
    assert rec.warmup_count == len(rows) - measured_rows
    assert sum(w.scheduled for w in windows) == measured_rows + measured_unsent
    assert all(w.lag.total == w.sent for w in windows)
    assert all(sum(h.total for h in w.service.values()) == w.requests for w in windows)


@FAST
@given(rows=rows_strategy, before=st.integers(0, 8 * S))
def test_drain_then_close_equals_close(rows: list[tuple[int, int, int, int]], before: int) -> None:
    """Draining early changes how windows are batched, never their contents."""
    whole, split = (Recorder(labels=LABELS, window_s=1.0) for _ in range(2))
    for rec in (whole, split):
        for endpoint, intended, delay, service in rows:
            rec.record(ok(endpoint), intended, intended + delay, intended + delay + service)
    assert whole.close() == split.drain(before) + split.close()


@FAST
@given(rows=rows_strategy, closed=st.booleans(),
       statuses=st.lists(st.sampled_from([200, 200, 200, 503]), min_size=60, max_size=60))
def test_windows_hold_exactly_the_histograms_of_their_rows(
    rows: list[tuple[int, int, int, int]], closed: bool, statuses: list[int],
) -> None:
    """Each window's histograms equal histograms built value by value from its rows (latency
    done - intended, service done - sent, lag sent - intended), whether every row was sent when
    intended (the closed model, where the recorder reuses latency for service) or not."""
    rec = Recorder(labels=LABELS, window_s=1.0)
    expected: dict[int, dict[str, list[int]]] = {}
    for i, (endpoint, intended, delay, service) in enumerate(rows):
        delay = 0 if closed else delay
        code = endpoint * CODE_SPAN + statuses[i % len(statuses)]
        sent, done = intended + delay, intended + delay + service
        rec.record(code, intended, sent, done)
        values = expected.setdefault(intended // S, {})
        values.setdefault(f"latency{code}", []).append(done - intended)
        values.setdefault(f"service{code}", []).append(done - sent)
        values.setdefault("lag", []).append(sent - intended)
    for window in rec.close():
        values = expected.pop(window.index)
        assert window.lag == Histogram.from_values(values["lag"])
        for (label, outcome), hist in window.latency.items():
            code = LABELS.index(label) * CODE_SPAN + int(outcome.removeprefix("status:"))
            assert hist == Histogram.from_values(values[f"latency{code}"])
            service_hist = window.service[(label, outcome)]
            assert service_hist == Histogram.from_values(values[f"service{code}"])
        assert sum(h.total for h in window.latency.values()) == len(values["lag"])
    assert not expected


def test_sent_when_intended_reads_the_sent_time_as_intended() -> None:
    """After ``sent_when_intended`` a row's intended time is ignored: it lands in the window of
    its sent time, latency equals service (done - sent) and lag is zero. Declaring it after the
    first row is an error, since earlier rows kept theirs."""
    rec = Recorder(labels=LABELS, window_s=1.0)
    rec.sent_when_intended()
    rec.record(ok(), 0, S + 100 * MS, S + 130 * MS)  # intended 0 is not kept
    [window] = rec.close()
    assert window.index == 1
    [latency] = window.latency.values()
    assert latency == window.service[("GET /a", "status:200")] == Histogram.from_values([30 * MS])
    assert window.lag == Histogram.from_values([0])
    late = Recorder(labels=LABELS, window_s=1.0)
    late.record(ok(), 0, 0, MS)
    with pytest.raises(RuntimeError):
        late.sent_when_intended()


# --- what goes into the histograms --------------------------------------------------------------


def test_latency_counts_from_intended_and_service_from_sent() -> None:
    """latency = done - intended, service = done - sent, lag = sent - intended, per key."""
    rec = Recorder(labels=LABELS, window_s=1.0)
    # A request intended at 1 ms, sent 2 ms late (queued), answered 7 ms after sending.
    rec.record(ok(0), 1 * MS, 3 * MS, 10 * MS)
    rec.record(ok(1), 2 * MS, 2 * MS, 52 * MS)
    rec.record(1 * CODE_SPAN + 503, 4 * MS, 5 * MS, 6 * MS)
    [window] = rec.close()
    assert window.latency == {
        ("GET /a", "status:200"): Histogram.from_values([9 * MS]),
        ("POST /b", "status:200"): Histogram.from_values([50 * MS]),
        ("POST /b", "status:503"): Histogram.from_values([2 * MS]),
    }
    assert window.service == {
        ("GET /a", "status:200"): Histogram.from_values([7 * MS]),
        ("POST /b", "status:200"): Histogram.from_values([50 * MS]),
        ("POST /b", "status:503"): Histogram.from_values([1 * MS]),
    }
    assert window.lag == Histogram.from_values([2 * MS, 0, 1 * MS])


def test_lag_of_a_send_before_its_intended_time_is_zero() -> None:
    """A send recorded before its intended time (clock granularity) lags by 0, not negatively."""
    rec = Recorder(labels=LABELS, window_s=1.0)
    rec.record(ok(), 5 * MS, 4 * MS, 9 * MS)
    [window] = rec.close()
    assert window.lag == Histogram.from_values([0])
    assert window.service[("GET /a", "status:200")] == Histogram.from_values([5 * MS])


@pytest.mark.parametrize(
    ("endpoint", "outcome"),
    [
        pytest.param(0, "status:200", id="status-200"),
        pytest.param(1, "status:503", id="status-503-second-endpoint"),
        pytest.param(0, "status:100", id="lowest-status"),
        pytest.param(0, "status:599", id="highest-status"),
        pytest.param(0, "timeout", id="timeout"),
        pytest.param(1, "connect", id="connect"),
        pytest.param(0, "reset", id="reset"),
        pytest.param(1, "tls", id="tls"),
        pytest.param(0, "error:Foo", id="interned-error"),
        pytest.param(1, "error:ClientPayloadError", id="interned-error-second-endpoint"),
    ],
)
def test_code_of_round_trips_into_the_window_key(endpoint: int, outcome: str) -> None:
    """An outcome string turned into a code comes back as the (label, outcome) key of its window."""
    rec = Recorder(labels=LABELS, window_s=1.0)
    rec.record(rec.code_of(endpoint, outcome), 0, 0, MS)
    [window] = rec.close()
    assert list(window.latency) == [(LABELS[endpoint], outcome)]


def test_interned_outcomes_are_stable_and_distinct() -> None:
    """The same unknown outcome always gets the same code; different ones get different codes."""
    rec = Recorder(labels=LABELS, window_s=1.0)
    foo, bar = rec.code_of(0, "error:Foo"), rec.code_of(0, "error:Bar")
    assert rec.code_of(0, "error:Foo") == foo != bar
    assert rec.code_of(1, "error:Foo") == foo + CODE_SPAN
    for code in (foo, bar, foo):
        rec.record(code, 0, 0, MS)
    [window] = rec.close()
    assert {key: h.total for key, h in window.latency.items()} == {
        ("GET /a", "error:Foo"): 2, ("GET /a", "error:Bar"): 1}
