"""The results file (``results.json``): a versioned document, written atomically, read back strictly.

Schema ``slogate/results/v1`` (keys camelCase; every histogram is HdrHistogram's V2 compressed
base64 form, readable by any HdrHistogram library; latencies are nanoseconds inside histograms and
milliseconds in ``metrics``)::

    schema      "slogate/results/v1"
    name        experiment name
    spec        the validated spec, echoed (limits in canonical units); read through
                ``Results.saved``, its typed view (:mod:`analysis.saved_spec`)
    startTime   ISO 8601 UTC of the common start; endTime when the run finished
    durationS   measured phase length in seconds (warm-up excluded)
    aborted     true when the run was stopped before it finished (Ctrl-C, SIGTERM)
    gaps        [{worker, lostAtS, resumedAtS}] a lost worker's share that nobody sent, from
                its loss until its replacement resumed (null: never replaced)
    workers     [{index, host, pid, node, status: ok|lost, requests, errors, warmupRequests, unsent, reason}]
    histograms  {latency: [Series], service: [Series]}  totals per (endpoint, outcome);
                latency is coordinated-omission corrected, service is not
    windows     [{index, startS, scheduled, sent, cpuS, inFlightMax, lag: hdr, latency: [Series],
                 service: [Series]}]  (cpuS: CPU seconds of the busiest worker in the window)
    metrics     {endpoint or "*": {metric name: value or null}}; latency from the intended send
                time (coordinated-omission corrected)
    serviceMetrics  the latency-* metrics again, from the actual send time (uncorrected)
    baselineMetrics, comparison  two-version runs: the baseline's metrics (``metrics`` are the
                candidate's) and candidate vs baseline per metric (ratio, or difference for
                error-rate) with its interval; ``aa`` marks an A/A run (the noise floor).
                Series labels of two-version runs are "baseline: GET /x" / "candidate: GET /x"
    objectives  [{metric, endpoint, upperLimit, lowerLimit, dryRun, value, low, high, n,
                 confidence, neededN, verdict, reason}]  (low..high: the value's interval)
    customMetrics  [{name, version, provider, query, unit, mode, reduce, value, points: [[t, v]],
                 labels, error, note}]  each custom metric as read for each version: the query
                 rendered as sent, its series over the measured phase, the reduced value
                 (null: no data, see note; or the read failed, see error)
    verdict     PASS | FAIL | INCONCLUSIVE | INVALID
    reasons     [one line each]
    slogateVersion, specFile  the slogate that ran it and the spec file it ran (null: unknown)
    stages      load.stages only: [{index, name, rate, users, startS, durationS, requests,
                 metrics, objectives, verdict, reasons}], each stage judged on its own windows
                 (rate: stages of rates, the global rate; users: stages of users)

    Series = {endpoint, outcome, count, hdr}

Nothing is ever half-written: :func:`write_atomic` writes a temporary file beside the target,
fsyncs it and renames it over the target.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from analysis.custom import Reading
from analysis.errors import ResultsError
from analysis.saved_spec import SavedSpec, SavedSpecError, saved_spec
from workers.histogram import Histogram, check_encoding, first_undecodable
from workers.recorder import Key

SCHEMA: Final = "slogate/results/v1"


class _Doc(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Series(_Doc):
    endpoint: str
    outcome: str
    count: int
    hdr: str


class WorkerResult(_Doc):
    index: int
    host: str | None = None
    pid: int | None = None
    node: str | None = None
    status: Literal["ok", "lost"] = "ok"
    requests: int = 0
    errors: int = 0
    warmup_requests: int = 0
    unsent: int = 0
    reason: str | None = None


class GapResult(_Doc):
    worker: int
    lost_at_s: float
    resumed_at_s: float | None = None


class WindowResult(_Doc):
    index: int
    start_s: float
    scheduled: int
    sent: int
    cpu_s: float = 0.0
    in_flight_max: int = 0
    lag: str
    latency: list[Series]
    service: list[Series]


class Histograms(_Doc):
    latency: list[Series]
    service: list[Series]


class ComparisonResult(_Doc):
    """Candidate against baseline on one metric (all endpoints): ratio or difference, with CI."""

    metric: str
    kind: Literal["ratio", "difference"]
    candidate: float | None = None
    baseline: float | None = None
    value: float | None = None
    low: float | None = None
    high: float | None = None
    confidence: float = 0.95
    note: str | None = None


class ObjectiveResult(_Doc):
    metric: str
    endpoint: str | None = None
    vs: str | None = None
    upper_limit: float | None = None
    lower_limit: float | None = None
    dry_run: bool = False
    value: float | None = None
    low: float | None = None  # confidence interval of the value, in its unit
    high: float | None = None
    n: int = 0
    confidence: float = 0.95
    needed_n: int | None = None  # about how many requests would decide an undecided objective
    verdict: str
    reason: str


class CustomMetricResult(_Doc):
    """One custom metric as read for one version (see the module docstring)."""

    name: str
    version: str = "candidate"
    provider: str = ""
    query: str
    unit: str = ""
    mode: Literal["instant", "range"] = "instant"
    reduce: Literal["last", "max", "mean"] = "last"
    value: float | None = None
    points: list[tuple[float, float]] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    error: str | None = None
    note: str | None = None

    def reading(self) -> Reading:
        """Return the analysis' plain value of this entry."""
        return Reading(name=self.name, version=self.version, query=self.query, unit=self.unit,
                       value=self.value, points=tuple(self.points), labels=dict(self.labels),
                       error=self.error, note=self.note)


