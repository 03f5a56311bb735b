"""The experiment spec: a YAML file validated once, at the CLI, into frozen pydantic models.

Keys are camelCase, as in the Kubernetes, Iter8 and Argo files that live beside it. Example::

    name: hello-2.0
    target: http://127.0.0.1:8080
    load: {rate: 200, duration: 10s, warmup: 1s, workers: 2, timeout: 2s}
    endpoints:
      - path: /hello
    objectives:
      - {metric: error-rate, upperLimit: 1%}
      - {metric: latency-p99, upperLimit: 50ms}

``load_spec(path)`` returns an :class:`ExperimentSpec` or raises :class:`SpecError` whose message
names the file, the line where YAML gives one, and the field: ``experiment.yaml:7: load.rate:
must be greater than 0``. Nothing here does I/O beyond reading the spec file itself.
"""

from __future__ import annotations

import collections
import difflib
import enum
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote, urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)
from ruamel.yaml.error import YAMLError

from analysis.catalog import (
    ALL_ENDPOINTS,
    DEFAULT_ERROR_RANGES,
    MetricKind,
    canonical_metric,
    kind_of,
    known_metric_names,
)
from analysis.results import NotARegularFile, read_regular_text
from analysis.safe_yaml import bounded_yaml
from analysis.verdict import Limits as CoreLimits
from analysis.verdict import Slo
from coordinator import units
from coordinator.data_files import check_columns
from coordinator.errors import SpecError
from coordinator.grpc_spec import (
    GrpcCallFields,
    GrpcSpec,
    check_grpc_url,
    check_versions,
    deadline_problem,
    grpc_scheme_for,
    is_grpc_url,
)
from coordinator.metrics_spec import MetricsSpec, custom_units, parse_custom_limit
from coordinator.notify_spec import NotifyTarget
from coordinator.placeholders import encode_around, names_in
from promote.spec import PromotionSpec
from promote.spec import SpecModel as _Model
from workers.checks import Check as CoreCheck
from workers.checks import parse_json_path

SCHEMA_ID = "https://slogate.dev/schemas/experiment/v1"

_DURATION_JSON = {
    "anyOf": [
        {"type": "string",
         "pattern": r"^\s*(((\d+(\.\d*)?|\.\d+)\s*(ns|us|µs|ms|s|m|h))+|\d+(\.\d*)?|\.\d+)\s*$"},
        {"type": "number", "exclusiveMinimum": 0},
    ],
    "description": "A duration: 500ms, 10s, 1m30s; a bare number is seconds.",
}
Duration = Annotated[
    float, BeforeValidator(units.parse_duration_s), WithJsonSchema(_DURATION_JSON), Field(gt=0)
]
# Upper bounds (README, "Spec fields"): far beyond what one run needs, low enough that a typo
# (an extra zero or five) is refused before any worker starts rather than sized for.
MAX_RATE_RPS = 1_000_000
MAX_REQUESTS = 1_000_000_000
MAX_DURATION_S = 86_400.0  # duration, warmup, maxDuration, ramp.duration: one day
MAX_CONNECTIONS = 100_000  # maxInFlight and concurrency: one socket each
MAX_WORKERS = 1024
MAX_ENDPOINTS = 10_000
_QUANTITY_JSON = {
    "anyOf": [{"type": "string"}, {"type": "number"}],
    "description": "A limit in the metric's unit: 200ms, 0.5s (latency; bare number = ms), "
    "1% or 0.01 (error-rate), 100 (counts), 100/s (throughput).",
}
_LIMIT_PARSERS = {
    MetricKind.LATENCY: units.parse_latency_ms,
    MetricKind.RATIO: units.parse_ratio,
    MetricKind.COUNT: units.parse_count,
    MetricKind.THROUGHPUT: units.parse_throughput_rps,
}


# --- what reaches the wire: nothing in a spec may split or smuggle a request --------------------

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token: a header name
_NOT_IN_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # controls but HTAB: CR, LF, NUL...
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"  # RFC 3986 pchar and '/', plus escapes already made
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})


def _char(text: str) -> str:
    """Return how a message names one character: ``CR``, ``LF``, ``NUL`` or ``U+0007``."""
    return {"\r": "CR", "\n": "LF", "\x00": "NUL", " ": "a space"}.get(text, f"U+{ord(text):04X}")


def _check_header(name: str, value: str) -> None:
    """Raise ValueError unless ``name: value`` is one header line that HTTP/1.1 allows."""
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"{name!r} is not a header name (letters, digits and "
                         "!#$%&'*+-.^_`|~ only)")
    if name.lower() in _FRAMING_HEADERS:
        raise ValueError(f"{name}: slogate sets the body's framing itself; remove this header")
    bad = _NOT_IN_VALUE.search(value)
    if bad:
        raise ValueError(f"{name}: the value contains {_char(bad.group())} (a control "
                         "character could split the request)")
    try:
        value.encode("ascii")
    except UnicodeEncodeError as exc:
        # Latin-1 would do for HTTP, but aiohttp sends UTF-8 and the fast transport Latin-1:
        # ASCII is the same bytes on both.
        raise ValueError(f"{name}: the value has {_char(value[exc.start])}, not ASCII (header "
                         "values are bytes; percent- or base64-encode it)") from None


def request_target(path: str) -> str:
    """Return ``path`` (and its ``?query``) percent-encoded as sent: a space becomes ``%20``,
    a non-ASCII character its UTF-8 escapes; escapes already written (``%2F``) stay.

    Raise ValueError for what no encoding makes right: a control character (CR, LF, NUL...),
    a ``#`` (a fragment is never sent), a ``%`` that starts no escape. Encoding twice changes
    nothing, so a validated spec validates again to itself.
    """
    bad = _CONTROL.search(path)
    if bad:
        raise ValueError(f"{path!r} contains {_char(bad.group())} (a control character "
                         "could split the request)")
    if "#" in path:
        raise ValueError(f"{path!r} has a fragment (#...), which is never sent; write %23 if "
                         "'#' belongs to the path")
    if _BAD_ESCAPE.search(path):
        raise ValueError(f"{path!r}: '%' must start an escape like %2F (write %25 for '%')")
    head, sep, query = path.partition("?")
    return quote(head, safe=_PATH_SAFE) + sep + quote(query, safe=_PATH_SAFE + "?")


class Method(str, enum.Enum):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    HEAD = "HEAD"
    OPTIONS = "OPTIONS"


def _without_empty(dumped: Any, keys: tuple[str, ...]) -> Any:
    """Return a dumped model without ``keys`` left empty (null, []): specs saved in results
    read as before the fields existed (dataset, checks, stages, window)."""
    if isinstance(dumped, dict):
        for key in keys:
            if not dumped.get(key):
                dumped.pop(key, None)
    return dumped


