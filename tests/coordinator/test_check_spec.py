"""Response checks in the spec: what is accepted, what is refused with one line, and what the
workers get (coordinator.spec.CheckSpec)."""

from __future__ import annotations

from typing import Any

import pytest

from coordinator.errors import SpecError
from coordinator.spec import parse_spec
from coordinator.split import worker_plans
from workers.checks import Check


def spec_with(checks: list[Any], **extra: Any) -> dict[str, Any]:
    """Return a spec whose one endpoint has ``checks``."""
    return {"name": "t", "target": "http://127.0.0.1:9", "load": {"rate": 1, "duration": 1},
            "endpoints": [{"path": "/", "checks": checks}], **extra}


def test_checks_reach_the_plan_with_default_names_and_the_error_ranges() -> None:
    """Each check becomes the workers' value, named by its kind unless named."""
    spec = parse_spec(spec_with([{"status": [200, "201-204"]}, {"bodyContains": "ok"},
                                 {"name": "id", "json": "$.a[0]", "equals": {"b": 1}},
                                 {"json": "$.gone", "exists": False}, {"minBytes": 1},
                                 {"header": "ETag"}, {"bodyMatches": "^o"}],
                                errorRanges=["500-599"]))
    [plan] = worker_plans(spec)
    checks = plan.requests[0].checks
    assert checks is not None and checks.error_ranges == ((500, 599),)
    assert checks.checks == (
        Check(name="status", statuses=((200, 200), (201, 204))),
        Check(name="body-contains", contains=b"ok"),
        Check(name="id", json_path=("a", 0), json_equals='{"b": 1}'),
        Check(name="json", json_path=("gone",), json_exists=False),
        Check(name="size", min_bytes=1),
        Check(name="header", header="ETag"),
        Check(name="body-matches", matches="^o"))


@pytest.mark.parametrize(("checks", "message"), [
    pytest.param([{}], "give exactly one of .* \\(got none\\)", id="no-kind"),
    pytest.param([{"bodyContains": "a", "header": "X"}], "got body-contains, header",
                 id="two-kinds"),
    pytest.param([{"equals": 1, "bodyContains": "a"}], "equals and exists go with json",
                 id="equals-without-json"),
    pytest.param([{"json": "$.a", "equals": 1, "exists": True}], "equals or exists, not both",
                 id="equals-and-exists"),
    pytest.param([{"json": "a.b"}], r"json: 'a.b': a JSON path starts with '\$'",
                 id="bad-path"),
    pytest.param([{"bodyMatches": "(unclosed"}], "bodyMatches: missing \\)", id="bad-regex"),
    pytest.param([{"minBytes": 5, "maxBytes": 1}], "minBytes is greater than maxBytes",
                 id="size-range"),
    pytest.param([{"status": ["2xx"]}], "not a status", id="bad-status"),
    pytest.param([{"bodyContains": "a"}, {"bodyContains": "b"}],
                 r"checks: names must be unique; name the checks called \['body-contains'\]",
                 id="duplicate-names"),
    pytest.param([{"name": "a b", "header": "X"}], "should match pattern", id="bad-name"),
])
def test_bad_checks_are_one_line_spec_errors(checks: list[Any], message: str) -> None:
    """A check the workers could not run is refused at the spec, naming the field."""
    with pytest.raises(SpecError, match=message) as caught:
        parse_spec(spec_with(checks))
    assert "endpoints[0]" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("objective", [
    pytest.param({"metric": "check-rate", "upperLimit": "0.5%"}, id="mapping"),
    pytest.param({"metric": "check-count", "upperLimit": 3}, id="count"),
])
def test_check_metrics_are_objectives(objective: dict[str, Any]) -> None:
    """check-rate takes a ratio limit like error-rate; check-count a count."""
    spec = parse_spec(spec_with([{"bodyContains": "ok"}], objectives=[objective]))
    assert spec.objectives[0].upper_limit in (0.005, 3)