class StageResult(_Doc):
    """One load stage judged on its own windows (see :mod:`analysis.stages`)."""

    index: int
    name: str
    rate: float | None = None  # stages of rates: the global rate
    users: int | None = None  # stages of users (closed model): the users of all workers
    start_s: float
    duration_s: float
    requests: int = 0
    metrics: dict[str, float | int | None] = Field(default_factory=dict)  # all endpoints ("*")
    objectives: list[ObjectiveResult]
    verdict: Literal["PASS", "FAIL", "INCONCLUSIVE", "INVALID"]
    reasons: list[str]

    @model_serializer(mode="wrap")
    def _one_kind(self, handler: SerializerFunctionWrapHandler) -> Any:
        """Write ``rate`` or ``users``, whichever the stage has (rate stages as before)."""
        dumped = handler(self)
        for key in ("rate", "users"):
            if isinstance(dumped, dict) and dumped.get(key) is None:
                dumped.pop(key, None)
        return dumped


class Results(_Doc):
    """A whole run, as saved in results.json (see the module docstring for the schema)."""

    schema_: Literal["slogate/results/v1"] = Field(SCHEMA, alias="schema")
    name: str
    spec: dict[str, Any]
    start_time: str
    end_time: str
    duration_s: float
    aborted: bool = False
    gaps: list[GapResult] = Field(default_factory=list)
    workers: list[WorkerResult]
    histograms: Histograms
    windows: list[WindowResult]
    metrics: dict[str, dict[str, float | int | None]]
    service_metrics: dict[str, dict[str, float | int | None]] = Field(default_factory=dict)
    baseline_metrics: dict[str, dict[str, float | int | None]] = Field(default_factory=dict)
    comparison: list[ComparisonResult] = Field(default_factory=list)
    aa: bool = False
    objectives: list[ObjectiveResult]
    custom_metrics: list[CustomMetricResult] = Field(default_factory=list)
    verdict: Literal["PASS", "FAIL", "INCONCLUSIVE", "INVALID"]
    reasons: list[str]
    slogate_version: str | None = None
    spec_file: str | None = None
    stages: list[StageResult] | None = None  # load.stages: each stage judged on its own

    _saved: tuple[dict[str, Any], SavedSpec] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _parse_saved_spec(self) -> Results:
        try:
            self._saved = (self.spec, saved_spec(self.spec))
        except SavedSpecError as exc:
            raise PydanticCustomError("saved_spec", "spec.{where}", {"where": str(exc)}) from None
        return self

    @property
    def saved(self) -> SavedSpec:
        """Return the typed view of the echoed spec, parsed when the document was loaded (again
        only for a copy given another ``spec``); raise ResultsError if it cannot be read."""
        if self._saved is None or self._saved[0] is not self.spec:
            try:
                self._saved = (self.spec, saved_spec(self.spec))
            except SavedSpecError as exc:
                raise ResultsError(f"spec.{exc}") from None
        return self._saved[1]

    @property
    def dark_launch(self) -> str | None:
        """Return one line on the run's Kubernetes dark launch, or None when there was none:
        ``candidate.yaml in namespace shop, cleanup on_fail``."""
        return self.saved.dark_launch

    @property
    def target_url(self) -> str | None:
        """Return the candidate's base URL from the saved spec (a URL, or ``target.url``)."""
        return self.saved.target_url

    def to_json(self) -> str:
        """Return the document as indented JSON text (without ``customMetrics`` when the run
        read none, and ``stages`` only for a staged run, so other runs are written as before)."""
        skip = ({"custom_metrics"} if not self.custom_metrics else set()) | (
            {"stages"} if self.stages is None else set())
        return self.model_dump_json(by_alias=True, indent=2, exclude=skip or None) + "\n"


