"""Response checks, pure: which check a response fails first (workers.checks)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.checks import Check, Checker, ResponseChecks, parse_json_path


def first_failure(check: Check, status: int = 200, body: bytes = b"",
                  headers: tuple[str, ...] = ()) -> str | None:
    """Return what one check says of one response."""
    return Checker(ResponseChecks(checks=(check,))).first_failure(status, headers, body)


BODY = json.dumps({"user": {"id": 7, "tags": ["a", "b"], "ok": True, "n": None}}).encode()


@pytest.mark.parametrize(("check", "status", "body", "headers", "fails"), [
    pytest.param(Check(name="s", statuses=((200, 200),)), 200, b"", (), False, id="status-in"),
    pytest.param(Check(name="s", statuses=((200, 200),)), 204, b"", (), True, id="status-out"),
    pytest.param(Check(name="c", contains=b'"id": 7'), 200, BODY, (), False, id="contains"),
    pytest.param(Check(name="c", contains=b"missing"), 200, BODY, (), True, id="not-contains"),
    pytest.param(Check(name="m", matches=r'"id": \d+'), 200, BODY, (), False, id="matches"),
    pytest.param(Check(name="m", matches=r"^\[.*\]$"), 200, BODY, (), True, id="no-match"),
    pytest.param(Check(name="j", json_path=("user", "id"), json_equals="7"), 200, BODY, (),
                 False, id="json-equals"),
    pytest.param(Check(name="j", json_path=("user", "id"), json_equals="7.0"), 200, BODY, (),
                 False, id="json-number-equals-float"),
    pytest.param(Check(name="j", json_path=("user", "ok"), json_equals="1"), 200, BODY, (),
                 True, id="json-true-is-not-1"),
    pytest.param(Check(name="j", json_path=("user", "tags", 1), json_equals='"b"'), 200, BODY,
                 (), False, id="json-index"),
    pytest.param(Check(name="j", json_path=("user", "tags", 2)), 200, BODY, (), True,
                 id="json-index-out-of-range"),
    pytest.param(Check(name="j", json_path=("user", "n")), 200, BODY, (), False,
                 id="json-null-exists"),
    pytest.param(Check(name="j", json_path=("user", "gone"), json_exists=False), 200, BODY, (),
                 False, id="json-must-not-exist"),
    pytest.param(Check(name="j", json_path=("user",)), 200, b"<html>", (), True,
                 id="json-not-json"),
    pytest.param(Check(name="z", min_bytes=1, max_bytes=10), 200, b"12345", (), False,
                 id="size-in"),
    pytest.param(Check(name="z", min_bytes=1), 200, b"", (), True, id="size-empty"),
    pytest.param(Check(name="h", header="X-Request-Id"), 200, b"", ("x-request-id",), False,
                 id="header-any-case"),
    pytest.param(Check(name="h", header="X-Request-Id"), 200, b"", ("x-other",), True,
                 id="header-missing"),
])
def test_each_kind_of_check(check: Check, status: int, body: bytes, headers: tuple[str, ...],
                            fails: bool) -> None:
    """Each kind passes what it promises and fails the rest, naming the check."""
    assert first_failure(check, status, body, headers) == (check.name if fails else None)


def test_an_error_status_is_not_checked() -> None:
    """A status in the error ranges stays its own outcome: no check runs on it."""
    checker = Checker(ResponseChecks(checks=(Check(name="c", contains=b"ok"),)))
    assert checker.first_failure(503, (), b"") is None
    assert checker.first_failure(200, (), b"") == "c"


def test_the_first_failing_check_in_order_is_named() -> None:
    """Checks run in the order written; the first that fails is the outcome."""
    checker = Checker(ResponseChecks(checks=(
        Check(name="a", contains=b"x"), Check(name="b", min_bytes=100))))
    assert checker.first_failure(200, (), b"y") == "a"
    assert checker.first_failure(200, (), b"x") == "b"


@pytest.mark.parametrize(("path", "steps"), [
    pytest.param("$", (), id="root"),
    pytest.param("$.a.b-c_d[0][12].e", ("a", "b-c_d", 0, 12, "e"), id="mixed"),
])
def test_json_paths_parse(path: str, steps: tuple[Any, ...]) -> None:
    """The small JSON path grammar: $ then .key and [index] steps."""
    assert parse_json_path(path) == steps


@pytest.mark.parametrize("path", ["a.b", "$.", "$[x]", "$.a[-1]", "$..a", "$.a[*]"])
def test_other_json_paths_are_refused(path: str) -> None:
    """What the grammar does not have (no $, empty key, wildcards, filters) is a ValueError."""
    with pytest.raises(ValueError, match=r"JSON path|expected \.key"):
        parse_json_path(path)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.from_regex(r"[a-z]{1,3}", fullmatch=True), inner,
                                      max_size=3), max_leaves=10))
def test_a_value_equals_itself_after_a_json_round_trip(value: Any) -> None:
    """Whatever JSON value the body holds at the root, ``equals`` of the same value passes."""
    check = Check(name="j", json_path=(), json_equals=json.dumps(value))
    assert first_failure(check, body=json.dumps(value).encode()) is None
