"""The spec's ``metrics`` block: metrics stores (providers) and custom metrics read from them.

Pydantic models, validated with the rest of the spec (:mod:`coordinator.spec`); no I/O here.
Example::

    metrics:
      providers:
        - name: prom                       # default "prometheus"
          type: prometheus
          url: http://prometheus.monitoring:9090
          bearerToken: {secret: {name: prom-token, key: token}}   # or {env: X} or {file: path}
          timeout: 5s
      candidate: {version: "2.0", labels: {version: "2.0"}}       # {{ version }}, {{ labels }}
      baseline: {version: "1.0", labels: {version: "1.0"}}
      custom:
        - name: server-p99
          unit: s
          query: >-
            histogram_quantile(0.99, sum by (le) (rate(
              hello_request_duration_seconds_bucket{ {{ labels }} }[{{ interval }}])))

An objective then names the custom metric like a built-in one:
``{metric: server-p99, upperLimit: 0.05}`` (limits are numbers in the metric's ``unit``; with
``vs: baseline`` a ratio such as ``1.1`` or ``110%``).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from analysis.catalog import kind_of
from analysis.custom import VARIABLES, template_variables
from coordinator import units
from promote.spec import SpecModel as _Model

NAME_PATTERN = r"^[a-z][a-z0-9_.-]{0,62}$"
MAX_CUSTOM_METRICS = 100
Seconds = Annotated[float, BeforeValidator(units.parse_duration_s), Field(gt=0)]


class SecretRef(_Model):
    """A key of a Kubernetes Secret: ``{name: prom-token, key: token, namespace: monitoring}``."""

    name: str = Field(min_length=1, max_length=253)
    key: str = Field("token", min_length=1)
    namespace: str | None = Field(None, description="Default: the pod's own namespace in a "
                                  "cluster, else 'default'.")
    kubeconfig: str | None = None
    context: str | None = None


class Credential(_Model):
    """Where a secret value comes from: exactly one of ``env``, ``file`` or ``secret``."""

    env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                            description="An environment variable holding it.")
    file: str | None = Field(None, description="A file holding it (e.g. a mounted Secret).")
    secret: SecretRef | None = Field(None, description="A Kubernetes Secret's key.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Credential:
        given = [k for k in ("env", "file", "secret") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of env, file, secret"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self


class BasicAuth(_Model):
    """HTTP basic authentication: ``{username: slogate, password: {env: PROM_PASSWORD}}``."""

    username: str = Field(min_length=1)
    password: Credential


def _http_url(url: str) -> str:
    """Return ``url`` without a trailing slash, refusing credentials in it; the rest of the
    spec's URL rule (scheme, host, port, characters) is checked with the whole spec
    (:class:`coordinator.spec.ExperimentSpec`)."""
    if "@" in re.split(r"[/?#]", url.partition("://")[2], maxsplit=1)[0]:
        raise ValueError("credentials in the URL (user:password@) are refused: they would be "
                         "shown and saved with the results; use basicAuth or bearerToken")
    return url.rstrip("/")


class PrometheusProvider(_Model):
    """A Prometheus server (or anything speaking its HTTP API: Thanos, Mimir, VictoriaMetrics)."""

    name: str = Field("prometheus", pattern=NAME_PATTERN)
    type: Literal["prometheus"] = "prometheus"
    url: str = Field(description="Base URL, e.g. http://prometheus.monitoring:9090.")
    bearer_token: Credential | None = Field(None, description="Sent as 'Authorization: Bearer'.")
    basic_auth: BasicAuth | None = None
    ca_file: str | None = Field(None, description="PEM file of the CA that signed its "
                                "certificate.")
    insecure: bool = Field(False, description="Skip TLS certificate verification.")
    timeout: Seconds = Field(5.0, le=300.0, description="Per-query timeout.")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return _http_url(url)

    @model_validator(mode="after")
    def _one_auth(self) -> PrometheusProvider:
        if self.bearer_token is not None and self.basic_auth is not None:
            raise ValueError("set at most one of bearerToken, basicAuth")
        if self.insecure and self.ca_file is not None:
            raise ValueError("set at most one of caFile, insecure")
        return self


class VersionVariables(_Model):
    """What ``{{ version }}`` and ``{{ labels }}`` are for one version's queries."""

    version: str | None = Field(None, description="Default: promotion.version for the "
                                "candidate, else 'candidate' / 'baseline'.")
    labels: dict[str, str] = Field(default_factory=dict, description="Rendered as PromQL "
                                   'matchers: {version: "2.0"} -> version="2.0".')

    @field_validator("labels")
    @classmethod
    def _label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        for name in labels:
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name):
                raise ValueError(f"{name!r} is not a Prometheus label name")
        return labels


