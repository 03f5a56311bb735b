"""Reading a spec's custom metrics: the reachability check before the load, the readings after.

``check_metrics`` runs every rendered query once against its provider before any load is sent:
an unreachable store, a refused token or a query Prometheus rejects (its own HTTP 400) raises
:class:`~coordinator.prometheus.MetricsError` (exit 2), naming the metric and the HTTP status.
``read_metrics`` reads every custom metric for every version over the measured phase (warm-up
and ramp excluded, as for the built-in metrics) and returns :class:`~analysis.custom.Reading`
values; a failure there is a reading's ``error`` (the run is then INVALID), no series "no data".
Secrets (tokens, passwords) are read here, sent as headers by the adapter, and never logged.
"""

from __future__ import annotations

import base64
import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from analysis.custom import (
    QueryError,
    Reading,
    decode,
    reading_from,
    render,
    variables_for,
)
from coordinator.errors import EXPECTED
from coordinator.metrics_spec import (
    Credential,
    CustomMetric,
    MetricsSpec,
    PrometheusProvider,
)
from coordinator.prometheus import Connection, MetricsError, Query, run_queries
from coordinator.spec import ExperimentSpec

CHECK_INTERVAL_S = 60.0  # the {{ interval }} a query is checked with before the load
MAX_POINTS = 10_000  # Prometheus refuses more than 11,000 points per series


def read_credential(credential: Credential, what: str, base_dir: Path = Path(".")) -> str:
    """Return the secret ``credential`` points at: an environment variable, a file or a key of
    a Kubernetes Secret; MetricsError (KubernetesError for the Secret) when there is none."""
    import os

    if credential.env is not None:
        value = os.environ.get(credential.env, "").strip()
        if not value:
            raise MetricsError(f"{what}: the environment variable {credential.env} is not set")
        return value
    if credential.file is not None:
        path = base_dir / credential.file
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise MetricsError(f"{what}: cannot read {path} ({type(exc).__name__})") from None
        if not value:
            raise MetricsError(f"{what}: {path} is empty")
        return value
    from coordinator.promote_wiring import pod_namespace
    from deploy.launch import read_kubernetes_secret

    ref = credential.secret
    assert ref is not None  # exactly one source (validated)
    namespace = ref.namespace or pod_namespace()
    value = read_kubernetes_secret(ref.name, ref.key, namespace, kubeconfig=ref.kubeconfig,
                                   context=ref.context).strip()
    if not value:
        raise MetricsError(f"{what}: secret {namespace}/{ref.name}: key {ref.key} is empty")
    return value