class DataSpec(_Model):
    """Request data: rows of a CSV (with a header line) or JSON-lines file fill the endpoint's
    ``{{ column }}`` placeholders, one request per row (see README, "Request data").

    Example: ``dataset: {file: users.csv, order: shuffle, seed: 7}``
    """

    file: str = Field(min_length=1, description="CSV (.csv) or JSON-lines (.jsonl, .ndjson) "
                      "file, relative to the spec file.")
    order: Literal["sequential", "random", "shuffle"] = Field(
        "sequential", description="sequential: file order, looping; shuffle: each pass in a new "
        "seeded order; random: seeded draws with replacement.")
    seed: int | None = Field(None, description="Seed of shuffle and random; default load.seed "
                             "or 0.")


_CHECK_KINDS = {"status": "status", "body_contains": "body-contains",
                "body_matches": "body-matches", "json_path": "json", "header": "header",
                "min_bytes": "size", "max_bytes": "size"}


class CheckSpec(_Model):
    """One response check (see README, "Response checks"); one kind per check. A response
    that fails it has the outcome ``check:<name>``, counted as an error.

    Example: ``{json: $.user.id, equals: 7}``, ``{bodyContains: '"ok"'}``, ``{status: [200]}``
    """

    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.\-]+$", max_length=64,
                             description="Outcome check:<name>; default the kind (status, "
                             "body-contains, body-matches, json, size, header).")
    status: list[int | str] | None = Field(None, description="Statuses accepted: 200, "
                                           "'200-204'.")
    body_contains: str | None = Field(None, min_length=1)
    body_matches: str | None = Field(None, min_length=1, description="A regular expression "
                                     "searched in the body.")
    json_path: str | None = Field(None, alias="json", description="A JSON path: $.key[0].key")
    equals: Any = Field(None, description="json: the value the path must hold.")
    exists: bool | None = Field(None, description="json: whether the path must exist "
                                "(default true).")
    min_bytes: int | None = Field(None, ge=0, description="Least body size in bytes.")
    max_bytes: int | None = Field(None, ge=0, description="Greatest body size in bytes.")
    header: str | None = Field(None, pattern=r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$",
                               description="A header the response must have.")

    @model_validator(mode="after")
    def _one_kind(self) -> CheckSpec:
        kinds = sorted({kind for field, kind in _CHECK_KINDS.items()
                        if getattr(self, field) is not None})
        if len(kinds) != 1:
            raise ValueError("give exactly one of status, bodyContains, bodyMatches, json, "
                             f"minBytes/maxBytes, header (got {', '.join(kinds) or 'none'})")
        if self.json_path is None and ("equals" in self.model_fields_set
                                       or self.exists is not None):
            raise ValueError("equals and exists go with json: a JSON path")
        if "equals" in self.model_fields_set and self.exists is not None:
            raise ValueError("set equals or exists, not both")
        if (self.min_bytes is not None and self.max_bytes is not None
                and self.min_bytes > self.max_bytes):
            raise ValueError("minBytes is greater than maxBytes")
        try:
            self.to_core(())
        except (ValueError, re.error) as exc:
            field = "bodyMatches" if isinstance(exc, re.error) else "json"
            raise ValueError(f"{field}: {exc}") from None
        return self

    @property
    def label(self) -> str:
        """Return the check's name: its ``name`` or its kind."""
        return self.name or next(kind for field, kind in _CHECK_KINDS.items()
                                 if getattr(self, field) is not None)

    def to_core(self, error_ranges: tuple[tuple[int, int], ...]) -> CoreCheck:
        """Return the check as the workers' plain value."""
        if self.body_matches is not None:
            re.compile(self.body_matches.encode())
        return CoreCheck(
            name=self.label,
            statuses=None if self.status is None else tuple(_parse_error_range(s)
                                                            for s in self.status),
            contains=None if self.body_contains is None else self.body_contains.encode(),
            matches=self.body_matches,
            json_path=None if self.json_path is None else parse_json_path(self.json_path),
            json_equals=json.dumps(self.equals) if "equals" in self.model_fields_set else None,
            json_exists=self.exists is not False, min_bytes=self.min_bytes,
            max_bytes=self.max_bytes, header=self.header)


class EndpointSpec(_Model, GrpcCallFields):
    """One request to send. ``path`` is appended to the target URL.

    Example: ``{path: /hello, method: POST, json: {a: 1}, headers: {X-Trace: "1"}, weight: 3}``
    """

    name: str | None = Field(None, description="Label in reports; default 'METHOD path'.")
    path: str = Field("", description="Appended to the target URL; starts with '/'.")
    method: Method = Method.GET
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    body: str | None = Field(None, description="Request body as a string.")
    body_file: str | None = Field(None, description="Path of a file sent as the body "
                                  "(relative to the spec file).")
    json_body: Any = Field(None, alias="json", description="A JSON body (sets the content type).")
    content_type: str | None = None
    weight: float = Field(1.0, gt=0, le=1e9,
                          description="Share of requests relative to other endpoints.")
    dataset: DataSpec | None = Field(default=None, description="Rows filling {{ column }} "
                                  "placeholders in path, query, headers and body.")
    checks: list[CheckSpec] = Field(default_factory=list, max_length=100,
                                    description="What every response must hold.")

    @field_validator("path")
    @classmethod
    def _path_starts_with_slash(cls, path: str) -> str:
        if path and not path.startswith("/"):
            raise ValueError(f"{path!r} must start with '/'")
        return encode_around(path, request_target)  # {{ column }} placeholders kept as such

    @field_validator("headers")
    @classmethod
    def _headers_stay_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            _check_header(name, value)
        return headers

    @field_validator("content_type")
    @classmethod
    def _content_type_is_a_header_value(cls, value: str | None) -> str | None:
        if value is not None:
            _check_header("Content-Type", value)
        return value

    @model_validator(mode="after")
    def _one_body(self) -> EndpointSpec:
        given = [k for k, v in (("body", self.body), ("bodyFile", self.body_file),
                                ("json", self.json_body)) if v is not None]
        if len(given) > 1:
            raise ValueError(f"set at most one of body, bodyFile, json (got {', '.join(given)})")
        problem = self.grpc_field_errors({"path": self.path, "method": self.method != Method.GET,
                                          "query": self.query, "headers": self.headers,
                                          "contentType": self.content_type, "body": given})
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _placeholders_need_data(self) -> EndpointSpec:
        if self.dataset is None:
            for field, text in _templated_text(self):
                if names_in(text):
                    raise ValueError(f"{field}: {{{{ {names_in(text)[0]} }}}} is a placeholder, "
                                     "but the endpoint has no data file (add dataset: {file: ...})")
        return self

    @model_serializer(mode="wrap")
    def _without_unused(self, handler: SerializerFunctionWrapHandler) -> Any:
        # one serializer per model: this one also does GrpcCallFields' (an HTTP endpoint is
        # saved without the gRPC fields, as before they existed)
        dumped = handler(self)
        if self.call is None and isinstance(dumped, dict):
            for name, field in GrpcCallFields.model_fields.items():
                dumped.pop(field.alias or name, None)
                dumped.pop(name, None)
        return _without_empty(dumped, ("dataset", "checks"))

    @model_validator(mode="after")
    def _unique_check_names(self) -> EndpointSpec:
        names = [c.label for c in self.checks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"checks: names must be unique; name the checks called {twice}")
        return self

    @model_validator(mode="after")
    def _label_is_not_all_endpoints(self) -> EndpointSpec:
        if self.label == ALL_ENDPOINTS:  # the metrics' key of the whole run: rows would merge
            field = "name" if self.name is not None else "path"
            raise ValueError(f"{field}: the label {ALL_ENDPOINTS!r} is reserved for all "
                             "endpoints together; give the endpoint another name")
        return self

    @property
    def label(self) -> str:
        """Return the endpoint's name in reports: its ``name`` or ``METHOD path``."""
        return self.name or self.call or f"{self.method.value} {self.path or '/'}"


