"""Request data at the coordinator: reading CSV and JSON-lines files, placeholder errors that
name the spec line, rendering values into path, query, headers and bodies, and the split of
rows between workers (coordinator.request_data, coordinator.plan)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from coordinator import data_files
from coordinator.errors import SpecError
from coordinator.spec import load_spec, parse_spec
from coordinator.split import worker_plans


def write_spec(tmp_path: Path, endpoint: dict[str, Any], rows: str, *, name: str = "rows.csv",
               load: dict[str, Any] | None = None) -> Path:
    """Write a data file and a spec with one endpoint using it; return the spec's path."""
    (tmp_path / name).write_text(rows)
    spec = {"name": "t", "target": "http://127.0.0.1:9",
            "load": load or {"concurrency": 1, "requests": 4},
            "endpoints": [{**endpoint, "dataset": {"file": name, **endpoint.pop("dataset", {})}}]}
    path = tmp_path / "spec.yaml"
    with path.open("w") as out:
        YAML().dump(spec, out)
    return path


def test_rows_fill_path_query_headers_and_body_one_request_per_row(tmp_path: Path) -> None:
    """Every row gives one request with its values in each place, encoded for that place."""
    path = write_spec(tmp_path, {
        "path": "/users/{{ id }}?q={{ q }}", "method": "POST", "query": {"tag": "{{ tag }}"},
        "headers": {"X-User": "{{ id }}"}, "body": "name={{ name }}"},
        "id,q,tag,name\n7,a&b=c,x y,Ann\nab c/d,%,é,Bo\n")
    [plan] = worker_plans(load_spec(path), tmp_path)
    [endpoint] = plan.requests
    got = [(r.url, dict(r.headers)["X-User"], r.body) for r in endpoint.rows]
    assert got == [
        ("http://127.0.0.1:9/users/7?q=a%26b%3Dc&tag=x+y", "7", b"name=Ann"),
        ("http://127.0.0.1:9/users/ab%20c/d?q=%25&tag=%C3%A9", "ab c/d", b"name=Bo"),
    ]
    assert {r.label for r in endpoint.rows} == {endpoint.label}


def test_a_json_body_takes_typed_values_from_json_lines(tmp_path: Path) -> None:
    """A JSON string that is exactly one placeholder becomes the row's value (a number stays a
    number); inside a longer string the value is text."""
    path = write_spec(tmp_path, {"path": "/o", "method": "POST",
                                 "json": {"id": "{{ id }}", "note": "id {{ id }}", "ok": True}},
                      '{"id": 5}\n\n{"id": "x"}\n', name="rows.jsonl")
    [plan] = worker_plans(load_spec(path), tmp_path)
    bodies = [json.loads(r.body or b"") for r in plan.requests[0].rows]
    assert bodies == [{"id": 5, "note": "id 5", "ok": True}, {"id": "x", "note": "id x", "ok": True}]


@pytest.mark.parametrize(("endpoint", "rows", "message"), [
    pytest.param({"path": "/u/{{ user }}"}, "id\n1\n",
                 r"spec.yaml:\d+: endpoints\[0\].path: \{\{ user \}\} names no column of rows.csv "
                 r"\(columns: id\)", id="path"),
    pytest.param({"path": "/u", "headers": {"X-A": "{{ nope }}"}}, "id\n1\n",
                 r"spec.yaml:\d+: endpoints\[0\].headers.X-A: \{\{ nope \}\}", id="header"),
    pytest.param({"path": "/u", "method": "POST", "json": {"a": ["{{ zz }}"]}}, "id\n1\n",
                 r"spec.yaml:\d+: endpoints\[0\].json.a\[0\]: \{\{ zz \}\}", id="json"),
    pytest.param({"path": "/u"}, "", r"endpoints\[0\].dataset.file: .*rows.csv:1: the first line "
                 "must name the columns", id="empty"),
    pytest.param({"path": "/u"}, "id,name\n1\n", r"rows.csv:2: 1 fields, but the header names 2",
                 id="short-row"),
    pytest.param({"path": "/u/{{ id }}", "headers": {"X": "{{ id }}"}}, "id\n\"a\r\nb\"\n",
                 r"rows.csv:2: X: the value contains CR", id="header-value"),
])
def test_bad_data_is_one_line_naming_the_place(tmp_path: Path, endpoint: dict[str, Any],
                                               rows: str, message: str) -> None:
    """A placeholder with no column names the spec line and field; a malformed file its line."""
    path = write_spec(tmp_path, endpoint, rows)
    with pytest.raises(SpecError, match=message) as caught:
        worker_plans(load_spec(path), tmp_path)
    assert "\n" not in str(caught.value)