def connection_for(provider: PrometheusProvider, base_dir: Path = Path(".")) -> Connection:
    """Return how to reach ``provider``, its credentials read."""
    where = f"metrics provider {provider.name}:"
    headers = {}
    if provider.bearer_token is not None:
        token = read_credential(provider.bearer_token, f"{where} bearerToken", base_dir)
        headers["Authorization"] = f"Bearer {token}"
    elif provider.basic_auth is not None:
        password = read_credential(provider.basic_auth.password,
                                   f"{where} basicAuth.password", base_dir)
        pair = f"{provider.basic_auth.username}:{password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    tls: ssl.SSLContext | bool | None = False if provider.insecure else None
    if provider.ca_file is not None:
        try:
            tls = ssl.create_default_context(cafile=str(base_dir / provider.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise MetricsError(f"{where} caFile: cannot load {base_dir / provider.ca_file} "
                               f"({type(exc).__name__})") from None
    return Connection(url=provider.url, headers=headers, tls=tls, timeout_s=provider.timeout)


def _variables(spec: ExperimentSpec, version: str, start_s: float,
               end_s: float) -> dict[str, str]:
    metrics = spec.metrics
    assert metrics is not None
    chosen = metrics.candidate if version == "candidate" else metrics.baseline
    promotion = spec.promotion
    default_version = (promotion.version if promotion and version == "candidate" else version)
    kubernetes = spec.target.kubernetes
    return variables_for(
        namespace=metrics.namespace or (kubernetes.namespace if kubernetes else "default"),
        app=metrics.app or (promotion.app if promotion else spec.name),
        version=chosen.version or default_version, labels=chosen.labels,
        start_s=start_s, end_s=end_s)


def _versions(spec: ExperimentSpec) -> list[str]:
    """Return the versions read: the candidate, and the baseline when there is one (known
    before a Kubernetes target has its URL)."""
    return ["baseline", "candidate"] if spec.baseline is not None else ["candidate"]


def _query(metric: CustomMetric, promql: str, start_s: float, end_s: float) -> Query:
    if metric.mode == "instant":
        return Query(metric=metric.name, promql=promql, at_s=end_s)
    step = max(metric.step, (end_s - start_s) / MAX_POINTS)
    return Query(metric=metric.name, promql=promql, start_s=start_s, end_s=end_s, step_s=step)


Runner = Callable[[Connection, Sequence[Query]], list[Any]]


def _plan(spec: ExperimentSpec, start_s: float, end_s: float, *, check: bool
          ) -> list[tuple[PrometheusProvider, list[tuple[CustomMetric, str, Query]]]]:
    """Return, per provider, its (metric, version, query) triples over [start, end]."""
    metrics: MetricsSpec | None = spec.metrics
    if metrics is None:
        return []
    planned = []
    for provider in metrics.providers:
        triples = []
        for metric in (m for m in metrics.custom if metrics.provider_of(m) is provider):
            for version in _versions(spec):
                promql = render(metric.query, _variables(spec, version, start_s, end_s))
                query = (Query(metric=metric.name, promql=promql, at_s=end_s) if check
                         else _query(metric, promql, start_s, end_s))
                triples.append((metric, version, query))
        planned.append((provider, triples))
    return planned


def check_metrics(spec: ExperimentSpec, *, base_dir: Path = Path("."),
                  now_s: float | None = None, runner: Runner = run_queries) -> int:
    """Run every custom metric's query once (the last minute as ``{{ interval }}``) before the
    load; return how many were checked, or raise MetricsError for the first that failed or
    returned several series (no data is fine here: the run has not made any yet)."""
    end = time.time() if now_s is None else now_s
    checked = 0
    for provider, triples in _plan(spec, end - CHECK_INTERVAL_S, end, check=True):
        answers = runner(connection_for(provider, base_dir), [q for _, _, q in triples])
        for (metric, version, query), answer in zip(triples, answers, strict=True):
            if isinstance(answer, MetricsError):
                raise MetricsError(f"{answer} (checked before the load, for the {version}; "
                                   "no load was sent)")
            reading = _reading(metric, version, query, answer)
            if reading.error:  # not numbers, or several series: the run could not be judged
                raise MetricsError(f"{reading.error} (checked before the load, for the "
                                   f"{version}; no load was sent)")
            checked += 1
    return checked


def read_metrics(spec: ExperimentSpec, start_s: float, end_s: float, *,
                 base_dir: Path = Path("."), runner: Runner = run_queries,
                 sleep: Callable[[float], None] = time.sleep) -> list[Reading]:
    """Return every custom metric's reading for every version over the measured phase
    [start_s, end_s] (unix seconds), after ``metrics.queryDelay``; failures are readings'
    errors, never exceptions (the run is judged INVALID from them)."""
    if spec.metrics is None:
        return []
    if spec.metrics.query_delay:
        sleep(spec.metrics.query_delay)
    readings = []
    for provider, triples in _plan(spec, start_s, end_s, check=False):
        try:
            answers = runner(connection_for(provider, base_dir), [q for _, _, q in triples])
        except EXPECTED as exc:  # a credential (variable, file, Secret) gone during the run
            answers = [MetricsError(str(exc))] * len(triples)
        for (metric, version, query), answer in zip(triples, answers, strict=True):
            readings.append(_reading(metric, version, query, answer))
    return readings


def _reading(metric: CustomMetric, version: str, query: Query, answer: Any) -> Reading:
    if isinstance(answer, MetricsError):
        error: str | None = str(answer)
    else:
        try:
            return reading_from(decode(answer), name=metric.name, version=version,
                                query=query.promql, unit=metric.unit,
                                how=metric.reduce or "last")
        except QueryError as exc:
            error = f"custom metric {metric.name}: {exc}"
    return Reading(name=metric.name, version=version, query=query.promql, unit=metric.unit,
                   error=error)
