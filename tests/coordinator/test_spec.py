"""Tests for coordinator.spec: loading, validating and describing specs (real YAML files)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from coordinator.errors import EXPECTED, SpecError, exit_code
from coordinator.spec import SCHEMA_ID, ExperimentSpec, json_schema, load_spec, parse_spec

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "hello" / "experiment.yaml"
HEAD = "name: t\ntarget: http://127.0.0.1:8080\n"  # lines 1 and 2 of most specs below
LOAD = "load: {rate: 10, duration: 1s}\n"  # line 3


def write_spec(directory: Path, text: str, files: dict[str, bytes] | None = None) -> Path:
    """Writes text as directory/spec.yaml (and any extra files beside it); returns its path."""
    for name, content in (files or {}).items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(content)
    path = directory / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def get(obj: Any, path: str) -> Any:
    """Returns the value at a dotted path with [i] indexes, e.g. ``objectives[0].upper_limit``."""
    for part in re.findall(r"\[\d+\]|[^.\[\]]+", path):
        obj = obj[int(part[1:-1])] if part.startswith("[") else getattr(obj, part)
    return obj


def plain_yaml(path: Path) -> Any:
    """Returns the file's YAML as plain dicts and lists, as a schema linter would see it."""
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


# --- valid specs ------------------------------------------------------------------------------

VALID = [
    pytest.param(
        "name: m\ntarget: http://127.0.0.1:8080/\nload: {rate: 10, duration: 1s}\n", {},
        {"name": "m", "target_url": "http://127.0.0.1:8080", "load.model": "open", "load.rate": 10.0,
         "load.duration": 1.0, "load.requests": None, "load.workers": 1, "load.timeout": 10.0,
         "load.window": 1.0, "load.max_in_flight": 1000, "load.max_duration": 3600.0,
         "load.cpus_per_worker": 1.0, "load.warmup": None, "load.warmup_requests": None,
         "endpoints[0].label": "GET /", "endpoints[0].path": "", "objectives": [],
         "error_ranges": ((400, 599),)},
        id="minimal-with-defaults",
    ),
    pytest.param(
        HEAD + "load:\n  rate: 250.5\n  duration: 1m30s\n  workers: 4\n  timeout: 2s\n", {},
        {"load.model": "open", "load.rate": 250.5, "load.duration": 90.0, "load.workers": 4,
         "load.timeout": 2.0, "load.concurrency": None},
        id="open-model-rate-duration",
    ),
    pytest.param(
        HEAD + "load:\n  concurrency: 8\n  requests: 1000\n  workers: 2\n", {},
        {"load.model": "closed", "load.concurrency": 8, "load.requests": 1000,
         "load.duration": None, "load.rate": None},
        id="closed-model-concurrency-requests",
    ),
    pytest.param(
        HEAD + "load: {rate: 5, duration: 10s, requests: 500}\n", {},
        {"load.duration": 10.0, "load.requests": 500},
        id="duration-and-requests",
    ),
    pytest.param(
        HEAD + "load: {rate: 5, duration: 10s, warmup: 500ms}\n", {},
        {"load.warmup": 0.5, "load.warmup_requests": None},
        id="warmup-duration",
    ),
    pytest.param(
        HEAD + "load: {rate: 5, duration: 10s, warmupRequests: 50}\n", {},
        {"load.warmup": None, "load.warmup_requests": 50},
        id="warmup-requests",
    ),
    pytest.param(
        HEAD + "load:\n  rate: 5\n  duration: 10\n  maxInFlight: 64\n  cpusPerWorker: 0.5\n"
        "  window: 250ms\n  maxDuration: 1h\n  timeout: 100s\n", {},
        {"load.duration": 10.0, "load.max_in_flight": 64, "load.cpus_per_worker": 0.5,
         "load.window": 0.25, "load.max_duration": 3600.0, "load.timeout": 100.0},
        id="other-load-fields-and-timeout-at-limit",
    ),
    pytest.param(
        "name: t\ntarget: https://example.com/api/\n" + LOAD, {},
        {"target_url": "https://example.com/api"},
        id="https-target-with-path",
    ),
    pytest.param(
        HEAD + LOAD + """\
endpoints:
  - path: /hello
    weight: 3
    headers: {X-Trace: "1"}
    query: {name: world}
  - path: /echo
    method: POST
    json: {a: 1, b: [true, null]}
  - name: upload
    path: /upload
    method: PUT
    bodyFile: data/payload.bin
    contentType: application/octet-stream
  - path: /hello
    method: HEAD
  - name: raw
    path: /raw
    method: POST
    body: plain text
""",
        {"data/payload.bin": b"\x00\x01"},
        {"endpoints[0].label": "GET /hello", "endpoints[0].weight": 3.0,
         "endpoints[0].headers": {"X-Trace": "1"}, "endpoints[0].query": {"name": "world"},
         "endpoints[1].label": "POST /echo", "endpoints[1].json_body": {"a": 1, "b": [True, None]},
         "endpoints[1].weight": 1.0, "endpoints[2].label": "upload",
         "endpoints[2].body_file": "data/payload.bin",
         "endpoints[2].content_type": "application/octet-stream",
         "endpoints[3].label": "HEAD /hello", "endpoints[4].body": "plain text"},
        id="several-endpoints",
    ),
    pytest.param(
        HEAD + LOAD + "errorRanges: [500-599, 429]\n", {},
        {"error_ranges": ((500, 599), (429, 429))},
        id="error-ranges-range-and-status",
    ),
    pytest.param(
        HEAD + LOAD + "errorRanges: ['400-499', '503']\n", {},
        {"error_ranges": ((400, 499), (503, 503))},
        id="error-ranges-strings",
    ),
]


