"""The typed view of the spec a saved run echoes (``results.json``'s ``spec``), parsed once.

``results.json`` echoes the validated spec as plain JSON, limits in canonical units (ms,
fractions, req/s, counts). :func:`saved_spec` reads it once, when the document is loaded
(:attr:`analysis.results.Results.saved`), into a frozen :class:`SavedSpec`: the objectives and
limits re-judging needs (so promotion re-judges a saved run without the coordinator's spec
parser), the error ranges (:data:`~analysis.catalog.DEFAULT_ERROR_RANGES` when absent), the
window, the target and the parts the reports show. A key absent keeps its default, as the spec
would give it; a value of the wrong kind raises :class:`SavedSpecError` naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from analysis.catalog import DEFAULT_ERROR_RANGES, GRPC_STATUS_CODES, kind_of, ok_outcomes
from analysis.verdict import Limits, Slo

_DEFAULT_LIMITS = Limits()


class SavedSpecError(ValueError):
    """The echoed spec holds a value re-judging cannot use; the message names the key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SavedSpec:
    """What a saved run's spec says, typed: ``results.saved.objectives``, ``.error_ranges``."""

    name: str | None
    objectives: tuple[Slo, ...]
    limits: Limits
    max_schedule_lag_ms: float | None  # as saved: None when the spec gave none
    error_ranges: tuple[tuple[int, int], ...]
    ok_outcomes: tuple[str, ...]  # gRPC outcomes that are no error (from grpc.errorCodes)
    window_s: float | None  # None when absent or not a positive number
    rate_rps: float | None  # open model; None for a closed one (concurrency)
    concurrency: int | None
    duration_s: float | None
    requests: int | None
    load: Mapping[str, Any]  # every load setting as saved, for the reports to list
    endpoints: tuple[Mapping[str, Any], ...]
    target_url: str | None
    dark_launch: str | None  # "candidate.yaml in namespace shop, cleanup on_fail"
    promotion: Mapping[str, Any] | None  # validated by promote.spec where it is used


