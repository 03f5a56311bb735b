"""Tests for coordinator.split: exact per-worker splits and ready-to-send request templates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.errors import SpecError
from coordinator.spec import EndpointSpec, ExperimentSpec, parse_spec
from coordinator.split import request_template, split_count, worker_plans
from tests.support.helpers import present

FAST = settings(max_examples=200, deadline=None)
TARGET = "http://127.0.0.1:8080"


def spec_with(load: dict[str, Any], **fields: Any) -> ExperimentSpec:
    """Returns a validated spec with the given load section (and other top-level fields)."""
    return parse_spec({"name": "plan", "target": TARGET, "load": load, **fields})


# --- split_count ------------------------------------------------------------------------------


@FAST
@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=1, max_value=1000))
def test_split_count_is_exact_and_even(total: int, parts: int) -> None:
    """split_count gives `parts` counts that sum to `total`, differ by at most one, larger first."""
    counts = split_count(total, parts)
    assert len(counts) == parts
    assert sum(counts) == total
    assert max(counts) - min(counts) <= 1
    assert counts == sorted(counts, reverse=True)


@pytest.mark.parametrize(
    ("total", "parts", "expected"),
    [
        pytest.param(10, 3, [4, 3, 3], id="10-over-3"),
        pytest.param(5, 2, [3, 2], id="5-over-2"),
        pytest.param(9, 3, [3, 3, 3], id="even"),
        pytest.param(2, 3, [1, 1, 0], id="fewer-than-parts"),
        pytest.param(0, 3, [0, 0, 0], id="zero"),
        pytest.param(7, 1, [7], id="one-part"),
    ],
)
def test_split_count_table(total: int, parts: int, expected: list[int]) -> None:
    """The first total % parts parts get one more than total // parts."""
    assert split_count(total, parts) == expected


# --- worker_plans -----------------------------------------------------------------------------


def test_rate_is_split_into_interleaved_phases() -> None:
    """100 req/s over 3 workers gives 100/3 req/s each, phases i/100 s, summing to 100 req/s."""
    plans = worker_plans(spec_with({"rate": 100, "duration": "10s", "workers": 3}))
    assert [p.worker_index for p in plans] == [0, 1, 2]
    assert {p.worker_count for p in plans} == {3}
    assert {p.model for p in plans} == {"open"}
    assert [p.rate_rps for p in plans] == [100 / 3] * 3
    # Each share is 100/3 rounded once (relative error <= 2**-53), so three of them sum to
    # 100 within a few ulps.
    assert sum(present(p.rate_rps) for p in plans) == pytest.approx(100.0, rel=4 * 2**-53, abs=0)
    assert [p.phase_s for p in plans] == [0.0, 0.01, 0.02]
    assert [p.request_limit for p in plans] == [None] * 3
    assert [p.duration_s for p in plans] == [10.0] * 3
    assert [p.concurrency for p in plans] == [0] * 3


@pytest.mark.parametrize(
    ("load", "field", "expected"),
    [
        pytest.param({"rate": 50, "requests": 10, "workers": 3}, "request_limit", [4, 3, 3],
                     id="requests-10-over-3"),
        pytest.param({"rate": 50, "duration": 1, "warmupRequests": 7, "workers": 3},
                     "warmup_requests", [3, 2, 2], id="warmup-requests-7-over-3"),
        pytest.param({"rate": 50, "duration": 1, "workers": 2}, "warmup_requests", [0, 0],
                     id="no-warmup-requests"),
        pytest.param({"concurrency": 5, "duration": 1, "workers": 2}, "concurrency", [3, 2],
                     id="concurrency-5-over-2"),
        pytest.param({"concurrency": 4, "duration": 1, "workers": 4}, "concurrency", [1, 1, 1, 1],
                     id="one-user-per-worker"),
        pytest.param({"rate": 50, "duration": 1, "workers": 3}, "max_in_flight",
                     [334, 333, 333], id="max-in-flight-exact-share"),
        pytest.param({"rate": 50, "duration": 1, "workers": 3, "maxInFlight": 2}, "max_in_flight",
                     [1] * 3, id="max-in-flight-at-least-one"),
    ],
)
def test_counts_are_split_exactly(load: dict[str, Any], field: str, expected: list[int]) -> None:
    """Requests, warm-up requests and users are split N // W each, the first N % W one more."""
    plans = worker_plans(spec_with(load))
    assert [getattr(p, field) for p in plans] == expected


def test_fewer_requests_than_workers_is_a_spec_error() -> None:
    """Two requests cannot be split over three workers: SpecError naming load.requests."""
    with pytest.raises(SpecError, match=r"^load\.requests: 2 requests cannot be split over 3 workers"):
        worker_plans(spec_with({"rate": 50, "requests": 2, "workers": 3}))


def test_closed_model_plans() -> None:
    """A closed-model plan has no rate and no phase, and carries the load's times."""
    spec = spec_with({"concurrency": 5, "duration": "30s", "warmup": "2s", "workers": 2,
                      "timeout": "500ms", "window": "250ms", "maxDuration": "1m"})
    for plan in worker_plans(spec):
        assert plan.model == "closed"
        assert plan.rate_rps is None
        assert plan.phase_s == 0.0
        assert (plan.duration_s, plan.warmup_s, plan.timeout_s, plan.window_s,
                plan.max_duration_s) == (30.0, 2.0, 0.5, 0.25, 60.0)