def _templated_text(endpoint: EndpointSpec) -> list[tuple[str, str]]:
    """Return (field, text) of every string of ``endpoint`` that placeholders may fill."""
    out = [("path", endpoint.path)]
    out += [("query", f"{k}={v}") for k, v in endpoint.query.items()]
    out += [("headers", v) for v in endpoint.headers.values()]
    if endpoint.body is not None:
        out.append(("body", endpoint.body))
    if endpoint.json_body is not None:
        out.append(("json", json.dumps(endpoint.json_body)))
    return out


class RampSpec(_Model):
    """A linear ramp of the arrival rate before the measured phase (open model only).

    Example: ``{from: 10, duration: 30s}`` goes from 10 req/s to ``load.rate`` in 30 s; requests
    sent during the ramp are excluded from the metrics, like warm-up.
    """

    from_: float = Field(0.0, alias="from", ge=0, le=MAX_RATE_RPS,
                         description="Rate at the start, req/s.")
    to: float | None = Field(None, gt=0, le=MAX_RATE_RPS,
                             description="Rate at the end; default load.rate.")
    duration: Duration = Field(le=MAX_DURATION_S)


class HttpSpec(_Model):
    """How requests are sent.

    ``transport``: ``fast`` (HTTP/1.1 keep-alive on uvloop with the llhttp parser), ``aiohttp``
    (redirects, HEAD, and what the fast path does not do), or ``auto`` (fast unless a request
    needs aiohttp). ``insecure: true`` skips TLS certificate verification.
    """

    transport: Literal["auto", "fast", "aiohttp"] = "auto"
    insecure: bool = Field(False, description="Skip TLS certificate verification.")
    follow_redirects: bool = Field(False, description="Follow 3xx redirects (aiohttp only).")


class AnalysisSpec(_Model):
    """How verdicts are reached.

    Example: ``{confidence: 0.99, maxScheduleLag: 5ms, maxUnsent: 0.1%}``
    """

    confidence: float = Field(0.95, ge=0.5, le=0.9999,
                              description="Confidence level of every interval.")
    max_schedule_lag: Annotated[float, BeforeValidator(units.parse_latency_ms),
                                WithJsonSchema(_QUANTITY_JSON)] = Field(
        10.0, description="Schedule lag p99 above which the generator was the bottleneck "
        "(INCONCLUSIVE).")
    max_unsent: Annotated[float, BeforeValidator(units.parse_ratio),
                          WithJsonSchema(_QUANTITY_JSON)] = Field(
        0.001, description="Share of due requests never sent above which the run is "
        "INCONCLUSIVE.")

    def to_core(self) -> CoreLimits:
        """Return the analysis' plain value."""
        return CoreLimits(confidence=self.confidence, max_lag_ms=self.max_schedule_lag,
                          max_unsent=self.max_unsent)


class StageSpec(_Model):
    """One load stage (a k6-style step): a constant rate (open model) or a number of virtual
    users (closed model) for a duration, judged on its own. All stages of a spec are one kind.

    Example: ``{rate: 200, duration: 30s, name: peak}`` or ``{users: 50, duration: 30s}``
    """

    rate: float | None = Field(None, gt=0, le=MAX_RATE_RPS,
                               description="Open model: requests per second.")
    users: int | None = Field(None, gt=0, le=MAX_CONNECTIONS,
                              description="Closed model: virtual users sending back to back.")
    duration: Duration = Field(le=MAX_DURATION_S)
    name: str | None = Field(None, max_length=64, description="Label in reports; default "
                             "'stage N'.")

    @model_serializer(mode="wrap")
    def _without_unused(self, handler: SerializerFunctionWrapHandler) -> Any:
        return _without_empty(handler(self), ("rate", "users"))

    @model_validator(mode="after")
    def _rate_or_users(self) -> StageSpec:
        if (self.rate is None) == (self.users is None):
            raise ValueError("set rate (requests/s) or users (virtual users), not both"
                             if self.rate is not None else
                             "set rate (requests/s) or users (virtual users)")
        return self


def _stage_kind(stages: list[Any]) -> str | None:
    """Return ``"rate"`` or ``"users"`` when every stage gives that one (None otherwise)."""
    kinds = {"rate" if s.get("users") is None else "users"
             for s in stages if isinstance(s, dict)}
    return kinds.pop() if len(kinds) == 1 and len(stages) else None


def _stages_set_rate_and_duration(data: Any) -> Any:
    """With ``stages``, ``rate`` or ``concurrency`` (the peak, for sizing; stages of users run
    the closed model) and ``duration`` (the sum) follow from them; written out they must agree
    (a saved spec validates again to itself)."""
    if not isinstance(data, dict) or not isinstance(data.get("stages"), list):
        return data
    kind = _stage_kind(data["stages"])
    try:
        peaks = [float(stage[kind]) for stage in data["stages"]] if kind else []
        total = sum(units.parse_duration_s(stage["duration"]) for stage in data["stages"])
    except (TypeError, KeyError, ValueError):
        return data  # the stages' own validation says what is wrong
    if not peaks or min(peaks) <= 0:
        return data
    key, other, model = (("rate", "concurrency", "rates run the open model (they set rate)")
                         if kind == "rate" else
                         ("concurrency", "rate", "users run the closed model (they set "
                          "concurrency)"))
    if data.get(other) is not None:
        raise ValueError(f"{other}: stages of {model}; remove {other}")
    derived = {key: max(peaks) if kind == "rate" else int(max(peaks)), "duration": total}
    for name, value in derived.items():
        given = data.get(name)
        if given is not None and \
                abs(units.parse_duration_s(given) - value) > 1e-9 * max(1.0, value):
            raise ValueError(f"{name}: set by stages ({value:g}); remove it")
    return {**data, **derived}