def series(hists: dict[Key, Histogram]) -> list[Series]:
    """Return histograms by (endpoint, outcome) as sorted, encoded series."""
    return [Series(endpoint=e, outcome=o, count=h.total, hdr=h.encode())
            for (e, o), h in sorted(hists.items())]


def unseries(items: list[Series]) -> dict[Key, Histogram]:
    """Return encoded series as histograms by (endpoint, outcome); check counts match."""
    out: dict[Key, Histogram] = {}
    for item in items:
        try:
            hist = Histogram.decode(item.hdr)
        except ValueError as exc:
            raise ResultsError(f"histogram {item.endpoint}/{item.outcome}: {exc}") from None
        if hist.total != item.count:
            raise ResultsError(f"histogram {item.endpoint}/{item.outcome}: count {item.count} "
                               f"does not match its encoded histogram ({hist.total})")
        out[(item.endpoint, item.outcome)] = hist
    return out


def clean_metrics(table_rows: Mapping[Any, Mapping[Any, Any]]) -> dict[str, dict[str, float | int | None]]:
    """Return metrics with NaN turned into None and numpy scalars into Python numbers."""
    out: dict[str, dict[str, float | int | None]] = {}
    for endpoint, row in table_rows.items():
        clean: dict[str, float | int | None] = {}
        for name, value in row.items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                clean[name] = None
            elif name.endswith("-count"):
                clean[name] = int(value)
            else:
                clean[name] = float(value)
        out[endpoint] = clean
    return out


def write_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class NotARegularFile(OSError):
    """The path names a FIFO, a device, a socket or a directory: nothing to read as a file."""


_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block "
          "device", stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}


def read_regular_text(path: str | Path, *, max_bytes: int | None = None) -> str:
    """Return the UTF-8 text of the regular file at ``path``.

    Raise :class:`NotARegularFile` (an OSError) for anything else, checked on the open file,
    which is opened without blocking: reading a FIFO named ``*.json`` would wait forever for a
    writer. ``max_bytes``: a larger file raises NotARegularFile too, before it is read. Other
    OSErrors and UnicodeDecodeError as ``open`` and ``decode`` raise them.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
            raise NotARegularFile(f"{kind}, not a regular file")
        if max_bytes is not None and info.st_size > max_bytes:
            raise NotARegularFile(f"larger than {max_bytes // 2**20} MiB")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        return handle.read().decode("utf-8")


def load_results(path: str | Path) -> Results:
    """Return the results document at ``path``, or raise ResultsError naming what is wrong
    (a FIFO or other non-regular file is refused, not waited on)."""
    path = Path(path)
    try:
        text = read_regular_text(path)
    except FileNotFoundError:
        raise ResultsError(f"{path}: results file not found") from None
    except NotARegularFile as exc:
        raise ResultsError(f"{path}: cannot read results file: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read results file ({exc.__class__.__name__})") from None
    return parse_results(text, source=str(path))


MAX_JSON_DEPTH = 200  # a spec's JSON body may nest 100 levels (YAML's bound); results add a few


class JSONTooDeep(ValueError):
    """JSON text nests lists and objects deeper than its reader allows."""


def json_depth(data: Any) -> int:
    """Return how deeply ``data`` (parsed JSON) nests lists and objects (a scalar: 0), without
    recursing."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) \
            else None
        if children is not None:
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