@pytest.mark.parametrize(("text", "files", "expected"), VALID)
def test_valid_spec(text: str, files: dict[str, bytes], expected: dict[str, Any],
                    tmp_path: Path) -> None:
    """A valid spec file loads, with every quantity converted to its canonical unit."""
    spec = load_spec(write_spec(tmp_path, text, files))
    assert {path: get(spec, path) for path in expected} == expected


OBJECTIVES = [
    pytest.param("{metric: latency-p99, upperLimit: 200ms}",
                 {"upper_limit": 200.0, "lower_limit": None, "dry_run": False, "endpoint": None},
                 id="latency-ms"),
    pytest.param("{metric: latency-mean, upperLimit: 0.5s}", {"upper_limit": 500.0},
                 id="latency-seconds"),
    pytest.param("{metric: latency-p50, upperLimit: 250}", {"upper_limit": 250.0},
                 id="latency-bare-number-is-ms"),
    pytest.param("{metric: latency-max, upperLimit: '0.25'}", {"upper_limit": 0.25},
                 id="latency-numeric-string-is-ms"),
    pytest.param("{metric: latency-p95, upperLimit: 9ms}", {"upper_limit": 9.0},
                 id="latency-9ms-exact"),
    pytest.param("{metric: latency-p99.9, upperLimit: 1s}",
                 {"metric": "latency-p99.9", "upper_limit": 1000.0}, id="latency-p99.9"),
    pytest.param("{metric: latency-p100, upperLimit: 1s}", {"upper_limit": 1000.0},
                 id="latency-p100"),
    pytest.param("{metric: latency-min, lowerLimit: 1ms, upperLimit: 2s}",
                 {"lower_limit": 1.0, "upper_limit": 2000.0}, id="latency-both-limits"),
    pytest.param("{metric: latency-stddev, lowerLimit: 5ms, upperLimit: 5ms}",
                 {"lower_limit": 5.0, "upper_limit": 5.0}, id="equal-limits"),
    pytest.param("{metric: error-rate, upperLimit: 1%}", {"upper_limit": 0.01}, id="ratio-percent"),
    pytest.param("{metric: error-rate, upperLimit: 0.01}", {"upper_limit": 0.01},
                 id="ratio-fraction"),
    pytest.param("{metric: throughput, lowerLimit: 100/s}", {"lower_limit": 100.0},
                 id="throughput-per-second"),
    pytest.param("{metric: throughput, lowerLimit: 100rps}", {"lower_limit": 100.0},
                 id="throughput-rps"),
    pytest.param("{metric: request-count, lowerLimit: 100}", {"lower_limit": 100.0},
                 id="request-count"),
    pytest.param("{metric: error-count, upperLimit: 0}", {"upper_limit": 0.0}, id="error-count"),
    pytest.param("{metric: latency-p99, upperLimit: 50ms, dryRun: true}", {"dry_run": True},
                 id="dry-run"),
    pytest.param("{metric: latency-p99, upperLimit: 50ms, endpoint: GET /hello}",
                 {"endpoint": "GET /hello"}, id="endpoint-by-method-and-path"),
    pytest.param("{metric: error-rate, upperLimit: 5%, endpoint: slow}", {"endpoint": "slow"},
                 id="endpoint-by-name"),
]