class LoadSpec(_Model):
    """How much load, for how long, from how many workers.

    Open model (``rate``: requests/s at intended times, latency measured from the intended send
    time) or closed model (``concurrency``: that many users back to back). Stop after
    ``duration`` or ``requests``, whichever comes first.

    Example: ``{rate: 500, duration: 30s, warmup: 5s, workers: 4, timeout: 2s}``
    """

    rate: float | None = Field(None, gt=0, le=MAX_RATE_RPS,
                               description="Open model: requests per second.")
    concurrency: int | None = Field(None, gt=0, le=MAX_CONNECTIONS,
                                    description="Closed model: virtual users.")
    duration: Duration | None = Field(None, le=MAX_DURATION_S)
    requests: int | None = Field(None, gt=0, le=MAX_REQUESTS,
                                 description="Total requests (warm-up excluded).")
    warmup: Duration | None = Field(None, le=MAX_DURATION_S,
                                    description="Leading time excluded from metrics.")
    warmup_requests: int | None = Field(None, gt=0, le=MAX_REQUESTS,
                                        description="Leading requests excluded.")
    workers: int = Field(1, ge=1, le=MAX_WORKERS, description="Number of LoadWorker actors.")
    timeout: Duration = Field(10.0, le=100.0, description="Per-request timeout.")
    window: Duration = Field(1.0, le=3600.0, description="Length of one histogram window.")
    max_in_flight: int = Field(1000, gt=0, le=MAX_CONNECTIONS,
                               description="Open model: cap on outstanding requests "
                               "(= connections over HTTP/1.1), split between workers.")
    arrival: Literal["constant", "poisson"] = Field(
        "constant", description="Open model: evenly spaced or Poisson arrivals.")
    seed: int | None = Field(None, description="Seed of Poisson arrivals (reproducible runs).")
    ramp: RampSpec | None = Field(None, description="Open model: ramp the rate up first.")
    think_time: Duration | None = Field(None, le=3600.0, description="Closed model: pause "
                                        "between a user's requests.")
    cpus_per_worker: float = Field(1.0, ge=0, description="Ray CPUs reserved per worker.")
    placement: Literal["spread", "strict_spread"] = Field(
        "spread", description="spread: best effort across nodes; strict_spread: one worker per "
        "node, refused when there are too few nodes.")
    on_worker_loss: Literal["fail", "replace"] = Field(
        "fail", description="fail: a lost worker makes the run INVALID; replace: start a new "
        "worker for its share and record the gap.")
    max_duration: Duration = Field(3600.0, le=MAX_DURATION_S,
                                   description="Hard stop, whatever the stop condition.")
    stages: list[StageSpec] | None = Field(
        None, min_length=1, max_length=1000, description="Steps of rates (open model) or of "
        "users (closed model), each judged on its own (sets rate or concurrency, and duration; "
        "see README, \"Load stages\").")

    _from_stages = model_validator(mode="before")(_stages_set_rate_and_duration)

    @model_serializer(mode="wrap")
    def _without_unused(self, handler: SerializerFunctionWrapHandler) -> Any:
        return _without_empty(handler(self), ("stages",))

    @model_validator(mode="after")
    def _stages_fit(self) -> LoadSpec:
        stages = self.stages or []
        for index, stage in enumerate(stages):
            if (stage.users is None) != (stages[0].users is None):
                first, this = ("users", "rate") if stages[0].users is not None else ("rate", "users")
                raise ValueError(f"stages[{index}]: {this} in stages of {first}; give every "
                                 f"stage {first} (one model per spec)")
            windows = stage.duration / self.window
            if abs(windows - round(windows)) > 1e-6:
                raise ValueError(f"stages[{index}].duration: {stage.duration:g} s is not a whole "
                                 f"number of windows (window: {self.window:g} s)")
        if self.stages and (self.ramp is not None or self.arrival != "constant"
                            or self.requests is not None):
            raise ValueError("stages: not with ramp, Poisson arrivals or requests")
        return self

    @model_validator(mode="after")
    def _one_model_one_stop(self) -> LoadSpec:
        if (self.rate is None) == (self.concurrency is None):
            raise ValueError("set exactly one of rate (open model) or concurrency (closed model)")
        if self.duration is None and self.requests is None:
            raise ValueError("set duration or requests (or both: whichever comes first)")
        if self.warmup is not None and self.warmup_requests is not None:
            raise ValueError("set at most one of warmup (a duration) or warmupRequests")
        if self.concurrency is not None:
            for name, value in (("ramp", self.ramp), ("arrival", self.arrival != "constant" or None)):
                if value is not None:
                    raise ValueError(f"{name}: only for the open model (rate), not concurrency")
        elif self.think_time is not None:
            raise ValueError("thinkTime: only for the closed model (concurrency), not rate")
        if self.ramp is not None and self.arrival == "poisson":
            raise ValueError("ramp: not supported with Poisson arrivals (use arrival: constant)")
        return self

    @property
    def model(self) -> Literal["open", "closed"]:
        """Return ``"open"`` (rate) or ``"closed"`` (concurrency)."""
        return "open" if self.rate is not None else "closed"


_K6 = re.compile(r"^\s*(?P<agg>p\((?P<q>[\d.]+)\)|avg|med|min|max|rate|count|throughput)"
                 r"\s*(?P<op><=|>=|<|>)\s*(?P<limit>\S+)\s*$")
_K6_METRICS = {"avg": "latency-mean", "med": "latency-p50", "min": "latency-min",
               "max": "latency-max", "rate": "error-rate", "count": "request-count",
               "throughput": "throughput"}


def parse_k6_threshold(text: str) -> dict[str, Any]:
    """Return a k6-style threshold (``p(95)<200ms``, ``rate<0.01``, ``avg<=100ms``) as an
    objective mapping. ``rate`` is the error rate, ``count`` the request count; ``<`` and
    ``<=`` both give an (inclusive) upperLimit, ``>`` and ``>=`` a lowerLimit."""
    match = _K6.match(text)
    if not match:
        raise ValueError(f"{text!r} is not an objective; use a mapping or a k6-style threshold "
                         "like 'p(95)<200ms', 'avg<100ms' or 'rate<0.01'")
    q = match.group("q")
    metric = f"latency-p{float(q):g}" if q else _K6_METRICS[match.group("agg")]
    key = "upperLimit" if match.group("op").startswith("<") else "lowerLimit"
    return {"metric": metric, key: match.group("limit")}