def test_too_few_users_for_the_workers() -> None:
    """One user over two workers raises SpecError naming load.concurrency."""
    with pytest.raises(SpecError, match=r"^load\.concurrency: 1 users cannot be split over 2"):
        worker_plans(spec_with({"concurrency": 1, "duration": 1, "workers": 2}))


def test_plans_carry_every_endpoint() -> None:
    """Every worker gets every endpoint as a template, in spec order."""
    spec = spec_with({"rate": 10, "duration": 1, "workers": 2},
                     endpoints=[{"path": "/a"}, {"path": "/b", "method": "POST", "weight": 3}])
    for plan in worker_plans(spec):
        assert [(t.label, t.method, t.url, t.weight) for t in plan.requests] == [
            ("GET /a", "GET", TARGET + "/a", 1.0),
            ("POST /b", "POST", TARGET + "/b", 3.0),
        ]


# --- request_template -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        pytest.param({}, TARGET, id="no-path"),
        pytest.param({"path": "/hello"}, TARGET + "/hello", id="path"),
        pytest.param({"path": "/q", "query": {"x": "1", "y": "a b&c"}},
                     TARGET + "/q?x=1&y=a+b%26c", id="query-encoded"),
        pytest.param({"path": "/q?z=0", "query": {"x": "1"}}, TARGET + "/q?z=0&x=1",
                     id="query-appended-to-existing"),
    ],
)
def test_request_template_url(endpoint: dict[str, Any], url: str, tmp_path: Path) -> None:
    """The URL is the target plus the path, with the query form-encoded after '?' or '&'."""
    template = request_template(EndpointSpec.model_validate(endpoint), TARGET, tmp_path)
    assert template.url == url


@pytest.mark.parametrize(
    ("endpoint", "body", "headers"),
    [
        pytest.param({"method": "POST", "json": {"a": 1, "b": [1, 2]}}, b'{"a":1,"b":[1,2]}',
                     (("Content-Type", "application/json"),), id="json-sets-content-type"),
        pytest.param({"method": "POST", "json": {"a": 1}, "contentType": "application/vnd.x+json"},
                     b'{"a":1}', (("Content-Type", "application/vnd.x+json"),),
                     id="explicit-content-type-kept"),
        pytest.param({"method": "POST", "json": [1], "headers": {"content-type": "text/x"}},
                     b"[1]", (("content-type", "text/x"),), id="explicit-header-kept"),
        pytest.param({"method": "POST", "body": "héllo"}, "héllo".encode(), (),
                     id="string-body-utf8-no-content-type"),
        pytest.param({"method": "POST", "body": "x", "contentType": "text/plain"}, b"x",
                     (("Content-Type", "text/plain"),), id="string-body-with-content-type"),
        pytest.param({"headers": {"X-Trace": "1"}}, None, (("X-Trace", "1"),), id="no-body"),
        pytest.param({"method": "POST", "json": 0}, b"0", (("Content-Type", "application/json"),),
                     id="falsy-json-is-still-a-body"),
    ],
)
def test_request_template_body_and_headers(
    endpoint: dict[str, Any], body: bytes | None, headers: tuple[tuple[str, str], ...],
    tmp_path: Path,
) -> None:
    """A JSON body is compact and typed application/json unless a content type is given."""
    template = request_template(EndpointSpec.model_validate(endpoint), TARGET, tmp_path)
    assert template.body == body
    assert template.headers == headers


def test_request_template_body_file(tmp_path: Path) -> None:
    """A bodyFile is read as bytes, relative to base_dir (the spec file's folder)."""
    payload = bytes(range(256))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "body.bin").write_bytes(payload)
    endpoint = EndpointSpec.model_validate(
        {"path": "/upload", "method": "PUT", "bodyFile": "data/body.bin",
         "contentType": "application/octet-stream"})
    template = request_template(endpoint, TARGET, tmp_path)
    assert template.body == payload
    assert template.method == "PUT"
    assert template.label == "PUT /upload"
    assert template.headers == (("Content-Type", "application/octet-stream"),)


def test_request_template_missing_body_file(tmp_path: Path) -> None:
    """A bodyFile that cannot be read raises SpecError naming the file."""
    endpoint = EndpointSpec.model_validate({"bodyFile": "nope.bin"})
    with pytest.raises(SpecError, match=r"bodyFile .*nope\.bin"):
        request_template(endpoint, TARGET, tmp_path)


def test_worker_plans_read_body_files_from_base_dir(tmp_path: Path) -> None:
    """worker_plans resolves bodyFile against the base_dir it is given."""
    (tmp_path / "b.json").write_bytes(b'{"k": 1}')
    spec = spec_with({"rate": 10, "duration": 1}, endpoints=[{"path": "/p", "bodyFile": "b.json"}])
    (plan,) = worker_plans(spec, tmp_path)
    assert plan.requests[0].body == b'{"k": 1}'