@pytest.mark.parametrize(("objective", "expected"), OBJECTIVES)
def test_valid_objective(objective: str, expected: dict[str, Any], tmp_path: Path) -> None:
    """An objective's limits load in the metric's canonical unit (ms, fraction, req/s, count)."""
    text = (HEAD + LOAD + "endpoints:\n  - path: /hello\n  - {name: slow, path: /slow}\n"
            f"objectives:\n  - {objective}\n")
    (loaded,) = load_spec(write_spec(tmp_path, text)).objectives
    assert {key: getattr(loaded, key) for key in expected} == expected
    core = loaded.to_core()
    assert (core.metric, core.upper_limit, core.lower_limit, core.endpoint, core.dry_run) == (
        loaded.metric, loaded.upper_limit, loaded.lower_limit, loaded.endpoint, loaded.dry_run)


# --- invalid specs ----------------------------------------------------------------------------

INVALID = [
    pytest.param(HEAD + "load:\n  rat: 10\n  duration: 1s\n", {},
                 ":4: load.rat: unknown field", "(did you mean rate?)", id="unknown-field"),
    pytest.param(HEAD + LOAD + "objective: []\n", {},
                 ":4: objective: unknown field", "(did you mean objectives?)",
                 id="unknown-top-level-field"),
    pytest.param(HEAD + LOAD + "objectives:\n  - metric: latency-mean\n    upperLimt: 1\n", {},
                 ":6: objectives[0].upperLimt: unknown field", "(did you mean upperLimit?)",
                 id="unknown-objective-field"),
    pytest.param(HEAD + "load:\n  rate: fast\n  duration: 1s\n", {},
                 ":4: load.rate: ", "valid number", id="wrong-type-rate"),
    pytest.param(HEAD + "load:\n  rate: 1\n  duration: 1s\n  workers: two\n", {},
                 ":6: load.workers: ", "valid integer", id="wrong-type-workers"),
    pytest.param(HEAD + LOAD + "endpoints: /hello\n", {},
                 ":4: endpoints: ", "valid list", id="wrong-type-endpoints"),
    pytest.param(HEAD + LOAD + "objectives:\n  - {metric: error-rate, upperLimit: 1%}\n"
                 "  - metric: latency-p999x\n    upperLimit: 10ms\n", {},
                 ":6: objectives[1].metric: ", "unknown metric 'latency-p999x'",
                 id="unknown-metric-p999x"),
    pytest.param(HEAD + LOAD + "objectives:\n  - metric: latency-p0\n    upperLimit: 1\n", {},
                 ":5: objectives[0].metric: ", "unknown metric 'latency-p0'", id="metric-p0"),
    pytest.param(HEAD + LOAD + "objectives:\n  - metric: latency-p101\n    upperLimit: 1\n", {},
                 ":5: objectives[0].metric: ", "unknown metric 'latency-p101'", id="metric-p101"),
    pytest.param(HEAD + LOAD + "objectives:\n  - metric: throughputs\n    lowerLimit: 1\n", {},
                 ":5: objectives[0].metric: ", "(did you mean throughput?)",
                 id="metric-throughputs"),
    pytest.param(HEAD + "load:\n  rate: -5\n  duration: 1s\n", {},
                 ":4: load.rate: ", "greater than 0", id="negative-rate"),
    pytest.param(HEAD + "load:\n  rate: 0\n  duration: 1s\n", {},
                 ":4: load.rate: ", "greater than 0", id="zero-rate"),
    pytest.param(HEAD + "load:\n  rate: .inf\n  duration: 1s\n", {},
                 ":4: load.rate: ", "finite", id="infinite-rate"),
    pytest.param(HEAD + "load:\n  rate: 5\n  duration: 1s\n  workers: 0\n", {},
                 ":6: load.workers: ", "greater than or equal to 1", id="zero-workers"),
    pytest.param("name: t\n" + LOAD, {},
                 ": target: required field is missing", "", id="missing-target"),
    pytest.param(HEAD, {}, ": load: required field is missing", "", id="missing-load"),
    pytest.param("name: t\ntarget: ftp://x\n" + LOAD, {},
                 ":2: target: ", "'ftp://x' is not an http(s) URL", id="ftp-target"),
    pytest.param("name: t\ntarget: http://\n" + LOAD, {},
                 ":2: target: ", "with a host", id="target-without-host"),
    pytest.param("name: t\ntarget: http://h:99999\n" + LOAD, {},
                 ":2: target: ", "invalid port", id="target-bad-port"),
    pytest.param("name: ''\ntarget: http://h\n" + LOAD, {},
                 ":1: name: ", "at least 1 character", id="empty-name"),
    pytest.param(HEAD + "load:\n  rate: 5\n  concurrency: 2\n  duration: 1s\n", {},
                 ":3: load: ", "set exactly one of rate", id="rate-and-concurrency"),
    pytest.param(HEAD + "load:\n  duration: 1s\n", {},
                 ":3: load: ", "set exactly one of rate", id="neither-rate-nor-concurrency"),
    pytest.param(HEAD + "load:\n  rate: 5\n", {},
                 ":3: load: ", "set duration or requests", id="neither-duration-nor-requests"),
    pytest.param(HEAD + "load: {rate: 1, duration: 1s, warmup: 1s, warmupRequests: 3}\n", {},
                 ":3: load: ", "set at most one of warmup", id="warmup-and-warmup-requests"),
    pytest.param(HEAD + "load:\n  rate: 5\n  duration: 10x\n", {},
                 ":5: load.duration: ", "'10x' is not a duration", id="unparseable-unit"),
    pytest.param(HEAD + "load:\n  rate: 5\n  duration: 0s\n", {},
                 ":5: load.duration: ", "greater than 0", id="zero-duration"),
    pytest.param(HEAD + "load:\n  rate: 5\n  duration: .nan\n", {},
                 ":5: load.duration: ", "not a finite number", id="nan-duration"),
    pytest.param(HEAD + "load:\n  rate: 1\n  duration: 1s\n  timeout: 101s\n", {},
                 ":6: load.timeout: ", "must be at most 100 s", id="timeout-above-100s"),
    pytest.param(HEAD + "load:\n  rate: 1000001\n  duration: 1s\n", {},
                 ":4: load.rate: ", "must be at most 1,000,000 (slogate's upper bound",
                 id="rate-above-bound"),
    pytest.param(HEAD + "load:\n  rate: 1\n  requests: 1000000001\n", {},
                 ":5: load.requests: ", "must be at most 1,000,000,000", id="requests-above-bound"),
    pytest.param(HEAD + "load:\n  rate: 1\n  duration: 24h1s\n", {},
                 ":5: load.duration: ", "must be at most 86,400 s", id="duration-above-a-day"),
    pytest.param(HEAD + "load:\n  rate: 1\n  duration: 1s\n  maxInFlight: 100001\n", {},
                 ":6: load.maxInFlight: ", "must be at most 100,000", id="in-flight-above-bound"),
    pytest.param(HEAD + "load:\n  concurrency: 100001\n  duration: 1s\n", {},
                 ":4: load.concurrency: ", "must be at most 100,000", id="users-above-bound"),
    pytest.param(HEAD + "load:\n  rate: 1\n  duration: 1s\n  workers: 1025\n", {},
                 ":6: load.workers: ", "must be at most 1,024", id="workers-above-bound"),
    pytest.param(HEAD + "load:\n  rate: 1\n  duration: 1s\n  maxDuration: 25h\n", {},
                 ":6: load.maxDuration: ", "must be at most 86,400 s", id="max-duration-above-bound"),
    pytest.param(HEAD + LOAD + "objectives:\n  - metric: error-rate\n    upperLimit: 10ms\n", {},
                 ":6: objectives[0].upperLimit: ", "'10ms' is not a ratio",
                 id="duration-unit-on-error-rate"),
    pytest.param(HEAD + LOAD + "objectives:\n  - metric: error-rate\n    upperLimit: 150%\n", {},
                 ":6: objectives[0].upperLimit: ", "between 0 and 1", id="ratio-over-100-percent"),
    pytest.param(HEAD + LOAD + "objectives:\n  - metric: latency-p99\n    upperLimit: 1%\n", {},
                 ":6: objectives[0].upperLimit: ", "'1%' is not a duration",
                 id="percent-on-latency"),
    pytest.param(HEAD + LOAD + "objectives:\n  - metric: throughput\n    lowerLimit: 10ms\n", {},
                 ":6: objectives[0].lowerLimit: ", "not a rate", id="duration-on-throughput"),
    pytest.param(HEAD + LOAD + "objectives:\n  - metric: request-count\n    lowerLimit: 1.5\n",
                 {}, ":6: objectives[0].lowerLimit: ", "not a whole", id="fractional-count"),
    pytest.param(HEAD + LOAD + "objectives:\n  - metric: latency-mean\n    upperLimit: 10ms\n"
                 "    lowerLimit: 20ms\n", {},
                 ":5: objectives[0]: ", "lowerLimit is greater than upperLimit",
                 id="lower-above-upper"),
    pytest.param(HEAD + LOAD + "objectives:\n  - metric: latency-mean\n", {},
                 ":5: objectives[0]: ", "set upperLimit, lowerLimit or both",
                 id="objective-without-limits"),
    pytest.param(HEAD + "load:\n  rate: [1, 2\n  duration: 1s\n", {},
                 ":5: malformed YAML: ", "expected ',' or ']'", id="malformed-flow-list"),
    pytest.param(HEAD + "load:\n  rate: 1\n duration: 1s\n", {},
                 ":5: malformed YAML: ", "", id="malformed-indentation"),
    pytest.param(HEAD + LOAD + LOAD, {},
                 ":4: malformed YAML: ", "duplicate key", id="duplicate-key"),
    pytest.param("- name: t\n- target: http://h\n", {},
                 ": expected a mapping of fields at the top level (name, target, load, ...), got a list", "",
                 id="top-level-list"),
    pytest.param("", {}, ": the spec is empty", "", id="empty-file"),
    pytest.param(HEAD + LOAD + "endpoints:\n  - path: /a\n    body: hi\n    json: {a: 1}\n", {},
                 ":5: endpoints[0]: ", "set at most one of body, bodyFile, json (got body, json)",
                 id="body-and-json"),
    pytest.param(HEAD + LOAD + "endpoints:\n  - path: /a\n    body: hi\n    bodyFile: b.txt\n",
                 {"b.txt": b"x"}, ":5: endpoints[0]: ", "(got body, bodyFile)",
                 id="body-and-body-file"),
    pytest.param(HEAD + LOAD + "endpoints:\n  - path: /a\n    bodyFile: nope.json\n", {},
                 ": endpoints[0].bodyFile: file not found: ", "nope.json", id="body-file-missing"),
    pytest.param(HEAD + LOAD + "endpoints:\n  - path: /a\n    bodyFile: data\n",
                 {"data/x": b""}, ": endpoints[0].bodyFile: file not found: ", "data",
                 id="body-file-is-a-folder"),
    pytest.param(HEAD + LOAD + "endpoints:\n  - path: hello\n", {},
                 ":5: endpoints[0].path: ", "'hello' must start with '/'", id="path-without-slash"),
    pytest.param(HEAD + LOAD + "endpoints:\n  - path: /a\n    weight: 0\n", {},
                 ":6: endpoints[0].weight: ", "greater than 0", id="zero-weight"),
    pytest.param(HEAD + LOAD + "endpoints:\n  - path: /a\n    method: FETCH\n", {},
                 ":6: endpoints[0].method: ", "'GET'", id="unknown-method"),
    pytest.param(HEAD + LOAD + "endpoints:\n  - path: /a\n  - path: /b\n    name: '*'\n", {},
                 ":7: endpoints[1].name: ", "the label '*' is reserved for all endpoints together; "
                 "give the endpoint another name", id="endpoint-named-star"),
    pytest.param(HEAD + LOAD + "endpoints:\n  - {path: /a, name: '*', method: POST}\n", {},
                 ":5: endpoints[0].name: ", "the label '*' is reserved", id="flow-endpoint-star"),
    pytest.param(HEAD + LOAD + "endpoints:\n  - path: /a\n  - path: /a\n", {},
                 ":4: endpoints: ", "labels must be unique; give a name to: ['GET /a']",
                 id="duplicate-endpoint-labels"),
    pytest.param(HEAD + LOAD + "endpoints:\n  - path: /a\nobjectives:\n"
                 "  - {metric: latency-mean, upperLimit: 1, endpoint: GET /b}\n", {},
                 ":7: objectives[0].endpoint: ", "'GET /b' is not an endpoint's label (did you "
                 "mean 'GET /a'?); the labels are 'GET /a'", id="objective-endpoint-unknown"),
    pytest.param(HEAD + "load: {rate: 10, duration: 1s, timeout: 2000}\n", {},
                 ":3: load.timeout: ", "2000 without a unit is 2000 s, more than the 100 s "
                 "allowed (slogate's upper bound, see the README); write 2000ms for milliseconds",
                 id="bare-timeout-names-its-unit"),
    pytest.param(HEAD + "load:\n  rate: -1\n  duration: 1s\n  workers: 0\n", {},
                 ":4: load.rate: ", "(and also line 6: load.workers: Input should be greater "
                 "than or equal to 1)", id="other-problems-shown-with-lines"),
    pytest.param(HEAD + LOAD + "errorRanges: [700]\n", {},
                 ":4: errorRanges: ", "700 is not a range of HTTP statuses within 100-599",
                 id="error-range-700"),
    pytest.param(HEAD + LOAD + "errorRanges: [599-500]\n", {},
                 ":4: errorRanges: ", "'599-500'", id="error-range-reversed"),
    pytest.param(HEAD + LOAD + "errorRanges: [4xx]\n", {},
                 ":4: errorRanges: ", "'4xx' is not a status", id="error-range-4xx"),
    pytest.param(HEAD + LOAD + "errorRanges: []\n", {},
                 ":4: errorRanges: ", "give at least one status range", id="error-ranges-empty"),
]