def _parse_ratio_limit(value: object) -> float:
    """Return a positive ratio limit: ``1.1`` or ``110%``."""
    if isinstance(value, str) and value.strip().endswith("%"):
        value = float(value.strip()[:-1]) / 100
    number = units.parse_throughput_rps(value)
    if number <= 0:
        raise ValueError(f"{value!r} is not a positive ratio (use e.g. 1.1 or 110%)")
    return number


def _parse_signed_ratio(value: object) -> float:
    """Return a difference of rates: ``0.5%``, ``-0.1%`` or ``0.005``."""
    text = str(value).strip()
    negative = text.startswith("-")
    number = units.parse_ratio(text.lstrip("-"))
    return -number if negative else number


class Objective(_Model):
    """An SLO on a built-in metric: ``{metric: latency-p99, upperLimit: 200ms}``.

    Limits are converted to the metric's canonical unit (ms, fraction, req/s, count) on load.
    """

    metric: str = Field(description="A built-in metric (" + ", ".join(known_metric_names())
                        + ") or a custom one declared under metrics.custom")
    upper_limit: Annotated[float | None, WithJsonSchema(_QUANTITY_JSON)] = None
    lower_limit: Annotated[float | None, WithJsonSchema(_QUANTITY_JSON)] = None
    endpoint: str | None = Field(None, description="Judge one endpoint (its label); default all.")
    dry_run: bool = Field(False, description="Report this objective but leave it out of the verdict.")
    vs: Literal["baseline"] | None = Field(
        None, description="Judge the candidate relative to the baseline: limits are ratios "
        "(candidate / baseline, e.g. 1.1) for latency and throughput, and differences "
        "(candidate - baseline, e.g. 0.5%) for error-rate.")
    window: Literal["worst"] | None = Field(
        None, description="worst: judge the metric in every window (load.window long) and "
        "keep the worst window's verdict, e.g. p99 of every 10 s window.")

    @model_validator(mode="before")
    @classmethod
    def _parse_limits(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, str):
            data = parse_k6_threshold(data)
        if not isinstance(data, dict):
            return data
        metric = data.get("metric")
        if isinstance(metric, str) and canonical_metric(metric) != metric:  # Iter8's grpc/...
            data = {**data, "metric": canonical_metric(metric)}
            metric = data["metric"]
        custom = _custom_units(info)
        kind = kind_of(metric) if isinstance(metric, str) else None
        if isinstance(metric, str) and kind is None and metric in custom:
            return _custom_limits(data, custom[metric])
        if kind is None:
            return data  # the field validator reports the metric itself
        parsed = dict(data)
        parser = _LIMIT_PARSERS[kind]
        if data.get("vs") is not None and kind is not MetricKind.RATIO:
            parser = _parse_ratio_limit  # candidate / baseline
        elif data.get("vs") is not None:
            parser = _parse_signed_ratio  # candidate - baseline, may be negative
        for key in ("upperLimit", "lowerLimit", "upper_limit", "lower_limit"):
            if parsed.get(key) is not None:
                try:
                    parsed[key] = parser(parsed[key])
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc} for {metric} ({kind.value})") from None
        return parsed

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str, info: ValidationInfo) -> str:
        custom = list(_custom_units(info))
        if kind_of(metric) is None and metric not in custom:
            known = known_metric_names() + custom
            hint = difflib.get_close_matches(metric, known, n=1)
            suggestion = f" (did you mean {hint[0]}?)" if hint else ""
            raise ValueError(f"unknown metric {metric!r}{suggestion}; known: "
                             + ", ".join(known) + ("" if custom else
                                                   " (custom ones: declare them in metrics)"))
        return metric

    def to_core(self) -> Slo:
        """Return the objective as the analysis' plain value."""
        return Slo(metric=self.metric, upper_limit=self.upper_limit,
                             lower_limit=self.lower_limit, endpoint=self.endpoint,
                             dry_run=self.dry_run, vs=self.vs, window=self.window)

    @model_serializer(mode="wrap")
    def _without_unused(self, handler: SerializerFunctionWrapHandler) -> Any:
        return _without_empty(handler(self), ("window",))

    @model_validator(mode="after")
    def _has_a_limit(self) -> Objective:
        if self.window is not None and self.vs is not None:
            raise ValueError("window: worst judges the candidate alone; not with vs")
        if self.upper_limit is None and self.lower_limit is None:
            raise ValueError("set upperLimit, lowerLimit or both")
        if (self.upper_limit is not None and self.lower_limit is not None
                and self.lower_limit > self.upper_limit):
            raise ValueError("lowerLimit is greater than upperLimit")
        return self


def _custom_units(info: ValidationInfo) -> dict[str, str]:
    """Return ``{name: unit}`` of the custom metrics the document declares (the context)."""
    return dict((info.context or {}).get("custom_units") or {})


def _custom_limits(data: dict[str, Any], unit: str) -> dict[str, Any]:
    """Return an objective on a custom metric with its limits parsed in the metric's unit."""
    parsed = dict(data)
    for key in ("upperLimit", "lowerLimit"):
        if parsed.get(key) is not None:
            try:
                parsed[key] = parse_custom_limit(parsed[key], unit,
                                                 relative=data.get("vs") is not None)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc} for {data['metric']} (custom)") from None
    return parsed


def _parse_error_range(item: Any) -> tuple[int, int]:
    if isinstance(item, int) and not isinstance(item, bool):
        lo = hi = item
    elif isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(x, int) for x in item):
        lo, hi = item
    elif isinstance(item, str) and "-" in item:
        lo_text, _, hi_text = item.partition("-")
        try:
            lo, hi = int(lo_text), int(hi_text)
        except ValueError:
            raise ValueError(f"{item!r} is not a status range like 400-599") from None
    else:
        try:
            lo = hi = int(str(item))
        except ValueError:
            raise ValueError(f"{item!r} is not a status or a range like 400-599") from None
    if not 100 <= lo <= hi <= 599:
        raise ValueError(f"{item!r} is not a range of HTTP statuses within 100-599")
    return lo, hi


def _check_http_url(target: str) -> str:
    """Return ``target`` without a trailing slash; raise ValueError unless it is http(s)://host.

    Refused as well: credentials (``user:pass@``; the message never repeats them), which would
    be printed and saved with the results, and a space, a control or a non-ASCII character,
    which would reach the request line or the Host header as written.
    """
    if "@" in re.split(r"[/?#]", target.partition("://")[2], maxsplit=1)[0]:
        raise ValueError("credentials in the URL (user:password@) are refused: they would be "
                         "shown and saved with the results; send an Authorization header "
                         "(endpoints[].headers) instead")
    bad = re.search(r"[\x00-\x20\x7f-\U0010ffff]", target)
    if bad:
        raise ValueError(f"{target!r} contains {_char(bad.group())}: percent-encode it (a host "
                         "name in its xn-- form)")
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{target!r} is not an http(s) URL with a host")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"{target!r} has an invalid port") from None
    return target.rstrip("/")