def load_json(text: str | bytes, *, max_depth: int) -> Any:
    """Return the JSON value of ``text``; raise :class:`JSONTooDeep` when it nests deeper than
    ``max_depth`` (or than the decoder's own stack allows), before anything recurses into it,
    and json.JSONDecodeError or UnicodeDecodeError as ``json.loads`` does."""
    try:
        data = json.loads(text)
    except RecursionError:  # deeper than the decoder's own stack allows
        raise JSONTooDeep(f"JSON nested deeper than {max_depth} levels") from None
    if json_depth(data) > max_depth:
        raise JSONTooDeep(f"JSON nested deeper than {max_depth} levels")
    return data


def parse_results(text: str, *, source: str) -> Results:
    """Return the results document in ``text``, or raise ResultsError naming ``source`` and
    what is wrong (a results file's text read from elsewhere, e.g. a git archive). JSON nested
    past :data:`MAX_JSON_DEPTH` is refused, before anything recurses into it."""
    try:
        data = load_json(text, max_depth=MAX_JSON_DEPTH)
    except JSONTooDeep:
        raise ResultsError(f"{source}: JSON nested more than {MAX_JSON_DEPTH} levels deep: "
                           "not a results document") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{source}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if isinstance(data, dict) and data.get("schema") not in (None, SCHEMA):
        raise ResultsError(f"{source}: schema {data.get('schema')!r} is not supported "
                           f"(this slogate reads {SCHEMA})")
    try:
        results = Results.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ResultsError(f"{source}: {field + ': ' if field else ''}{first['msg']}") from None
    try:
        check_histograms(results)
    except ResultsError as exc:
        raise ResultsError(f"{source}: {exc}") from None
    return results


def _histograms(results: Results) -> Iterator[tuple[str, Series | None, str, bool]]:
    """Yield (where, series or None for a lag, encoded, in a window) for every histogram of
    ``results``: the run's totals first, then each window's."""
    for kind in ("latency", "service"):
        for i, item in enumerate(getattr(results.histograms, kind)):
            yield (f"histograms.{kind}[{i}] ({item.endpoint}, {item.outcome})", item, item.hdr,
                   False)
    for w, window in enumerate(results.windows):
        yield f"windows[{w}].lag", None, window.lag, True
        for kind in ("latency", "service"):
            for i, item in enumerate(getattr(window, kind)):
                yield (f"windows[{w}].{kind}[{i}] ({item.endpoint}, {item.outcome})", item,
                       item.hdr, True)


def check_histograms(results: Results, *, budget_bytes: int | None = None) -> None:
    """Raise ResultsError naming a histogram of ``results`` that does not decode (corrupt,
    counts past the layout, or inflating beyond what the layout can need: a decompression bomb)
    or a total whose count is not its series' ``count``, so no report or verdict meets it later
    as a traceback. The totals are decoded one by one, the windows' thousands checked together
    (:func:`workers.histogram.first_undecodable`, ~0.1 s for a 10-minute run's 5,400).

    ``budget_bytes``: also name the one at which all of them together inflate to more (the
    decoding work is then bounded by the budget, not by how many histograms a document
    repeats).
    """
    spent, windows = 0, []
    for where, item, encoded, in_window in _histograms(results):
        try:
            if budget_bytes is not None:
                spent += check_encoding(encoded)
                if spent > budget_bytes:
                    raise ValueError(f"the histograms inflate to more than {budget_bytes} bytes "
                                     "together")
            if in_window:
                windows.append((where, encoded))
                continue
            total = Histogram.decode(encoded).total
        except (ValueError, TypeError) as exc:
            raise ResultsError(f"{where}: {exc}") from None
        if item is not None and total != item.count:
            raise ResultsError(f"{where}: count {item.count} does not match its encoded "
                               f"histogram ({total})")
    bad = first_undecodable([encoded for _, encoded in windows])
    if bad is not None:
        where, encoded = windows[bad]
        try:
            Histogram.decode(encoded)
        except (ValueError, TypeError) as exc:
            raise ResultsError(f"{where}: {exc}") from None