@pytest.mark.parametrize(("text", "files", "prefix", "fragment"), INVALID)
def test_invalid_spec(text: str, files: dict[str, bytes], prefix: str, fragment: str,
                      tmp_path: Path) -> None:
    """An invalid spec raises SpecError with one line: file, YAML line where known, field, why."""
    path = write_spec(tmp_path, text, files)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert message.startswith(f"{path}{prefix}"), message
    assert fragment in message
    assert "\n" not in message
    assert "Traceback" not in message
    assert exit_code(info.value) == 2


def test_missing_file(tmp_path: Path) -> None:
    """A spec path that does not exist raises SpecError naming the file."""
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "absent.yaml")
    assert str(info.value) == f"{tmp_path / 'absent.yaml'}: spec file not found"


def test_spec_path_is_a_folder(tmp_path: Path) -> None:
    """A spec path that is a folder raises SpecError, not an OS error."""
    with pytest.raises(SpecError, match=r": cannot read spec file: a directory, not a regular file$"):
        load_spec(tmp_path)


def test_spec_error_is_one_the_cli_expects() -> None:
    """SpecError is among the errors the CLI prints without a traceback, with exit code 2."""
    assert issubclass(SpecError, EXPECTED) and exit_code(SpecError("x")) == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(["a"], "doc: expected a mapping of fields at the top level "
                     "(name, target, load, ...), got a list", id="list"),
        pytest.param({"name": "t", "target": "http://h", "load": {"rate": -1, "duration": 1}},
                     "doc: load.rate: Input should be greater than 0",
                     id="no-line-for-plain-dicts"),
        pytest.param({"name": "t", "target": "http://h", "load": {"rate": 1}, "extra": 1},
                     "doc: load: set duration or requests (or both: whichever comes first) "
                     "(and also extra: unknown field)", id="more-problems-shown"),
        pytest.param({"name": "t", "target": "http://h", "load": {"rate": 1, "duration": 1},
                      "a": 1, "b": 2, "c": 3, "d": 4, "e": 5},
                     "doc: a: unknown field (and also b: unknown field; c: unknown field; "
                     "d: unknown field; and 1 more)", id="past-four-problems-counted"),
    ],
)
def test_parse_spec_messages(data: Any, message: str) -> None:
    """parse_spec names the given source, and no line when the data carries no YAML positions."""
    with pytest.raises(SpecError) as info:
        parse_spec(data, source="doc")
    assert str(info.value) == message