class CustomMetric(_Model):
    """A metric read from a provider with a PromQL query template.

    ``mode: instant`` evaluates the query once at the end of the measured phase (use
    ``{{ interval }}`` for a range vector over the phase); ``mode: range`` evaluates it every
    ``step`` over the phase and reduces the series with ``reduce`` (last, max, mean).
    """

    name: str = Field(pattern=NAME_PATTERN, description="Named by objectives, e.g. server-p99.")
    query: str = Field(min_length=1, max_length=10_000, description="PromQL; variables: "
                       + ", ".join("{{ " + v + " }}" for v in VARIABLES))
    provider: str | None = Field(None, description="A provider's name; default the only one.")
    unit: str = Field("", max_length=20, description="Shown with the value: ms, s, cores, "
                      "bytes, ...; limits are numbers in it.")
    mode: Literal["instant", "range"] = "instant"
    reduce: Literal["last", "max", "mean"] | None = Field(
        None, description="range: how the series becomes one value (default last).")
    step: Seconds = Field(1.0, le=3600.0, description="range: resolution of the series.")
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _not_built_in(cls, name: str) -> str:
        if kind_of(name) is not None:
            raise ValueError(f"{name!r} is a built-in metric; give the custom one another name")
        return name

    @field_validator("query")
    @classmethod
    def _known_variables(cls, query: str) -> str:
        unknown = [v for v in template_variables(query) if v not in VARIABLES]
        if unknown:
            raise ValueError(f"unknown template variable {{{{ {unknown[0]} }}}}; known: "
                             + ", ".join(VARIABLES))
        return query

    @model_validator(mode="after")
    def _reduce_for_range(self) -> CustomMetric:
        if self.reduce is not None and self.mode != "range":
            raise ValueError("reduce: only for mode: range (an instant query gives one value)")
        return self


class MetricsSpec(_Model):
    """Metrics stores and the custom metrics read from them (see the module docstring)."""

    providers: list[PrometheusProvider] = Field(min_length=1, max_length=10)
    custom: list[CustomMetric] = Field(min_length=1, max_length=MAX_CUSTOM_METRICS)
    namespace: str | None = Field(None, description="{{ namespace }}; default the Kubernetes "
                                  "target's namespace, else 'default'.")
    app: str | None = Field(None, description="{{ app }}; default promotion.app, else the "
                            "experiment's name.")
    candidate: VersionVariables = VersionVariables.model_validate({})
    baseline: VersionVariables = VersionVariables.model_validate({})
    query_delay: Annotated[float, BeforeValidator(units.parse_duration_s), Field(ge=0)] = Field(
        0.0, le=600.0, description="Wait this long after the load before reading, so that the "
        "last scrape of the measured phase is in (e.g. one scrape interval).")

    @model_validator(mode="after")
    def _names(self) -> MetricsSpec:
        providers = [p.name for p in self.providers]
        for label, names in (("providers", providers), ("custom", [c.name for c in self.custom])):
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"{label}: names must be unique; {twice[0]!r} is used twice")
        for index, metric in enumerate(self.custom):
            if metric.provider is None and len(providers) > 1:
                raise ValueError(f"custom[{index}].provider: several providers; name one of "
                                 + ", ".join(providers))
            if metric.provider is not None and metric.provider not in providers:
                raise ValueError(f"custom[{index}].provider: {metric.provider!r} is not a "
                                 "provider's name; the providers are " + ", ".join(providers))
        return self

    def provider_of(self, metric: CustomMetric) -> PrometheusProvider:
        """Return the provider a custom metric is read from."""
        return next(p for p in self.providers if metric.provider in (None, p.name))


def custom_units(data: Any) -> dict[str, str]:
    """Return ``{name: unit}`` of the custom metrics declared in raw spec data (before
    validation), so that objectives naming them are recognised and their limits parsed."""
    metrics = data.get("metrics") if isinstance(data, dict) else None
    custom = metrics.get("custom") if isinstance(metrics, dict) else None
    if not isinstance(custom, list):
        return {}
    return {str(item["name"]): str(item.get("unit") or "") for item in custom
            if isinstance(item, dict) and isinstance(item.get("name"), str)
            and kind_of(item["name"]) is None}


def parse_custom_limit(value: object, unit: str, *, relative: bool) -> float:
    """Return a limit of a custom objective: a number in the metric's unit (``50ms`` also for a
    metric in ms or s, ``5%`` for a ratio), or with ``relative`` a positive ratio (``1.1``,
    ``110%``)."""
    text = str(value).strip()
    if relative or text.endswith("%"):
        number = float(text[:-1]) / 100 if text.endswith("%") else _plain(value)
        if relative and number <= 0:
            raise ValueError(f"{value!r} is not a positive ratio (use e.g. 1.1 or 110%)")
        return number
    if unit in ("ms", "s") and isinstance(value, str) and re.search(r"[a-zµ]\s*$", text):
        seconds = units.parse_duration_s(text)
        return seconds * 1000 if unit == "ms" else seconds
    return _plain(value)


def _plain(value: object) -> float:
    """Return a finite number written as a number or a numeric string; ValueError otherwise."""
    try:
        number = None if isinstance(value, bool) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = None
    if number is None:
        raise ValueError(f"{value!r} is not a number in the metric's unit")
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number
