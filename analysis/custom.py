"""Custom metrics: values read from the app's own metrics store (Prometheus), judged beside the
built-in ones. Pure: templates, the decoding of Prometheus's JSON answers, reduction, judgement.

A :class:`Reading` is one custom metric read for one version (``candidate`` or ``baseline``):
the query as sent (rendered), the points it returned and the value reduced from them, or
``value=None`` when the query returned no series ("no data", never 0), or ``error`` when it
failed. Invariants:

- no data is INCONCLUSIVE, never PASS; a query error makes the run INVALID (the caller puts
  :func:`reading_errors` into the run's health);
- a custom value is a point value: it carries no confidence interval, and the reason says so;
- several series where one was expected is an error naming their labels.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal

Reduce = Literal["last", "max", "mean"]
Point = tuple[float, float]  # (unix time s, value)

# {{ name }}: a template variable; anything else in the query is PromQL and left alone.
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
VARIABLES = ("namespace", "app", "version", "labels", "interval", "start", "end")
NO_INTERVAL = "a point value from the metrics store: no confidence interval"


class QueryError(ValueError):
    """A metrics store's answer that cannot be used (malformed, or not one series)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """One custom metric read for one version."""

    name: str
    version: str  # "candidate" or "baseline"
    query: str  # rendered, as sent
    unit: str = ""
    value: float | None = None  # None: no data (or an error)
    points: tuple[Point, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None  # one line: what failed, with the HTTP status
    note: str | None = None  # why there is no value, when there is none


def template_variables(template: str) -> list[str]:
    """Return the variable names a query template uses, in order of appearance."""
    return [m.group(1) for m in _VARIABLE.finditer(template)]


def render(template: str, variables: Mapping[str, str]) -> str:
    """Return ``template`` with every ``{{ name }}`` replaced; KeyError names an unknown one."""
    return _VARIABLE.sub(lambda m: variables[m.group(1)], template)


def promql_duration(seconds: float) -> str:
    """Return a PromQL duration for ``seconds``: ``30s``, ``1500ms`` (at least ``1ms``)."""
    ms = max(1, round(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def promql_string(text: str) -> str:
    """Return ``text`` as a double-quoted PromQL string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def label_matchers(labels: Mapping[str, str]) -> str:
    """Return ``{version: "2.0"}`` as PromQL matchers ``version="2.0"`` (comma-separated)."""
    return ",".join(f"{name}={promql_string(value)}" for name, value in labels.items())


def variables_for(*, namespace: str, app: str, version: str, labels: Mapping[str, str],
                  start_s: float, end_s: float) -> dict[str, str]:
    """Return the template variables of one version over the measured phase [start, end]."""
    return {"namespace": namespace, "app": app, "version": version,
            "labels": label_matchers(labels), "interval": promql_duration(end_s - start_s),
            "start": f"{start_s:.3f}", "end": f"{end_s:.3f}"}


def _number(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise QueryError(f"the answer holds {text!r} where a number was expected") from None


def decode(body: Any) -> list[tuple[dict[str, str], list[Point]]]:
    """Return the series of a Prometheus ``/api/v1/query`` or ``query_range`` answer's
    ``data``: ``[(labels, [(t, value), ...])]``; a scalar is one series without labels.
    Raise QueryError when it is not such an answer."""
    if not isinstance(body, dict) or "resultType" not in body or "result" not in body:
        raise QueryError("the answer has no data.resultType/result: not a Prometheus API answer")
    kind, result = body["resultType"], body["result"]
    if kind == "scalar":
        return [({}, [(_number(result[0]), _number(result[1]))])]
    if kind not in ("vector", "matrix") or not isinstance(result, list):
        raise QueryError(f"the query gives a {kind}, not a number or a series")
    out = []
    for item in result:
        if not isinstance(item, dict):
            raise QueryError("a series of the answer is not an object")
        labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
        pairs = item.get("values") if kind == "matrix" else [item.get("value")]
        if not isinstance(pairs, list):
            raise QueryError("a series of the answer has no values")
        out.append((labels, [(_number(p[0]), _number(p[1])) for p in pairs
                             if isinstance(p, list) and len(p) == 2]))
    return out


def describe_labels(labels: Mapping[str, str]) -> str:
    """Return ``{job="hello",version="2.0"}`` (``{}`` for none)."""
    return "{" + label_matchers(labels) + "}"


def reduce_points(points: Sequence[Point], how: Reduce) -> float | None:
    """Return the last, largest or mean of the finite values (None when there is none)."""
    values = [v for _, v in points if math.isfinite(v)]
    if not values:
        return None
    if how == "last":
        return values[-1]
    if how == "max":
        return max(values)
    return math.fsum(values) / len(values)


def reading_from(series: list[tuple[dict[str, str], list[Point]]], *, name: str, version: str,
                 query: str, unit: str, how: Reduce) -> Reading:
    """Return the reading of one answer: its single series reduced by ``how``; no series is
    "no data" (value None), several series are an error naming their labels."""
    base = Reading(name=name, version=version, query=query, unit=unit)
    if not series:
        return replace(base, note="the query returned no series")
    if len(series) > 1:
        named = sorted(describe_labels(labels) for labels, _ in series)  # the same each time
        shown = ", ".join(named[:3])
        more = f" and {len(series) - 3} more" if len(series) > 3 else ""
        return replace(base, error=f"custom metric {name}: the query returned {len(series)} "
                       f"series where one was expected: {shown}{more} (aggregate them, e.g. "
                       "with sum or max)")
    labels, points = series[0]
    finite = tuple((t, v) for t, v in points if math.isfinite(v))
    value = reduce_points(finite, how)
    note = None if value is not None else "the query returned only NaN or infinite values"
    return replace(base, value=value, points=finite, labels=labels, note=note)


def reading_errors(readings: Iterable[Reading]) -> tuple[str, ...]:
    """Return the distinct errors of ``readings``, one line each, in order."""
    return tuple(dict.fromkeys(r.error for r in readings if r.error))


def _ratio_text(value: float) -> str:
    return f"x{value:.3g}"


def format_custom(value: float | None, unit: str) -> str:
    """Return a custom value with its unit: ``12.3 ms``, ``0.25``; ``no data`` for None."""
    if value is None:
        return "no data"
    return f"{value:.4g} {unit}".strip()


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomJudgement:
    """The outcome of one objective on a custom metric, before it becomes an ObjectiveVerdict."""

    value: float | None
    outcome: Literal["PASS", "FAIL", "INCONCLUSIVE"]
    reason: str


def _limits(upper: float | None, lower: float | None, show: Any) -> str:
    parts = [f">= {show(lower)}"] if lower is not None else []
    parts += [f"<= {show(upper)}"] if upper is not None else []
    return " and ".join(parts)


def judge_custom(*, name: str, upper: float | None, lower: float | None, vs: str | None,
                 readings: Mapping[tuple[str, str], Reading]) -> CustomJudgement:
    """Return the judgement of a custom objective from the readings by (name, version):
    a point comparison of the candidate's value (or its ratio to the baseline's, ``vs``)."""
    candidate = readings.get((name, "candidate"))
    if candidate is None:
        return CustomJudgement(value=None, outcome="INCONCLUSIVE",
                               reason=f"custom metric {name} was not read in this run")
    if candidate.error:
        return CustomJudgement(value=None, outcome="INCONCLUSIVE", reason=candidate.error)
    if candidate.value is None:
        return CustomJudgement(value=None, outcome="INCONCLUSIVE",
                               reason=f"no data for {name}: {candidate.note or 'no value'}")
    value = candidate.value
    show: Callable[[float], str] = partial(format_custom, unit=candidate.unit)
    if vs is not None:
        base = readings.get((name, vs))
        if base is None or base.error or base.value is None:
            why = (base.error or base.note) if base is not None else "not read"
            return CustomJudgement(value=None, outcome="INCONCLUSIVE",
                                   reason=f"no data for {name} on the {vs}: {why}")
        if base.value == 0:
            return CustomJudgement(value=None, outcome="INCONCLUSIVE", reason=(
                f"{name} is 0 on the {vs}: the ratio candidate / {vs} is undefined"))
        value = candidate.value / base.value
        show = _ratio_text
    wanted = _limits(upper, lower, show) + (f" of the {vs}" if vs else "")
    shown = show(value)
    if vs is not None:
        shown += (f" ({format_custom(candidate.value, candidate.unit)} vs "
                  f"{format_custom(readings[(name, vs)].value, candidate.unit)})")
    ok = (upper is None or value <= upper) and (lower is None or value >= lower)
    return CustomJudgement(value=value, outcome="PASS" if ok else "FAIL",
                           reason=f"{shown} is {'' if ok else 'not '}{wanted} ({NO_INTERVAL})")