def test_snake_case_keys_are_refused() -> None:
    """Only the documented camelCase keys are accepted, as the JSON schema says: max_in_flight is unknown."""
    with pytest.raises(SpecError, match=r"load\.max_in_flight: unknown field \(did you mean maxInFlight\?\)"):
        parse_spec({"name": "t", "target": "http://h",
                    "load": {"rate": 1, "duration": 1, "max_in_flight": 5}})


# --- JSON schema ------------------------------------------------------------------------------


def property_names(node: Any) -> set[str]:
    """Returns every key under a "properties" object anywhere in a JSON schema."""
    names: set[str] = set()
    if isinstance(node, dict):
        names.update(node.get("properties", {}))
        for value in node.values():
            names |= property_names(value)
    elif isinstance(node, list):
        for value in node:
            names |= property_names(value)
    return names


def test_json_schema_is_camel_case() -> None:
    """The schema's property names are the camelCase spec keys, with no snake_case left."""
    schema = json_schema()
    names = property_names(schema)
    assert {"upperLimit", "lowerLimit", "dryRun", "warmupRequests", "errorRanges", "maxInFlight",
            "cpusPerWorker", "maxDuration", "bodyFile", "contentType", "json"} <= names
    assert not [name for name in names if "_" in name]
    assert schema["$id"] == SCHEMA_ID
    jsonschema.Draft202012Validator.check_schema(schema)