def saved_spec(spec: Mapping[str, Any]) -> SavedSpec:
    """Return the typed view of an echoed spec; raise SavedSpecError naming a bad key."""
    load = _mapping(spec, "load")
    analysis = _mapping(spec, "analysis")
    lag = _number(analysis, "maxScheduleLag", "analysis.maxScheduleLag")
    limits = Limits(
        confidence=_or(_number(analysis, "confidence", "analysis.confidence"),
                       _DEFAULT_LIMITS.confidence),
        max_lag_ms=_DEFAULT_LIMITS.max_lag_ms if lag is None else lag,
        max_unsent=_or(_number(analysis, "maxUnsent", "analysis.maxUnsent"),
                       _DEFAULT_LIMITS.max_unsent))
    window = _number(load, "window", "load.window")
    target = spec.get("target")
    promotion = spec.get("promotion")
    return SavedSpec(
        name=spec.get("name") if isinstance(spec.get("name"), str) else None,
        objectives=tuple(_objective(item, f"objectives[{i}]", _custom_names(spec))
                         for i, item in enumerate(_list(spec, "objectives"))),
        limits=limits, max_schedule_lag_ms=lag,
        error_ranges=_error_ranges(spec.get("errorRanges")),
        ok_outcomes=_ok_outcomes(_mapping(spec, "grpc")),
        window_s=window if window is not None and window > 0 else None,
        rate_rps=_number(load, "rate", "load.rate"),
        concurrency=_count(load, "concurrency"),
        duration_s=_number(load, "duration", "load.duration"),
        requests=_count(load, "requests"), load=load,
        endpoints=tuple(e for e in _list(spec, "endpoints") if isinstance(e, Mapping)),
        target_url=target.get("url") if isinstance(target, Mapping) else target,
        dark_launch=_dark_launch(target),
        promotion=promotion if isinstance(promotion, Mapping) and promotion else None)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _mapping(spec: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = spec.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SavedSpecError(f"{key}: expected a mapping")
    return value


def _list(spec: Mapping[str, Any], key: str) -> list[Any] | tuple[Any, ...]:
    value = spec.get(key)
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise SavedSpecError(f"{key}: expected a list")
    return value


def _number(data: Mapping[str, Any], key: str, where: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if not _is_number(value):
        raise SavedSpecError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _count(load: Mapping[str, Any], key: str) -> int | None:
    value = load.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise SavedSpecError(f"load.{key}: expected a whole number, got {value!r}")
    return value


def _custom_names(spec: Mapping[str, Any]) -> frozenset[str]:
    """Return the names of the custom metrics the spec declares (``metrics.custom[].name``)."""
    metrics = spec.get("metrics")
    custom = metrics.get("custom") if isinstance(metrics, Mapping) else None
    return frozenset(item["name"] for item in custom or () if isinstance(item, Mapping)
                     and isinstance(item.get("name"), str)) if isinstance(custom, list) \
        else frozenset()


def _objective(item: Any, where: str, custom: frozenset[str] = frozenset()) -> Slo:
    """Return one echoed objective (limits already in canonical units) as the analysis' value;
    ``custom``: the custom metrics' names the spec declares, which objectives may name too."""
    if not isinstance(item, Mapping):
        raise SavedSpecError(f"{where}: expected a mapping")
    metric = item.get("metric")
    if not isinstance(metric, str) or (kind_of(metric) is None and metric not in custom):
        raise SavedSpecError(f"{where}.metric: unknown metric {metric!r}")
    upper = _number(item, "upperLimit", f"{where}.upperLimit")
    lower = _number(item, "lowerLimit", f"{where}.lowerLimit")
    if upper is None and lower is None:
        raise SavedSpecError(f"{where}: no upperLimit or lowerLimit")
    endpoint, vs = item.get("endpoint"), item.get("vs")
    if endpoint is not None and not isinstance(endpoint, str):
        raise SavedSpecError(f"{where}.endpoint: expected a string")
    if vs not in (None, "baseline"):
        raise SavedSpecError(f"{where}.vs: expected baseline, got {vs!r}")
    window = item.get("window")
    if window not in (None, "worst"):
        raise SavedSpecError(f"{where}.window: expected worst, got {window!r}")
    return Slo(metric=metric, upper_limit=upper, lower_limit=lower, endpoint=endpoint,
               dry_run=item.get("dryRun") is True, vs=vs, window=window)


def _ok_outcomes(grpc: Mapping[str, Any]) -> tuple[str, ...]:
    """Return the gRPC outcomes that are no error: every code but those in errorCodes (saved
    only when the spec gave them), else OK alone."""
    codes = grpc.get("errorCodes")
    if codes is not None and (not isinstance(codes, (list, tuple))
                              or any(c not in GRPC_STATUS_CODES for c in codes)):
        raise SavedSpecError("grpc.errorCodes: expected a list of gRPC status code names")
    return ok_outcomes(codes)


def _error_ranges(value: Any) -> tuple[tuple[int, int], ...]:
    """Return the saved ``[[lo, hi], ...]`` status ranges, the default when there are none."""
    if not value:
        return DEFAULT_ERROR_RANGES
    if not isinstance(value, (list, tuple)):
        raise SavedSpecError("errorRanges: expected a list of [low, high] pairs")
    ranges = []
    for i, pair in enumerate(value):
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in pair)
                or not 100 <= pair[0] <= pair[1] <= 599):
            raise SavedSpecError(f"errorRanges[{i}]: {pair!r} is not a range of HTTP statuses "
                                 "within 100-599")
        ranges.append((pair[0], pair[1]))
    return tuple(ranges)


def _dark_launch(target: Any) -> str | None:
    launch = target.get("kubernetes") if isinstance(target, Mapping) else None
    if not isinstance(launch, Mapping):
        return None
    manifests = ", ".join(str(m) for m in launch.get("manifests") or [])
    return (f"{manifests} in namespace {launch.get('namespace', 'default')}, "
            f"cleanup {launch.get('cleanup', 'never')}")