def test_the_line_named_is_the_placeholder_line(tmp_path: Path) -> None:
    """The spec line in the error is the line where the bad placeholder is written."""
    (tmp_path / "rows.csv").write_text("id\n1\n")
    text = ("name: t\ntarget: http://127.0.0.1:9\nload: {concurrency: 1, requests: 2}\n"
            "endpoints:\n  - path: /a\n    dataset: {file: rows.csv}\n    headers:\n"
            "      X-Ok: '{{ id }}'\n      X-Bad: '{{ idd }}'\n")
    (tmp_path / "spec.yaml").write_text(text)
    with pytest.raises(SpecError, match=r"spec.yaml:9: endpoints\[0\].headers.X-Bad"):
        load_spec(tmp_path / "spec.yaml")


def test_a_placeholder_without_a_data_file_is_refused_at_its_line() -> None:
    """Without ``dataset`` a placeholder has no column at all: a spec error, not a literal."""
    with pytest.raises(SpecError, match=r"endpoints\[0\].path: \{\{ id \}\} is a placeholder, "
                       "but the endpoint has no data file"):
        parse_spec({"name": "t", "target": "http://127.0.0.1:9",
                    "load": {"rate": 1, "duration": 1}, "endpoints": [{"path": "/u/{{id}}"}]})


def test_an_oversized_data_file_is_refused_before_it_is_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A data file over the bound is one line saying so, naming the spec field."""
    monkeypatch.setattr(data_files, "MAX_DATA_BYTES", 100)
    path = write_spec(tmp_path, {"path": "/u/{{ id }}"}, "id\n" + "1234567890\n" * 20)
    with pytest.raises(SpecError, match=r"endpoints\[0\].dataset.file: .*over the 0 MiB allowed"):
        load_spec(path)


def test_the_file_is_read_once_for_the_check_and_the_plan(tmp_path: Path) -> None:
    """Loading the spec and building the plans read the data file once."""
    path = write_spec(tmp_path, {"path": "/u/{{ id }}"}, "id\n1\n2\n")
    data_files._read_cached.cache_clear()
    worker_plans(load_spec(path), tmp_path)
    info = data_files._read_cached.cache_info()
    assert (info.misses, info.hits) == (1, 1)


@pytest.mark.parametrize(("rows", "workers", "slices"), [
    pytest.param(7, 3, [[0, 3, 6], [1, 4], [2, 5]], id="7-rows-3-workers"),
    pytest.param(4, 4, [[0], [1], [2], [3]], id="one-each"),
])
def test_rows_are_split_between_workers_by_stride(tmp_path: Path, rows: int, workers: int,
                                                  slices: list[list[int]]) -> None:
    """Worker i holds rows i, i + W, i + 2W, ... in file order; each with its own stream key."""
    path = write_spec(tmp_path, {"path": "/u/{{ id }}"},
                      "id\n" + "".join(f"{n}\n" for n in range(rows)),
                      load={"concurrency": workers, "requests": 100, "workers": workers})
    plans = worker_plans(load_spec(path), tmp_path)
    got = [[int(r.url.rsplit("/", 1)[1]) for r in p.requests[0].rows] for p in plans]
    assert got == slices
    assert len({p.requests[0].stream for p in plans}) == workers


def test_fewer_rows_than_workers_is_refused(tmp_path: Path) -> None:
    """Each worker needs a row of its own: three rows over four workers is a spec error."""
    path = write_spec(tmp_path, {"path": "/u/{{ id }}"}, "id\n1\n2\n3\n",
                      load={"concurrency": 4, "requests": 8, "workers": 4})
    with pytest.raises(SpecError, match=r"endpoints\[0\].dataset: 3 rows of rows.csv cannot be "
                       "split over 4 workers"):
        worker_plans(load_spec(path), tmp_path)


def test_baseline_and_candidate_get_the_same_rows(tmp_path: Path) -> None:
    """In a two-version run both versions' templates carry the same rows and stream key."""
    path = write_spec(tmp_path, {"path": "/u/{{ id }}", "dataset": {"order": "shuffle"}},
                      "id\n1\n2\n3\n")
    spec = load_spec(path).model_copy(update={"baseline": "http://127.0.0.1:8"})
    [plan] = worker_plans(spec, tmp_path)
    baseline, candidate = plan.requests
    assert [r.url.rsplit("/", 1)[1] for r in baseline.rows] == \
        [r.url.rsplit("/", 1)[1] for r in candidate.rows] == ["1", "2", "3"]
    assert baseline.stream == candidate.stream and baseline.order == "shuffle"