def test_example_spec_loads_and_matches_schema() -> None:
    """The shipped hello example passes both load_spec and the JSON schema."""
    spec = load_spec(EXAMPLE)
    assert (spec.load.rate, spec.load.duration, spec.load.warmup, spec.load.workers,
            spec.load.timeout) == (200.0, 8.0, 1.0, 2, 2.0)
    assert [(o.metric, o.upper_limit, o.lower_limit) for o in spec.objectives] == [
        ("error-rate", 0.01, None), ("latency-mean", 50.0, None), ("latency-p99", 100.0, None),
        ("throughput", None, 190.0)]
    jsonschema.Draft202012Validator(json_schema()).validate(plain_yaml(EXAMPLE))


@pytest.mark.parametrize(("text", "files", "expected"), VALID)
def test_valid_specs_match_schema(text: str, files: dict[str, bytes], expected: dict[str, Any],
                                  tmp_path: Path) -> None:
    """Every spec the validator accepts in the table above, the JSON schema accepts too."""
    path = write_spec(tmp_path, text, files)
    jsonschema.Draft202012Validator(json_schema()).validate(plain_yaml(path))


@pytest.mark.parametrize(
    "load_or_ranges",
    [
        pytest.param({"errorRanges": [[500, 503]]}, id="error-range-as-pair"),
        pytest.param({"load": {"rate": 1, "duration": ".5s"}}, id="duration-leading-dot"),
        pytest.param({"load": {"rate": 1, "duration": "1 s"}}, id="duration-space-before-unit"),
        pytest.param({"load": {"rate": 1, "duration": "10"}}, id="duration-numeric-string"),
    ],
)
def test_schema_accepts_every_form_the_validator_accepts(load_or_ranges: dict[str, Any]) -> None:
    """Forms the validator accepts are accepted by the JSON schema too (editors never flag valid specs)."""
    data = {"name": "t", "target": "http://h", "load": {"rate": 1, "duration": 1},
            **load_or_ranges}
    parse_spec(data)  # the validator accepts it
    jsonschema.Draft202012Validator(json_schema()).validate(data)