class KubernetesTarget(_Model):
    """Dark launch: apply the candidate's manifests, wait for its rollout, then load its Service.

    Example::

        target:
          kubernetes:
            namespace: shop
            manifests: [candidate.yaml]      # relative to the spec file
            service: hello-candidate         # default: the only Service in the manifests
            port: 8080                       # default: the Service's first port
            rolloutTimeout: 2m
            cleanup: on_fail                 # always | on_fail | never
          url: http://127.0.0.1:18080        # optional: outside the cluster (port-forward)

    Without ``url`` the load goes to the Service's cluster DNS name,
    ``http://<service>.<namespace>.svc:<port>``: slogate runs inside the cluster.
    """

    namespace: str = Field("default", min_length=1, max_length=63,
                           pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    manifests: list[str] = Field(min_length=1, description="Candidate manifest files "
                                 "(Deployment, Service, ConfigMap), relative to the spec file.")
    service: str | None = Field(None, description="The Service to load; default the only one "
                                "in the manifests.")
    port: int | None = Field(None, ge=1, le=65535, description="Service port; default its first.")
    rollout_timeout: Duration = Field(120.0, description="How long the Deployments may take "
                                      "to become ready.")
    cleanup: Literal["always", "on_fail", "never"] = Field(
        "never", description="Delete the candidate afterwards: always, on_fail (unless PASS), "
        "never.")
    kubeconfig: str | None = Field(None, description="Kubeconfig file; default $KUBECONFIG, "
                                   "~/.kube/config, or the in-cluster service account.")
    context: str | None = Field(None, description="Kubeconfig context; default the current one.")


class TargetSpec(_Model):
    """The version under test: a base URL, or a Kubernetes dark launch (and optionally a URL).

    ``target: http://host:8080`` is short for ``target: {url: http://host:8080}``.
    """

    url: str | None = Field(None, description="Base URL of the candidate (http or https).")
    kubernetes: KubernetesTarget | None = Field(None, description="Deploy the candidate "
                                                "before loading it.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        return None if url is None else _check_url(url)

    @model_validator(mode="after")
    def _url_or_kubernetes(self) -> TargetSpec:
        if self.url is None and self.kubernetes is None:
            raise ValueError("give url, kubernetes, or both")
        return self


def _check_url(url: str) -> str:
    return check_grpc_url(url) if is_grpc_url(url) else _check_http_url(url)


def _target_from_url(value: Any) -> Any:
    return {"url": value} if isinstance(value, str) else value


class ExperimentSpec(_Model):
    """A whole experiment: what to load, how hard, and the SLOs to judge."""

    model_config = ConfigDict(json_schema_extra={"$id": SCHEMA_ID, "title": "slogate experiment"})

    name: str = Field(min_length=1, max_length=253, description="Experiment name.")
    target: Annotated[TargetSpec, BeforeValidator(_target_from_url)] = Field(
        description="The version under test, the candidate: its base URL, or "
        "{url, kubernetes} to dark-launch it first.")
    baseline: str | None = Field(None, description="Base URL of the baseline version: both are "
                                 "loaded by the same workers, interleaved request by request.")
    load: LoadSpec
    endpoints: list[EndpointSpec] = Field(
        default_factory=lambda: [EndpointSpec()], min_length=1, max_length=MAX_ENDPOINTS,
        description="Requests to send; default one GET of the target URL.",
    )
    objectives: list[Objective] = Field(
        default_factory=list,
        description="SLOs: mappings, or k6-style strings such as 'p(95)<200ms' or 'rate<0.01'.")
    http: HttpSpec = Field(default_factory=HttpSpec)
    grpc: GrpcSpec | None = Field(None, description="gRPC endpoints: schema, TLS, channels, "
                                  "which status codes are errors.")
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    promotion: PromotionSpec | None = Field(None, description="Promote on PASS by pull request.")
    metrics: MetricsSpec | None = Field(None, description="Custom metrics read from a metrics "
                                        "store (Prometheus), judged beside the built-in ones.")
    notify: list[NotifyTarget] = Field(default_factory=list, description="Webhooks told of the "
                                       "verdict, the promotion, the verification and a revert.")
    error_ranges: Annotated[
        tuple[tuple[int, int], ...],
        WithJsonSchema({"type": "array", "minItems": 1, "items": {"anyOf": [
            {"type": "string", "pattern": r"^\s*\d{3}\s*(-\s*\d{3}\s*)?$"},
            {"type": "integer", "minimum": 100, "maximum": 599},
            {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}]},
                        "description": "HTTP statuses counted as errors, e.g. ['400-599']."}),
    ] = DEFAULT_ERROR_RANGES

    @field_validator("baseline")
    @classmethod
    def _http_url(cls, baseline: str | None) -> str | None:
        return None if baseline is None else _check_url(baseline)

    @model_serializer(mode="wrap")
    def _no_grpc_block(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)  # an HTTP experiment without custom metrics or notify: as before
        return {k: v for k, v in data.items()
                if (k not in ("grpc", "metrics") or v is not None) and (k != "notify" or v)}

    @field_serializer("target")
    def _target_as_written(self, target: TargetSpec) -> Any:
        """A plain URL target is saved as the string it was written as (results stay v1)."""
        if target.kubernetes is None:
            return target.url
        return target.model_dump(mode="json", by_alias=True, exclude_none=True)

    @property
    def target_url(self) -> str:
        """Return the candidate's base URL; a Kubernetes target without ``url`` must be
        resolved first (:meth:`with_target`), once its Service is known."""
        if self.target.url is None:
            raise SpecError("target: the Kubernetes target has no URL yet (launch it first)")
        return self.target.url

    @field_validator("error_ranges", mode="before")
    @classmethod
    def _ranges(cls, value: Any) -> Any:
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            value = [value]
        if isinstance(value, (list, tuple)):
            if not value:
                raise ValueError("give at least one status range, e.g. ['400-599']")
            return tuple(_parse_error_range(item) for item in value)
        return value

    @model_validator(mode="after")
    def _relative_needs_baseline(self) -> ExperimentSpec:
        for index, objective in enumerate(self.objectives):
            if objective.vs is not None and self.baseline is None:
                raise ValueError(f"objectives[{index}].vs: compares with the baseline, but the "
                                 "spec has no baseline URL")
        return self

    @model_validator(mode="after")
    def _grpc_servers(self) -> ExperimentSpec:
        calls = [e.call is not None for e in self.endpoints]
        if self.target.url is not None:
            problem = check_versions(self.versions(), self.grpc, has_grpc=any(calls),
                                     has_http=not all(calls)) or deadline_problem(
                                         [e.deadline for e in self.endpoints], self.load.timeout)
            if problem:
                raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _custom_objectives(self) -> ExperimentSpec:
        for index, provider in enumerate(self.metrics.providers if self.metrics else ()):
            try:
                _check_http_url(provider.url)
            except ValueError as exc:
                raise ValueError(f"metrics.providers[{index}].url: {exc}") from None
        names = {m.name for m in self.metrics.custom} if self.metrics else set()
        for index, objective in enumerate(self.objectives):
            if objective.metric in names and objective.endpoint is not None:
                raise ValueError(f"objectives[{index}].endpoint: {objective.metric} is a custom "
                                 "metric, read for the whole version; remove endpoint")
        return self

    @model_validator(mode="after")
    def _unique_endpoint_labels(self) -> ExperimentSpec:
        labels = [e.label for e in self.endpoints]
        counts = collections.Counter(labels)  # linear: list.count per label was quadratic
        duplicates = sorted(label for label, count in counts.items() if count > 1)
        if duplicates:
            raise ValueError(f"endpoints: labels must be unique; give a name to: {duplicates}")
        for index, objective in enumerate(self.objectives):
            if objective.endpoint is not None and objective.endpoint not in counts:
                near = difflib.get_close_matches(objective.endpoint, labels, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                shown = ", ".join(repr(label) for label in labels[:10])
                more = f", … ({len(labels)} in all)" if len(labels) > 10 else ""
                raise ValueError(f"objectives[{index}].endpoint: {objective.endpoint!r} is not "
                                 f"an endpoint's label{hint}; the labels are {shown}{more}")
        return self

    def versions(self) -> list[tuple[str, str]]:
        """Return ``[(version, base URL)]``: the candidate alone, or baseline and candidate."""
        if self.baseline is None:
            return [("candidate", self.target_url)]
        return [("baseline", self.baseline), ("candidate", self.target_url)]

    def with_target(self, target: str) -> ExperimentSpec:
        """Return a copy that loads another base URL (the demo points it at a free port; a
        Kubernetes target gets its Service's URL), keeping a Kubernetes block as it is. An
        ``http://`` URL of an experiment whose endpoints are all gRPC calls becomes ``grpc://``."""
        target = grpc_scheme_for(target, all(e.call is not None for e in self.endpoints))
        dumped = self.model_dump(mode="json", by_alias=True)
        moved = ({**dumped["target"], "url": target} if isinstance(dumped["target"], dict)
                 else target)
        try:
            return _validate(ExperimentSpec, {**dumped, "target": moved})
        except ValidationError as exc:
            raise SpecError(f"target: {exc.errors(include_url=False)[0]['msg']}") from None


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema of the spec (camelCase keys), for editors and CI linting."""
    schema = ExperimentSpec.model_json_schema(by_alias=True)
    target = schema["properties"]["target"]
    schema["properties"]["target"] = {"description": target.pop("description", ""), "anyOf": [
        {"type": "string", "description": "Base URL of the candidate (http or https)."}, target]}
    items = schema["properties"]["objectives"]["items"]
    schema["properties"]["objectives"]["items"] = {"anyOf": [items, {
        "type": "string", "pattern": _K6.pattern,
        "description": "A k6-style threshold: p(95)<200ms, avg<100ms, rate<0.01"}]}
    return schema


# --- loading and error translation -------------------------------------------------------------

def load_spec(path: str | Path, *, one_version_as_both: bool = False) -> ExperimentSpec:
    """Return the validated spec in ``path``, or raise SpecError naming the file, line and field.

    ``one_version_as_both`` (``--aa``): the A/A version of the spec, the baseline (or the target,
    without a baseline) loaded as both versions.
    """
    path = Path(path)
    data = _read_yaml(path)
    if one_version_as_both and isinstance(data, dict):
        target = data.get("target")
        url = data.get("baseline") or (target.get("url") if isinstance(target, dict) else target)
        if url is None and isinstance(target, dict):
            raise SpecError(f"{path}: --aa loads one running version twice; a Kubernetes target "
                            "needs target.url or baseline for it")
        data["target"] = data["baseline"] = url
    spec = parse_spec(data, source=str(path))
    _check_body_files(spec, path.parent, str(path))
    _check_data_files(spec, path.parent, data, str(path))
    return spec


def load_spec_document(path: str | Path) -> tuple[ExperimentSpec, Any]:
    """Return the validated spec in ``path`` and its YAML document (which keeps line numbers),
    for checks that point at a line (``slogate check``); errors as :func:`load_spec`."""
    path = Path(path)
    data = _read_yaml(path)
    spec = parse_spec(data, source=str(path))
    _check_body_files(spec, path.parent, str(path))
    _check_data_files(spec, path.parent, data, str(path))
    return spec, data


def value_at(data: Any, loc: list[Any] | tuple[Any, ...]) -> Any:
    """Return the value at ``loc`` (keys and list indices) of a spec document, or None."""
    return _node_at(data, list(loc))


def where_in(data: Any, loc: list[Any], source: str) -> str:
    """Return ``source:LINE: field.path`` for a location in a spec document (no line when the
    document carries no YAML positions)."""
    line = _line_of(data, loc)
    return f"{source}:{line}: {_dotted(loc)}" if line else f"{source}: {_dotted(loc)}"


def parse_spec(data: Any, *, source: str = "spec") -> ExperimentSpec:
    """Return the validated spec from already-parsed YAML/JSON data."""
    if data is None:
        raise SpecError(f"{source}: the spec is empty")
    if not isinstance(data, dict):
        got = "a list" if isinstance(data, list) else f"a single {type(data).__name__} value"
        raise SpecError(f"{source}: expected a mapping of fields at the top level "
                        f"(name, target, load, ...), got {got}")
    try:
        return _validate(ExperimentSpec, _plain(data))
    except ValidationError as exc:
        raise SpecError(_describe(exc, data, source)) from None


class ObjectivesFile(_Model):
    """A file of objectives for re-judging a saved run: ``objectives`` and optional ``analysis``."""

    objectives: list[Objective] = Field(min_length=1)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)


def _validate(model: type[_M], data: Any, custom: dict[str, str] | None = None) -> _M:
    """Return ``model`` validated from ``data``, knowing the custom metrics it declares (or
    ``custom``: those of a saved run) so that objectives may name them."""
    return model.model_validate(data, context={"custom_units": {**custom_units(data),
                                                                **(custom or {})}})


_M = TypeVar("_M", bound=BaseModel)


def load_objectives(path: str | Path, custom: dict[str, str] | None = None) -> ObjectivesFile:
    """Return the objectives in ``path``: a YAML list of objectives, or a mapping with
    ``objectives`` (and optionally ``analysis``), such as a whole experiment spec.
    ``custom``: ``{name: unit}`` of the custom metrics objectives may name (a saved run's)."""
    path = Path(path)
    data = _read_yaml(path)
    if isinstance(data, list):
        data = {"objectives": data}
    elif isinstance(data, dict):
        data = {k: v for k, v in data.items() if k in ("objectives", "analysis")}
    else:
        raise SpecError(f"{path}: expected a list of objectives or a mapping with 'objectives'")
    try:
        return _validate(ObjectivesFile, _plain(data), custom)
    except ValidationError as exc:
        raise SpecError(_describe(exc, data, str(path))) from None


def _plain(node: Any) -> Any:
    """Return ruamel's round-trip containers as plain dicts and lists (line info is kept apart)."""
    if isinstance(node, dict):
        return {key: _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(value) for value in node]
    return node


MAX_SPEC_BYTES = 4 * 2**20  # ten thousand endpoints take well under 1 MiB


def _read_yaml(path: Path) -> Any:
    try:
        text = read_regular_text(path, max_bytes=MAX_SPEC_BYTES)
    except FileNotFoundError:
        raise SpecError(f"{path}: spec file not found") from None
    except NotARegularFile as exc:
        raise SpecError(f"{path}: cannot read spec file: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read spec file ({exc.__class__.__name__})") from None
    try:
        return bounded_yaml("rt").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{path}{where}: malformed YAML: {problem}") from None


def _check_body_files(spec: ExperimentSpec, base: Path, source: str) -> None:
    for index, endpoint in enumerate(spec.endpoints):
        if endpoint.body_file is not None and not (base / endpoint.body_file).is_file():
            raise SpecError(f"{source}: endpoints[{index}].bodyFile: file not found: "
                            f"{base / endpoint.body_file}")
    kubernetes = spec.target.kubernetes
    for index, manifest in enumerate(kubernetes.manifests if kubernetes else ()):
        if not (base / manifest).is_file():
            raise SpecError(f"{source}: target.kubernetes.manifests[{index}]: file not found: "
                            f"{base / manifest}")


def _check_data_files(spec: ExperimentSpec, base: Path, document: Any, source: str) -> None:
    """Read each endpoint's data file (once: the plan reuses what is read here) and refuse a
    placeholder that names no column, at the spec line where it is written."""
    check_columns(spec, base, lambda loc: where_in(document, loc, source))


def _describe(exc: ValidationError, data: Any, source: str) -> str:
    """Return one line for the validation errors: ``file:line: field.path: message`` for the
    first, then the others (up to three) with their lines, ``(and also line 9: field: ...)``."""
    errors = exc.errors(include_url=False)
    line, field, message = _locate(errors[0], data)
    where = f"{source}:{line}" if line else source
    prefix = f"{field}: " if field else ""
    others = [_locate(error, data) for error in errors[1:4]]
    also = "; ".join(f"{'line ' + str(n) + ': ' if n else ''}{f + ': ' if f else ''}{m}"
                     for n, f, m in others)
    left = len(errors) - 1 - len(others)
    more = f" (and also {also}{f'; and {left} more' if left else ''})" if others else ""
    return f"{where}: {prefix}{message}{more}"


def _locate(error: Any, data: Any) -> tuple[int | None, str, str]:
    """Return (YAML line or None, dotted field, message) of one validation error."""
    loc = [part for part in error["loc"] if part not in _UNION_TAGS]
    if loc[:2] == ["target", "url"] and isinstance(data, dict) and \
            isinstance(data.get("target"), str):
        loc = ["target", *loc[2:]]  # written as the short form, target: URL
    message = _message(error, data, loc)
    # A model-level check that names one of its own keys ("upperLimit: ...") or a path below it
    # ("objectives[0].endpoint: ...") points there.
    key, sep, rest = message.partition(": ")
    node = _node_at(data, loc)
    if sep and isinstance(node, dict) and key in node:
        loc, message = [*loc, key], rest
    elif sep and _PATH.match(key) and _node_at(data, [*loc, *_parse_path(key)]) is not None:
        loc, message = [*loc, *_parse_path(key)], rest
    return _line_of(data, loc), _dotted(loc), message


_PATH = re.compile(r"^[A-Za-z]\w*(\[\d+\])*(\.[A-Za-z]\w*(\[\d+\])*)+$|^[A-Za-z]\w*(\[\d+\])+")


def _parse_path(text: str) -> list[Any]:
    """Return ``objectives[0].endpoint`` as ``["objectives", 0, "endpoint"]``."""
    return [int(part) if part.isdigit() else part
            for part in re.findall(r"[A-Za-z]\w*|\d+", text)]


_SECONDS = {"duration", "warmup", "maxDuration", "timeout", "window", "thinkTime"}
_UNION_TAGS = {"float", "int", "str", "none", "function-before[parse_duration_s(), float]"}


def _dotted(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _message(error: dict[str, Any], data: Any, loc: list[Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1) if allowed else []
        suggestion = f" (did you mean {hint[0]}?)" if hint else ""
        return f"unknown field{suggestion}"
    if kind == "missing":
        return "required field is missing"
    if kind == "too_long":
        return (f"at most {error['ctx']['max_length']:,} items (slogate's upper bound, see the "
                f"README), got {error['ctx']['actual_length']:,}")
    if kind == "less_than_equal":
        limit = float(error["ctx"]["le"])
        unit = " s" if loc and loc[-1] in _SECONDS else ""
        shown = f"{int(limit):,}" if limit.is_integer() else f"{limit:g}"
        raw = _node_at(data, loc)
        if unit and isinstance(raw, (int, float)) and not isinstance(raw, bool):
            # A bare number is seconds: `timeout: 2000` meant as milliseconds says so.
            return (f"{raw:g} without a unit is {raw:g} s, more than the {shown} s allowed "
                    f"(slogate's upper bound, see the README); write {raw:g}ms for milliseconds")
        return f"must be at most {shown}{unit} (slogate's upper bound, see the README)"
    message = str(error["msg"])
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _allowed_keys(loc: list[Any]) -> list[str]:
    """Return the camelCase keys allowed at a location, for did-you-mean hints."""
    model: Any = ExperimentSpec
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(_snake(part)) if model else None
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)),
                     None)
        if model is None:
            return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _snake(name: str) -> str:
    if name == "json":
        return "json_body"
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _node_at(data: Any, loc: list[Any]) -> Any:
    node = data
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _line_of(data: Any, loc: list[Any]) -> int | None:
    """Return the 1-based YAML line of the deepest located key or item in ``loc``."""
    node, line = data, None
    for part in loc:
        lc = getattr(node, "lc", None)
        try:
            if lc is not None:
                pos = lc.key(part) if isinstance(part, str) else lc.item(part)
                line = pos[0] + 1
            node = node[part]
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    return line


def dump_schema() -> str:
    """Return the spec's JSON Schema as indented JSON text."""
    return json.dumps(json_schema(), indent=2, sort_keys=False)