# --- with_target ------------------------------------------------------------------------------

RICH = HEAD + """\
load: {rate: 50, duration: 1m30s, warmup: 2s, workers: 2, timeout: 750ms}
endpoints:
  - {path: /hello, weight: 3, query: {a: b}}
  - {name: echo, path: /echo, method: POST, json: {x: [1, 2]}}
objectives:
  - {metric: error-rate, upperLimit: 0.7%}
  - {metric: latency-p99.9, upperLimit: 9ms, endpoint: echo}
  - {metric: latency-mean, upperLimit: 0.3, dryRun: true}
  - {metric: throughput, lowerLimit: 45/s}
errorRanges: [500-599, 429]
"""


def test_with_target_keeps_everything_else(tmp_path: Path) -> None:
    """with_target changes only the (normalised) target; the original spec is unchanged."""
    spec = load_spec(write_spec(tmp_path, RICH))
    moved = spec.with_target("http://10.0.0.1:9999/")
    assert moved.target_url == "http://10.0.0.1:9999"
    assert spec.target_url == "http://127.0.0.1:8080"
    assert moved.model_dump(exclude={"target"}) == spec.model_dump(exclude={"target"})


@settings(max_examples=100, deadline=None)
@given(
    latency=st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False),
    ratio=st.floats(min_value=0, max_value=1),
    rate=st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False),
    duration=st.floats(min_value=1e-3, max_value=86_400, allow_nan=False, allow_infinity=False),
)
def test_with_target_round_trips_limits(latency: float, ratio: float, rate: float,
                                        duration: float) -> None:
    """with_target re-validates canonical values to exactly themselves (no unit re-scaling)."""
    spec = ExperimentSpec.model_validate({
        "name": "t", "target": "http://h", "load": {"rate": rate, "duration": duration},
        "objectives": [{"metric": "latency-p99", "upperLimit": latency},
                       {"metric": "error-rate", "upperLimit": ratio},
                       {"metric": "throughput", "lowerLimit": rate}],
    })
    moved = spec.with_target("http://other:1")
    assert moved.model_dump(exclude={"target"}) == spec.model_dump(exclude={"target"})


@pytest.mark.parametrize("text, metric, upper, lower", [
    pytest.param("p(95)<200ms", "latency-p95", 200.0, None, id="p95-ms"),
    pytest.param("p(99.9) <= 1s", "latency-p99.9", 1000.0, None, id="p99.9-seconds-spaces"),
    pytest.param("avg<100", "latency-mean", 100.0, None, id="avg-bare-ms"),
    pytest.param("med<50ms", "latency-p50", 50.0, None, id="med"),
    pytest.param("max<2s", "latency-max", 2000.0, None, id="max"),
    pytest.param("rate<0.01", "error-rate", 0.01, None, id="rate-fraction"),
    pytest.param("rate<1%", "error-rate", 0.01, None, id="rate-percent"),
    pytest.param("count>=1000", "request-count", None, 1000.0, id="count-lower"),
    pytest.param("throughput>500/s", "throughput", None, 500.0, id="throughput-lower"),
])
def test_k6_style_objectives(text: str, metric: str, upper: float | None,
                             lower: float | None) -> None:
    """A k6-style threshold string becomes the same objective as its mapping form."""
    spec = parse_spec({"name": "t", "target": "http://h", "load": {"rate": 1, "duration": 1},
                       "objectives": [text]})
    objective = spec.objectives[0]
    assert (objective.metric, objective.upper_limit, objective.lower_limit) == (metric, upper, lower)
    jsonschema.Draft202012Validator(json_schema()).validate(
        {"name": "t", "target": "http://h", "load": {"rate": 1, "duration": 1},
         "objectives": [text]})


@pytest.mark.parametrize("text, message", [
    pytest.param("p95<200ms", "is not an objective", id="no-parentheses"),
    pytest.param("p(95)<200x", "is not a duration", id="bad-unit"),
    pytest.param("rate<2", "is not a ratio", id="rate-above-one"),
])
def test_bad_k6_style_objectives_name_the_objective(text: str, message: str) -> None:
    """A malformed threshold string is a SpecError naming objectives[0] and what is wrong."""
    with pytest.raises(SpecError, match=rf"objectives\[0\].*{message}"):
        parse_spec({"name": "t", "target": "http://h", "load": {"rate": 1, "duration": 1},
                    "objectives": [text]})
